"""Snakemake adapter: build the config's model for the dataset and check it, before training."""

import os

# A check must not take a GPU a training run is about to use; set before Keras starts.
os.environ["CUDA_VISIBLE_DEVICES"] = ""

from keras_repro.dataset import recorded_spec
from keras_repro.logs import configure_logging
from keras_repro.models.check import check_model

configure_logging(snakemake.log[0])
check_model(
    snakemake.params.model,
    recorded_spec(snakemake.input.manifest),
    snakemake.params.compile,
    snakemake.output.check,
    expected_sha256=snakemake.params.model_sha256,
)
