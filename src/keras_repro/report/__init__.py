"""The report: what the workflow shows. One cell's report files (``cell.py``: summary.json,
report.md and .html, the histories as CSV, the curves and step plots from ``plots.py`` and
``tables.py``), the matrix's pages and ``matrix.json`` (``matrix_pages.py``), the reports of
cells no longer in the config removed (``earlier.py``), the front page of
``snakemake --report`` (``front_page.py``), every page rendered by one Jinja2 environment
(``render.py``) from ``templates/``, and the CLI (``cli.py``).

Adding a section to the report: its data typed in ``keras_repro.comparison.summary`` (and so in
summary.json), built in ``comparison.summarize``, shown in both ``report.*.j2`` templates.
"""

from keras_repro.report.cell import ReportPaths, write_report
from keras_repro.report.earlier import Earlier, forget_earlier_cells
from keras_repro.report.matrix_pages import write_matrix

__all__ = ["Earlier", "ReportPaths", "forget_earlier_cells", "write_matrix", "write_report"]
