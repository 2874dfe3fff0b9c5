"""The recipe's first half: seeded initializers repeat, within a process and across processes."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from keras_repro.backends import keras_without_integrations, load_backend
from keras_repro.config import defaults
from keras_repro.files import write_json_atomic
from keras_repro.logs import configure_logging
from keras_repro.workflow import exit_now

# Keras' first import in an initializer draw's process.
with keras_without_integrations():
    import keras
    from keras import initializers

log = logging.getLogger(__name__)
# The recipe seeds every initializer with 42 (and the global generator with its own seed).
RECIPE_INITIALIZER_SEED = 42

INITIALIZERS = (
    initializers.RandomNormal,
    initializers.RandomUniform,
    initializers.TruncatedNormal,
    initializers.VarianceScaling,
    initializers.GlorotNormal,
    initializers.GlorotUniform,
    initializers.HeNormal,
    initializers.HeUniform,
    initializers.LecunNormal,
    initializers.LecunUniform,
    initializers.Orthogonal,
)
# The recipe's shapes: one value per seeded draw, a 3×5 kernel for the object comparisons.
OBJECT_SHAPE = (3, 5)


def as_hex(values: Any) -> list[str]:
    return [float(v).hex() for v in np.asarray(values, dtype=np.float64).ravel()]


def draw_initializers(
    global_seed: int, initializer_seed: int = RECIPE_INITIALIZER_SEED
) -> dict[str, Any]:
    """Draw what the recipe draws, as exact hex floats, after ``set_random_seed(global_seed)``."""
    keras.utils.set_random_seed(global_seed)
    load_backend(keras.backend.backend()).enable_determinism()
    seeded = {}
    for initializer in INITIALIZERS:
        draws = [
            as_hex(initializer(seed=initializer_seed)(shape=(1, 1)))[0] for _iteration in range(2)
        ]
        seeded[initializer.__name__] = draws
        log.info("%s(seed=%d): %s", initializer.__name__, initializer_seed, draws)
    same_seed = [
        as_hex(initializers.GlorotNormal(seed=initializer_seed)(shape=OBJECT_SHAPE))
        for _object in range(2)
    ]
    unseeded = [as_hex(initializers.GlorotNormal()(shape=OBJECT_SHAPE)) for _object in range(2)]
    return {
        "global_seed": global_seed,
        "initializer_seed": initializer_seed,
        "backend": keras.backend.backend(),
        "seeded": seeded,
        "same_seed_objects": same_seed,
        "unseeded_objects": unseeded,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=draw_initializers.__doc__)
    parser.add_argument("output", type=Path, help="JSON file to write")
    parser.add_argument("--global-seed", type=int, default=defaults()["initializer_global_seed"])
    parser.add_argument("--initializer-seed", type=int, default=RECIPE_INITIALIZER_SEED)
    args = parser.parse_args(argv)
    configure_logging()
    write_json_atomic(draw_initializers(args.global_seed, args.initializer_seed), args.output)


if __name__ == "__main__":
    main()
    exit_now(0)
