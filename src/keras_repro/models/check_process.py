"""The model check in a process of its own, under a deadline (the check_model rule's, and
``python -m keras_repro.models.check_process``).

A model file runs the user's code when it is imported and built, and that code may never
return. The check runs in a fresh interpreter in a process group of its own; the deadline
counts from when the model's own code starts there (Keras imported). Past it the child's Python stack is dumped
(``faulthandler``, which works inside C code too), the frame of the user's file where it was
stuck is named in one line, the stack goes to the log, and the whole group is killed. Ctrl-C,
or the job's owner going away, ends it the same way: nothing is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import linecache
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import keras_repro
from keras_repro.config import defaults
from keras_repro.errors import ReproError
from keras_repro.logs import CONSOLE_ONLY, configure_logging, error_line, shown_path
from keras_repro.models.check import check_model
from keras_repro.models.registry import ModelError, model_source
from keras_repro.workflow import die_with_parent, exit_now, job_owner

log = logging.getLogger(__name__)

MODULE = "keras_repro.models.check_process"  # its name also when run with -m
PACKAGE_ROOT = str(Path(keras_repro.__file__).resolve().parent.parent)
STACK_SIGNAL = signal.SIGUSR1
WATCH_SECONDS = 0.5
# How long the child's stack dump may take to reach its file.
DUMP_SECONDS = 2.0
# The bound on what comes before the model's code (Keras and its backend imported), at least.
STARTUP_SECONDS = 300.0
# Written by the child when the model's own code starts (Keras imported, the file not yet).
STARTED = "started"
FRAME = re.compile(r'^\s*File "(?P<file>.*)", line (?P<line>\d+) in (?P<function>.+)$')


def check_model_within(
    spec: str,
    data_spec: dict[str, Any],
    compile_settings: dict[str, Any],
    output: Path | None,
    *,
    timeout_seconds: float,
    expected_sha256: str | None = None,
) -> None:
    """``check_model`` in a child process that must finish within ``timeout_seconds``.
    Raises ModelError in one line: the check's own refusal, what the child died of, or where
    the user's code was stuck at the deadline."""
    request = {
        "spec": spec,
        "data_spec": data_spec,
        "compile_settings": compile_settings,
        "output": None if output is None else str(output),
        "expected_sha256": expected_sha256,
    }
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])),
    }
    with tempfile.TemporaryDirectory(prefix="keras-repro-check-") as folder:
        stack, result = Path(folder) / "stack.txt", Path(folder) / "result.txt"
        command = [sys.executable, "-m", MODULE, "--child", json.dumps(request), folder]
        # A session of its own: the terminal's Ctrl-C reaches this process, which ends the
        # child's whole group; the kernel ends the child if this process dies.
        child = subprocess.Popen(
            command, env=environment, start_new_session=True, preexec_fn=die_with_parent
        )
        # SIGTERM too ends the child's group before this process exits (quietly).
        terminated = signal.signal(signal.SIGTERM, _exit_on_signal)
        try:
            status = _wait(child, spec, timeout_seconds, stack)
        finally:
            _kill_group(child)
            signal.signal(signal.SIGTERM, terminated)
        if status != 0:
            said = result.read_text().strip() if result.exists() else ""
            how = f"was killed by signal {-status}" if status < 0 else f"exited with {status}"
            raise ModelError(said or f"model {spec!r}: the check {how}")
    if output is not None and (
        limit := json.loads(Path(output).read_text())["not_possible_on_gpu"]
    ):
        # the check's own warning is in the log: said on the console too, as before
        log.warning(
            "on a GPU: %s (source: %s)", limit["reason"], limit["source"], extra=CONSOLE_ONLY
        )


def _wait(child: subprocess.Popen, spec: str, timeout_seconds: float, stack: Path) -> int:
    """The child's exit status; the deadline counts from when the model's own code starts
    (Keras imported); what comes before is bounded too, at STARTUP_SECONDS at least."""
    owner = job_owner()
    started = stack.with_name(STARTED)
    deadline = time.monotonic() + max(timeout_seconds, STARTUP_SECONDS)
    counting = False
    while True:
        try:
            return child.wait(max(0.0, min(WATCH_SECONDS, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            pass
        if not counting and started.exists():
            deadline, counting = time.monotonic() + timeout_seconds, True
        elif time.monotonic() >= deadline:
            bound = timeout_seconds if counting else max(timeout_seconds, STARTUP_SECONDS)
            raise ModelError(_stuck(child, spec, bound, stack, counting))
        if owner is not None and not owner.alive():
            raise ModelError(
                f"model {spec!r}: stopped: the process that started this check "
                f"(pid {owner.pid}) exited"
            )


def _exit_on_signal(number: int, _frame: Any) -> None:
    raise SystemExit(128 + number)


def _kill_group(child: subprocess.Popen) -> None:
    """End the child and every process it started (its group), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def _stuck(child: subprocess.Popen, spec: str, seconds: float, stack: Path, counting: bool) -> str:
    """Where the child was at the deadline, from its stack dump: one line."""
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(STACK_SIGNAL)
    waited = time.monotonic() + DUMP_SECONDS
    text = ""
    while time.monotonic() < waited:
        text = stack.read_text(errors="replace") if stack.exists() else ""
        if "(most recent call first)" in text and text.endswith("\n"):
            time.sleep(0.1)  # the other threads' stacks may follow
            text = stack.read_text(errors="replace")
            break
        time.sleep(0.05)
    log.info("the model check's Python stack at the deadline:\n%s", text or "(none was dumped)")
    where = stuck_frame(text, model_source(spec))
    if not counting:
        return (
            f"model {spec!r}: the check did not get to the model's code within {seconds:g} s "
            f"(importing Keras and its backend){where}"
        )
    return (
        f"model {spec!r}: the check did not finish within {seconds:g} s "
        f"(model_check.timeout_seconds){where}; fix the model, or raise "
        "model_check.timeout_seconds if it is only slow"
    )


def stuck_frame(dump: str, source: Path) -> str:
    """Where a faulthandler dump was, as ", stuck at my_model.py, line 4, in build:
    `time.sleep(3600)`": its innermost frame in ``source`` (else its innermost frame), or ""
    when it holds none."""
    frames = [match.groupdict() for line in dump.splitlines() if (match := FRAME.match(line))]
    wanted = Path(source).resolve()
    mine = [frame for frame in frames if Path(frame["file"]).resolve() == wanted]
    if not (mine or frames):
        return ""
    frame = (mine or frames)[0]
    code = linecache.getline(frame["file"], int(frame["line"])).strip()
    at = f", stuck at {shown_path(frame['file'])}, line {frame['line']}, in {frame['function']}"
    return at + (f": `{code}`" if code else "")


def _child(request: dict[str, Any], folder: Path) -> None:
    """The child's side: the check, its stack dumped on STACK_SIGNAL, its refusal written for
    the parent to say; the user's output goes to the log (stderr) with the rest."""
    configure_logging()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    stack = (folder / "stack.txt").open("w")
    faulthandler.register(STACK_SIGNAL, file=stack, all_threads=True)
    try:
        check_model(
            request["spec"],
            request["data_spec"],
            request["compile_settings"],
            None if request["output"] is None else Path(request["output"]),
            expected_sha256=request["expected_sha256"],
            starting=(folder / STARTED).touch,
        )
    except ModelError as error:
        (folder / "result.txt").write_text(str(error))
        sys.exit(1)
    except (Exception, SystemExit) as error:  # the user's code, or a framework under it
        log.error("the model check failed", exc_info=True)
        message = f"model {request['spec']!r}: the check failed: {error_line(error)}"
        (folder / "result.txt").write_text(message)
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=check_model_within.__doc__)
    parser.add_argument("model", help="a registry name or path/to/file.py:function")
    parser.add_argument("manifest", type=Path, help="the dataset's manifest.json (its spec)")
    parser.add_argument("output", type=Path, help="model.json to write")
    parser.add_argument(
        "--timeout-seconds",
        type=float,
        default=defaults()["model_check"]["timeout_seconds"],
        help="the deadline (default: the config's model_check.timeout_seconds)",
    )
    args = parser.parse_args(argv)
    configure_logging()
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    try:
        spec = json.loads(args.manifest.read_text())["spec"]
        check_model_within(
            args.model,
            spec,
            defaults()["compile"],
            args.output,
            timeout_seconds=args.timeout_seconds,
        )
    except ReproError as error:
        parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(json.loads(sys.argv[2]), Path(sys.argv[3]))
        exit_now(0)
    else:
        main()
