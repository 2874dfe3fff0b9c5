"""Snakemake adapter: fail the workflow unless every run was identical."""

from keras_repro.logs import configure_logging
from keras_repro.verdict import judge

configure_logging(snakemake.log[0])
judge(snakemake.input.summary, snakemake.output.verdict)
