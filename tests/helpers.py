"""Small helpers the tests share: the checkout, tiny run settings, file digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from keras_repro.settings import RunSettings

REPO = Path(__file__).resolve().parent.parent


def tiny_run(seed: int, **overrides: object) -> RunSettings:
    """Settings for a training run over a tiny dataset: one epoch, one thread, on the CPU."""
    settings: dict[str, object] = dict(
        repeat=1, epochs=1, batch_size=8, threads=1, device="cpu", trace_every=5
    )
    return RunSettings(seed=seed, **{**settings, **overrides})


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
