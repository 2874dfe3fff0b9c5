"""A GPU of its own for each concurrent training run on one machine.

Snakemake counts a ``gpu`` resource but never picks a device, so runs started side by side
would all land on the first card. ``assign_gpu`` gives each run a card: a lock file per card
and slot (``runs_per_gpu`` slots per card), taken with a non-blocking ``flock`` and held for
the life of the run, so that a run killed with ``kill -9`` frees its card. A run that finds
every slot taken waits for one. When a scheduler has already set ``CUDA_VISIBLE_DEVICES``
(SLURM does), that choice is used as it is and no lock is taken.

No TensorFlow here: the card is chosen before the training process starts, because
``CUDA_VISIBLE_DEVICES`` only counts when set before CUDA initializes.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from keras_repro.files import UnsafePath
from keras_repro.logs import LOG_ONLY

log = logging.getLogger(__name__)

# The assignment as JSON, in the training process's environment (read by the fingerprint).
ASSIGNMENT_VARIABLE = "KERAS_REPRO_GPU"
NVIDIA_SMI_QUERY = ["nvidia-smi", "--query-gpu=index,uuid,name", "--format=csv,noheader"]

Source = Literal["scheduler", "pool", "none"]
SOURCES: tuple[Source, ...] = ("scheduler", "pool", "none")

_reported: set[str] = set()


def _report_once(level: int, message: str, extra: Mapping[str, Any] | None = None) -> None:
    if message not in _reported:
        _reported.add(message)
        log.log(level, "%s", message, extra=extra)


@dataclass(frozen=True)
class Gpu:
    """A card as nvidia-smi lists it: ``index`` in nvidia-smi's (PCI bus) order."""

    index: int
    uuid: str | None
    name: str | None


def _known(text: str) -> str | None:
    text = text.strip()
    return None if not text or text.startswith("[") else text  # "[N/A]", "[Not Supported]"


def parse_gpu_list(text: str) -> list[Gpu]:
    """The cards in ``nvidia-smi --query-gpu=index,uuid,name --format=csv,noheader`` output."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split(",", 2)
        if len(fields) != 3 or not fields[0].strip().isdigit():
            raise ValueError(f"unexpected line from nvidia-smi: {line!r}")
        index, uuid, name = fields
        gpus.append(Gpu(index=int(index), uuid=_known(uuid), name=_known(name)))
    return gpus


def list_gpus(timeout: float = 20.0) -> list[Gpu]:
    """The machine's cards according to nvidia-smi; [] when it is missing or fails (said once)."""
    try:
        result = subprocess.run(
            NVIDIA_SMI_QUERY, capture_output=True, text=True, timeout=timeout, check=True
        )
        return parse_gpu_list(result.stdout)
    except FileNotFoundError:
        # Said in the log: on a machine without GPUs, the console needs no line per run.
        _report_once(logging.INFO, "nvidia-smi not found: no GPU listed", LOG_ONLY)
    except subprocess.CalledProcessError as error:
        _report_once(
            logging.WARNING,
            f"nvidia-smi exited with {error.returncode} ({error.stderr.strip()!r}): no GPU listed",
        )
    except (OSError, subprocess.TimeoutExpired, ValueError) as error:
        _report_once(logging.WARNING, f"nvidia-smi failed ({error}): no GPU listed")
    return []


@dataclass(frozen=True)
class GpuAssignment:
    """What one training run gets.

    ``cuda_visible_devices`` is what the training process is given (None: leave its
    environment alone). ``source`` says who chose: the scheduler, the lock-file pool, or
    nobody because no card was found. ``gpu`` is the card when it is known, ``slot`` the pool
    slot held on it. ``lock_fd`` is the held lock, for the training process to inherit.
    """

    source: Source
    cuda_visible_devices: str | None
    gpu: Gpu | None = None
    slot: int | None = None
    lock_fd: int | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "index": self.gpu.index if self.gpu else None,
            "name": self.gpu.name if self.gpu else None,
            "uuid": self.gpu.uuid if self.gpu else None,
            "slot": self.slot,
            "cuda_visible_devices": self.cuda_visible_devices,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GpuAssignment:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("source") not in SOURCES:
            raise ValueError(f"not a GPU assignment: {text!r}")
        gpu = None
        if data.get("index") is not None:
            gpu = Gpu(index=data["index"], uuid=data.get("uuid"), name=data.get("name"))
        return cls(
            source=data["source"],
            cuda_visible_devices=data.get("cuda_visible_devices"),
            gpu=gpu,
            slot=data.get("slot"),
        )

    def child_environment(self) -> dict[str, str]:
        """The variables the training process needs: the devices it may see, and this."""
        environment = {ASSIGNMENT_VARIABLE: self.to_json()}
        if self.cuda_visible_devices is not None:
            environment["CUDA_VISIBLE_DEVICES"] = self.cuda_visible_devices
        if self.source == "pool" and self.gpu is not None and self.gpu.uuid is None:
            # An index then means nvidia-smi's numbering, not CUDA's default (fastest first).
            environment["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        return environment

    def describe(self) -> str:
        """One line for the log: the card, and who chose it."""
        if self.source == "none":
            return "no GPU found: CUDA_VISIBLE_DEVICES left alone"
        card = "card not identified by nvidia-smi"
        if self.gpu is not None:
            name, uuid = self.gpu.name or "name unknown", self.gpu.uuid or "UUID unknown"
            card = f"GPU {self.gpu.index} ({name}, {uuid})"
        if self.source == "pool":
            return f"{card}, slot {self.slot}: CUDA_VISIBLE_DEVICES={self.cuda_visible_devices}"
        chosen = (
            f"CUDA_VISIBLE_DEVICES={self.cuda_visible_devices!r} set by the scheduler, used as is"
        )
        if self.cuda_visible_devices == "":
            return f"{chosen} (empty: CUDA sees no GPU)"
        return f"{chosen} ({card})"


def assignment_from_environment(
    environ: Mapping[str, str] = os.environ,
) -> GpuAssignment | None:
    """The assignment the launcher gave this process; None for runs it did not start."""
    text = environ.get(ASSIGNMENT_VARIABLE)
    return None if text is None else GpuAssignment.from_json(text)


def _resolve_scheduler_choice(
    value: str, environ: Mapping[str, str], gpus: list[Gpu] | None
) -> Gpu | None:
    """The one card ``CUDA_VISIBLE_DEVICES`` names, when nvidia-smi can tell which it is."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if len(entries) != 1:
        return None
    (entry,) = entries
    gpus = list_gpus() if gpus is None else gpus
    if entry.isdigit():
        # CUDA numbers fastest first unless told otherwise; that is nvidia-smi's (PCI bus) order
        # only with CUDA_DEVICE_ORDER=PCI_BUS_ID, or in practice when all cards are one model.
        same_order = (
            environ.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID" or len({g.name for g in gpus}) == 1
        )
        matches = [g for g in gpus if g.index == int(entry)] if same_order else []
    else:
        # CUDA accepts a UUID or an unambiguous prefix of one.
        matches = [g for g in gpus if g.uuid is not None and g.uuid.startswith(entry)]
    return matches[0] if len(matches) == 1 else None


def lock_path(lock_dir: Path, gpu: Gpu, slot: int) -> Path:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", gpu.uuid) if gpu.uuid else str(gpu.index)
    return Path(lock_dir) / f"{name}.slot{slot}.lock"


def _planted_link(path: Path, within: Path) -> UnsafePath:
    return UnsafePath(
        f"GPU pool: {path} is a symlink (to {os.readlink(path)}), and the pool creates files "
        f"inside {within} only; remove the link (rm {path}) and run again"
    )


def pool_folder(lock_dir: Path, within: Path) -> Path:
    """``lock_dir``, made folder by folder below ``within`` (which may itself be a link, the
    user's choice), refused when it lies outside ``within`` or when it, or a folder on the way
    to it, is a symlink or not a folder: a planted link would put the lock files wherever it
    points."""
    lock_dir, within = Path(lock_dir), Path(within)
    relative = Path(os.path.relpath(lock_dir, within))
    if relative.parts[:1] == ("..",) or relative.is_absolute():
        raise UnsafePath(f"GPU lock folder: {lock_dir} is not inside {within}")
    within.mkdir(parents=True, exist_ok=True)
    folder = within
    for part in relative.parts if relative != Path(".") else ():
        folder = folder / part
        with suppress(FileExistsError):
            folder.mkdir()
        if folder.is_symlink():
            raise _planted_link(folder, within)
        if not folder.is_dir():
            raise UnsafePath(f"GPU lock folder: {folder} is not a folder; remove it and run again")
    return lock_dir


def _try_lock(path: Path) -> int | None:
    """The descriptor of ``path`` locked exclusively, or None when someone else holds it."""
    flags = os.O_NOFOLLOW  # never a file a planted link points to
    try:
        # Read-write: over NFS, flock is emulated with fcntl locks, and an exclusive one needs
        # a file open for writing. Another user's lock file may only be readable to us.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o666)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY | flags)
    except OSError:
        if path.is_symlink():
            raise _planted_link(path, path.parent) from None
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _take_free_slot(
    lock_dir: Path, gpus: list[Gpu], runs_per_gpu: int
) -> tuple[Gpu, int, int] | None:
    # Slot 0 of every card before slot 1 of any: runs spread over cards before doubling up.
    for slot in range(runs_per_gpu):
        for gpu in gpus:
            fd = _try_lock(lock_path(lock_dir, gpu, slot))
            if fd is not None:
                return gpu, slot, fd
    return None


@contextmanager
def assign_gpu(
    lock_dir: Path,
    runs_per_gpu: int,
    environ: Mapping[str, str] = os.environ,
    gpus: list[Gpu] | None = None,
    poll_seconds: float = 1.0,
    within: Path | None = None,
) -> Iterator[GpuAssignment]:
    """A card for one run, held until the block ends.

    - ``CUDA_VISIBLE_DEVICES`` set in ``environ``: a scheduler chose; used exactly as set, no
      lock. Set but empty counts too: it means "no GPU for this job", and CUDA then sees
      none, so the run trains on the CPU (or fails with ``device: gpu``) rather than taking
      a card from the pool behind the scheduler's back.
    - Otherwise the cards in ``gpus`` (default: nvidia-smi's list), none: ``source="none"``.
    - Otherwise a free slot of the pool in ``lock_dir`` (one folder per machine: flock is not
      reliable across machines on a shared filesystem), waiting while all are taken. The
      folder and its lock files are created inside ``within`` only (default: the folder
      ``lock_dir`` is in), never through a symlink (``pool_folder``).
      ``CUDA_VISIBLE_DEVICES`` becomes the card's UUID (stable when cards are renumbered),
      else its index.

    The lock is released when the block ends, or when its process dies, unless a process
    that inherited ``lock_fd`` (the training process) still runs.
    """
    if runs_per_gpu < 1:
        raise ValueError(f"runs_per_gpu must be at least 1, got {runs_per_gpu}")
    if "CUDA_VISIBLE_DEVICES" in environ:
        value = environ["CUDA_VISIBLE_DEVICES"]
        yield GpuAssignment(
            source="scheduler",
            cuda_visible_devices=value,
            gpu=_resolve_scheduler_choice(value, environ, gpus),
        )
        return
    gpus = list_gpus() if gpus is None else gpus
    if not gpus:
        yield GpuAssignment(source="none", cuda_visible_devices=None)
        return
    lock_dir = pool_folder(lock_dir, Path(lock_dir).parent if within is None else within)
    taken = _take_free_slot(lock_dir, gpus, runs_per_gpu)
    if taken is None:
        log.info(
            "waiting for a free GPU: %d cards × %d runs each are busy", len(gpus), runs_per_gpu
        )
        while taken is None:
            time.sleep(poll_seconds)
            taken = _take_free_slot(lock_dir, gpus, runs_per_gpu)
    gpu, slot, fd = taken
    try:
        yield GpuAssignment(
            source="pool",
            cuda_visible_devices=gpu.uuid or str(gpu.index),
            gpu=gpu,
            slot=slot,
            lock_fd=fd,
        )
    finally:
        # Closing, not LOCK_UN: a training process that inherited the descriptor and still
        # runs keeps the card locked. The file stays: deleting it would let two runs lock
        # two different files of the same name.
        os.close(fd)
