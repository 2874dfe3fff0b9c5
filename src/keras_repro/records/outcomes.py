"""A run that did not train, recorded as its outcome instead of a failed job: "not-possible"
(a known limit, said before the first step: ``keras_repro.backends.limits``) or "failed" (the framework
refused an op under its determinism switch: ``keras_repro.backends.unsupported``).

The outcome file takes the run record's place (``history.json``), with its own format; the
trace's place gets a small ``.npz`` holding one ``outcome`` array (the status) and no step
arrays, so the workflow's declared outputs exist and no trace reader takes it for a trace.
"""

from __future__ import annotations

import datetime
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keras_repro.config import ARMS, RunSettings
from keras_repro.files import atomic_write, write_json_atomic
from keras_repro.records.record import MAX_RECORD_BYTES, RecordError, RefusedRecord

OUTCOME_FORMAT = "keras-repro/run-outcome"
OUTCOME_FORMAT_VERSION = 1
STATUSES = ("not-possible", "failed")


class OutcomeError(RecordError):
    """An outcome file that cannot be trusted: wrong format or fields."""


@dataclass(frozen=True)
class RunOutcome:
    seed: int | None
    repeat: int
    arm: str
    status: str  # one of STATUSES
    reason: str
    op: str | None
    source: str | None
    path: str = ""  # the file it was read from


def write_outcome(
    record_path: Path,
    trace_path: Path,
    settings: RunSettings,
    status: str,
    reason: str,
    op: str | None = None,
    source: str | None = None,
    fingerprint: dict[str, Any] | None = None,
) -> RunOutcome:
    """Write the outcome at ``record_path`` and the placeholder at ``trace_path``, each
    atomically (the trace first: a finished outcome file means both are there)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    buffer = io.BytesIO()
    np.savez(buffer, outcome=np.array(status))
    with atomic_write(trace_path, binary=True) as handle:
        handle.write(buffer.getvalue())
    data = {
        "format": OUTCOME_FORMAT,
        "format_version": OUTCOME_FORMAT_VERSION,
        "seed": settings.seed,
        "repeat": settings.repeat,
        "arm": settings.arm,
        "status": status,
        "reason": reason,
        "op": op,
        "source": source,
        "settings": settings.to_record(),
        "fingerprint": fingerprint,
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(data, record_path)
    return RunOutcome(settings.seed, settings.repeat, settings.arm, status, reason, op, source)


def _check(data: dict[str, Any], path: Path) -> None:
    if data.get("format_version") != OUTCOME_FORMAT_VERSION:
        raise OutcomeError(
            f"{path}: a {OUTCOME_FORMAT} file of version {data.get('format_version')!r}; this "
            f"version reads v{OUTCOME_FORMAT_VERSION}"
        )
    seed = data.get("seed")
    if not (seed is None or (isinstance(seed, int) and not isinstance(seed, bool))):
        raise OutcomeError(f"{path}: seed must be an integer or null, got {seed!r:.60}")
    if not isinstance(data.get("repeat"), int) or isinstance(data.get("repeat"), bool):
        raise OutcomeError(f"{path}: repeat must be an integer, got {data.get('repeat')!r:.60}")
    if data.get("arm") not in ARMS:
        raise OutcomeError(f"{path}: arm must be one of {ARMS}, got {data.get('arm')!r:.60}")
    if data.get("status") not in STATUSES:
        raise OutcomeError(
            f"{path}: status must be one of {STATUSES}, got {data.get('status')!r:.60}"
        )
    if not isinstance(data.get("reason"), str) or not data["reason"]:
        raise OutcomeError(f"{path}: reason must be a non-empty string")
    for name in ("op", "source"):
        if not (data.get(name) is None or isinstance(data[name], str)):
            raise OutcomeError(f"{path}: {name} must be a string or null, got {data[name]!r:.60}")


def read_outcome(path: Path) -> RunOutcome | None:
    """The outcome in ``path``; None when it is another file (a run record, which
    ``record.read_record`` reads). A malformed outcome file is refused with OutcomeError."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            return None  # not an outcome: the record reader says what it is
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != OUTCOME_FORMAT:
        return None
    _check(data, path)
    return RunOutcome(
        seed=data["seed"],
        repeat=data["repeat"],
        arm=data["arm"],
        status=data["status"],
        reason=data["reason"],
        op=data.get("op"),
        source=data.get("source"),
        path=str(path),
    )


def split_outcomes(
    paths: Iterable[Path],
) -> tuple[list[RunOutcome], list[Path], list[RefusedRecord]]:
    """The outcomes among ``paths``, the other paths (run records, read as before), and the
    outcome files that cannot be trusted (refused, like a record that cannot be)."""
    outcomes, records, refused = [], [], []
    for path in paths:
        try:
            outcome = read_outcome(Path(path))
        except OutcomeError as error:
            refused.append(RefusedRecord(str(path), str(error)))
            continue
        if outcome is None:
            records.append(Path(path))
        else:
            outcomes.append(outcome)
    return outcomes, records, refused
