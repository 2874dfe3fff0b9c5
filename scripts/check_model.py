"""Snakemake adapter: build the config's model for the dataset on the cell's backend and check
it, before training, in a process of its own under the config's deadline."""

import os

from keras_repro.logs import log_everything_to

log_everything_to(snakemake.log[0])  # before a framework loads and says it found no GPU

from keras_repro.backends import cpu_only_environment  # noqa: E402

# Keras takes its backend at import; a check must not take a GPU a training run is about to
# use. Both set before the check's process starts.
os.environ.update(cpu_only_environment(snakemake.params.backend))

from keras_repro.data import recorded_spec  # noqa: E402
from keras_repro.models.check_process import check_model_within  # noqa: E402

check_model_within(
    snakemake.params.model,
    recorded_spec(snakemake.input.manifest),
    snakemake.params.compile,
    snakemake.output.check,
    timeout_seconds=snakemake.params.timeout_seconds,
    expected_sha256=snakemake.params.model_sha256,
)
