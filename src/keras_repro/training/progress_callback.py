"""The Keras callback that reports a run's progress (see ``keras_repro.training.progress``)."""

from __future__ import annotations

import logging
import time
from typing import Any

import keras

from keras_repro.config import RunSettings
from keras_repro.training.progress import INTERVAL_SECONDS, eta, progress_line, run_label

log = logging.getLogger(__name__)


class Progress(keras.callbacks.Callback):
    """Logs "progress: <run>: epoch e/E, step s/S, loss L, ETA T" (S: steps per epoch, E: the
    run's epochs) at each epoch's end, and after a step when ``interval`` seconds passed since
    the last line; the ETA at the pace of the steps after the first."""

    def __init__(
        self,
        settings: RunSettings,
        interval: float = INTERVAL_SECONDS,
        segment: int | None = None,
        total_steps: int | None = None,
    ) -> None:
        super().__init__()
        self.label, self.interval = run_label(settings, segment), interval
        self.epochs, self.total_steps = settings["epochs"], total_steps
        self.first_step_done = self.last = 0.0
        self.done = self.epoch = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.last = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.done += 1
        if self.done == 1:
            self.first_step_done = time.monotonic()
        if time.monotonic() - self.last >= self.interval:
            self._line(batch + 1, logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._line(self.params.get("steps") or 0, logs)

    def _line(self, step: int, logs: dict[str, Any] | None) -> None:
        self.last = time.monotonic()
        steps = self.params.get("steps") or 0
        total = self.total_steps or steps * self.params["epochs"]
        line = progress_line(
            self.label, self.epoch + 1, self.epochs, step, steps, (logs or {}).get("loss")
        )
        log.info("%s, %s", line, eta(self.last - self.first_step_done, self.done, total))
