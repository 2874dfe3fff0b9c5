"""Snakemake adapter: fail the workflow unless every run was identical."""

from keras_repro.errors import send_logs_to
from keras_repro.report import judge

send_logs_to(snakemake.log[0])
judge(snakemake.input[0], snakemake.output[0])
