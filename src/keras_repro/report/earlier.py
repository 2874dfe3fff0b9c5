"""What an earlier config left under results/ that this run does not judge: results are kept
by model and backend only, so a cell dropped from the config keeps its runs and its report.
Its report goes (a page that looks current and judges nothing of this run); its runs stay, and
the matrix page lists them, with how to keep experiments apart."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from keras_repro.backends import BACKENDS

log = logging.getLogger(__name__)


@dataclass
class Earlier:
    """Cells on disk that are not in this run: reports removed, runs kept."""

    removed: list[str] = field(default_factory=list)  # the reports' folders, removed
    kept: list[str] = field(default_factory=list)  # the runs' folders, kept


def _cell_folders(root: Path) -> list[Path]:
    """``root``'s MODEL/BACKEND folders (a backend's name, as the workflow writes them)."""
    if not root.is_dir():
        return []
    return sorted(
        folder
        for model in root.iterdir()
        if model.is_dir()
        for folder in model.iterdir()
        if folder.is_dir() and folder.name in BACKENDS
    )


def forget_earlier_cells(
    cells: Iterable[tuple[str, str]],
    reports: Path | str,
    runs: Iterable[Path | str],
    report_files: Iterable[str],
) -> Earlier:
    """Remove the report files (``report_files``, as compare and find_partings write them) of every cell under
    ``reports`` that is not one of ``cells``, and list the run folders of such cells under
    ``runs`` (kept: training them again costs what it cost)."""
    current = {(model, backend) for model, backend in cells}
    earlier = Earlier()
    for folder in _cell_folders(Path(reports)):
        if (folder.parent.name, folder.name) in current:
            continue
        for name in report_files:
            (folder / name).unlink(missing_ok=True)
        earlier.removed.append(f"{folder}/")
        log.info("removed the report of %s on %s: not in this config", *folder.parts[-2:])
        for emptied in (folder, folder.parent):
            if emptied.is_dir() and not any(emptied.iterdir()):
                emptied.rmdir()
    for root in runs:
        earlier.kept += [
            f"{folder}/"
            for folder in _cell_folders(Path(root))
            if (folder.parent.name, folder.name) not in current
        ]
    return earlier
