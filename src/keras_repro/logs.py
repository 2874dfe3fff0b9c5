"""One logging set-up for every CLI and every Snakemake script of the package.

The console gets one line per event; a traceback goes to the log only (without a log, to
stderr). Ctrl-C ends any of them in one line, "interrupted". A user's own code that raises is
named by its file and line (``raised_at``).
"""

from __future__ import annotations

import logging
import os
import re
import site
import sys
import traceback as tracebacks
from pathlib import Path
from types import TracebackType

from keras_repro.errors import ReproError

FORMAT = "%(asctime)s %(levelname)s %(message)s"
# ``extra=`` of a line that belongs in the log and not on the console (e.g. "no GPU found").
LOG_ONLY = {"log_only": True}
# ... and of one already in the log, said again on the console (by a process whose child
# wrote the log).
CONSOLE_ONLY = {"console_only": True}
PACKAGE_DIR = Path(__file__).resolve().parent
# A frame quoted in an error's message (TensorFlow's "in user code:" block), and the files
# autograph generates from a user's function.
QUOTED_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\w+)')
AUTOGRAPH_FILE = "__autograph_generated_file"
ANSI_STYLE = re.compile(r"\x1b\[[0-9;]*m")
KERAS_CALLING, KERAS_ARGUMENTS = "Exception encountered when calling", "Arguments received by"


class _WithoutTraceback(logging.Formatter):
    """A record without its traceback, which stays in the log (``log_path``)."""

    def __init__(self, log_path: Path | None) -> None:
        super().__init__(FORMAT)
        self.log_path = log_path

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            line = super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        if saved[0] and self.log_path is not None:
            line += f" (the traceback is in {self.log_path})"
        return line


def _on_console(record: logging.LogRecord) -> bool:
    return not getattr(record, "log_only", False)


def _in_log(record: logging.LogRecord) -> bool:
    return not getattr(record, "console_only", False)


def _console_handler(stream, log_path: Path | None, level: int) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setLevel(level)
    handler.setFormatter(_WithoutTraceback(log_path))
    handler.addFilter(_on_console)
    return handler


def configure_logging(log_path: str | Path | None = None) -> None:
    """Log INFO and above to stderr, and to ``log_path`` (emptied first) when given: then
    stderr, the console, gets each line alone and the log the tracebacks too.

    An uncaught ReproError is logged as its message alone, Ctrl-C as "interrupted", anything
    else as its last line with its traceback.
    """
    if log_path is None:
        handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    else:
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")
        # Appending: a child process may write to the same log between our lines.
        in_log = logging.FileHandler(log_path, mode="a")
        in_log.addFilter(_in_log)
        handlers = [_console_handler(sys.stderr, log_path, logging.INFO), in_log]
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
    for handler in logging.getLogger().handlers:
        handler.addFilter(_in_log)
    logging.getLogger().addHandler(_console_handler(console, log_path, logging.WARNING))


def _not_users() -> tuple[str, ...]:
    """Folders whose code is Python's, an installed package's or this package's."""
    folders = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    return (*(str(Path(folder).resolve()) + os.sep for folder in folders), str(PACKAGE_DIR))


def raised_at(error: BaseException, file: str | Path | None = None) -> str | None:
    """Where ``error`` was raised in a user's code, "my_model.py, line 7, in build": the
    innermost frame of its traceback in ``file``, or (without ``file``) in a file that is
    neither Python's, an installed package's nor this package's; None when there is none.
    Code TensorFlow's autograph converted is named where its message says ("in user code")."""
    if isinstance(error, SyntaxError) and error.filename and error.lineno:
        return f"{shown_path(error.filename)}, line {error.lineno}"
    frames = [
        (frame.filename, frame.lineno, frame.name)
        for frame in tracebacks.extract_tb(error.__traceback__)
    ]
    frames += [(f, int(n), name) for f, n, name in QUOTED_FRAME.findall(str(error))]
    wanted = Path(file).resolve() if file is not None else None
    skipped = _not_users()
    for filename, line, function in reversed(frames):
        if filename.startswith("<") or AUTOGRAPH_FILE in filename:
            continue
        path = Path(filename).resolve()
        if (path == wanted) if wanted else not str(path).startswith(skipped):
            return f"{shown_path(filename)}, line {line}, in {function}"
    return None


def shown_path(path: str | Path) -> str:
    """``path`` as a user names it: relative to the working folder when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def error_line(error: BaseException, file: str | Path | None = None) -> str:
    """``error`` in one line, "ValueError: message (my_model.py, line 7, in build)": its type,
    the last line of its message (a framework's says what went wrong last), and where the
    user's code raised it (``raised_at``)."""
    message = error.msg if isinstance(error, SyntaxError) else str(error)
    message = ANSI_STYLE.sub("", message)  # Keras makes a layer's message bold
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    # Keras wraps a layer's error: "Exception encountered when calling …", the message, then
    # "Arguments received by …" and a line per argument.
    if received := [n for n, line in enumerate(lines) if line.startswith(KERAS_ARGUMENTS)]:
        lines = [line for line in lines[: received[0]] if not line.startswith(KERAS_CALLING)]
    kind = type(error).__name__
    line = f"{kind}: {lines[-1].removeprefix(f'{kind}: ')}" if lines else kind
    where = raised_at(error, file)
    return f"{line} ({where})" if where else line


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    if isinstance(error, KeyboardInterrupt):
        logging.getLogger().error("interrupted")
    elif isinstance(error, ReproError):
        logging.getLogger().error("%s", error)
    else:
        logging.getLogger().critical(
            "uncaught error: %s", error_line(error), exc_info=(kind, error, traceback)
        )
