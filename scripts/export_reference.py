"""Snakemake adapter: export every cell's seeded runs as a reference bundle."""

from keras_repro.comparison import export_reference
from keras_repro.logs import configure_logging

configure_logging(snakemake.log[0])
export_reference(
    snakemake.input.records, snakemake.input.manifest, snakemake.params.config, snakemake.output[0]
)
