"""A segment of a run replayed in a fresh process: from the checkpoint the run saved at the
segment's start, the very steps the run trained next, recorded like a run (history, step
trace, weight digests, the data fed) and with the complete state it ends in, so that the
comparison can hold it against the run's trace and the checkpoint the run saved at the
segment's end.

A segment between two epochs' ends is trained as the run trained it: ``fit`` from its first
epoch to its last, with validation, and ``evaluate()`` when it ends the run. A segment that
starts or ends inside an epoch is fed its steps' batches as one pass, without validation (the
input pipeline must say where any step's batch comes from: ``RESUMES_MID_EPOCH``).

The replay's settings are the run's but for the nudge: a nudge planted in the run is a fault
the replay must find, not repeat.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from keras_repro.backends import keras_without_integrations
from keras_repro.config import RunSettings
from keras_repro.errors import ReproError
from keras_repro.files import UnsafePath, path_below
from keras_repro.logs import configure_logging
from keras_repro.pipelines import RESUMES_MID_EPOCH
from keras_repro.records import (
    Checkpoint,
    RunRecord,
    read_record,
    variable_digests,
    verify_checkpoint_file,
)
from keras_repro.training.cli import parser_for, settings_of
from keras_repro.workflow import exit_now

# These import Keras: its first import in a replay's process.
with keras_without_integrations():
    from keras_repro.training.checkpointing import (
        RandomRestore,
        StateAt,
        random_part,
        restore,
    )
    from keras_repro.training.progress_callback import Progress
    from keras_repro.training.run import fit, record
    from keras_repro.training.setup import (
        Built,
        Prepared,
        build_model,
        compile_model,
        identity,
        prepare,
    )

log = logging.getLogger(__name__)


class ReplayError(ReproError):
    """A segment that cannot be replayed: no such segment, or a run that is not this one."""


def segment_bounds(run: RunRecord, index: int, run_path: Path) -> tuple[dict, dict]:
    """The checkpoints the run saved at the start and the end of segment ``index`` (1-based)."""
    checkpoints = run.checkpoints or []
    if not 1 <= index < len(checkpoints):
        raise ReplayError(
            f"{run_path}: the run saved {len(checkpoints)} checkpoints, so it has no segment "
            f"{index} (segments 1 to {max(len(checkpoints) - 1, 0)})"
        )
    return checkpoints[index - 1], checkpoints[index]


def _check_same_run(run: RunRecord, settings: RunSettings, run_path: Path) -> None:
    recorded = run.settings
    for key, expected in (
        ("seed", settings.seed),
        ("backend", settings.backend),
        ("model", settings["model"]),
        ("model_sha256", settings.model_sha256),
        ("epochs", settings["epochs"]),
        ("batch_size", settings["batch_size"]),
    ):
        if recorded.get(key) != expected:
            raise ReplayError(
                f"{run_path}: the run was trained with {key} {recorded.get(key)!r}, this replay "
                f"is asked for {expected!r}: delete the run's folder to train it again"
            )


def replay_segment(
    dataset_path: Path,
    run_path: Path,
    index: int,
    record_path: Path,
    trace_path: Path,
    settings: RunSettings,
) -> RunRecord:
    """Replay segment ``index`` of the run whose record is ``run_path``; write the replay's
    trace and record (its ``segment``: which steps, from which checkpoint, the state it ended
    in). The starting checkpoint is refused unless it is the file the run recorded."""
    run = read_record(run_path)
    _check_same_run(run, settings, Path(run_path))
    start, end = segment_bounds(run, index, Path(run_path))
    try:
        checkpoint_path = path_below(Path(run_path).parent, start["file"])
    except UnsafePath as error:
        raise ReplayError(f"{run_path}: checkpoint {start['index']} {error}") from None
    verify_checkpoint_file(checkpoint_path, start["sha256"])

    prepared = prepare(dataset_path, settings)
    steps_per_epoch = prepared.steps_per_epoch
    first, last = start["step"] + 1, end["step"]
    model = build_model(prepared, settings)
    built = compile_model(model, prepared, settings, first_step=first, steps=last - first + 1)
    identity_now = identity(settings, prepared.dataset_sha256)
    checkpoint = restore(model, checkpoint_path, identity_now, start["step"], prepared.backend)
    aligned = not (start["step"] % steps_per_epoch or last % steps_per_epoch)
    log.info("replaying segment %d: steps %d to %d, from %s", index, first, last, checkpoint_path)
    end_state = StateAt(last, steps_per_epoch, first - 1, prepared.backend)
    if aligned:
        prepared.pipeline.fast_forward(prepared.train_data, checkpoint.epoch, checkpoint.position)
        results = fit(
            built,
            prepared,
            settings,
            initial_epoch=start["step"] // steps_per_epoch,
            epochs=last // steps_per_epoch,
            extra_callbacks=(
                RandomRestore(random_part(checkpoint), prepared.backend, False),
                end_state,
            ),
            evaluate=last == settings["epochs"] * steps_per_epoch,
            progress=Progress(settings, segment=index, total_steps=last - first + 1),
        )
    else:
        results = _fit_inside_epochs(built, prepared, first, last, checkpoint, end_state)
    segment = {
        "index": index,
        "first_step": first,
        "last_step": last,
        "first_epoch": start["epoch"],
        "last_epoch": end["epoch"],
        "from_sha256": start["sha256"],
        "end_state": variable_digests(end_state.state or {}),
    }
    return record(
        built,
        prepared,
        settings,
        results,
        (dataset_path, record_path, trace_path),
        segment=segment,
        by_pass=aligned,
    )


def epoch_parts(first: int, last: int, steps_per_epoch: int) -> list[tuple[int, int]]:
    """Steps ``first`` to ``last`` cut at the epochs' ends: each part inside one epoch."""
    parts, step = [], first
    while step <= last:
        end = min(last, -(-step // steps_per_epoch) * steps_per_epoch)
        parts.append((step, end))
        step = end + 1
    return parts


def _fit_inside_epochs(
    built: Built,
    prepared: Prepared,
    first: int,
    last: int,
    checkpoint: Checkpoint,
    end_state: StateAt,
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Train steps ``first`` to ``last`` as the run did, one ``fit`` per part of an epoch, each
    fed its steps' batches: a part that ends an epoch validates, as the run did at the epoch's
    end, and each part begins as an epoch begins (both can draw from a backend's generator).
    The random state is put back at the first part's start when it starts an epoch, else
    before its first step. No history: the run's metrics are per whole epoch."""
    pipeline, name = prepared.pipeline, prepared.pipeline.__name__.rsplit(".", 1)[-1]
    if not RESUMES_MID_EPOCH[name]:
        raise ReplayError(
            f"the {name} pipeline cannot feed a segment that starts or ends inside an epoch: "
            "checkpoint at epochs' ends (checkpoints.every_epochs)"
        )
    steps_per_epoch = prepared.steps_per_epoch
    restore = RandomRestore(
        random_part(checkpoint), prepared.backend, bool((first - 1) % steps_per_epoch)
    )
    for number, (start, end) in enumerate(epoch_parts(first, last, steps_per_epoch)):
        built.model.fit(
            pipeline.segment_batches(prepared.train_data, start, end),
            epochs=1,
            validation_data=prepared.test_data if end % steps_per_epoch == 0 else None,
            callbacks=[built.weight_trace, end_state, *([restore] if number == 0 else [])],
            shuffle=False,
            verbose=0,
        )
    return {}, {}


def main(argv: list[str] | None = None) -> None:
    """``python -m keras_repro.training.replay DATASET RECORD --of-run RUN --segment K``."""
    parser = parser_for("Replay segment K of a run from the checkpoint it saved at its start.")
    parser.add_argument("--of-run", type=Path, required=True, help="the run's record")
    parser.add_argument("--segment", type=int, required=True, help="the segment (1-based)")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = settings_of(args)
        trace = args.trace or args.record.with_name("trace.npz")
        replay_segment(args.dataset, args.of_run, args.segment, args.record, trace, settings)
    except ReproError as error:
        parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
    exit_now(0)
