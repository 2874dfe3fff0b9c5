"""Snakemake adapter: draw the recipe's seeded initializers in this process."""

import os
import sys

# Everything this job writes to stderr goes to its log, TensorFlow's start-up messages (no GPU,
# CPU features) included, which would otherwise reach the console: so before TensorFlow loads.
os.dup2(os.open(snakemake.log[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), sys.stderr.fileno())
# The cell's backend, which Keras takes when it is imported.
os.environ["KERAS_BACKEND"] = snakemake.params.backend

from keras_repro.files import write_json_atomic  # noqa: E402
from keras_repro.initializers import draw_initializers  # noqa: E402
from keras_repro.logs import configure_logging  # noqa: E402

configure_logging()  # to stderr, which is the log
write_json_atomic(draw_initializers(snakemake.params.global_seed), snakemake.output[0])
