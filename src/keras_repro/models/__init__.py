"""The models a run trains: one registry (``registry.py``: a name, or a user's
``path/to/file.py:function``), the recipe's CNN (``recipe.py``), the zoo of models known to be
tricky to reproduce (one file each), and the check every model passes before any run trains it
(``check.py``, the check_model rule's).

Adding a model to the zoo: a file here with a ``build_model(input_shape, num_classes)`` and its
name in ``registry.ZOO``.
"""

from keras_repro.models.registry import (
    NAMES,
    ModelEntry,
    ModelError,
    compile_arguments,
    load_model_entry,
    matrix_models,
    model_name,
    model_sha256,
    overridden_compile_keys,
    own_compile_arguments,
    resolve_model,
)

__all__ = [
    "NAMES",
    "ModelEntry",
    "ModelError",
    "compile_arguments",
    "load_model_entry",
    "matrix_models",
    "model_name",
    "model_sha256",
    "overridden_compile_keys",
    "own_compile_arguments",
    "resolve_model",
]
