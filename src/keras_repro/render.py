"""The report's Markdown and HTML, rendered from the typed comparison by Jinja2 templates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jinja2

from keras_repro.coverage import folded_fingerprint
from keras_repro.summary import Comparison, DigestCell
from keras_repro.verdict import describe_divergence, headline, problems


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _number(value: float | None) -> str:
    return "—" if value is None else repr(value)


def _digest_text(cell: DigestCell) -> str:
    text = ", ".join(digest[:12] for digest in cell.digests) or "—"
    return text + (" ✗" if cell.differs else "")


def _apply(value: Any, macro: Callable[[Any], str]) -> str:
    return macro(value)


TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("keras_repro", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
TEMPLATES.filters.update(
    describe=describe_divergence,
    md_cell=_md_cell,
    number=_number,
    digest_text=_digest_text,
    apply=_apply,
    format_repeat="repeat {}".format,
    hexfloat=lambda text: repr(float.fromhex(text)),
)
TEMPLATES.tests["folded"] = folded_fingerprint


def render(template: str, comparison: Comparison, **context: Any) -> str:
    return TEMPLATES.get_template(template).render(
        comparison=comparison,
        headline=headline(comparison),
        problems=problems(comparison),
        **context,
    )
