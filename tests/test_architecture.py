"""What the package promises about its structure: which modules run without TensorFlow."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO

# The modules the download, build_dataset, compare and verdict rules import, in an
# environment without TensorFlow (envs/analysis.yaml).
LIGHT_MODULES = (
    "keras_repro.compare",
    "keras_repro.config",
    "keras_repro.dataset",
    "keras_repro.download",
    "keras_repro.gpus",
    "keras_repro.launch",
    "keras_repro.report",
    "keras_repro.summary",
    "keras_repro.verdict",
)


def test_the_analysis_modules_import_without_tensorflow():
    # None in sys.modules makes any import of these packages fail, as if not installed.
    code = (
        "import sys\n"
        "sys.modules.update(tensorflow=None, keras=None)\n"
        f"import {', '.join(LIGHT_MODULES)}\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


def test_the_blocker_would_catch_a_tensorflow_import():
    code = "import sys\nsys.modules.update(tensorflow=None, keras=None)\nimport keras_repro.train\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr
