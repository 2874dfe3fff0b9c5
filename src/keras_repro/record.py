"""The run record: one JSON file per training run, read back exactly as it was written.

Every float is stored twice: as ``float.hex`` (authoritative, exact, NaN-safe) and as a
decimal for people. Reading checks that the two agree, so a value edited by hand in one place
only is caught instead of silently compared.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from keras_repro.errors import ReproError
from keras_repro.files import write_json_atomic

RECORD_FORMAT = "keras-repro/run-record"
RECORD_FORMAT_VERSION = 1


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


def record_to_json(record: RunRecord) -> dict[str, Any]:
    data = asdict(record)
    data["history"] = {name: encode_floats(v) for name, v in record.history.items()}
    data["evaluation"] = {name: encode_floats([v]) for name, v in record.evaluation.items()}
    return {"format": RECORD_FORMAT, "format_version": RECORD_FORMAT_VERSION, **data}


def write_record(record: RunRecord, path: Path) -> None:
    write_json_atomic(record_to_json(record), path)


def read_record(path: Path) -> RunRecord:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise RecordError(f"{path}: not valid JSON ({error})") from None
    if data.get("format") != RECORD_FORMAT or data.get("format_version") != RECORD_FORMAT_VERSION:
        raise RecordError(
            f"{path}: not a {RECORD_FORMAT} v{RECORD_FORMAT_VERSION} file "
            f"(format={data.get('format')!r}, version={data.get('format_version')!r})"
        )
    fields = {name: data[name] for name in RunRecord.__dataclass_fields__ if name in data}
    missing = set(RunRecord.__dataclass_fields__) - set(fields) - {"settings"}
    if missing:
        raise RecordError(f"{path}: missing fields {sorted(missing)}")
    fields["history"] = {
        name: decode_floats(v, f"{path}: history.{name}") for name, v in data["history"].items()
    }
    fields["evaluation"] = {
        name: decode_floats(v, f"{path}: evaluation.{name}")[0]
        for name, v in data["evaluation"].items()
    }
    return RunRecord(**fields)
