"""One side of a pair of runs that parted, replayed step by step from the last checkpoint at
which the two still agreed, with everything each step computes recorded: the batch fed, each
layer's output in the forward pass, the loss, each gradient, and each variable after the
optimizer's update (its slots too). The comparison lays the two sides side by side and names
the first step, the first layer and the phase where they part.

The layers' outputs are taken by wrapping each layer's ``call`` on this model object, the
gradients by wrapping the optimizer's ``apply`` (``stateless_apply`` on JAX): any model,
Sequential, functional or subclassed, is recorded as it is. The steps run eagerly
(``run_eagerly``), one pass over the window's batches: both sides are replayed the same way,
so what they compute agrees wherever the runs agreed, and a nudge planted in a run is planted
again in its side. Each value is kept as a digest, and in full from ``keep_from`` on (the
steps where the runs' traces part), within a byte budget.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from keras_repro.backends import keras_without_integrations
from keras_repro.config import RunSettings
from keras_repro.digest import arrays_sha256, batch_fingerprint
from keras_repro.errors import ReproError
from keras_repro.files import path_below
from keras_repro.logs import configure_logging
from keras_repro.records import (
    Checkpoint,
    ZoomRecord,
    read_record,
    verify_checkpoint_file,
    write_zoom,
)
from keras_repro.training.cli import parser_for, settings_of
from keras_repro.workflow import exit_now

# Keras' first import in a zoom's process.
with keras_without_integrations():
    import keras

    from keras_repro.training.checkpointing import RandomRestore, random_part, restore
    from keras_repro.training.recording import WeightTrace
    from keras_repro.training.setup import (
        Prepared,
        build_model,
        compile_as_asked,
        identity,
        prepare,
    )

log = logging.getLogger(__name__)

# The most bytes of full values a side keeps (digests are always kept).
VALUES_BUDGET = 512 * 2**20
PHASES = ("data", "forward", "loss", "backward", "update")


class Probe:
    """What the steps compute, by step, phase and name, in the order computed."""

    def __init__(self, keep_from: int, budget: int = VALUES_BUDGET) -> None:
        self.keep_from, self.budget = keep_from, budget
        self.step = 0
        self.entries: dict[int, list[tuple[str, str, str]]] = {}
        self.values: dict[str, np.ndarray] = {}
        self.calls: Counter[str] = Counter()

    def begin(self, step: int) -> None:
        self.step = step
        self.entries[step] = []
        self.calls.clear()

    def record(self, phase: str, name: str, value: Any) -> None:
        if self.step not in self.entries:  # outside a training step (building, tracing)
            return
        array = np.asarray(value)
        self.entries[self.step].append((phase, name, arrays_sha256((name, array))))
        if self.step >= self.keep_from and array.nbytes <= self.budget:
            self.budget -= array.nbytes
            self.values[f"{self.step}|{phase}|{name}"] = array

    def layer_name(self, path: str) -> str:
        """A layer's path, numbered from its second call in a step."""
        self.calls[path] += 1
        return path if self.calls[path] == 1 else f"{path}#{self.calls[path]}"


def _layers(model: keras.Model) -> list[tuple[str, keras.layers.Layer]]:
    found, pending = [], [(model.name, layer) for layer in model._flatten_layers(False, False)]
    while pending:
        prefix, layer = pending.pop(0)
        path = f"{prefix}/{layer.name}"
        found.append((path, layer))
        pending[:0] = [(path, inner) for inner in layer._flatten_layers(False, False)]
    return found


def instrument(model: keras.Model, probe: Probe, backend: ModuleType) -> None:
    """Wrap each layer's ``call``, the model's ``compute_loss`` and the optimizer's ``apply``
    of this model object to hand what they compute to ``probe``."""

    def record(phase: str, name: str, value: Any) -> None:
        backend.host_callback(functools.partial(probe.record, phase, name), value)

    for path, layer in _layers(model):
        call = layer.call

        def traced_call(*args, _call=call, _path=path, **kwargs):
            output = _call(*args, **kwargs)
            name = probe.layer_name(_path)
            for index, tensor in enumerate(keras.tree.flatten(output)):
                if not isinstance(tensor, keras.KerasTensor):
                    record("forward", name if index == 0 else f"{name}[{index}]", tensor)
            return output

        layer.call = traced_call
    compute_loss = model.compute_loss

    def traced_compute_loss(*args, **kwargs):
        loss = compute_loss(*args, **kwargs)
        x, y = (*args, None, None)[:2] if args else (kwargs.get("x"), kwargs.get("y"))
        if kwargs.get("training", True) and not isinstance(loss, keras.KerasTensor):
            for name, part in (("inputs", x), ("labels", y)):
                backend.host_callback(
                    lambda value, name=name: probe.record("data", name, batch_fingerprint(value)),
                    part,
                )
            record("loss", "loss", loss)
        return loss

    model.compute_loss = traced_compute_loss
    _instrument_optimizer(model, record)


def _instrument_optimizer(model: keras.Model, record: Any) -> None:
    optimizer = model.optimizer
    names = [v.path for v in model.trainable_variables]
    apply, stateless_apply = optimizer.apply, optimizer.stateless_apply

    def traced_apply(grads, trainable_variables=None):
        for name, grad in zip(names, grads, strict=False):
            record("backward", name, grad)
        return apply(grads, trainable_variables)

    def traced_stateless_apply(optimizer_variables, grads, trainable_variables):
        for name, grad in zip(names, grads, strict=False):
            record("backward", name, grad)
        return stateless_apply(optimizer_variables, grads, trainable_variables)

    optimizer.apply, optimizer.stateless_apply = traced_apply, traced_stateless_apply


class StepMarks(keras.callbacks.Callback):
    """Tells the probe which step begins, records every variable once it ends, and stops
    training after step ``last``."""

    def __init__(self, probe: Probe, done: int, last: int, backend: ModuleType) -> None:
        super().__init__()
        self.probe, self.done, self.last, self.backend = probe, done, last, backend

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.probe.begin(self.done + 1)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.backend.flush()
        self.done += 1
        for variable in [*self.model.variables, *self.model.optimizer.variables]:
            self.probe.record("update", variable.path, keras.ops.convert_to_numpy(variable))
        if self.done >= self.last:
            self.model.stop_training = True


def _fit_window(
    model: keras.Model,
    prepared: Prepared,
    settings: RunSettings,
    checkpoint: Checkpoint,
    steps: tuple[int, int],
    callbacks: list[keras.callbacks.Callback],
) -> None:
    """Train steps ``steps`` (first, last) from the checkpoint, as a replay does: from an
    epoch's start on the pipeline itself (its orders drawn as Keras draws them), from inside
    an epoch fed the steps' batches (the numpy pipeline); stopped after the last."""
    first, last = steps
    per_epoch = prepared.steps_per_epoch
    state = random_part(checkpoint)
    if (first - 1) % per_epoch == 0:
        epoch = (first - 1) // per_epoch
        prepared.pipeline.fast_forward(prepared.train_data, epoch, checkpoint.position)
        data, initial_epoch, epochs = prepared.train_data, epoch, settings["epochs"]
        callbacks += prepared.pipeline.fit_callbacks(prepared.train_data, prepared.test_data)
        callbacks.append(RandomRestore(state, prepared.backend, False))
    else:
        data = prepared.pipeline.segment_batches(prepared.train_data, first, last)
        initial_epoch, epochs = 0, 1
        callbacks.append(RandomRestore(state, prepared.backend, True))
    model.fit(
        data,
        initial_epoch=initial_epoch,
        epochs=epochs,
        callbacks=callbacks,
        shuffle=False,
        verbose=0,
    )


def zoom_replay(
    dataset_path: Path,
    run_path: Path,
    checkpoint_index: int,
    window: tuple[int, int],
    output: tuple[Path, Path],
    settings: RunSettings,
) -> ZoomRecord:
    """Replay the run of ``run_path`` (its settings: ``settings``, its nudge included) from its
    checkpoint ``checkpoint_index`` to step ``window[1]``, recording every step (in full from
    ``window[0]``); write the zoom record and its values (``output``: .json, .npz)."""
    run = read_record(run_path)
    start = (run.checkpoints or [])[checkpoint_index]
    checkpoint_path = path_below(Path(run_path).parent, start["file"])
    verify_checkpoint_file(checkpoint_path, start["sha256"])
    prepared = prepare(dataset_path, settings)
    model = build_model(prepared, settings)
    compile_as_asked(model, settings)
    model.run_eagerly = True  # every layer's call seen, each step's values at hand
    checkpoint = restore(
        model,
        checkpoint_path,
        identity(settings, prepared.dataset_sha256),
        start["step"],
        prepared.backend,
    )
    first, last = start["step"] + 1, window[1]
    probe = Probe(keep_from=window[0])
    instrument(model, probe, prepared.backend)
    nudge = WeightTrace(
        settings["trace"]["every_steps"],
        prepared.steps_per_epoch,
        settings.weight_nudge_step,
        settings.perturb_variable,
        first,
    )
    _fit_window(
        model,
        prepared,
        settings,
        checkpoint,
        (first, last),
        [
            nudge,  # before the probe records the step's variables: a nudge is in its update
            StepMarks(probe, first - 1, last, prepared.backend),
        ],
    )
    prepared.backend.flush()
    zoom = ZoomRecord(
        seed=settings.seed,
        repeat=settings.repeat,
        from_checkpoint=checkpoint_index,
        first_step=first,
        last_step=last,
        keep_from=window[0],
        steps={step: list(entries) for step, entries in probe.entries.items()},
    )
    write_zoom(zoom, probe.values, *output)
    log.info("zoom: steps %d to %d recorded from checkpoint %d", first, last, checkpoint_index)
    return zoom


def main(argv: list[str] | None = None) -> None:
    """``python -m keras_repro.training.zoom DATASET ZOOM.json --of-run RUN --from K
    --window KEEP_FROM UNTIL`` (the values go beside: ZOOM.npz)."""
    parser = parser_for("Replay a run step by step from its checkpoint K, recording every value.")
    parser.add_argument("--of-run", type=Path, required=True, help="the run's record")
    parser.add_argument("--from", dest="checkpoint", type=int, required=True, help="checkpoint K")
    parser.add_argument(
        "--window", type=int, nargs=2, required=True, metavar=("KEEP_FROM", "UNTIL")
    )
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = settings_of(args)
        output = (args.record, args.record.with_suffix(".npz"))
        zoom_replay(
            args.dataset, args.of_run, args.checkpoint, tuple(args.window), output, settings
        )
    except ReproError as error:
        parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
    exit_now(0)
