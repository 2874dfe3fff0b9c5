"""The one Jinja2 environment every page is rendered by: the cell's report (Markdown, HTML),
the matrix's pages and the front page of ``snakemake --report`` (reStructuredText).

Markup comes from the templates only: every value is escaped where it is written out, by the
kind of page the template makes (its name's ending). HTML (``*.html.j2``) by Jinja's
autoescape; Markdown (``*.md.j2``) by ``md_text`` on every expression (``<``, ``>``, ``&`` as
entities, newlines as spaces) and the ``md_cell`` filter on every table cell (pipes);
reStructuredText (``*.rst.j2``, which Snakemake renders with Jinja2, then docutils) by
``rst_text``, so that a name holding ``{{``, a reference ``name_`` or a ``.. raw::`` directive
stays text. Records, bundles and fingerprints come from other machines and other people.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jinja2

from keras_repro.comparison import (
    KEEP_APART,
    Comparison,
    DigestCell,
    describe_divergence,
    folded_fingerprint,
    headline,
    noise_sentence,
    problems,
    verified_by,
)

# An ampersand that does not start an entity; with it, escaping twice is escaping once.
_BARE_AMPERSAND = re.compile(r"&(?!(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#x[0-9A-Fa-f]+);)")
_RST_SPECIAL = re.compile(r"([^A-Za-z0-9 ])")


def md_text(value: Any) -> str:
    text = _BARE_AMPERSAND.sub("&amp;", str(value))
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"[\r\n]+", " ", text)


def rst_text(value: Any) -> str:
    """``value`` as plain reStructuredText on one line: every character but letters, digits and
    spaces backslash-escaped (literal to docutils, and never a Jinja2 delimiter)."""
    if isinstance(value, list):
        value = ", ".join(map(str, value))
    return _RST_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


@jinja2.pass_context
def _escape_for_page(context: jinja2.runtime.Context, value: Any) -> Any:
    """Every expression's value, escaped for the kind of page its template makes (HTML is
    left to autoescape)."""
    name = context.name or ""
    if name.endswith(".md.j2"):
        return md_text(value)
    if name.endswith(".rst.j2"):
        return rst_text(value)
    return value


def _md_cell(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _number(value: float | None) -> str:
    return "—" if value is None else repr(value)


def _digest_text(cell: DigestCell) -> str:
    text = ", ".join(digest[:12] for digest in cell.digests) or "—"
    return text + (" ✗" if cell.differs else "")


def _apply(value: Any, macro: Callable[[Any], str]) -> str:
    return macro(value)


TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("keras_repro.report", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
    finalize=_escape_for_page,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
TEMPLATES.filters.update(
    describe=describe_divergence,
    noise_sentence=noise_sentence,
    md_cell=_md_cell,
    number=_number,
    digest_text=_digest_text,
    apply=_apply,
    format_repeat="repeat {}".format,
    hexfloat=lambda text: repr(float.fromhex(text)),
)
TEMPLATES.tests["folded"] = folded_fingerprint
TEMPLATES.globals["keep_apart"] = KEEP_APART


def render_page(template: str, **context: Any) -> str:
    """``template`` rendered with ``context``, escaped for the page it makes."""
    return TEMPLATES.get_template(template).render(**context)


def render(template: str, comparison: Comparison, **context: Any) -> str:
    """A page of one cell's comparison: ``template`` with the comparison, its headline and
    what fails it."""
    return render_page(
        template,
        comparison=comparison,
        headline=headline(comparison),
        problems=problems(comparison),
        verified_by=verified_by(comparison),
        **context,
    )
