"""One logging set-up for every CLI and every Snakemake script of the package."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from types import TracebackType

from keras_repro.errors import ReproError

FORMAT = "%(asctime)s %(levelname)s %(message)s"


def configure_logging(log_path: str | Path | None = None) -> None:
    """Log INFO and above to stderr, and to ``log_path`` (emptied first) when given.

    An uncaught ReproError is logged as its message alone; anything else with its traceback.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path is not None:
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")
        # Appending: a child process may write to the same log between our lines.
        handlers.append(logging.FileHandler(log_path, mode="a"))
    logging.basicConfig(level=logging.INFO, format=FORMAT, handlers=handlers, force=True)
    sys.excepthook = _log_uncaught


def log_everything_to(log_path: str | Path) -> None:
    """Send this process's stderr to ``log_path``, the frameworks' own start-up messages (no
    GPU, CPU features) included, which would otherwise reach the console; our warnings and
    errors (a refusal's one line) still reach the console too. Call before a framework loads."""
    console = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    os.dup2(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), sys.stderr.fileno())
    configure_logging()  # to stderr, which is the log now
    on_console = logging.StreamHandler(console)
    on_console.setLevel(logging.WARNING)
    on_console.setFormatter(logging.Formatter(FORMAT))
    logging.getLogger().addHandler(on_console)


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    if isinstance(error, ReproError):
        logging.getLogger().error("%s", error)
    else:
        logging.getLogger().critical("uncaught error", exc_info=(kind, error, traceback))
