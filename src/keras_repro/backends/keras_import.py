"""Keras imported without the libraries it loads only to offer integrations a run never uses.

At its own import, Keras imports whichever of these are installed: scikit-learn (its wrappers,
and SciPy under it), matplotlib (image galleries), pandas (data frames as input) and JAX (for
Orbax checkpoints, whatever the backend). Here that is 2.4 s of the 5.8 s of CPU a TensorFlow
process spends importing Keras, 2.0 s of torch's 5.9 and 1.4 s of JAX's 3.5, in every run,
replayed segment, zoom, model check and initializer draw. Keras behaves as if they were not
installed (``sys.modules[name] = None`` is how Python says so) while it is imported, and they
stay importable afterwards: a model's own file may import them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

INTEGRATIONS = ("sklearn", "matplotlib", "pandas", "jax")


@contextmanager
def keras_without_integrations() -> Iterator[None]:
    """Import Keras inside this block (and whatever imports it) without ``INTEGRATIONS``, but
    the backend's own framework. Nothing is hidden once Keras is imported, nor a library this
    process has imported already."""
    # Without KERAS_BACKEND, Keras may take JAX from its config file.
    framework = os.environ.get("KERAS_BACKEND") or "jax"
    imported = "keras" in sys.modules
    hidden = [] if imported else [n for n in INTEGRATIONS if n not in (*sys.modules, framework)]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
