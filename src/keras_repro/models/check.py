"""A model checked before any run trains it: it imports, builds for the data, is a Keras
model, and its output fits the labels (one score per class); the compile settings name what
Keras knows. What it found (layers, parameters, shapes) goes to ``model.json``.

Run on the CPU (GPUs hidden): building a model is cheap, and a check must not take a card a
training run is about to use. The workflow runs it in a process of its own under a deadline
(``check_process``). A user's code that raises is named by its file and line; its traceback
goes to the log.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keras_repro.backends import NotPossible, keras_without_integrations, not_possible_here
from keras_repro.files import write_json_atomic
from keras_repro.logs import error_line
from keras_repro.models.registry import (
    ModelError,
    model_name,
    model_sha256,
    resolve_model,
    spec_problem,
)

log = logging.getLogger(__name__)
CHECK_FORMAT = "keras-repro/model-check"
CHECK_BATCH = 2


def _last_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip().splitlines()[-1]


def _kind(model: Any) -> str:
    import keras

    if isinstance(model, keras.Sequential):
        return "sequential"
    functional = any(cls.__name__ == "Functional" for cls in type(model).__mro__)
    return "functional" if functional else "subclassed"


def gpu_limit(model: Any) -> NotPossible | None:
    """Why ``model`` cannot train bit-reproducibly on a GPU with the backend Keras runs here
    (a known limit, ``limits.py``), said in the check's log; None when none is known."""
    import keras

    found = not_possible_here(model, keras.backend.backend(), "gpu", op_determinism=True)
    if found is not None:
        log.warning("on a GPU: %s (source: %s)", found.reason, found.source)
    return found


def check_compile(settings: dict[str, Any]) -> None:
    """Refuse an optimizer, loss or metric Keras does not know, naming it."""
    import keras

    for key, lookup, names in (
        ("optimizer", keras.optimizers.get, [settings["optimizer"]]),
        ("loss", keras.losses.get, [settings["loss"]]),
        ("metrics", keras.metrics.get, settings["metrics"]),
    ):
        for name in names:
            try:
                lookup(name)
            except (ValueError, TypeError) as error:
                raise ModelError(
                    f"compile.{key}: {name!r} is not a Keras {key.rstrip('s')} ({_last_line(error)})"
                ) from None


def check_model(
    spec: str,
    data_spec: dict[str, Any],
    compile_settings: dict[str, Any],
    output: Path | None = None,
    expected_sha256: str | None = None,
    *,
    starting: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Build ``spec`` for ``data_spec`` (input shape, classes) and check it; write what it
    found to ``output`` (model.json). Raises ModelError naming the file and the problem."""
    import numpy as np

    with keras_without_integrations():  # Keras' first import in the check's process
        import keras

    problem = spec_problem(spec)
    if problem:
        raise ModelError(problem)
    sha256 = model_sha256(spec)
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise ModelError(
            f"model {spec!r}: its file changed after the workflow started (sha256 {sha256}); "
            "run the workflow again"
        )
    if starting is not None:  # the model's own code starts here (a deadline counts from now)
        starting()
    entry = resolve_model(spec)
    input_shape, classes = tuple(data_spec["input_shape"]), int(data_spec["num_classes"])
    if entry.input_problem is not None and (problem := entry.input_problem(input_shape)):
        raise ModelError(f"model {spec!r}: {problem}")
    call = f"{getattr(entry.build, '__name__', 'build')}({input_shape}, {classes})"
    try:
        model = entry.build(input_shape, classes)
    except Exception as error:  # the user's code
        log.info("%s raised:", call, exc_info=True)
        raise ModelError(
            f"model {spec!r}: {call} failed: {error_line(error, entry.source)}"
        ) from None
    if not isinstance(model, keras.Model):
        raise ModelError(
            f"model {spec!r}: {call} returned {type(model).__name__}, not a Keras model "
            "(keras.Sequential, keras.Model or a subclass)"
        )
    batch = np.zeros((CHECK_BATCH, *input_shape), np.float32)
    labels = np.zeros(CHECK_BATCH, np.int64)
    fed = entry.preprocess(batch, labels)[0] if entry.preprocess else batch
    fed_shape = tuple(int(n) for n in fed.shape)
    try:
        outputs = model(fed, training=False)
    except Exception as error:  # the user's code
        log.info("calling the model raised:", exc_info=True)
        raise ModelError(
            f"model {spec!r}: calling it on a batch shaped {fed_shape} failed: "
            f"{error_line(error, entry.source)}"
        ) from None
    shape = tuple(getattr(outputs, "shape", ()))
    if shape != (CHECK_BATCH, classes):
        shown = ("None", *map(str, shape[1:])) if shape else (type(outputs).__name__,)
        raise ModelError(
            f"model {spec!r}: its output is shaped ({', '.join(shown)}), but the labels need "
            f"(None, {classes}): one score per class, {classes} classes in the data"
        )
    check_compile(compile_settings)
    on_gpu = gpu_limit(model)
    found = {
        "format": CHECK_FORMAT,
        "model": spec,
        "name": model_name(spec),
        "source": str(entry.source) if entry.source else None,
        "sha256": sha256,
        "class": type(model).__name__,
        "kind": _kind(model),
        "data_spec": {"input_shape": list(input_shape), "num_classes": classes},
        "input_shape": [None, *fed_shape[1:]],
        "output_shape": [None, classes],
        "parameters": int(model.count_params()),
        "layers": [
            {"name": layer.name, "class": type(layer).__name__, "parameters": layer.count_params()}
            for layer in model.layers
        ],
        "compile": compile_settings,
        # Its build compiled it: its own compile is kept, the config's keys set over it.
        "compiled_by_build": bool(getattr(model, "compiled", False)),
        # Said up front: a GPU run of this model on this backend cannot be bit-reproducible.
        "not_possible_on_gpu": dataclasses.asdict(on_gpu) if on_gpu else None,
    }
    if output is not None:
        write_json_atomic(found, Path(output))
    return found
