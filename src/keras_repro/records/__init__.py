"""What training writes and the comparison reads: the run record (``record.py``, run-record
v1, exact floats checked on read), the step trace beside it (``trace.py``, bounded streams
checked against its record), the checkpoints a run saves (``checkpoint.py``, its complete
training state, read back bounded and checked like a trace) and the outcome of a run that
could not train (``outcomes.py``)."""

from keras_repro.records.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoints_removed,
    edited_checkpoint,
    listed_variables,
    planned_steps,
    read_checkpoint,
    remove_checkpoints,
    replayed_segments,
    variable_digests,
    verify_checkpoint_file,
    write_checkpoint,
)
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
from keras_repro.records.zoom import (
    ZoomError,
    ZoomRecord,
    read_zoom,
    read_zoom_value,
    write_zoom,
)

__all__ = [
    "LEGACY_SETTINGS",
    "MAX_RECORD_BYTES",
    "Checkpoint",
    "CheckpointError",
    "RecordError",
    "RefusedRecord",
    "Run",
    "RunOutcome",
    "RunRecord",
    "Trace",
    "TraceBounds",
    "TraceError",
    "ZoomError",
    "ZoomRecord",
    "checkpoints_removed",
    "edited_checkpoint",
    "listed_variables",
    "planned_steps",
    "read_checkpoint",
    "read_outcome",
    "read_record",
    "read_run",
    "read_runs",
    "read_trace",
    "read_zoom",
    "read_zoom_value",
    "remove_checkpoints",
    "replayed_segments",
    "split_outcomes",
    "variable_digests",
    "verify_checkpoint_file",
    "write_checkpoint",
    "write_outcome",
    "write_record",
    "write_trace",
    "write_zoom",
]
