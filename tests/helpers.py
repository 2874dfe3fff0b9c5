"""Small helpers the tests share: the checkout, tiny run settings, file digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from keras_repro.config.settings import RunSettings

REPO = Path(__file__).resolve().parent.parent


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
