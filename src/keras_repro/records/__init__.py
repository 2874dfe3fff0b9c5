"""What training writes and the comparison reads: the run record (``record.py``, run-record
v1, exact floats checked on read), the step trace beside it (``trace.py``, bounded streams
checked against its record) and the outcome of a run that could not train (``outcomes.py``)."""

from keras_repro.records.outcomes import RunOutcome, read_outcome, split_outcomes, write_outcome
from keras_repro.records.record import (
    LEGACY_SETTINGS,
    MAX_RECORD_BYTES,
    RecordError,
    RefusedRecord,
    Run,
    RunRecord,
    read_record,
    read_run,
    read_runs,
    write_record,
)
from keras_repro.records.trace import Trace, TraceBounds, TraceError, read_trace, write_trace

__all__ = [
    "LEGACY_SETTINGS",
    "MAX_RECORD_BYTES",
    "RecordError",
    "RefusedRecord",
    "Run",
    "RunOutcome",
    "RunRecord",
    "Trace",
    "TraceBounds",
    "TraceError",
    "read_outcome",
    "read_record",
    "read_run",
    "read_runs",
    "read_trace",
    "split_outcomes",
    "write_outcome",
    "write_record",
    "write_trace",
]
