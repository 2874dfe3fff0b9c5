"""The training CLI (``keras-repro-train``, ``python -m keras_repro.training.cli``): one run, its
record and step trace.

Keras picks its backend when it is imported, and XLA, cuBLAS and OpenMP read their variables
when they start, so this module imports neither Keras nor a framework: it sets the run's
backend environment (``KERAS_BACKEND`` and the backend's own ``child_environment``) first,
then imports the training run, and Keras without the integrations a run never uses. A
replayed segment (``replay.py``) and a zoom (``zoom.py``) have CLIs of their own on the same
options, started with the backend's variables already set (the launcher sets them; by hand,
set ``KERAS_BACKEND`` first).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from keras_repro.backends import BACKENDS, keras_without_integrations
from keras_repro.config import RunSettings, add_arguments, from_arguments
from keras_repro.errors import ReproError
from keras_repro.logs import configure_logging
from keras_repro.workflow import exit_now


def parser_for(description: str) -> argparse.ArgumentParser:
    """The options every run's CLI takes: the dataset, the record to write, the trace, a
    settings file and one option per run setting of the schema."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("dataset", type=Path, help="dataset file written by build_dataset")
    parser.add_argument("record", type=Path, help="record to write (history.json)")
    parser.add_argument(
        "--trace", type=Path, help="step trace to write (default: trace.npz beside the record)"
    )
    add_arguments(parser)
    return parser


def settings_of(args: argparse.Namespace) -> RunSettings:
    """The run's settings from the options, and the backend's variables set in this process
    (for a Keras not imported yet)."""
    # Without --backend or a settings file, a KERAS_BACKEND already set is the user's choice.
    if args.backend is None and args.settings is None:
        args.backend = (
            os.environ.get("KERAS_BACKEND") if os.environ.get("KERAS_BACKEND") in BACKENDS else None
        )
    settings = from_arguments(args)
    os.environ.update(settings.child_environment())
    return settings


def main(argv: list[str] | None = None) -> None:
    parser = parser_for(
        "Train once and write the run record (history.json) and step trace. Set "
        "PYTHONHASHSEED before starting Python, e.g. PYTHONHASHSEED=812 keras-repro-train ..."
    )
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = settings_of(args)
        # Imported only now: Keras takes its backend from the environment at import.
        with keras_without_integrations():
            from keras_repro.training.run import train_and_record

        trace = args.trace or args.record.with_name("trace.npz")
        train_and_record(args.dataset, args.record, trace, settings)
    except ReproError as error:
        parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
    exit_now(0)
