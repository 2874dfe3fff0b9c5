"""What a run records while it trains, on any backend and for any Keras model: every step's
loss and batch fingerprints (through the backend's step recorder, hooked into the model's
``compute_loss``), the weights' digest after every epoch, and every variable's digest at
checkpoints; and, when asked, a deliberate one-ULP nudge of one variable after one step.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

import keras
import numpy as np

from keras_repro.backends import StepRecorder
from keras_repro.digest import arrays_sha256
from keras_repro.errors import ReproError
from keras_repro.records import Trace

log = logging.getLogger(__name__)


def record_steps(model: keras.Model, recorder: StepRecorder) -> None:
    """Hand every step's batch and loss, as computed, to ``recorder``, from inside the
    compiled train and test steps (the running mean Keras reports per step can hide a one-ULP
    change; a Python hook per batch would slow every step).

    The hook wraps this model object's ``compute_loss``, which every Keras train and test step
    calls, so that any model — Sequential, functional or subclassed — is traced as it is.
    """
    compute_loss = model.compute_loss
    takes_training = "training" in inspect.signature(compute_loss).parameters

    def traced_compute_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if takes_training:
            loss = compute_loss(x, y, y_pred, sample_weight, training=training)
        else:
            loss = compute_loss(x, y, y_pred, sample_weight)
        recorder(training, model.optimizer.iterations, x, y, loss)
        return loss

    model.compute_loss = traced_compute_loss
    # Keras looked at compute_loss's signature when the model was made; ours takes `training`.
    model._compute_loss_has_training_arg = True


def pass_digests(batches: np.ndarray, batches_per_pass: int) -> list[str]:
    """One digest per pass over the data: its batches' fingerprints, in order."""
    return [
        arrays_sha256(("batches", batches[start : start + batches_per_pass]))
        for start in range(0, len(batches), batches_per_pass)
    ]


def weights_sha256(model: keras.Model) -> str:
    """One digest of every weight: path, dtype, shape and bytes, in the model's order."""
    return arrays_sha256(
        *((variable.path, keras.ops.convert_to_numpy(variable)) for variable in model.weights)
    )


class EpochWatcher(keras.callbacks.Callback):
    """Weight digest and wall time of every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight_digests: list[str] = []
        self.epoch_seconds: list[float] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch_seconds.append(time.perf_counter() - self._started)
        self.weight_digests.append(weights_sha256(self.model))
        metrics = ", ".join(f"{name}={float(value)!r}" for name, value in (logs or {}).items())
        log.info(
            "epoch %d/%d done in %.1f s: %s; weights sha256 %s",
            epoch + 1,
            self.params["epochs"],
            self.epoch_seconds[-1],
            metrics,
            self.weight_digests[-1],
        )


class WeightTrace(keras.callbacks.Callback):
    """The sha256 of every weight variable before the first step (step 0), every ``every``
    steps and at each epoch's end; and, when asked, a deliberate one-ULP nudge of one variable
    after one step."""

    def __init__(
        self,
        every: int,
        steps_per_epoch: int,
        perturb_step: int | None = None,
        perturb_variable: str | None = None,
        first_step: int = 1,
    ) -> None:
        super().__init__()
        self.every, self.steps_per_epoch = every, steps_per_epoch
        self.perturb_step, self.perturb_variable = perturb_step, perturb_variable
        self.first_step = first_step  # a replayed segment's first step
        self.steps = first_step - 1  # steps done, counted over the whole run
        self.checkpoint_steps: list[int] = []
        self.digests: list[list[bytes]] = []

    def variable_names(self) -> list[str]:
        return [variable.path for variable in self.model.weights]

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        # The initial weights are step 0: an initialisation that does not repeat is told. A
        # model that builds its weights in its first step has none yet: its trace starts at 1.
        if self.steps == 0 and not self.checkpoint_steps and self.model.weights:
            self._hash()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.steps += 1
        if self.steps == self.perturb_step:
            self._nudge()
        if self.steps % self.every == 0 or self.steps % self.steps_per_epoch == 0:
            self._hash()

    def _hash(self) -> None:
        self.checkpoint_steps.append(self.steps)
        self.digests.append(
            [
                bytes.fromhex(arrays_sha256((v.path, keras.ops.convert_to_numpy(v))))
                for v in self.model.weights
            ]
        )

    def _nudge(self) -> None:
        names = self.variable_names()
        name = self.perturb_variable or names[0]
        if name not in names:
            raise ReproError(f"--perturb-variable {name!r}: the model has {names}")
        variable = self.model.weights[names.index(name)]
        value = keras.ops.convert_to_numpy(variable).copy()
        value.flat[0] = np.nextafter(value.flat[0], np.inf, dtype=value.dtype)
        variable.assign(value)
        self.perturb_variable = name  # recorded: the variable actually nudged
        log.warning("deliberately nudged %s by one ULP after step %d", name, self.steps)

    def trace(self, step_losses: np.ndarray, batch_fingerprints: np.ndarray | None) -> Trace:
        """The trace of the steps done, with the batches fed at each (``batch_fingerprints``:
        [steps, 2, 8], the pipeline's or the step recorder's)."""
        done = self.steps - self.first_step + 1
        return Trace(
            steps_per_epoch=self.steps_per_epoch,
            step_loss=step_losses[:done],
            batch_fingerprints=None if batch_fingerprints is None else batch_fingerprints[:done],
            first_step=self.first_step,
            checkpoint_steps=np.array(self.checkpoint_steps, dtype=np.int64),
            variable_names=self.variable_names(),
            weight_digests=np.frombuffer(
                b"".join(b"".join(row) for row in self.digests), np.uint8
            ).reshape(len(self.digests), len(self.variable_names()), -1),
        )
