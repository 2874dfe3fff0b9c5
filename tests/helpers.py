"""Small helpers the tests share: the checkout, tiny run settings, file digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from keras_repro.config.settings import RunSettings

REPO = Path(__file__).resolve().parent.parent

# The modules that take longest here (pytest --durations=0, whole modules, 2 cores), longest
# first. xdist hands out whole modules in collection order (--dist loadfile, no reordering), so
# these start first and the short ones fill in at the end: the workers finish together. A
# module not listed comes after them, in its usual order.
LONGEST_FIRST = (
    "test_slurm.py",
    "test_zoom_workflow.py",
    "test_robustness_workflow.py",
    "test_reruns.py",
    "test_matrix_workflow.py",
    "test_checkpoints.py",
    "test_segments_workflow.py",
    "test_workflow.py",
    "test_user_failures_workflow.py",
    "test_models.py",
    "test_backends.py",
    "test_own_data.py",
    "test_robustness_bundles.py",
    "test_divergence_workflow.py",
    "test_own_training_workflow.py",
    "test_robustness_reports.py",
    "test_initialisation.py",
)


def tiny_run(seed: int, repeat: int = 1, **config: object) -> RunSettings:
    """Settings for a training run over a tiny dataset: one epoch, one thread, on the CPU."""
    defaults = {
        "epochs": 1,
        "batch_size": 8,
        "threads": 1,
        "device": "cpu",
        "trace": {"every_steps": 5},
    }
    return RunSettings(seed=seed, repeat=repeat, config={**defaults, **config})


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def render_front_page(rst: str) -> tuple[str, list[str]]:
    """A front page rendered as `snakemake --report` renders it (Jinja2 with Snakemake's
    settings, then docutils): its text, and every system message docutils gave, at any level
    (info included; a page that is all text gives none)."""
    import types

    import jinja2
    from docutils import nodes
    from docutils.core import publish_doctree

    text = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(rst)
    tree = publish_doctree(
        text.render(snakemake=types.SimpleNamespace(config={}), categories={}, files={}),
        settings_overrides={"report_level": 0, "halt_level": 5, "warning_stream": False},
    )
    messages = [message.astext() for message in tree.findall(nodes.system_message)]
    return tree.astext(), messages
