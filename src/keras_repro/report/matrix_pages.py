"""The matrix written: its page (HTML, opening with the table of every cell), its Markdown,
``matrix.json``, and the front page of `snakemake --report`."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from keras_repro.comparison import Cell, Matrix, build_matrix, matrix_to_json, planted
from keras_repro.files import atomic_write, write_json_atomic
from keras_repro.report.earlier import Earlier
from keras_repro.report.front_page import front_page_rst
from keras_repro.report.render import render_page


def link(target: Path, page: Path) -> str:
    """``target`` as a relative link from ``page``, quoted for an address."""
    return quote(os.path.relpath(target, Path(page).parent))


def write_pages(
    matrix: Matrix, html: Path, markdown: Path, matrix_json: Path, earlier: Earlier | None = None
) -> None:
    """The matrix page (HTML), its Markdown and matrix.json, each linking every cell's
    report.html relative to itself; ``earlier``: what earlier configs left, said."""
    for template, path in (("matrix.html.j2", html), ("matrix.md.j2", markdown)):
        text = render_page(
            template,
            matrix=matrix,
            earlier=earlier or Earlier(),
            link=lambda target, page=path: link(target, page),
        )
        with atomic_write(path) as handle:
            handle.write(text)
    write_json_atomic(matrix_to_json(matrix, Path(matrix_json).parent), matrix_json)


def write_matrix(
    cells: list[Cell],
    html: Path,
    markdown: Path,
    matrix_json: Path,
    front_page: Path | None = None,
    earlier: Earlier | None = None,
) -> Matrix:
    """Compare every cell from its evidence and write the matrix page (HTML), its Markdown
    and matrix.json, and the front page of `snakemake --report` when asked (one cell's own,
    or the matrix's); ``earlier``: the cells earlier configs left, said on the page."""
    matrix, comparisons = build_matrix(cells)
    write_pages(matrix, html, markdown, matrix_json, earlier)
    if front_page is not None:
        text = (
            front_page_rst(comparisons[0])
            if len(cells) == 1
            else render_page(
                "front_page_matrix.rst.j2",
                matrix=matrix,
                coverage=matrix.coverage,
                planted=planted(matrix.coverage),
            )
        )
        with atomic_write(front_page) as handle:
            handle.write(text)
    return matrix
