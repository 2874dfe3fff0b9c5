"""The Keras backends a run can train on: one module each, with the same names.

Each backend module has:

- ``RESULT_FIELDS``: the fingerprint fields it adds that can change a result, and
  ``ENVIRONMENT_VARIABLES``, the variables among them that it records;
- ``child_environment(threads, device, op_determinism) -> dict``: the variables the training
  process needs before Python starts (``KERAS_BACKEND`` first), computed by the launcher
  without importing the framework;
- ``configure(threads, device) -> str``: thread pools and visible devices, before the first
  op; returns the device used ("cpu" or "gpu");
- ``enable_determinism()``: the determinism switches, once the seed is set (as the recipe);
- ``fingerprint() -> dict``: what the framework says about itself, read back from it;
- ``make_step_recorder(train_steps, test_steps) -> StepRecorder``: the in-step recorder.

A backend module imports its framework inside its functions only, so that the rules without
it (compare, verdict) can still ask which fields can change a result. ``load_backend`` is the
one place that picks a backend; nothing backend-specific lives outside these modules.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Protocol

BACKENDS = ("tensorflow", "jax", "torch")
# Records written before backends were recorded in the settings trained on TensorFlow.
DEFAULT_BACKEND = "tensorflow"


class StepRecorder(Protocol):
    """Called inside the compiled train and test steps with each batch and its loss; its
    buffers are read once, after training."""

    def __call__(self, training: bool, iterations: Any, x: Any, y: Any, loss: Any) -> None: ...

    def step_losses(self) -> Any: ...

    def train_batches(self) -> Any: ...

    def test_batches(self) -> Any: ...


# What each backend imports, and the extra of this package that installs it.
FRAMEWORKS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def missing_frameworks(backends: list[str], pipeline: str) -> list[str]:
    """One line for each framework the runs need that this Python cannot import (the
    backends', and TensorFlow for the tf.data pipeline), naming what installs it."""
    needed = {FRAMEWORKS[name]: f"backend {name}" for name in backends}
    if pipeline == "tfdata":
        needed.setdefault("tensorflow", "pipeline tfdata (the recipe's tf.data)")
    return [
        f'{why} needs {module}, which is not installed here: pip install -e ".[{module}]"'
        + (" or set pipeline: numpy" if why.startswith("pipeline") else "")
        for module, why in needed.items()
        if not _installed(module)
    ]


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a finder that refuses it
        return False


def load_backend(name: str) -> ModuleType:
    """The module of backend ``name`` (its imports are named here, so that a rule's code
    digest follows them)."""
    if name == "tensorflow":
        from keras_repro.backends import tensorflow

        return tensorflow
    if name == "jax":
        from keras_repro.backends import jax

        return jax
    if name == "torch":
        from keras_repro.backends import torch

        return torch
    raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")


def result_fields(name: str) -> tuple[str, ...]:
    """The fingerprint fields of backend ``name`` that can change a result."""
    return load_backend(name).RESULT_FIELDS
