"""Processes by pid and start time, read from /proc: who owns a job, whether a workflow's lock
was left by a process that is gone; a child that dies with the process that started it."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Process:
    """A process by pid and start time (a pid alone may be reused once it exits)."""

    pid: int
    started: int

    @classmethod
    def read(cls, pid: int) -> tuple[Process, int, list[str]] | None:
        """The process, its parent's pid and its arguments; None once it has exited."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        # The command name in parentheses may hold spaces; the fields after it do not.
        fields = stat[stat.rindex(")") + 2 :].split()
        return cls(pid, int(fields[19])), int(fields[1]), arguments.split("\0")

    def alive(self) -> bool:
        current = Process.read(self.pid)
        return current is not None and current[0] == self


def die_with_parent(signal_number: int = signal.SIGTERM) -> None:
    """A ``preexec_fn``: runs in a child before exec, and has the kernel send it
    ``signal_number`` when the process that started it exits, however it exits."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal_number)


def exit_now(status: int = 0) -> NoReturn:
    """End this process with ``status`` once its logs and standard streams are flushed, skipping
    the interpreter's teardown: after TensorFlow has traced a model, that teardown alone takes
    about 2 s of CPU (collecting graphs nobody uses again). For the end of a process whose
    outputs are all written: the runs, replays and model checks the workflow starts."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or a pipe nobody reads
            stream.flush()
    os._exit(status)


def is_snakemake(arguments: list[str]) -> bool:
    """``snakemake ...``, ``python .../bin/snakemake ...`` or ``python -m snakemake ...``."""
    head = arguments[:3]
    return any(Path(a).name == "snakemake" for a in head[:2]) or head[1:3] == ["-m", "snakemake"]


def job_owner() -> Process | None:
    """The nearest ancestor that is a snakemake process (else the parent): when it is gone,
    nobody will use what this job writes."""
    pid, parent = os.getppid(), None
    while pid > 1:
        found = Process.read(pid)
        if found is None:
            break
        process, ppid, arguments = found
        parent = parent or process
        if is_snakemake(arguments):
            return process
        pid = ppid
    return parent


def snakemake_running_in(workdir: Path, besides: int) -> bool:
    """Whether a snakemake process other than ``besides`` works in ``workdir``."""
    workdir = Path(workdir).resolve()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == besides:
            continue
        found = Process.read(int(entry.name))
        try:
            in_workdir = Path(os.readlink(entry / "cwd")) == workdir
        except OSError:
            continue
        if found and in_workdir and is_snakemake(found[2]):
            return True
    return False


def stale_lock_hint(workdir: Path) -> str | None:
    """What to run when ``workdir`` holds Snakemake's lock but no snakemake works there."""
    locks = Path(workdir) / ".snakemake" / "locks"
    if not any(locks.glob("*.lock")) or snakemake_running_in(workdir, besides=os.getpid()):
        return None
    return (
        f"{locks} holds a lock, but no snakemake is running in {Path(workdir).resolve()}: a "
        "previous run was killed (kill -9, a lost session, a power loss). Run `snakemake "
        "--unlock`, then run the workflow again; the runs it finished are kept."
    )
