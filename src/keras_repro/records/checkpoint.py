"""A checkpoint: a run's complete training state at one boundary, in one file.

Every model variable (trainable, non-trainable such as BatchNorm statistics, seed-generator
states), every optimizer variable (iteration count, slots), the random state Keras and the
backend draw from outside the model, and the position in the data (epochs and steps done,
and what the input pipeline needs to feed the next batch exactly). Written as a zip of
``.npy`` members beside an ``index.json`` (no pickle), atomically; its sha256 and each
variable's digest go into the run record. Read back like a trace: the index first, bounded,
then each array's header checked against the variable it must restore (name, dtype, shape)
before a byte of it is inflated; a checkpoint of another run (seed, model, backend, data) is
refused.
"""

from __future__ import annotations

import json
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_repro.digest import arrays_sha256, file_sha256
from keras_repro.errors import ReproError
from keras_repro.files import atomic_write
from keras_repro.records.arrays import (
    NPY_HEADER_BYTES,
    ZIP_OVERHEAD_BYTES,
    read_member,
    write_members,
)

CHECKPOINT_FORMAT = "keras-repro/checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
INDEX = "index.json"
MAX_INDEX_BYTES = 16 * 2**20
MAX_VARIABLES = 100_000
# What a run's checkpoint says of the run it belongs to: a checkpoint of another is refused.
IDENTITY = ("seed", "repeat", "arm", "model", "model_sha256", "backend", "dataset_sha256")
# Booleans, integers, unsigned integers, floats: what a variable or a random state holds.
KINDS = "biuf"
# A random state (a generator's keys, position): what the model does not say, bounded.
MAX_RANDOM_STATES = 64
MAX_RANDOM_STATE_BYTES = 2**20


class CheckpointError(ReproError, ValueError):
    """A checkpoint that cannot be trusted: malformed, of another run, or not the model's."""


@dataclass
class Checkpoint:
    index: int  # 0: the state before the first step
    step: int  # training steps done
    epoch: int  # epochs done, complete
    identity: dict[str, Any]  # the run's: IDENTITY
    # What the input pipeline needs to feed the next batch (the pipeline's own keys).
    position: dict[str, int] = field(default_factory=dict)
    # "model/<path>", "optimizer/<path>", "random/<name>": the arrays to restore.
    variables: dict[str, np.ndarray] = field(default_factory=dict)

    def digests(self) -> dict[str, str]:
        """Each variable's sha256 (name, dtype, shape and bytes)."""
        return variable_digests(self.variables)


def planned_steps(checkpoints: dict[str, Any], epochs: int, steps_per_epoch: int) -> list[int]:
    """The steps done at each checkpoint a run with these settings saves (``checkpoints``, the
    config's): 0, the state before the first step; then the end of every N epochs
    (``every_epochs``) or every N steps (``every_steps``); and the run's last step. None when
    both are off."""
    total = epochs * steps_per_epoch
    every = checkpoints.get("every_steps") or (
        checkpoints["every_epochs"] * steps_per_epoch if checkpoints.get("every_epochs") else None
    )
    if not every or total < 1:
        return []
    return [*range(0, total, every), total]


def replayed_segments(total: int, replay: int | None, draw_seed: int) -> list[int]:
    """Which of a run's ``total`` segments (1-based) ``verify: segments`` replays: every one,
    or ``replay`` of them, the first and the last always among them and the others drawn
    with ``draw_seed``."""
    if replay is None or replay >= total:
        return list(range(1, total + 1))
    ends = sorted({1, total})[:replay]
    middle = list(range(2, total))
    drawn = np.random.default_rng(draw_seed).permutation(middle)[: replay - len(ends)]
    return sorted({*ends, *(int(index) for index in drawn)})


def variable_digests(variables: dict[str, np.ndarray]) -> dict[str, str]:
    return {name: arrays_sha256((name, array)) for name, array in variables.items()}


def write_checkpoint(checkpoint: Checkpoint, path: Path) -> str:
    """Write ``checkpoint`` to ``path`` atomically; returns the file's sha256."""
    names = list(checkpoint.variables)
    index = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "index": checkpoint.index,
        "step": checkpoint.step,
        "epoch": checkpoint.epoch,
        "identity": {key: checkpoint.identity.get(key) for key in IDENTITY},
        "position": checkpoint.position,
        "variables": [
            {"name": name, "dtype": checkpoint.variables[name].dtype.str}
            | {"shape": list(np.shape(checkpoint.variables[name]))}
            for name in names
        ],
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, binary=True) as handle:
        write_members(
            handle,
            {f"v{number}": checkpoint.variables[name] for number, name in enumerate(names)},
            extra={INDEX: json.dumps(index, sort_keys=True).encode()},
        )
    return file_sha256(path)


def _refuse(path: Path) -> Any:
    return lambda reason: CheckpointError(f"checkpoint {path}: {reason}")


def _read_index(archive: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    members = {info.filename: info for info in archive.infolist()}
    if INDEX not in members:
        raise CheckpointError(f"checkpoint {path}: holds no {INDEX}, so it is not a checkpoint")
    if members[INDEX].file_size > MAX_INDEX_BYTES:
        raise CheckpointError(
            f"checkpoint {path}: its {INDEX} inflates to {members[INDEX].file_size:,} bytes, "
            f"more than the {MAX_INDEX_BYTES:,} an index may hold"
        )
    try:
        index = json.loads(archive.read(INDEX))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint {path}: its {INDEX} is not JSON ({error})") from None
    if not isinstance(index, dict) or (index.get("format"), index.get("format_version")) != (
        CHECKPOINT_FORMAT,
        CHECKPOINT_FORMAT_VERSION,
    ):
        raise CheckpointError(
            f"checkpoint {path}: not a {CHECKPOINT_FORMAT} v{CHECKPOINT_FORMAT_VERSION} file"
        )
    listed = index.get("variables")
    if not isinstance(listed, list) or len(listed) > MAX_VARIABLES:
        raise CheckpointError(f"checkpoint {path}: its index lists no readable variables")
    expected_members = {INDEX, *(f"v{number}.npy" for number in range(len(listed)))}
    if set(members) != expected_members:
        extra = sorted(set(members) - expected_members)[:5]
        missing = sorted(expected_members - set(members))[:5]
        raise CheckpointError(
            f"checkpoint {path}: its members are not those its index lists "
            f"(extra {extra}, missing {missing})"
        )
    for key in ("index", "step", "epoch"):
        if not isinstance(index.get(key), int) or index[key] < 0:
            raise CheckpointError(f"checkpoint {path}: its {key} is not a count")
    return index


def _check_identity(index: dict[str, Any], identity: dict[str, Any], path: Path) -> None:
    recorded = index.get("identity")
    if not isinstance(recorded, dict):
        raise CheckpointError(f"checkpoint {path}: says nothing of the run it belongs to")
    for key in IDENTITY:
        if key in identity and recorded.get(key) != identity[key]:
            raise CheckpointError(
                f"checkpoint {path}: a checkpoint of {key} {recorded.get(key)!r}, not of this "
                f"run's {identity[key]!r}: it belongs to another run"
            )


def _random_states(
    index: dict[str, Any], prefix: str | None, known: dict[str, Any], path: Path
) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """The random states the index lists under ``prefix`` (dtype, shape), each small."""
    found = {}
    for entry in index["variables"]:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not (prefix and isinstance(name, str) and name.startswith(prefix)) or name in known:
            continue
        try:
            dtype, shape = np.dtype(entry["dtype"]), tuple(int(n) for n in entry["shape"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"checkpoint {path}: {name}: no dtype and shape") from None
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if dtype.kind not in KINDS or min(shape, default=1) < 0 or size > MAX_RANDOM_STATE_BYTES:
            raise CheckpointError(
                f"checkpoint {path}: {name} is a {dtype} array of shape {shape}, not a random state"
            )
        found[name] = (dtype, shape)
    if len(found) > MAX_RANDOM_STATES:
        raise CheckpointError(f"checkpoint {path}: {len(found)} random states, too many")
    return found


def read_checkpoint(
    path: Path,
    identity: dict[str, Any],
    variables: dict[str, tuple[np.dtype, tuple[int, ...]]],
    random_prefix: str | None = None,
) -> Checkpoint:
    """The checkpoint in ``path``, refused (CheckpointError, one line) unless it belongs to the
    run ``identity`` describes and holds exactly ``variables`` (name → dtype, shape: what the
    model about to be restored has, the optimizer's included) and small random states named
    ``random_prefix...``: nothing missing, nothing extra, no array of another dtype or shape,
    nothing inflated beyond them."""
    path = Path(path)
    refuse = _refuse(path)
    try:
        status = path.lstat()
    except OSError as error:
        raise refuse(f"cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(status.st_mode):
        raise refuse("is not a regular file")
    bound = sum(_bytes(dtype, shape) for dtype, shape in variables.values())
    bound += (NPY_HEADER_BYTES + MAX_RANDOM_STATE_BYTES) * MAX_RANDOM_STATES
    bound += NPY_HEADER_BYTES * len(variables) + ZIP_OVERHEAD_BYTES + MAX_INDEX_BYTES
    if status.st_size > bound:
        raise refuse(f"{status.st_size:,} bytes, more than the {bound:,} this model's state needs")
    try:
        with zipfile.ZipFile(path) as archive:
            index = _read_index(archive, path)
            _check_identity(index, identity, path)
            variables = variables | _random_states(index, random_prefix, variables, path)
            names = [
                entry.get("name") if isinstance(entry, dict) else None
                for entry in index["variables"]
            ]
            missing = sorted(set(variables) - set(names))
            extra = sorted({str(n) for n in names} - set(variables))
            if missing or extra:
                raise refuse(
                    f"does not hold this model's state: missing {missing[:5]}"
                    + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                    + f", not this model's {extra[:5]}"
                )
            arrays = {}
            for number, name in enumerate(names):
                dtype, shape = variables[name]

                def expected(found_dtype, found_shape, dtype=dtype, shape=shape, name=name):
                    if found_dtype.kind not in KINDS or found_dtype != np.dtype(dtype):
                        return f"{name} is {found_dtype}, the model's is {np.dtype(dtype)}"
                    if tuple(found_shape) != tuple(shape):
                        return f"{name} has shape {tuple(found_shape)}, the model's {tuple(shape)}"
                    return None

                limit = _bytes(dtype, shape)
                arrays[name] = read_member(archive, f"v{number}", limit, refuse, expected)
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise refuse(f"not a readable checkpoint ({error})") from None
    position = index.get("position") if isinstance(index.get("position"), dict) else {}
    return Checkpoint(
        index=index["index"],
        step=index["step"],
        epoch=index["epoch"],
        identity=index["identity"],
        position={k: v for k, v in position.items() if isinstance(v, int)},
        variables=arrays,
    )


def _bytes(dtype: Any, shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def listed_variables(path: Path) -> list[str]:
    """The names a checkpoint's index lists (read bounded; refused like ``read_checkpoint``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            index = _read_index(archive, Path(path))
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise CheckpointError(f"checkpoint {path}: not a readable checkpoint ({error})") from None
    return [str(e.get("name")) for e in index["variables"] if isinstance(e, dict)]


def edited_checkpoint(results: Path) -> str | None:
    """The first checkpoint under ``results/runs`` changed since its run recorded it, said in
    one line (None: none was). Only a file whose inode changed after the record was written
    (an edit, a copy, a rename) is hashed and held against the sha256 the record lists."""
    for folder in sorted(Path(results).glob("runs/*/*/seed*/repeat*/checkpoints")):
        record = folder.parent / "history.json"
        try:
            written = record.stat().st_mtime
        except OSError:
            continue
        changed = [f for f in sorted(folder.glob("*.npz")) if f.lstat().st_ctime > written]
        if not changed:
            continue
        try:
            listed = json.loads(record.read_text()).get("checkpoints") or []
            recorded = {c["file"]: c["sha256"] for c in listed}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            recorded = {}
        for path in changed:
            expected = recorded.get(f"{folder.name}/{path.name}")
            actual = file_sha256(path) if path.is_file() else None
            if actual is None or actual != expected:
                return (
                    f"checkpoint {path} was changed after its run recorded it (sha256 "
                    f"{actual}, recorded {expected}): delete {folder.parent}/ to train the "
                    "run again"
                )
    return None


def remove_checkpoints(folders: list[Path]) -> int:
    """Remove the checkpoint files in ``folders`` (the folders stay, so that nothing is
    trained again for them); returns the bytes freed."""
    freed = 0
    for folder in map(Path, folders):
        for path in folder.glob("*.npz"):
            freed += path.stat().st_size
            path.unlink()
    return freed


def checkpoints_removed(run_folder: Path, listed: list[dict[str, Any]] | None) -> bool:
    """Whether a run listed checkpoints whose files are gone (keep_checkpoints: false removes
    them once a verdict has passed)."""
    return any(not (Path(run_folder) / str(c.get("file"))).is_file() for c in listed or [])


def verify_checkpoint_file(path: Path, sha256: str) -> None:
    """Refuse a checkpoint file whose sha256 is not the one its run recorded."""
    try:
        actual = file_sha256(path)
    except FileNotFoundError:
        raise CheckpointError(
            f"checkpoint {path} is gone (keep_checkpoints: false removes them once a verdict "
            f"has passed): delete {path.parent.parent}/ to train the run again with them"
        ) from None
    except OSError as error:
        raise CheckpointError(f"checkpoint {path}: cannot be read ({error.strerror})") from None
    if actual != sha256:
        raise CheckpointError(
            f"checkpoint {path}: sha256 {actual}, not the {sha256} its run recorded: it was "
            "changed after training (delete the run's folder to train it again)"
        )
