"""The front page of Snakemake's report (``snakemake --report``): the verdict and what was
trained, written from the comparison by the matrix rule (``matrix_pages``), so that it says what the
runs did whatever the config is when the report is made. Escaped for Jinja2 and docutils by
``render`` (an ``*.rst.j2`` template)."""

from __future__ import annotations

from keras_repro.comparison import Comparison, headline, planted
from keras_repro.report.render import render_page


def front_page_rst(comparison: Comparison) -> str:
    """The front page of one cell's comparison."""
    return render_page(
        "front_page.rst.j2",
        comparison=comparison,
        coverage=comparison.coverage,
        headline=headline(comparison),
        planted=planted(comparison.coverage),
    )
