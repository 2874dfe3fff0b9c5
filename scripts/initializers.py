"""Snakemake adapter: draw the recipe's seeded initializers in this process."""

import os
import sys

# Everything this job writes to stderr goes to its log, TensorFlow's start-up messages (no GPU,
# CPU features) included, which would otherwise reach the console: so before TensorFlow loads.
os.dup2(os.open(snakemake.log[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), sys.stderr.fileno())

from keras_repro.backends import load_backend  # noqa: E402

# The backend's variables (KERAS_BACKEND first, its determinism switches), which Keras and XLA
# read when they start: one thread, on the CPU, determinism on.
os.environ.update(load_backend(snakemake.params.backend).child_environment(1, "cpu", True))

from keras_repro.files import write_json_atomic  # noqa: E402
from keras_repro.initializers import draw_initializers  # noqa: E402
from keras_repro.logs import configure_logging  # noqa: E402

configure_logging()  # to stderr, which is the log
write_json_atomic(draw_initializers(snakemake.params.global_seed), snakemake.output[0])
