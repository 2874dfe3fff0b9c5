"""The training CLI (``keras-repro-train``, ``python -m keras_repro.training.cli``): one run, its
record and step trace.

Keras picks its backend when it is imported, and XLA, cuBLAS and OpenMP read their variables
when they start, so this module imports neither Keras nor a framework: it sets the run's
backend environment (``KERAS_BACKEND`` and the backend's own ``child_environment``) first,
then imports the training run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from keras_repro.backends import BACKENDS
from keras_repro.config import add_arguments, from_arguments
from keras_repro.errors import ReproError
from keras_repro.logs import configure_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Train once and write the run record (history.json) and step trace. Set "
        "PYTHONHASHSEED before starting Python, e.g. PYTHONHASHSEED=812 keras-repro-train ..."
    )
    parser.add_argument("dataset", type=Path, help="dataset file written by build_dataset")
    parser.add_argument("record", type=Path, help="run record to write (history.json)")
    parser.add_argument(
        "--trace", type=Path, help="step trace to write (default: trace.npz beside the record)"
    )
    parser.add_argument(
        "--replay-segment",
        type=int,
        metavar="K",
        help="replay segment K of the run --of-run from the checkpoint it saved at the "
        "segment's start, instead of training the run",
    )
    parser.add_argument(
        "--of-run", type=Path, metavar="RECORD", help="the run's record (its history.json)"
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    if (args.replay_segment is None) != (args.of_run is None):
        parser.error("--replay-segment and --of-run go together")
    # Without --backend or a settings file, a KERAS_BACKEND already set is the user's choice.
    if args.backend is None and args.settings is None:
        args.backend = (
            os.environ.get("KERAS_BACKEND") if os.environ.get("KERAS_BACKEND") in BACKENDS else None
        )
    configure_logging()
    try:
        settings = from_arguments(args)
        os.environ.update(settings.child_environment())
        trace = args.trace or args.record.with_name("trace.npz")
        # Imported only now: Keras takes its backend from the environment at import.
        if args.replay_segment is not None:
            from keras_repro.training.replay import replay_segment

            replay_segment(
                args.dataset, args.of_run, args.replay_segment, args.record, trace, settings
            )
        else:
            from keras_repro.training.run import train_and_record

            train_and_record(args.dataset, args.record, trace, settings)
    except ReproError as error:
        parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
