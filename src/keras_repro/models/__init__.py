"""Where a run's model comes from: one registry, a name or ``path/to/file.py:function``.

A model entry is a builder, called with the data's input shape and number of classes (from
the dataset's manifest) and returning a Keras model, and the preprocessing its input pipeline
maps over each batch. The recipe's CNN is the first entry.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keras_repro.errors import ReproError

Builder = Callable[[tuple[int, ...], int], Any]


class ModelError(ReproError):
    """A model that cannot be built: unknown name, missing file or function."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Builder
    # Applied to each (inputs, labels) batch by the tf.data pipeline; None feeds them as stored.
    preprocess: Callable[[Any, Any], tuple[Any, Any]] | None = None
    # The model with that preprocessing as its first layers, for a pipeline that maps none
    # (numpy); None: ``build``, fed the stored arrays cast to float32.
    build_with_preprocessing: Builder | None = None


def _recipe() -> ModelEntry:
    from keras_repro.models import recipe

    return ModelEntry(
        "recipe",
        recipe.build_model,
        recipe.prepare_batch,
        functools.partial(recipe.build_model, preprocessing=True),
    )


REGISTRY: dict[str, Callable[[], ModelEntry]] = {"recipe": _recipe}


def _from_file(spec: str) -> ModelEntry:
    path_text, _, function = spec.rpartition(":")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ModelError(
            f"model {spec!r}: {path} does not exist (expected path/to/file.py:function)"
        )
    module_spec = importlib.util.spec_from_file_location(
        f"keras_repro_user_model_{path.stem}", path
    )
    if module_spec is None or module_spec.loader is None:
        raise ModelError(f"model {spec!r}: {path} is not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:  # the user's code: any exception is theirs to see
        last = f"{type(error).__name__}: {error}".splitlines()[-1]
        raise ModelError(f"model {spec!r}: importing {path} failed: {last}") from None
    build = getattr(module, function, None)
    if not callable(build):
        raise ModelError(f"model {spec!r}: {path} has no function {function!r}")
    return ModelEntry(spec, build)


def resolve_model(spec: str) -> ModelEntry:
    """The entry for a registered name or a ``file.py:function``."""
    if spec in REGISTRY:
        return REGISTRY[spec]()
    if ":" in spec and spec.rpartition(":")[0].endswith(".py"):
        return _from_file(spec)
    raise ModelError(
        f"model {spec!r}: not a known model ({', '.join(REGISTRY)}) nor path/to/file.py:function"
    )
