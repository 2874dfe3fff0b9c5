"""Snakemake adapter: draw the recipe's seeded initializers in this process."""

import os

from keras_repro.logs import log_everything_to

log_everything_to(snakemake.log[0])  # before a framework loads and says it found no GPU

from keras_repro.backends import cpu_only_environment  # noqa: E402

# The backend's variables (KERAS_BACKEND first, its determinism switches), which Keras and XLA
# read when they start: one thread, on the CPU, determinism on.
os.environ.update(cpu_only_environment(snakemake.params.backend))

from keras_repro.files import write_json_atomic  # noqa: E402
from keras_repro.training.initializers import draw_initializers  # noqa: E402
from keras_repro.workflow import exit_now  # noqa: E402

write_json_atomic(draw_initializers(snakemake.params.global_seed), snakemake.output[0])
exit_now(0)  # the framework's teardown is seconds of CPU, and nothing is left to write
