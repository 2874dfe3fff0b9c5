"""Snakemake adapter: fetch and verify the dataset's files from the first source that works."""

from keras_repro.data import download_dataset
from keras_repro.logs import configure_logging

configure_logging(snakemake.log[0])
download_dataset(
    snakemake.wildcards.dataset,
    snakemake.params.sources,
    snakemake.output.source,
    content_sha256=snakemake.params.content_sha256,
    expected_counts=snakemake.params.counts,
    max_megabytes=snakemake.params.max_megabytes,
    timeout=snakemake.params.timeout,
    attempts=snakemake.params.attempts,
    backoff_seconds=snakemake.params.backoff_seconds,
)
