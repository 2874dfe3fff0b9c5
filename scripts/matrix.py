"""Snakemake adapter: the matrix of every cell (the report's first page), the front page of
`snakemake --report` and the config it is built from; reports of cells no longer in the config
removed."""

from keras_repro.comparison import workflow_cells
from keras_repro.files import write_json_atomic
from keras_repro.logs import configure_logging
from keras_repro.report import forget_earlier_cells, write_matrix

configure_logging(snakemake.log[0])
outputs, params = snakemake.output, snakemake.params
cells = workflow_cells(params.cells, params)
earlier = forget_earlier_cells(
    [(cell.model, cell.backend) for cell in cells],
    params.earlier["reports"],
    params.earlier["runs"],
    params.report_files,
)
write_matrix(
    cells,
    html=outputs.html,
    markdown=outputs.markdown,
    matrix_json=outputs.matrix,
    front_page=outputs.front_page,
    earlier=earlier,
)
write_json_atomic(params.given_config, outputs.run_config)
