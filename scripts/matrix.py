"""Snakemake adapter: the matrix of every cell (the report's first page) and the front page of
`snakemake --report`."""

from keras_repro.comparison import workflow_cells
from keras_repro.logs import configure_logging
from keras_repro.report import write_matrix

configure_logging(snakemake.log[0])
outputs = snakemake.output
write_matrix(
    workflow_cells(snakemake.params.cells, snakemake.params),
    html=outputs.html,
    markdown=outputs.markdown,
    matrix_json=outputs.matrix,
    front_page=outputs.front_page,
)
