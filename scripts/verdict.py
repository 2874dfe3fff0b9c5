"""Snakemake adapter: compare every cell's evidence again and fail the workflow unless every run
of every cell was identical (or a summary.json says otherwise than the evidence); once it has
passed, remove the checkpoints the config does not keep."""

import logging

from keras_repro.comparison import judge_matrix, workflow_cells
from keras_repro.files import human_size
from keras_repro.logs import configure_logging
from keras_repro.records import remove_checkpoints

configure_logging(snakemake.log[0])
judge_matrix(workflow_cells(snakemake.params.cells, snakemake.params), snakemake.output.verdict)
if snakemake.params.remove_checkpoints:
    freed = remove_checkpoints(snakemake.params.remove_checkpoints)
    logging.info("keep_checkpoints: false, so the checkpoints were removed (%s)", human_size(freed))
