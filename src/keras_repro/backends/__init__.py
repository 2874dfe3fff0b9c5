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
- ``make_step_recorder(train_steps, test_steps, first_step) -> StepRecorder``: the in-step
  recorder;
- ``global_random_state() -> dict`` and ``restore_global_random_state(state)``: the random
  state a run draws from outside Keras' seed generators, which a checkpoint saves;
- ``host_callback(function, *tensors)`` and ``flush()``: the tensors' values handed to a host
  function from inside a train step (what the zoom records).

A backend module imports its framework inside its functions only, so that the rules without
it (compare, verdict) can still ask which fields can change a result. ``load_backend`` is the
one place that picks a backend; nothing backend-specific lives outside this folder:
``common.py`` holds what all share, ``limits.py`` the combinations known not to be
deterministic on a GPU, ``unsupported.py`` a framework's refusal told from its error,
``keras_import.py`` how a framework process imports Keras (without the integrations it never
uses).

Adding a backend: a module with the names above, its line in ``load_backend`` and its name in
``BACKENDS`` (the config schema's enum, the Snakefile's wildcard and the frameworks checked
before any job follow from it; ``tests/test_seams.py`` holds them together).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any, Protocol

from keras_repro.backends.common import ENVIRONMENT_VARIABLES, RESULT_FIELDS
from keras_repro.backends.keras_import import keras_without_integrations
from keras_repro.backends.limits import KNOWN_LIMITS, KnownLimit, NotPossible, not_possible_here
from keras_repro.backends.unsupported import NoDeterministicKernel, refuse_nondeterministic_op

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "ENVIRONMENT_VARIABLES",
    "KNOWN_LIMITS",
    "KnownLimit",
    "NoDeterministicKernel",
    "NotPossible",
    "StepRecorder",
    "can_change_results",
    "child_environment",
    "cpu_only_environment",
    "keras_without_integrations",
    "load_backend",
    "missing_frameworks",
    "not_possible_here",
    "refuse_nondeterministic_op",
]

# Each is also the module its framework imports as.
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


def missing_frameworks(backends: list[str], pipeline: str) -> list[str]:
    """One line for each framework the runs need that this Python cannot import (the
    backends', and TensorFlow for the tf.data pipeline), naming the extra that installs it."""
    needed = {name: f"backend {name}" for name in backends}
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


def can_change_results(field: str, backends: Iterable[str] = (DEFAULT_BACKEND,)) -> bool:
    """Whether a (dotted) fingerprint field can change a result on any of ``backends``."""
    fields = set(RESULT_FIELDS).union(*(load_backend(name).RESULT_FIELDS for name in backends))
    return field in fields or field.startswith("gpus.")


def child_environment(name: str, threads: int, device: str, op_determinism: bool) -> dict[str, str]:
    """The variables a fresh process training on backend ``name`` needs before Python starts
    (``KERAS_BACKEND`` first, its thread and determinism switches)."""
    return load_backend(name).child_environment(threads, device, op_determinism)


def cpu_only_environment(name: str) -> dict[str, str]:
    """The variables for a process that builds or draws on backend ``name`` without training:
    one thread, determinism on, no GPU taken from the runs that are about to train."""
    return {**child_environment(name, 1, "cpu", True), "CUDA_VISIBLE_DEVICES": ""}
