"""Snakemake adapter: decode, validate and subset the download into the one dataset file."""

from keras_repro.data import build_dataset
from keras_repro.logs import configure_logging

configure_logging(snakemake.log[0])
build_dataset(
    snakemake.input.source,
    snakemake.output.dataset,
    snakemake.output.manifest,
    subset=snakemake.params.subset,
    expected_counts=snakemake.params.counts,
    max_megabytes=snakemake.params.max_megabytes,
    max_classes=snakemake.params.max_classes,
    batch_size=snakemake.params.batch_size,
)
