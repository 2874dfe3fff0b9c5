"""The run record: one JSON file per training run, read back exactly as it was written.

Every float is stored twice: as ``float.hex`` (authoritative, exact, NaN-safe) and as a
decimal for people. Reading checks that the two agree, so a value edited by hand in one place
only is caught instead of silently compared.
"""

from __future__ import annotations

import itertools
import json
import math
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from keras_repro.digest import file_sha256
from keras_repro.errors import ReproError
from keras_repro.files import UnsafePath, path_inside, write_json_atomic
from keras_repro.models import model_name
from keras_repro.records.trace import Trace, TraceBounds, read_trace

RECORD_FORMAT = "keras-repro/run-record"
RECORD_FORMAT_VERSION = 1
MAX_RECORD_BYTES = 64 * 2**20  # about 500 bytes per epoch: 100,000 epochs fit


# What records written before a setting existed were trained with (the recipe's).
LEGACY_SETTINGS: dict[str, Any] = {
    "model": "recipe",
    "backend": "tensorflow",
    "pipeline": "tfdata",
    "compile": {
        "optimizer": "adam",
        "learning_rate": None,
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
        "jit_compile": False,
    },
}


class RecordError(ReproError, ValueError):
    """A run record that cannot be trusted: wrong format, or edited inconsistently."""


@dataclass
class RunRecord:
    seed: int
    repeat: int
    history: dict[str, list[float]]
    evaluation: dict[str, float]
    weight_digests: list[str]
    final_weight_digest: str
    data_digests: dict[str, list[str]]
    fingerprint: dict[str, Any]
    timings: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    # The step trace beside the record: {"file": relative path, "sha256": ...}; older records
    # have none.
    trace: dict[str, str] | None = None
    # The checkpoints the run saved, in order: {"index", "step", "epoch", "file" (relative to
    # the record), "sha256", "variables": {name: sha256}}; None: none were saved.
    checkpoints: list[dict[str, Any]] | None = None
    # A segment replayed from a run's checkpoint: {"index", "first_step", "last_step",
    # "first_epoch", "last_epoch", "from_sha256", "end_state": {name: sha256}}; None for a run.
    segment: dict[str, Any] | None = None
    # What model.compile was given: {"by": "config" or "model" (the model's build compiled it),
    # "overridden": the config's compile keys set over the model's own, "optimizer" (Keras'
    # serialization: class_name, config, a learning-rate schedule within), "loss", "metrics",
    # "jit_compile"}; None in records written before it was recorded.
    compiled: dict[str, Any] | None = None

    def setting(self, key: str) -> Any:
        """A setting of the run, or what a record written before it existed was trained with."""
        return self.settings.get(key, LEGACY_SETTINGS.get(key))

    @property
    def cell(self) -> tuple[str, str]:
        """The matrix cell the run belongs to: its model's name in paths, and its backend."""
        return model_name(self.setting("model")), self.setting("backend")


def encode_floats(values: list[float]) -> dict[str, list[Any]]:
    return {
        "hex": [float(v).hex() for v in values],
        "decimal": [float(v) if math.isfinite(v) else repr(float(v)) for v in values],
    }


def decode_floats(encoded: dict[str, list[Any]], where: str) -> list[float]:
    try:
        exact = [float.fromhex(h) for h in encoded["hex"]]
        decimal = [float(d) for d in encoded["decimal"]]
    except (KeyError, TypeError, ValueError) as error:
        raise RecordError(
            f"{where}: expected {{'hex': [...], 'decimal': [...]}} ({error})"
        ) from None
    if len(exact) != len(decimal):
        raise RecordError(f"{where}: 'hex' has {len(exact)} values, 'decimal' {len(decimal)}")
    for index, (a, b) in enumerate(zip(exact, decimal, strict=True)):
        if not (a == b or (math.isnan(a) and math.isnan(b))):
            raise RecordError(
                f"{where}[{index}]: hex {a.hex()} ({a!r}) disagrees with decimal {b!r}; "
                "the file was edited by hand in one place only. Edit both, or rerun training."
            )
    return exact


@dataclass
class RefusedRecord:
    """A run record that could not be trusted, so nothing it claims was compared."""

    path: str
    reason: str


def record_to_json(record: RunRecord) -> dict[str, Any]:
    data = asdict(record)
    data["history"] = {name: encode_floats(v) for name, v in record.history.items()}
    data["evaluation"] = {name: encode_floats([v]) for name, v in record.evaluation.items()}
    return {"format": RECORD_FORMAT, "format_version": RECORD_FORMAT_VERSION, **data}


def write_record(record: RunRecord, path: Path) -> None:
    write_json_atomic(record_to_json(record), path)


# What each field must hold, beyond the exact floats that decode_floats checks.
FIELD_TYPES: dict[str, type] = {
    "seed": int,
    "repeat": int,
    "history": dict,
    "evaluation": dict,
    "weight_digests": list,
    "final_weight_digest": str,
    "data_digests": dict,
    "fingerprint": dict,
    "timings": dict,
    "settings": dict,
}


def _check_fields(data: dict[str, Any], path: Path) -> None:
    missing = set(FIELD_TYPES) - set(data) - {"settings"}
    if missing:
        raise RecordError(f"{path}: missing fields {sorted(missing)}")
    for name, kind in FIELD_TYPES.items():
        value = data.get(name, {})
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise RecordError(f"{path}: {name} must be a {kind.__name__}, got {value!r:.60}")
    trace = data.get("trace")
    if trace is not None and not (
        isinstance(trace, dict) and all(isinstance(trace.get(k), str) for k in ("file", "sha256"))
    ):
        raise RecordError(
            f"{path}: trace must be {{'file': ..., 'sha256': ...}}, got {trace!r:.60}"
        )
    _check_checkpoints(data.get("checkpoints"), path)
    compiled = data.get("compiled")
    if compiled is not None and not (
        isinstance(compiled, dict) and compiled.get("by") in ("config", "model")
    ):
        raise RecordError(f"{path}: compiled must say whose compile it was (config or model)")
    segment = data.get("segment")
    if segment is not None and not (
        isinstance(segment, dict)
        and all(_count(segment.get(k)) for k in ("index", "first_step", "last_step"))
        and isinstance(segment.get("end_state"), dict)
    ):
        raise RecordError(f"{path}: segment must say which steps it replayed and its end state")
    digests = [data["final_weight_digest"], *data["weight_digests"]]
    digests += [d for passes in data["data_digests"].values() for d in passes]
    if not all(isinstance(d, str) for d in digests):
        raise RecordError(f"{path}: weight and data digests must be strings")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_checkpoints(checkpoints: Any, path: Path) -> None:
    if checkpoints is None:
        return
    if not isinstance(checkpoints, list) or not all(
        isinstance(c, dict)
        and all(_count(c.get(k)) for k in ("index", "step", "epoch"))
        and isinstance(c.get("file"), str)
        and isinstance(c.get("sha256"), str)
        and isinstance(c.get("variables"), dict)
        and all(isinstance(v, str) for v in c["variables"].values())
        for c in checkpoints
    ):
        raise RecordError(
            f"{path}: checkpoints must be a list of {{index, step, epoch, file, sha256, "
            "variables}}"
        )
    if [c["index"] for c in checkpoints] != list(range(len(checkpoints))) or any(
        b["step"] <= a["step"] for a, b in itertools.pairwise(checkpoints)
    ):
        raise RecordError(f"{path}: its checkpoints are not numbered 0, 1, ... in step order")


def read_record(path: Path) -> RunRecord:
    """A run record, refused with a RecordError naming ``path`` when it cannot be trusted."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise RecordError(f"{path}: cannot be read ({error})") from None
    if size > MAX_RECORD_BYTES:
        raise RecordError(
            f"{path}: {size:,} bytes, more than the {MAX_RECORD_BYTES:,} a record may hold"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RecordError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path}: not a {RECORD_FORMAT} file (a JSON {type(data).__name__})")
    if data.get("format") != RECORD_FORMAT or data.get("format_version") != RECORD_FORMAT_VERSION:
        raise RecordError(
            f"{path}: not a {RECORD_FORMAT} v{RECORD_FORMAT_VERSION} file "
            f"(format={data.get('format')!r}, version={data.get('format_version')!r})"
        )
    _check_fields(data, path)
    fields = {name: data[name] for name in RunRecord.__dataclass_fields__ if name in data}
    fields["history"] = {
        name: decode_floats(v, f"{path}: history.{name}") for name, v in data["history"].items()
    }
    fields["evaluation"] = {}
    for name, encoded in data["evaluation"].items():
        values = decode_floats(encoded, f"{path}: evaluation.{name}")
        if len(values) != 1:
            raise RecordError(f"{path}: evaluation.{name} holds {len(values)} values, not 1")
        fields["evaluation"][name] = values[0]
    return RunRecord(**fields)


@dataclass
class Run:
    """A run record as read from ``path``, with the step trace beside it (None: it has none)."""

    path: Path
    record: RunRecord
    trace: Trace | None


def read_run(path: Path, *, trace_beside: bool = False) -> Run:
    """A record and its trace, refused when the trace is not the one the run wrote, or holds
    more than the record says the run trained (``TraceBounds``). ``trace_beside``: refuse a
    trace named anywhere but beside the record (a bundle's)."""
    record = read_record(path)
    if record.trace is None:
        return Run(Path(path), record, None)
    try:
        trace_path = (
            path_inside(Path(path).parent, record.trace["file"])
            if trace_beside
            else Path(path).parent / record.trace["file"]
        )
    except UnsafePath as error:
        raise RecordError(f"{path}: its trace {error}") from None
    bounds = TraceBounds.from_settings(record.settings)
    try:
        status = trace_path.lstat() if trace_beside else trace_path.stat()
        if not stat.S_ISREG(status.st_mode):
            raise RecordError(f"{path}: its trace {trace_path} is not a regular file")
        size = status.st_size
        if size > bounds.file_bytes():
            raise RecordError(
                f"{path}: its trace {trace_path} is {size:,} bytes, more than the "
                f"{bounds.file_bytes():,} the run's settings allow"
            )
        actual = file_sha256(trace_path)
    except OSError as error:
        raise RecordError(f"{path}: its trace {trace_path} cannot be read ({error})") from None
    if actual != record.trace["sha256"]:
        raise RecordError(
            f"{path}: its trace {trace_path} has sha256 {actual}, not the {record.trace['sha256']} "
            "the run recorded: it was changed after training"
        )
    try:
        trace = read_trace(trace_path, bounds)
    except (OSError, ValueError, KeyError) as error:
        raise RecordError(f"{path}: its trace {trace_path} is refused: {error}") from None
    return Run(Path(path), record, trace)


def read_runs(paths: list[Path]) -> tuple[list[Run], list[RefusedRecord]]:
    """The runs that can be trusted, and the others with the reason each was refused."""
    runs: dict[tuple[int, int], Run] = {}
    refused = []
    for path in paths:
        try:
            run = read_run(path)
        except RecordError as error:
            refused.append(RefusedRecord(str(path), str(error)))
            continue
        key = (run.record.seed, run.record.repeat)
        if key in runs:
            refused.append(
                RefusedRecord(
                    str(path),
                    f"{path}: claims seed {key[0]} repeat {key[1]}, like {runs[key].path}; "
                    "a record copied over another run's?",
                )
            )
            continue
        runs[key] = run
    return list(runs.values()), refused
