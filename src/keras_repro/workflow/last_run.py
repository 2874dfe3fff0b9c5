"""The config of the run whose results the report shows, kept beside its matrix page, so that
``snakemake --report`` bundles those results, and describes them, whatever the config says
when the report is made (the report's DAG is built from the config, and a cell of another
config has no results to bundle)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keras_repro.errors import ReproError

LAST_RUN_CONFIG = Path("results/report/run_config.json")


def only_reporting(argv: Sequence[str]) -> bool:
    """Whether this snakemake only makes the report (``--report``, not ``--report-after-run``,
    which reports the run it makes)."""
    options = {argument.split("=", 1)[0] for argument in argv}
    return "--report" in options and "--report-after-run" not in options


def last_run_config(path: Path = LAST_RUN_CONFIG) -> dict[str, Any] | None:
    """The config (as given, before validation) of the run that wrote the matrix; None before
    any did."""
    try:
        config = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReproError(
            f"{path} cannot be read ({error}): delete it and run the workflow to write it again"
        ) from None
    if not isinstance(config, dict):
        raise ReproError(
            f"{path} holds no config (a JSON {type(config).__name__}): delete it and run the "
            "workflow to write it again"
        )
    return config
