"""The report's Markdown and HTML, rendered from the typed comparison by Jinja2 templates.

Markup comes from the templates only: every value is escaped where it is written out. In HTML
by Jinja's autoescape; in Markdown by ``_md_text`` on every expression (``<``, ``>``, ``&`` as
entities, newlines as spaces) and ``_md_cell`` on every table cell (pipes). Records, bundles and
fingerprints come from other machines and other people.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jinja2

from keras_repro.coverage import folded_fingerprint
from keras_repro.summary import Comparison, DigestCell
from keras_repro.verdict import describe_divergence, headline, problems

# An ampersand that does not start an entity; with it, escaping twice is escaping once.
_BARE_AMPERSAND = re.compile(r"&(?!(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#x[0-9A-Fa-f]+);)")


def _md_text(value: Any) -> str:
    text = _BARE_AMPERSAND.sub("&amp;", str(value))
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"[\r\n]+", " ", text)


def _md_cell(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _number(value: float | None) -> str:
    return "—" if value is None else repr(value)


def _digest_text(cell: DigestCell) -> str:
    text = ", ".join(digest[:12] for digest in cell.digests) or "—"
    return text + (" ✗" if cell.differs else "")


def _apply(value: Any, macro: Callable[[Any], str]) -> str:
    return macro(value)


def _environment(**options: Any) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("keras_repro", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        **options,
    )
    environment.filters.update(
        describe=describe_divergence,
        md_cell=_md_cell,
        number=_number,
        digest_text=_digest_text,
        apply=_apply,
        format_repeat="repeat {}".format,
        hexfloat=lambda text: repr(float.fromhex(text)),
    )
    environment.tests["folded"] = folded_fingerprint
    return environment


HTML = _environment(autoescape=True)
MARKDOWN = _environment(autoescape=False, finalize=_md_text)


def render(template: str, comparison: Comparison, **context: Any) -> str:
    """Render ``template``: HTML escaping for ``*.html.j2``, Markdown escaping for the others."""
    environment = HTML if template.endswith(".html.j2") else MARKDOWN
    return environment.get_template(template).render(
        comparison=comparison,
        headline=headline(comparison),
        problems=problems(comparison),
        **context,
    )
