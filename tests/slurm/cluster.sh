#!/usr/bin/env bash
# A single-node SLURM cluster on localhost from Debian's packages (slurmctld, slurmd,
# slurm-client, munge), for the tests; it needs root. Everything it writes lies in STATE_DIR,
# but for one link, /etc/slurm/slurm.conf -> STATE_DIR/slurm.conf (see SYSTEM_CONF).
#
#   tests/slurm/cluster.sh start STATE_DIR   # then: export SLURM_CONF=STATE_DIR/slurm.conf
#   tests/slurm/cluster.sh stop STATE_DIR
#
# PID 1 need not be systemd: munged, slurmctld and slurmd run as background daemons with PID
# files and are stopped by them. Its own munged socket and free ports keep it apart from any
# other SLURM on the machine. No slurmdbd: submit with `slurm-status-command: squeue`
# (MinJobAge=300 keeps finished jobs visible to squeue longer than the plugin's longest poll
# interval, 180 s). The node has two fake GPUs (GRES gpu:fake:2) whose device files are
# /dev/null's (mknod c 1 3): SLURM hands them out and sets CUDA_VISIBLE_DEVICES, and no CUDA
# program can use them.
set -euo pipefail

PARTITION=debug
# Inside a job, the SLURM executor's jobstep starts the rule with `srun` after removing every
# SLURM_* variable, SLURM_CONF too (snakemake-executor-plugin-slurm-jobstep 0.6.1); srun then
# only finds a config at this default path. The link is made at start, removed at stop, and
# an existing file there is never replaced: one such cluster per machine at a time.
SYSTEM_CONF=/etc/slurm/slurm.conf
NODE=localhost
READY_SECONDS=${READY_SECONDS:-60}

fail() {
    echo "cluster.sh: $*" >&2
    exit 1
}

# Exit status 2: this machine cannot run the cluster at all (the tests may skip).
cannot() {
    echo "cluster.sh: cannot start SLURM here: $*" >&2
    exit 2
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

write_config() {
    local state=$1 cpus memory ctld_port slurmd_port
    cpus=$(getconf _NPROCESSORS_ONLN)
    # What slurmd measures, less a margin: a node configured with more memory is drained.
    memory=$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
    ctld_port=$(free_port)
    slurmd_port=$(free_port)
    while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done

    cat >"$state/slurm.conf" <<EOF
ClusterName=keras-repro-test
SlurmctldHost=$NODE
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$state/munge/munge.socket.2
StateSaveLocation=$state/slurmctld
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
PlugStackConfig=$state/plugstack.conf
MailProg=/bin/true
# No systemd, no cgroups to rely on.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
# squeue forgets a finished job after MinJobAge seconds; the plugin polls up to every 180 s.
MinJobAge=300
SlurmdTimeout=300
InactiveLimit=0
KillWait=10
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:fake:2 State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$state/gres.conf" <<EOF
AutoDetect=off
NodeName=$NODE Name=gpu Type=fake File=$state/gpu/nvidia0
NodeName=$NODE Name=gpu Type=fake File=$state/gpu/nvidia1
EOF
    : >"$state/plugstack.conf"
}

start_munge() {
    local state=$1 dir=$1/munge
    mkdir -p "$dir"
    [ -f "$dir/munge.key" ] || mungekey --create --keyfile="$dir/munge.key" 2>/dev/null ||
        dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
    chmod 0600 "$dir/munge.key"
    chown -R munge:munge "$dir"
    # Clients need to reach the socket; munged checks that only its user can write here.
    chmod 0755 "$dir"
    # munged refuses to run as root.
    runuser -u munge -- munged \
        --socket="$dir/munge.socket.2" \
        --key-file="$dir/munge.key" \
        --pid-file="$dir/munged.pid" \
        --log-file="$dir/munged.log" \
        --seed-file="$dir/munged.seed" ||
        fail "munged did not start: $(tail -n 5 "$dir/munged.log" 2>/dev/null)"
    munge -n -S "$dir/munge.socket.2" | unmunge -S "$dir/munge.socket.2" >/dev/null ||
        fail "munge does not answer on $dir/munge.socket.2"
}

wait_until_idle() {
    local state=$1 waited=0 node_state
    while [ "$waited" -lt "$READY_SECONDS" ]; do
        node_state=$(SLURM_CONF="$state/slurm.conf" sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
        [ "$node_state" = idle ] && return 0
        sleep 1
        waited=$((waited + 1))
    done
    fail "node $NODE not idle after ${READY_SECONDS}s (state: '${node_state:-}'); the end of the logs:
$(tail -n 15 "$state/log/slurmctld.log" "$state/log/slurmd.log" 2>/dev/null)"
}

start() {
    local state=$1 missing=()
    [ "$(id -u)" -eq 0 ] || cannot "slurmd and munged must be started as root (this is uid $(id -u))"
    for command in munged munge unmunge mungekey slurmctld slurmd sinfo sbatch squeue scancel runuser; do
        command -v "$command" >/dev/null || missing+=("$command")
    done
    [ ${#missing[@]} -eq 0 ] ||
        cannot "missing ${missing[*]} (apt-get install -y slurmctld slurmd slurm-client munge)"
    id munge >/dev/null 2>&1 || cannot "no user munge (the munge package creates it)"
    [ ! -e "$state/slurmctld.pid" ] || fail "$state already holds a cluster; stop it first"

    mkdir -p "$state"/{slurmctld,slurmd,log,gpu}
    # munged runs as munge and must reach its folder inside this one.
    chmod 0755 "$state"
    for index in 0 1; do
        [ -e "$state/gpu/nvidia$index" ] || mknod "$state/gpu/nvidia$index" c 1 3 ||
            cannot "mknod is not allowed here (the fake GPUs are device files)"
    done
    # A link whose target is gone is left over from a cluster that was never stopped.
    if [ -e "$SYSTEM_CONF" ]; then
        fail "$SYSTEM_CONF exists (another SLURM on this machine?); it is left alone: stop that cluster first"
    fi
    write_config "$state"
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    ln -sfn "$state/slurm.conf" "$SYSTEM_CONF"
    start_munge "$state"
    slurmctld -f "$state/slurm.conf" || fail "slurmctld did not start: $(tail -n 15 "$state/log/slurmctld.log")"
    slurmd -f "$state/slurm.conf" -N "$NODE" || fail "slurmd did not start: $(tail -n 15 "$state/log/slurmd.log")"
    wait_until_idle "$state"
    echo "SLURM is up: export SLURM_CONF=$state/slurm.conf (partition $PARTITION)"
}

stop_daemon() {
    local pid_file=$1 pid waited=0
    [ -f "$pid_file" ] || return 0
    pid=$(cat "$pid_file")
    if kill -TERM "$pid" 2>/dev/null; then
        while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 20 ]; do
            sleep 0.5
            waited=$((waited + 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pid_file"
}

stop() {
    local state=$1 jobs
    [ -d "$state" ] || fail "no such folder: $state"
    if [ -f "$state/slurmctld.pid" ]; then
        # Jobs still running would outlive slurmd as orphaned slurmstepd processes.
        jobs=$(SLURM_CONF="$state/slurm.conf" squeue -h -o %i 2>/dev/null || true)
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086  # one argument per job id
            SLURM_CONF="$state/slurm.conf" scancel $jobs 2>/dev/null || true
            sleep 2
        fi
    fi
    stop_daemon "$state/slurmd.pid"
    stop_daemon "$state/slurmctld.pid"
    stop_daemon "$state/munge/munged.pid"
    if [ "$(readlink "$SYSTEM_CONF" 2>/dev/null)" = "$state/slurm.conf" ]; then
        rm -f "$SYSTEM_CONF"
    fi
}

case "${1:-}" in
start | stop)
    [ $# -eq 2 ] || fail "usage: $0 start|stop STATE_DIR"
    state=$(realpath -m "$2")
    "$1" "$state"
    ;;
*) fail "usage: $0 start|stop STATE_DIR" ;;
esac
