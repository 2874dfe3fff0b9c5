"""Snakemake adapter: the pairs of one cell that parted, each to be replayed step by step from
the last checkpoint both agree in (the zoom)."""

from keras_repro.comparison import find_cell_partings, job_evidence, write_partings
from keras_repro.logs import configure_logging

configure_logging(snakemake.log[0])
wildcards = snakemake.wildcards
evidence = job_evidence(
    snakemake.input, snakemake.params, cell=(wildcards.model, wildcards.backend)
)
write_partings(find_cell_partings(evidence, snakemake.params.every), snakemake.output[0])
