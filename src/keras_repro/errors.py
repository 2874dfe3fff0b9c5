"""Errors whose message tells the user everything: shown without a traceback."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import TracebackType


class ReproError(Exception):
    """An expected failure: bad input, unreachable data, or runs that differ."""


def send_logs_to(path: str | Path) -> None:
    """Log to ``path`` and to stderr; an uncaught error is logged too, a ReproError as one line."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("")
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        # Appending: a child process may write to the same log between our lines.
        handlers=[logging.FileHandler(path, mode="a"), logging.StreamHandler(sys.stderr)],
        force=True,
    )

    def log_uncaught(
        kind: type[BaseException], error: BaseException, tb: TracebackType | None
    ) -> None:
        if isinstance(error, ReproError):
            logging.getLogger().error("%s", error)
        else:
            logging.getLogger().critical("uncaught error", exc_info=(kind, error, tb))

    sys.excepthook = log_uncaught
