"""A zoom record: one side of a pair that parted, replayed step by step (``zoom.json``: per step,
every value computed, by phase and name, as a digest, in the order computed), and the values
kept in full near the parting (``zoom.npz``, no pickle). Read back bounded, like a trace."""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_repro.digest import file_sha256
from keras_repro.errors import ReproError
from keras_repro.files import atomic_write, write_json_atomic
from keras_repro.records.arrays import read_member, write_members

ZOOM_FORMAT = "keras-repro/zoom"
ZOOM_FORMAT_VERSION = 1
MAX_ZOOM_BYTES = 256 * 2**20
MAX_VALUE_BYTES = 512 * 2**20
PHASES = ("data", "forward", "loss", "backward", "update")


class ZoomError(ReproError, ValueError):
    """A zoom record that cannot be trusted."""


@dataclass
class ZoomRecord:
    seed: int
    repeat: int
    from_checkpoint: int  # the run's checkpoint both sides were replayed from
    first_step: int
    last_step: int
    keep_from: int  # values are kept in full from this step on
    # step → [(phase, name, sha256)], in the order the step computed them
    steps: dict[int, list[tuple[str, str, str]]] = field(default_factory=dict)
    values: dict[str, Any] | None = None  # {"file": "zoom.npz", "sha256": ...}


def write_zoom(
    zoom: ZoomRecord, values: dict[str, np.ndarray], path: Path, values_path: Path
) -> None:
    """The values first (``values_path``, members named ``step|phase|name`` in its index), then
    the record, each atomically."""
    names = list(values)
    with atomic_write(values_path, binary=True) as handle:
        write_members(
            handle,
            {f"v{number}": values[name] for number, name in enumerate(names)},
            extra={"index.json": json.dumps(names).encode()},
        )
    zoom.values = {"file": Path(values_path).name, "sha256": file_sha256(values_path)}
    data = {"format": ZOOM_FORMAT, "format_version": ZOOM_FORMAT_VERSION, **asdict(zoom)}
    write_json_atomic(data, path)


def _entries(raw: Any, path: Path) -> list[tuple[str, str, str]]:
    if not isinstance(raw, list) or not all(
        isinstance(e, list)
        and len(e) == 3
        and all(isinstance(p, str) for p in e)
        and e[0] in PHASES
        for e in raw
    ):
        raise ZoomError(f"{path}: a step's entries must be [phase, name, sha256] lists")
    return [(phase, name, digest) for phase, name, digest in raw]


def read_zoom(path: Path) -> ZoomRecord:
    """A zoom record, refused (ZoomError, one line) when it is too large or malformed."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_ZOOM_BYTES:
            raise ZoomError(f"{path}: more than the {MAX_ZOOM_BYTES:,} bytes a zoom may hold")
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ZoomError(f"{path}: cannot be read ({error})") from None
    if not isinstance(data, dict) or (data.get("format"), data.get("format_version")) != (
        ZOOM_FORMAT,
        ZOOM_FORMAT_VERSION,
    ):
        raise ZoomError(f"{path}: not a {ZOOM_FORMAT} v{ZOOM_FORMAT_VERSION} file")
    counts = ("seed", "repeat", "from_checkpoint", "first_step", "last_step", "keep_from")
    if not all(isinstance(data.get(k), int) for k in counts) or not isinstance(
        data.get("steps"), dict
    ):
        raise ZoomError(f"{path}: {', '.join(counts)} and steps are not what a zoom holds")
    try:
        steps = {int(step): _entries(raw, path) for step, raw in data["steps"].items()}
    except ValueError:
        raise ZoomError(f"{path}: its steps are not numbered") from None
    return ZoomRecord(**{k: data[k] for k in counts}, steps=steps, values=data.get("values"))


def read_zoom_value(zoom_path: Path, zoom: ZoomRecord, key: str) -> np.ndarray | None:
    """The value kept in full under ``key`` (``step|phase|name``), or None when it was not
    kept; the values file is refused unless it is the one the record names."""
    if not zoom.values:
        return None
    values_path = Path(zoom_path).parent / Path(str(zoom.values.get("file"))).name
    if file_sha256(values_path) != zoom.values.get("sha256"):
        raise ZoomError(f"{values_path}: not the values file its zoom record names")
    refuse = lambda reason: ZoomError(f"{values_path}: {reason}")  # noqa: E731
    try:
        with zipfile.ZipFile(values_path) as archive:
            info = archive.getinfo("index.json")
            if info.file_size > MAX_ZOOM_BYTES:
                raise refuse("its index is too large")
            names = json.loads(archive.read(info))
            if key not in names:
                return None
            member = f"v{names.index(key)}"
            limit = min(archive.getinfo(f"{member}.npy").file_size, MAX_VALUE_BYTES)
            return read_member(
                archive,
                member,
                limit,
                refuse,
                lambda dtype, shape: None if dtype.kind in "biuf" else f"a {dtype} array",
            )
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
        raise refuse(f"not a readable values file ({error})") from None
