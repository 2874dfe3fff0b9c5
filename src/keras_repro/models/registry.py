"""Where a run's model comes from: one registry, a name or ``path/to/file.py:function``.

A model entry is a builder, called with the data's input shape and number of classes (from
the dataset's manifest) and returning a Keras model, and the preprocessing its input pipeline
maps over each batch. The recipe's CNN is the first entry; the zoo (models known to be tricky
to reproduce) follows, each a file of this package with a ``build_model`` function.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keras_repro.errors import ReproError
from keras_repro.logs import error_line

log = logging.getLogger(__name__)

Builder = Callable[[tuple[int, ...], int], Any]
# Registry names and the zoo's modules (``keras_repro/models/<module>.py``).
ZOO = {
    "batchnorm_cnn": "batchnorm_cnn",
    "lstm_rows": "lstm_rows",
    "upsampling_cnn": "upsampling_cnn",
    "attention": "attention",
    "augmented_cnn": "augmented_cnn",
}
NAMES = ("recipe", *ZOO)
PACKAGE_DIR = Path(__file__).resolve().parent  # the zoo's files
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ModelError(ReproError):
    """A model that cannot be built: unknown name, missing file or function."""


def as_float32(inputs: Any, labels: Any) -> tuple[Any, Any]:
    """What every model but the recipe receives: the stored arrays cast to float32, not
    scaled (a tf.data map, or NumPy arrays for a NumPy pipeline)."""
    if isinstance(inputs, np.ndarray):
        return inputs.astype(np.float32), labels
    import tensorflow as tf

    return tf.cast(inputs, tf.float32), labels


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Builder
    # Applied to each (inputs, labels) batch by the tf.data pipeline; None feeds them as stored.
    preprocess: Callable[[Any, Any], tuple[Any, Any]] | None = as_float32
    source: Path | None = None  # the file that defines it: its sha256 is a run setting
    # What is wrong with data of this input shape for the model (None: nothing).
    input_problem: Callable[[tuple[int, ...]], str | None] | None = None
    preprocess: Callable[[Any, Any], tuple[Any, Any]] | None = None
    # The model with that preprocessing as its first layers, for a pipeline that maps none
    # (numpy); None: ``build``, fed the stored arrays cast to float32.
    build_with_preprocessing: Builder | None = None


def _recipe() -> ModelEntry:
    from keras_repro.models import recipe

    return ModelEntry(
        "recipe",
        recipe.build_model,
        preprocess=recipe.prepare_batch,
        source=Path(recipe.__file__),
        input_problem=recipe.input_problem,
        build_with_preprocessing=functools.partial(recipe.build_model, preprocessing=True),
    )


def _zoo(name: str) -> Callable[[], ModelEntry]:
    def entry() -> ModelEntry:
        module = importlib.import_module(f"keras_repro.models.{ZOO[name]}")
        return ModelEntry(name, module.build_model, source=Path(module.__file__))

    return entry


REGISTRY: dict[str, Callable[[], ModelEntry]] = {
    "recipe": _recipe,
    **{name: _zoo(name) for name in ZOO},
}


def split_spec(spec: str) -> tuple[Path, str]:
    """``path/to/file.py:function`` as (path, function)."""
    path_text, _, function = spec.rpartition(":")
    return Path(path_text).expanduser(), function


def is_file_spec(spec: str) -> bool:
    return ":" in spec and spec.rpartition(":")[0].endswith(".py")


def spec_problem(spec: str) -> str | None:
    """What is wrong with ``spec`` that needs no import (for config validation), or None."""
    if spec in REGISTRY:
        return None
    if not is_file_spec(spec):
        return (
            f"model {spec!r}: not a known model ({', '.join(NAMES)}) nor path/to/file.py:function"
        )
    path, function = split_spec(spec)
    if not IDENTIFIER.match(function):
        return f"model {spec!r}: {function!r} is not a Python function name"
    if not path.is_file():
        return f"model {spec!r}: {path} does not exist (expected path/to/file.py:function)"
    return None


def model_name(spec: str) -> str:
    """A plain name for paths: a registry name as it is, a file's ``<stem>.<function>``."""
    if spec in REGISTRY:
        return spec
    path, function = split_spec(spec)
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{path.stem}.{function}").lstrip("._-") or "model"


def matrix_models(model: str, models: list[str] | None) -> dict[str, str]:
    """The matrix's models by their name in paths (``model_name``): ``models``, or ``model``
    alone when it is None. Raises ModelError for a spec that cannot be a model, for
    ``model`` set beside ``models``, and for two specs that would share one results folder."""
    if models is not None and model != "recipe":
        raise ModelError(
            f"model: {model!r} is set beside models: {models}; list it in models instead "
            "(model is used only when models is null)"
        )
    named: dict[str, str] = {}
    for spec in models or [model]:
        if problem := spec_problem(spec):
            raise ModelError(problem)
        name = model_name(spec)
        if name in named:
            raise ModelError(
                f"models: {named[name]!r} and {spec!r} would both train in results/runs/{name}/; "
                "rename one file or function"
            )
        named[name] = spec
    return named


def model_source(spec: str) -> Path:
    """The file that defines the model: a zoo or recipe module, or the user's file."""
    if spec in ZOO:
        return PACKAGE_DIR / f"{ZOO[spec]}.py"
    if spec == "recipe":
        return PACKAGE_DIR / "recipe.py"
    return split_spec(spec)[0]


def model_sha256(spec: str) -> str:
    """The sha256 of the file that defines the model (a run setting: an edit retrains)."""
    return hashlib.sha256(model_source(spec).read_bytes()).hexdigest()


def _from_file(spec: str) -> ModelEntry:
    problem = spec_problem(spec)
    if problem:
        raise ModelError(problem)
    path, function = split_spec(spec)
    module_spec = importlib.util.spec_from_file_location(
        f"keras_repro_user_model_{path.stem}", path
    )
    if module_spec is None or module_spec.loader is None:
        raise ModelError(f"model {spec!r}: {path} is not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:  # the user's code: any exception is theirs to see
        log.info("importing %s raised:", path, exc_info=True)
        raise ModelError(
            f"model {spec!r}: importing {path} failed: {error_line(error, path)}"
        ) from None
    build = getattr(module, function, None)
    if not callable(build):
        raise ModelError(f"model {spec!r}: {path} has no function {function!r}")
    return ModelEntry(spec, build, source=path)


def resolve_model(spec: str) -> ModelEntry:
    """The entry for a registered name or a ``file.py:function``."""
    if spec in REGISTRY:
        return REGISTRY[spec]()
    return _from_file(spec)


def load_model_entry(spec: str, expected_sha256: str | None) -> ModelEntry:
    """The entry a training run trains: refused when its file is not the one checked."""
    if expected_sha256 is not None and model_sha256(spec) != expected_sha256:
        raise ModelError(
            f"model {spec!r}: {model_source(spec)} changed after the workflow checked it "
            f"(sha256 {expected_sha256} then); run the workflow again"
        )
    return resolve_model(spec)


def compile_arguments(settings: dict[str, Any]) -> dict[str, Any]:
    """``model.compile``'s arguments from the config's ``compile``; the defaults give the
    recipe's call exactly (the optimizer by name)."""
    optimizer: Any = settings["optimizer"]
    if settings["learning_rate"] is not None:
        import keras

        optimizer = keras.optimizers.get(
            {"class_name": optimizer, "config": {"learning_rate": settings["learning_rate"]}}
        )
    return {
        "optimizer": optimizer,
        "loss": settings["loss"],
        "metrics": list(settings["metrics"]),
        "jit_compile": settings["jit_compile"],
    }


COMPILE_KEYS = ("optimizer", "learning_rate", "loss", "metrics", "jit_compile")


def overridden_compile_keys(settings: dict[str, Any], given: list[str]) -> list[str]:
    """The config's compile keys set over a model's own compile: those given (a learning rate
    of null, the optimizer's default, sets nothing)."""
    return [
        key
        for key in COMPILE_KEYS
        if key in given and not (key == "learning_rate" and settings[key] is None)
    ]


def own_compile_arguments(
    model: Any, settings: dict[str, Any], given: list[str]
) -> dict[str, Any] | None:
    """``model.compile``'s arguments for a model its build compiled: its own, with only the
    config's ``given`` keys set over them (a learning rate alone goes on its own optimizer,
    schedule replaced); None when the config sets none of them (its compile stays as it is)."""
    overridden = overridden_compile_keys(settings, given)
    if not overridden:
        return None
    # What the model's own compile was given (Keras keeps it to save and reload the model).
    arguments = dict(model._compile_config.config)
    if "optimizer" in overridden:
        arguments["optimizer"] = compile_arguments(settings)["optimizer"]
    elif "learning_rate" in overridden:
        own = arguments["optimizer"]
        config = {**own.get_config(), "learning_rate": settings["learning_rate"]}
        arguments["optimizer"] = type(own).from_config(config)
    for key in ("loss", "metrics", "jit_compile"):
        if key in overridden:
            arguments[key] = settings[key]
    return arguments
