"""The checks a reviewer would run: ruff, snakefmt and Snakemake's own linter."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from helpers import LONGEST_FIRST, REPO


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["snakefmt", "--check", "."],
        ["snakemake", "--lint"],
    ],
    ids=" ".join,
)
def test_clean(command):
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_tests_import_helpers_from_helper_modules_not_conftest_or_other_tests():
    pattern = re.compile(r"^\s*(from|import) (conftest|test_\w+)\b", re.M)
    offenders = [
        path.name for path in (REPO / "tests").glob("*.py") if pattern.search(path.read_text())
    ]
    assert offenders == [], "import helpers from tests/helpers.py, serving.py, workflows.py, …"


def test_the_modules_run_first_are_modules_of_the_suite():
    # a name left behind by a rename would only cost time: say so instead
    assert [name for name in LONGEST_FIRST if not (REPO / "tests" / name).is_file()] == []
