"""What a script of the workflow puts on the console and what in its log: one line per event on
the console, tracebacks in the log, Ctrl-C as "interrupted", a user's code named by its file and
line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from keras_repro.logs import error_line

ENDINGS = {
    "a bug": ("raise ValueError('first line\\nthe last line')", "CRITICAL uncaught error: "),
    "Ctrl-C": ("raise KeyboardInterrupt", "ERROR interrupted"),
    "a refusal": ("raise ReproError('the one line')", "ERROR the one line"),
}


def run_script(tmp_path: Path, body: str, setup: str) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import logging
            from keras_repro.errors import ReproError
            from keras_repro.logs import CONSOLE_ONLY, LOG_ONLY, configure_logging, log_everything_to
            {setup}
            logging.info("said on the console")
            logging.info("for the log", extra=LOG_ONLY)
            logging.warning("already in the log", extra=CONSOLE_ONLY)
            {body}
            """
        )
    )
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )


@pytest.mark.parametrize("setup", ["configure_logging('job.log')", "log_everything_to('job.log')"])
@pytest.mark.parametrize("case", ENDINGS)
def test_the_console_gets_one_line_and_the_log_the_traceback(tmp_path, setup, case):
    body, said = ENDINGS[case]
    result = run_script(tmp_path, body, setup)
    assert result.returncode != 0
    console = [line for line in result.stderr.splitlines() if line.strip()]
    log = (tmp_path / "job.log").read_text()
    assert "Traceback" not in result.stderr
    assert said in console[-1]
    assert len([line for line in console if " ERROR " in line or " CRITICAL " in line]) == 1
    assert "for the log" in log and "for the log" not in result.stderr
    assert "already in the log" in result.stderr and "already in the log" not in log
    if setup.startswith("configure"):
        assert "said on the console" in result.stderr
    if case == "a bug":
        assert console[-1].endswith(
            "CRITICAL uncaught error: ValueError: the last line (script.py, line 9, in "
            "<module>) (the traceback is in job.log)"
        )
        assert "Traceback (most recent call last)" in log
    if case == "Ctrl-C":
        assert "KeyboardInterrupt" not in result.stderr + log


def test_a_users_code_is_named_by_its_file_and_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_model.py").write_text("def build():\n    return 1 / 0\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import my_model

        with pytest.raises(ZeroDivisionError) as raised:
            my_model.build()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("my_model", None)
    said = "ZeroDivisionError: division by zero (my_model.py, line 2, in build)"
    assert error_line(raised.value) == said
    assert error_line(raised.value, tmp_path / "my_model.py") == said
    assert error_line(raised.value, tmp_path / "other.py") == "ZeroDivisionError: division by zero"


def test_a_keras_layers_error_is_said_by_its_own_message():
    wrapped = ValueError(
        "Exception encountered when calling Fails.call().\n\n\x1b[1mthis model cannot "
        "train\x1b[0m\n\nArguments received by Fails.call():\n  • inputs=tf.Tensor(shape="
        "(64, 28, 28), dtype=float32)\n  • training=True"
    )
    assert error_line(wrapped) == "ValueError: this model cannot train"
