"""The front page of Snakemake's report (``snakemake --report``): the verdict and what was
trained, written by the compare rule from the comparison, so that it says what the runs did
whatever the config is when the report is made.

Snakemake renders the page with Jinja2, then docutils: every value from a record is escaped for
both (a name holding ``{{``, a reference ``name_`` or a ``.. raw::`` directive stays text).
"""

from __future__ import annotations

import re
from typing import Any

import jinja2

from keras_repro.coverage import planted
from keras_repro.summary import Comparison
from keras_repro.verdict import headline

_SPECIAL = re.compile(r"([^A-Za-z0-9 ])")


def rst_text(value: Any) -> str:
    """``value`` as plain reStructuredText on one line: every character but letters, digits and
    spaces backslash-escaped (literal to docutils, and never a Jinja2 delimiter)."""
    if isinstance(value, list):
        value = ", ".join(map(str, value))
    return _SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("keras_repro", "templates"),
    undefined=jinja2.StrictUndefined,
    finalize=rst_text,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def front_page_rst(comparison: Comparison) -> str:
    return TEMPLATES.get_template("front_page.rst.j2").render(
        comparison=comparison,
        coverage=comparison.coverage,
        headline=headline(comparison),
        planted=planted(comparison.coverage),
    )
