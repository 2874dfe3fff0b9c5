"""``matrix.json``: the matrix for machines, one entry per cell (model, backend, status, each
seed's status and final test value, the cell's report)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from keras_repro.comparison.matrix import Matrix

MATRIX_FORMAT = "keras-repro/matrix"
MATRIX_FORMAT_VERSION = 1


def matrix_to_json(matrix: Matrix, folder: Path) -> dict[str, Any]:
    """The matrix as JSON; each cell's report as a path relative to ``folder`` (the folder
    matrix.json is written to)."""
    return {
        "format": MATRIX_FORMAT,
        "format_version": MATRIX_FORMAT_VERSION,
        "verdict": matrix.verdict,
        "headline": matrix.headline,
        "models": matrix.models,
        "backends": matrix.backends,
        "trained": dataclasses.asdict(matrix.coverage) if matrix.coverage else None,
        "cells": [
            {
                "model": cell.model,
                "backend": cell.backend,
                "status": cell.status,
                "mode": cell.mode_label,
                "runs": cell.runs,
                "seeds": [dataclasses.asdict(seed) for seed in cell.seeds],
                "notes": cell.notes,
                "planted": cell.planted,
                "verified": cell.verified,
                "report": os.path.relpath(cell.report, folder),
            }
            for cell in matrix.cells
        ],
    }
