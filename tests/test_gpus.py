"""A GPU per concurrent run, without a GPU: fake cards, a fake nvidia-smi, real lock files and
real processes."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import tiny_run

from keras_repro.data.dataset import NPZ_KEYS, write_npz_deterministic
from keras_repro.data.synthetic import make_arrays
from keras_repro.files import UnsafePath
from keras_repro.records.record import read_record
from keras_repro.training import gpus
from keras_repro.training.gpus import (
    ASSIGNMENT_VARIABLE,
    Gpu,
    GpuAssignment,
    assign_gpu,
    assignment_from_environment,
    list_gpus,
    lock_path,
)
from keras_repro.training.launch import train_in_fresh_process

CARD_A = Gpu(index=0, uuid="GPU-aaaaaaaa-0000-0000-0000-000000000000", name="Fake A100")
CARD_B = Gpu(index=1, uuid="GPU-bbbbbbbb-1111-1111-1111-111111111111", name="Fake H200")
TWO_CARDS_SMI = f"""\
0, {CARD_A.uuid}, {CARD_A.name}
1, {CARD_B.uuid}, {CARD_B.name}
"""

# One fake training job: holds a card until the file "release" appears, writing what it got.
HOLDER = """\
import json, os, subprocess, sys, time
from pathlib import Path
from keras_repro.training.gpus import Gpu, assign_gpu
from keras_repro.logs import configure_logging

lock_dir, runs_per_gpu, cards, folder, name, with_child = sys.argv[1:]
folder = Path(folder)
configure_logging()


def until_released():
    while not (folder / "release").exists():
        time.sleep(0.01)


def write(suffix, data):
    (folder / f"{name}.tmp").write_text(json.dumps(data))
    os.replace(folder / f"{name}.tmp", folder / f"{name}.{suffix}")


gpus = [Gpu(**card) for card in json.loads(cards)]
with assign_gpu(Path(lock_dir), int(runs_per_gpu), {}, gpus, poll_seconds=0.02) as assignment:
    start = time.time()
    if with_child == "child":
        # As the launcher starts the training process: the lock descriptor inherited.
        child = subprocess.Popen(
            [sys.executable, "-c", f"import time, pathlib\\n"
             f"while not pathlib.Path({str(folder / 'release')!r}).exists(): time.sleep(0.01)"],
            pass_fds=(assignment.lock_fd,),
        )
        (folder / f"{name}.child").write_text(str(child.pid))
    write("held", assignment.to_dict())
    until_released()
    end = time.time()
write("done", {**assignment.to_dict(), "start": start, "end": end})
"""


def card_dicts(cards: list[Gpu]) -> str:
    return json.dumps([{"index": c.index, "uuid": c.uuid, "name": c.name} for c in cards])


def wait_for(condition: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Jobs:
    """Fake training jobs as real processes, each with its stderr in a file."""

    def __init__(self, folder: Path, lock_dir: Path) -> None:
        self.folder, self.lock_dir = folder, lock_dir
        self.processes: dict[str, subprocess.Popen] = {}

    def arguments(self, cards: list[Gpu], runs_per_gpu: int = 1) -> list[str]:
        return [str(self.lock_dir), str(runs_per_gpu), card_dicts(cards), str(self.folder)]

    def start(
        self, name: str, cards: list[Gpu], runs_per_gpu: int = 1, child: bool = False
    ) -> subprocess.Popen:
        arguments = self.arguments(cards, runs_per_gpu)
        with open(self.folder / f"{name}.err", "w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-c", HOLDER, *arguments, name, "child" if child else "-"],
                stderr=stderr,
            )
        self.processes[name] = process
        return process

    def held(self) -> dict[str, dict]:
        return {path.stem: json.loads(path.read_text()) for path in self.folder.glob("*.held")}

    def stderr(self, name: str) -> str:
        return (self.folder / f"{name}.err").read_text()

    def release(self) -> None:
        (self.folder / "release").touch()

    def finish(self) -> dict[str, dict]:
        for name, process in self.processes.items():
            assert process.wait(timeout=60) == 0, self.stderr(name)
        return {path.stem: json.loads(path.read_text()) for path in self.folder.glob("*.done")}

    def kill_all(self) -> None:
        self.release()
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[Jobs]:
    folder = tmp_path / "jobs"
    folder.mkdir()
    started = Jobs(folder, tmp_path / "locks")
    yield started
    started.kill_all()  # whatever a failed test left running; the release file ends children


@pytest.fixture(autouse=True)
def fresh_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpus, "_reported", set())


def fake_nvidia_smi(monkeypatch: pytest.MonkeyPatch, folder: Path, body: str) -> None:
    """An executable ``nvidia-smi`` first on PATH; it refuses any other query than ours."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$*" != "--query-gpu=index,uuid,name --format=csv,noheader" ]; then\n'
        '  echo "unexpected arguments: $*" >&2; exit 64\n'
        "fi\n" + body
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def printing(text: str) -> str:
    return f"cat <<'EOF'\n{text}EOF\n"


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


# -- the pool, with concurrent processes ---------------------------------------------------------


@pytest.mark.parametrize("runs_per_gpu", [1, 2])
def test_one_more_job_than_slots_waits_and_no_card_gets_more_than_its_share(jobs, runs_per_gpu):
    cards = [CARD_A, CARD_B]
    slots = len(cards) * runs_per_gpu
    names = [f"job{n}" for n in range(slots + 1)]
    for name in names:
        jobs.start(name, cards, runs_per_gpu)

    wait_for(lambda: len(jobs.held()) == slots)
    (late,) = set(names) - set(jobs.held())
    message = f"waiting for a free GPU: 2 cards × {runs_per_gpu} runs each are busy"
    wait_for(lambda: message in jobs.stderr(late))
    time.sleep(0.3)  # some polls later, still nothing free
    held = jobs.held()
    assert late not in held
    assert Counter(h["uuid"] for h in held.values()) == {
        CARD_A.uuid: runs_per_gpu,
        CARD_B.uuid: runs_per_gpu,
    }
    assert len({(h["uuid"], h["slot"]) for h in held.values()}) == slots
    for h in held.values():
        assert h["source"] == "pool" and h["cuda_visible_devices"] == h["uuid"]

    jobs.release()
    done = jobs.finish()
    assert set(done) == set(names)
    for card in cards:
        intervals = [(d["start"], d["end"]) for d in done.values() if d["uuid"] == card.uuid]
        assert max_overlap(intervals) <= runs_per_gpu
    assert [name for name in names if "waiting for a free GPU" in jobs.stderr(name)] == [late]
    assert jobs.stderr(late).count("waiting for a free GPU") == 1


def test_a_killed_holder_frees_its_card(jobs):
    holder = jobs.start("holder", [CARD_A])
    wait_for(lambda: "holder" in jobs.held())
    jobs.start("next", [CARD_A])
    wait_for(lambda: "waiting for a free GPU" in jobs.stderr("next"))
    assert "next" not in jobs.held()

    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    wait_for(lambda: "next" in jobs.held(), timeout=10)
    assert jobs.held()["next"]["uuid"] == CARD_A.uuid


def test_the_training_process_keeps_the_card_after_its_launcher_dies(jobs):
    holder = jobs.start("launcher", [CARD_A], child=True)
    wait_for(lambda: "launcher" in jobs.held())
    assert (jobs.folder / "launcher.child").exists()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    jobs.processes.pop("launcher")

    jobs.start("next", [CARD_A])
    wait_for(lambda: "waiting for a free GPU" in jobs.stderr("next"))
    time.sleep(0.3)
    assert "next" not in jobs.held(), "the card was handed out while its training still ran"

    jobs.release()  # ends the orphaned training process, and with it the lock
    assert jobs.finish()["next"]["uuid"] == CARD_A.uuid


# -- the pool, in one process (flock locks conflict between two opens of one file) -------------


def test_runs_spread_over_cards_before_doubling_up_and_free_their_slot(tmp_path):
    cards = [CARD_A, CARD_B]
    with (
        assign_gpu(tmp_path, 2, {}, cards) as first,
        assign_gpu(tmp_path, 2, {}, cards) as second,
        assign_gpu(tmp_path, 2, {}, cards) as third,
    ):
        assert (first.gpu, first.slot) == (CARD_A, 0)
        assert (second.gpu, second.slot) == (CARD_B, 0)
        assert (third.gpu, third.slot) == (CARD_A, 1)
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            f"{CARD_A.uuid}.slot0.lock",
            f"{CARD_A.uuid}.slot1.lock",
            f"{CARD_B.uuid}.slot0.lock",
        ]
        with assign_gpu(tmp_path, 2, {}, cards) as fourth:
            assert (fourth.gpu, fourth.slot) == (CARD_B, 1)
    with assign_gpu(tmp_path, 2, {}, cards) as again:
        assert (again.gpu, again.slot) == (CARD_A, 0)


def test_a_card_without_uuid_is_named_by_index_in_nvidia_smis_order(tmp_path):
    card = Gpu(index=3, uuid=None, name=None)
    with assign_gpu(tmp_path, 1, {}, [card]) as assignment:
        assert assignment.cuda_visible_devices == "3"
        assert (tmp_path / "3.slot0.lock").exists()
        assert assignment.child_environment() == {
            ASSIGNMENT_VARIABLE: assignment.to_json(),
            "CUDA_VISIBLE_DEVICES": "3",
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        }


def test_no_card_leaves_the_environment_alone(tmp_path):
    with assign_gpu(tmp_path / "locks", 1, {}, []) as assignment:
        assert assignment == GpuAssignment(source="none", cuda_visible_devices=None)
        assert set(assignment.child_environment()) == {ASSIGNMENT_VARIABLE}
    assert not (tmp_path / "locks").exists()


def test_runs_per_gpu_below_one_is_refused(tmp_path):
    with (
        pytest.raises(ValueError, match="runs_per_gpu must be at least 1"),
        assign_gpu(tmp_path, 0, {}, [CARD_A]),
    ):
        pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any file")
def test_another_users_read_only_lock_file_can_still_be_locked(tmp_path):
    path = lock_path(tmp_path, CARD_A, 0)
    path.touch(mode=0o444)
    with assign_gpu(tmp_path, 1, {}, [CARD_A]) as assignment:
        assert assignment.slot == 0
        with open(path) as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


@pytest.mark.parametrize("planted", ["folder", "host folder", "lock file"])
def test_a_planted_symlink_is_refused_and_nothing_is_created_where_it_points(tmp_path, planted):
    """Each job a real process: whichever part of the pool is a link out of ``results/``, it
    fails with one line naming the link, and the folder it points to stays empty."""
    outside = tmp_path / "outside"
    outside.mkdir()
    locks = tmp_path / "results" / ".gpu-locks"
    if planted == "folder":
        locks.parent.mkdir()
        locks.symlink_to(outside)
        link = locks
    elif planted == "host folder":
        locks.mkdir(parents=True)
        (locks / "host").symlink_to(outside)
        link = locks / "host"
    else:
        (locks / "host").mkdir(parents=True)
        lock_path(locks / "host", CARD_A, 0).symlink_to(outside / "lock")
        link = lock_path(locks / "host", CARD_A, 0)
    folder = tmp_path / "jobs"
    folder.mkdir()
    jobs = Jobs(folder, locks / "host")
    # as the launcher calls it: the pool inside the results folder
    within = f"poll_seconds=0.02, within=Path({str(tmp_path / 'results')!r}))"
    script = HOLDER.replace("poll_seconds=0.02)", within)
    assert script != HOLDER
    process = subprocess.Popen(
        [sys.executable, "-c", script, *jobs.arguments([CARD_A]), "job", "-"],
        stderr=subprocess.PIPE,
        text=True,
    )
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stderr.count("\n") == 1, stderr
    assert f"GPU pool: {link} is a symlink (to {outside}" in stderr
    assert f"rm {link}" in stderr
    assert list(outside.iterdir()) == []


def test_a_lock_folder_outside_its_results_folder_is_refused(tmp_path):
    with (
        pytest.raises(UnsafePath, match="is not inside"),
        assign_gpu(tmp_path / "elsewhere", 1, {}, [CARD_A], within=tmp_path / "results"),
    ):
        pass
    assert not (tmp_path / "elsewhere").exists()


# -- a scheduler's choice ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "cards", "expected"),
    [
        ({"CUDA_VISIBLE_DEVICES": CARD_B.uuid}, [CARD_A, CARD_B], CARD_B),
        ({"CUDA_VISIBLE_DEVICES": "GPU-bbbbbbbb"}, [CARD_A, CARD_B], CARD_B),  # a UUID prefix
        # An index is CUDA's numbering, nvidia-smi's only in PCI bus order or among equal cards.
        ({"CUDA_VISIBLE_DEVICES": "1"}, [CARD_A, CARD_B], None),
        (
            {"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
            [CARD_A, CARD_B],
            CARD_B,
        ),
        (
            {"CUDA_VISIBLE_DEVICES": "1"},
            [Gpu(0, "GPU-0", "Same"), Gpu(1, "GPU-1", "Same")],
            Gpu(1, "GPU-1", "Same"),
        ),
        ({"CUDA_VISIBLE_DEVICES": "0,1"}, [CARD_A, CARD_B], None),  # not one card
        ({"CUDA_VISIBLE_DEVICES": "MIG-1234"}, [CARD_A, CARD_B], None),
        ({"CUDA_VISIBLE_DEVICES": ""}, [CARD_A, CARD_B], None),  # no GPU for this job
    ],
)
def test_a_scheduler_set_cuda_visible_devices_is_used_as_is_without_a_lock(
    tmp_path, environ, cards, expected
):
    locks = tmp_path / "locks"
    with assign_gpu(locks, 1, environ, cards) as assignment:
        assert assignment.source == "scheduler"
        assert assignment.cuda_visible_devices == environ["CUDA_VISIBLE_DEVICES"]
        assert assignment.gpu == expected and assignment.slot is None
        assert (
            assignment.child_environment()["CUDA_VISIBLE_DEVICES"]
            == environ["CUDA_VISIBLE_DEVICES"]
        )
        # The pool is untouched: a pool run may still take every card.
        with assign_gpu(locks, 1, {}, [CARD_A]) as pool:
            assert pool.source == "pool"
    assert [p.name for p in locks.iterdir()] == [f"{CARD_A.uuid}.slot0.lock"]


def test_the_log_says_which_card_and_who_chose_it(tmp_path):
    with assign_gpu(tmp_path, 1, {}, [CARD_B]) as pool:
        assert pool.describe() == (
            f"GPU 1 (Fake H200, {CARD_B.uuid}), slot 0: CUDA_VISIBLE_DEVICES={CARD_B.uuid}"
        )
    with assign_gpu(tmp_path, 1, {"CUDA_VISIBLE_DEVICES": ""}, [CARD_B]) as hidden:
        assert hidden.describe() == (
            "CUDA_VISIBLE_DEVICES='' set by the scheduler, used as is (empty: CUDA sees no GPU)"
        )
    with assign_gpu(tmp_path, 1, {"CUDA_VISIBLE_DEVICES": "0,1"}, [CARD_B]) as several:
        assert several.describe().endswith("used as is (card not identified by nvidia-smi)")
    with assign_gpu(tmp_path, 1, {}, []) as none:
        assert none.describe() == "no GPU found: CUDA_VISIBLE_DEVICES left alone"


def test_a_scheduler_choice_is_named_from_nvidia_smi(tmp_path, monkeypatch):
    fake_nvidia_smi(monkeypatch, tmp_path / "bin", printing(TWO_CARDS_SMI))
    with assign_gpu(tmp_path / "locks", 1, {"CUDA_VISIBLE_DEVICES": CARD_A.uuid}) as assignment:
        assert assignment.gpu == CARD_A
    assert not (tmp_path / "locks").exists()


# -- nvidia-smi ----------------------------------------------------------------------------------


def test_list_gpus_parses_nvidia_smi(tmp_path, monkeypatch):
    listing = TWO_CARDS_SMI + "2, [N/A], NVIDIA GeForce RTX 4090, rev 2\n"
    fake_nvidia_smi(monkeypatch, tmp_path / "bin", printing(listing))
    assert list_gpus() == [
        CARD_A,
        CARD_B,
        Gpu(index=2, uuid=None, name="NVIDIA GeForce RTX 4090, rev 2"),
    ]


def test_the_pool_finds_the_cards_with_nvidia_smi(tmp_path, monkeypatch):
    fake_nvidia_smi(monkeypatch, tmp_path / "bin", printing(TWO_CARDS_SMI))
    with (
        assign_gpu(tmp_path / "locks", 1, {}) as first,
        assign_gpu(tmp_path / "locks", 1, {}) as second,
    ):
        assert [first.gpu, second.gpu] == [CARD_A, CARD_B]


def test_list_gpus_without_nvidia_smi_is_empty_and_says_so_once(tmp_path, monkeypatch, caplog):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    caplog.set_level(logging.INFO, logger="keras_repro.training.gpus")
    assert list_gpus() == [] and list_gpus() == []
    assert [r.getMessage() for r in caplog.records] == ["nvidia-smi not found: no GPU listed"]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ("echo 'NVIDIA-SMI has failed' >&2\nexit 9\n", "nvidia-smi exited with 9"),
        ("exec sleep 30\n", "timed out"),
        (printing("GPU 0: no csv\n"), "unexpected line from nvidia-smi"),
    ],
    ids=["fails", "hangs", "garbled"],
)
def test_list_gpus_when_nvidia_smi_misbehaves_is_empty(tmp_path, monkeypatch, caplog, body, said):
    fake_nvidia_smi(monkeypatch, tmp_path / "bin", body)
    started = time.monotonic()
    assert list_gpus(timeout=0.5) == []
    assert time.monotonic() - started < 10
    assert len(caplog.records) == 1 and said in caplog.records[0].getMessage()
    assert caplog.records[0].levelno == logging.WARNING


def test_the_assignment_travels_as_json(tmp_path):
    with assign_gpu(tmp_path, 1, {}, [CARD_B]) as assignment:
        environment = assignment.child_environment()
    assert assignment_from_environment(environment) == assignment
    assert json.loads(environment[ASSIGNMENT_VARIABLE]) == {
        "source": "pool",
        "index": 1,
        "name": "Fake H200",
        "uuid": CARD_B.uuid,
        "slot": 0,
        "cuda_visible_devices": CARD_B.uuid,
    }
    assert assignment_from_environment({}) is None
    with pytest.raises(ValueError, match="not a GPU assignment"):
        assignment_from_environment({ASSIGNMENT_VARIABLE: '{"source": "elsewhere"}'})


# -- the launcher ------------------------------------------------------------------------------


def test_the_training_process_inherits_the_lock_and_the_assignment(tmp_path, monkeypatch):
    # A fake interpreter in place of the training process: it records what it was given.
    fake_python = tmp_path / "fake-python"
    fake_python.write_text(
        "#!/bin/sh\n"
        'env > "$FAKE_OUT.env"\n'
        'for fd in /proc/$$/fd/*; do readlink "$fd"; done > "$FAKE_OUT.fds"\n'
        "exit 0\n"
    )
    fake_python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake_python))
    monkeypatch.setenv("FAKE_OUT", str(tmp_path / "child"))
    monkeypatch.setenv(ASSIGNMENT_VARIABLE, '{"source": "none"}')  # left by another launcher
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake_nvidia_smi(monkeypatch, tmp_path / "bin", printing(TWO_CARDS_SMI))
    locks = tmp_path / "locks"

    def launch(device: str) -> tuple[dict[str, str], str]:
        train_in_fresh_process(
            tmp_path / "dataset.npz",
            tmp_path / "r.json",
            (tmp_path / "r.json").with_name("trace.npz"),
            tmp_path / "train.log",
            tiny_run(4, device=device),
            runs_per_gpu=1,
            gpu_lock_dir=locks,
        )
        lines = (tmp_path / "child.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line), (
            tmp_path / "child.fds"
        ).read_text()

    environment, descriptors = launch("gpu")
    lock = locks / socket.gethostname() / f"{CARD_A.uuid}.slot0.lock"
    assert str(lock) in descriptors.splitlines()
    assert environment["CUDA_VISIBLE_DEVICES"] == CARD_A.uuid
    assert assignment_from_environment(environment) == GpuAssignment(
        source="pool", cuda_visible_devices=CARD_A.uuid, gpu=CARD_A, slot=0
    )

    environment, descriptors = launch("cpu")
    assert ASSIGNMENT_VARIABLE not in environment and "CUDA_VISIBLE_DEVICES" not in environment
    assert ".lock" not in descriptors


# -- the launcher, end to end --------------------------------------------------------------------


def test_the_launcher_gives_the_training_process_a_free_card(tmp_path, monkeypatch, caplog):
    pytest.importorskip("tensorflow")
    dataset = tmp_path / "dataset.npz"
    arrays = make_arrays(n_train=64, n_test=32)
    write_npz_deterministic({NPZ_KEYS[role]: array for role, array in arrays.items()}, dataset)
    fake_nvidia_smi(monkeypatch, tmp_path / "bin", printing(TWO_CARDS_SMI))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    caplog.set_level(logging.INFO, logger="keras_repro")
    locks = tmp_path / "locks"
    host_locks = locks / socket.gethostname()

    with assign_gpu(host_locks, 1, {}) as other_run:  # another run holds the first card
        assert other_run.gpu == CARD_A
        train_in_fresh_process(
            dataset,
            tmp_path / "r.json",
            (tmp_path / "r.json").with_name("trace.npz"),
            tmp_path / "train.log",
            tiny_run(3, batch_size=32, device="auto"),
            runs_per_gpu=1,
            gpu_lock_dir=locks,
        )

    fingerprint = read_record(tmp_path / "r.json").fingerprint
    assert fingerprint["gpu_assignment"] == {
        "source": "pool",
        "index": 1,
        "name": "Fake H200",
        "uuid": CARD_B.uuid,
        "slot": 0,
        "cuda_visible_devices": CARD_B.uuid,
    }
    assert fingerprint["environment"]["CUDA_VISIBLE_DEVICES"] == CARD_B.uuid
    assert fingerprint["device"] == "cpu"  # the fake card is not there for TensorFlow
    assert (
        f"$ CUDA_VISIBLE_DEVICES={CARD_B.uuid} PYTHONHASHSEED=3 "
        in (tmp_path / "train.log").read_text()
    )
    assert f"seed 3 repeat 1: GPU 1 (Fake H200, {CARD_B.uuid}), slot 0" in caplog.text
    with open(host_locks / f"{CARD_B.uuid}.slot0.lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the run ended
