"""Snakemake adapter: export every cell's seeded runs as a reference bundle."""

from keras_repro.logs import configure_logging
from keras_repro.reference import export_reference

configure_logging(snakemake.log[0])
export_reference(
    snakemake.input.records, snakemake.input.manifest, snakemake.params.config, snakemake.output[0]
)
