"""The snakemake CLI on a work folder, for the workflow of the checkout this package runs from.

``keras-repro-synthetic`` prints it as the command of a smoke test; the tests and the
benchmark run it. No rule imports it.
"""

from __future__ import annotations

import sys
from pathlib import Path

# src/keras_repro/ in a checkout; where the package is installed elsewhere there is none.
SNAKEFILE = Path(__file__).resolve().parents[3] / "Snakefile"


def snakemake_command(
    workdir: Path, *args: str, cores: int | None = 2, snakefile: Path = SNAKEFILE
) -> list[str]:
    """The snakemake CLI on ``workdir``; ``cores=None`` leaves --cores out (an executor
    profile decides)."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(snakefile),
        "-d",
        str(workdir),
        *(["--cores", str(cores)] if cores is not None else []),
        *args,
    ]
