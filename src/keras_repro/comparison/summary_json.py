"""``summary.json``: the typed comparison as JSON, and read back into the same types."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from keras_repro.comparison.summary import Comparison
from keras_repro.files import write_json_atomic

SUMMARY_FORMAT = "keras-repro/summary"
SUMMARY_FORMAT_VERSION = 1


def summary_to_json(comparison: Comparison) -> dict[str, Any]:
    return {
        "format": SUMMARY_FORMAT,
        "format_version": SUMMARY_FORMAT_VERSION,
        **dataclasses.asdict(comparison),
    }


def summary_from_json(data: dict[str, Any]) -> Comparison:
    if (data.get("format"), data.get("format_version")) != (
        SUMMARY_FORMAT,
        SUMMARY_FORMAT_VERSION,
    ):
        raise ValueError(
            f"not a {SUMMARY_FORMAT} v{SUMMARY_FORMAT_VERSION} summary "
            f"(format={data.get('format')!r}, version={data.get('format_version')!r})"
        )
    return _typed(Comparison, data)


def write_summary(comparison: Comparison, path: Path) -> None:
    write_json_atomic(summary_to_json(comparison), path)


def read_summary(path: Path) -> Comparison:
    return summary_from_json(json.loads(Path(path).read_text()))


def _typed(kind: Any, data: Any) -> Any:
    """Rebuild ``kind`` (a dataclass, list, dict, optional or plain type) from JSON data."""
    if data is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return _typed(inner, data)
    if origin is list:
        (inner,) = typing.get_args(kind)
        return [_typed(inner, item) for item in data]
    if origin is dict:
        key, inner = typing.get_args(kind)
        return {key(k): _typed(inner, v) for k, v in data.items()}
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(  # a field missing from an older summary takes its default
            **{
                f.name: _typed(hints[f.name], data[f.name])
                for f in dataclasses.fields(kind)
                if f.name in data
            }
        )
    return data
