"""Snakemake adapter: compare every cell's evidence again and fail the workflow unless every run
of every cell was identical (or a summary.json says otherwise than the evidence)."""

from keras_repro.comparison import judge_matrix, workflow_cells
from keras_repro.logs import configure_logging

configure_logging(snakemake.log[0])
judge_matrix(workflow_cells(snakemake.params.cells, snakemake.params), snakemake.output.verdict)
