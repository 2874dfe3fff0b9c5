"""Checkpoints while a run trains, and a model put back into the state one holds.

A run's state is every ``model.variables`` entry (the seed generators' states among them),
every ``optimizer.variables`` entry, and the random state drawn from outside the model: Keras'
global seed generator, NumPy's and Python's global generators, and the backend's own
(``backends.<name>.global_random_state``: torch's). Boundaries at an epoch's end are saved at
that epoch's end (with the input pipeline's position, for the next epoch's order); those
inside an epoch after their step; the state before the first step at the start of ``fit``.

A restored run gets the model's and the optimizer's variables before ``fit``, and the random
state from a callback: at the start of ``fit`` when it resumes at an epoch's start, before its
first step when it resumes inside an epoch (starting an epoch draws from torch's generator).
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import keras
import numpy as np

from keras_repro.records import (
    Checkpoint,
    CheckpointError,
    listed_variables,
    read_checkpoint,
    write_checkpoint,
)

log = logging.getLogger(__name__)

MODEL, OPTIMIZER, RANDOM = "model/", "optimizer/", "random/"


def _global_seed_generator(create: bool = False) -> Any:
    from keras.src.random import seed_generator

    if create:
        return seed_generator.global_seed_generator()
    return seed_generator.global_state.get_global_attribute("global_seed_generator")


def random_state(backend: ModuleType) -> dict[str, np.ndarray]:
    """Every random state a run may draw from outside its model's seed generators."""
    state: dict[str, np.ndarray] = {}
    generator = _global_seed_generator()
    if generator is not None:
        state["keras_global_seed_generator"] = keras.ops.convert_to_numpy(generator.state)
    _, keys, position, has_gauss, gauss = np.random.get_state()
    state["numpy_keys"] = np.asarray(keys, dtype=np.uint32)
    state["numpy_position"] = np.array([position, has_gauss], dtype=np.int64)
    state["numpy_gauss"] = np.array([gauss], dtype=np.float64)
    version, internal, gauss_next = random.getstate()
    state["python_state"] = np.array([version, *internal], dtype=np.int64)
    state["python_gauss"] = np.array([gauss_next is not None, gauss_next or 0.0], dtype=np.float64)
    return state | backend.global_random_state()


def restore_random_state(state: dict[str, np.ndarray], backend: ModuleType) -> None:
    """Put back what ``random_state`` saved."""
    if "keras_global_seed_generator" in state:
        _global_seed_generator(create=True).state.assign(state["keras_global_seed_generator"])
    position, has_gauss = (int(v) for v in state["numpy_position"])
    np.random.set_state(
        ("MT19937", state["numpy_keys"], position, has_gauss, float(state["numpy_gauss"][0]))
    )
    version, *internal = (int(v) for v in state["python_state"])
    has_next, gauss_next = state["python_gauss"]
    random.setstate((version, tuple(internal), float(gauss_next) if has_next else None))
    backend.restore_global_random_state(
        {name: array for name, array in state.items() if name.startswith("torch_")}
    )


def training_state(model: keras.Model, backend: ModuleType) -> dict[str, np.ndarray]:
    """The run's state now: model, optimizer and random state, each array by its name."""
    state = {MODEL + v.path: keras.ops.convert_to_numpy(v) for v in model.variables}
    state |= {OPTIMIZER + v.path: keras.ops.convert_to_numpy(v) for v in model.optimizer.variables}
    return state | {RANDOM + name: array for name, array in random_state(backend).items()}


class AtSteps(keras.callbacks.Callback):
    """Calls ``at(step, position)`` after each of ``steps`` (steps done, counted over the whole
    run from ``done``), where a checkpoint of it is taken: inside an epoch after its step, at an
    epoch's end after that epoch (its validation included), at 0 when ``fit`` begins."""

    def __init__(self, steps: list[int], steps_per_epoch: int, done: int = 0) -> None:
        super().__init__()
        self.steps, self.steps_per_epoch, self.done = list(steps), steps_per_epoch, done

    def at(self, step: int, position: dict[str, int]) -> None:
        raise NotImplementedError

    def position(self) -> dict[str, int]:
        return {}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.done == 0 and 0 in self.steps:
            self.at(0, {})

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.done += 1
        if self.done in self.steps and self.done % self.steps_per_epoch:
            self.at(self.done, {})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.done in self.steps and not self.done % self.steps_per_epoch:
            self.at(self.done, self.position())


class Checkpointer(AtSteps):
    """Saves the run's state at the planned steps (``records.planned_steps``) into
    ``folder/<index>.npz`` and lists what it saved (``saved``) for the run record."""

    def __init__(
        self,
        steps: list[int],
        steps_per_epoch: int,
        folder: Path,
        identity: dict[str, Any],
        backend: ModuleType,
        pipeline: ModuleType,
        train_data: Any,
    ) -> None:
        super().__init__(steps, steps_per_epoch)
        self.folder, self.identity = Path(folder), identity
        self.backend, self.pipeline, self.train_data = backend, pipeline, train_data
        self.saved: list[dict[str, Any]] = []
        for stale in self.folder.glob("*.npz"):  # a run's folder holds its own checkpoints only
            stale.unlink()

    def position(self) -> dict[str, int]:
        return self.pipeline.position(self.train_data)

    def at(self, step: int, position: dict[str, int]) -> None:
        started = time.perf_counter()
        index = self.steps.index(step)
        checkpoint = Checkpoint(
            index=index,
            step=step,
            epoch=step // self.steps_per_epoch,
            identity=self.identity,
            position=position,
            variables=training_state(self.model, self.backend),
        )
        path = self.folder / f"{index}.npz"
        sha256 = write_checkpoint(checkpoint, path)
        self.saved.append(
            {
                "index": index,
                "step": step,
                "epoch": checkpoint.epoch,
                "file": f"{self.folder.name}/{path.name}",
                "sha256": sha256,
                "bytes": path.stat().st_size,
                "seconds": time.perf_counter() - started,
                "variables": checkpoint.digests(),
            }
        )
        log.info("checkpoint %d after step %d: %s", index, step, path)


class StateAt(AtSteps):
    """The run's state after step ``step``, taken where the run's checkpoint of it was: what a
    replayed segment ends in (``state``)."""

    def __init__(self, step: int, steps_per_epoch: int, done: int, backend: ModuleType) -> None:
        super().__init__([step], steps_per_epoch, done)
        self.backend = backend
        self.state: dict[str, np.ndarray] | None = None

    def at(self, step: int, position: dict[str, int]) -> None:
        self.state = training_state(self.model, self.backend)


class RandomRestore(keras.callbacks.Callback):
    """Puts back a checkpoint's random state once ``fit`` has begun: at its start, or before
    its first step (``before_first_step``)."""

    def __init__(
        self, state: dict[str, np.ndarray], backend: ModuleType, before_first_step: bool
    ) -> None:
        super().__init__()
        self.state, self.backend, self.before_first_step = state, backend, before_first_step
        self.pending = True

    def _restore(self) -> None:
        if self.pending:
            restore_random_state(self.state, self.backend)
            self.pending = False

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if not self.before_first_step:
            self._restore()

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._restore()


def restore(
    model: keras.Model,
    path: Path,
    identity: dict[str, Any],
    step: int,
    backend: ModuleType,
) -> Checkpoint:
    """Read the checkpoint at ``path`` (refused unless it is this run's, after ``step``
    steps, and holds exactly this model's state) and assign its model and optimizer
    variables; its random state is ``RandomRestore``'s to put back once ``fit`` begins."""
    # The optimizer's slots exist once it has applied a step (on JAX and torch, once fit has
    # begun): the checkpoint says whether they did.
    unbuilt = {OPTIMIZER + v.path for v in model.optimizer.variables}
    if {n for n in listed_variables(path) if n.startswith(OPTIMIZER)} - unbuilt:
        model.optimizer.build(model.trainable_variables)
    live = {MODEL + v.path: v for v in model.variables}
    live |= {OPTIMIZER + v.path: v for v in model.optimizer.variables}
    expected = {
        name: (np.dtype(keras.ops.convert_to_numpy(v).dtype), tuple(v.shape))
        for name, v in live.items()
    }
    checkpoint = read_checkpoint(path, identity, expected, random_prefix=RANDOM)
    if checkpoint.step != step:
        raise CheckpointError(
            f"checkpoint {path}: holds the state after step {checkpoint.step}, not {step}"
        )
    for name, variable in live.items():
        variable.assign(checkpoint.variables[name])
    return checkpoint


def random_part(checkpoint: Checkpoint) -> dict[str, np.ndarray]:
    return {
        name.removeprefix(RANDOM): array
        for name, array in checkpoint.variables.items()
        if name.startswith(RANDOM)
    }
