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
