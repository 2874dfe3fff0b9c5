"""Validate the workflow's config against its JSON schema, fill defaults, check what it can't."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from keras_repro.dataset import ROLES
from keras_repro.errors import ReproError

SOURCE_ROLES = {"npz": {"archive"}, "idx": set(ROLES)}


class ConfigError(ReproError, ValueError):
    """The config cannot be used; the message names each offending key."""


def load_schema(path: Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def _fill_defaults(instance: dict[str, Any], schema: dict[str, Any]) -> None:
    for key, subschema in schema.get("properties", {}).items():
        if key not in instance and "default" in subschema:
            instance[key] = copy.deepcopy(subschema["default"])
        if isinstance(instance.get(key), dict):
            _fill_defaults(instance[key], subschema)


def _coerce(value: Any, schema: dict[str, Any]) -> Any:
    """Turn strings into what the schema expects: ``--config`` parses nested values
    (``seeds=[1,2]``, ``subset={train: 100}``) as strings."""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        return {key: _coerce(inner, properties.get(key, {})) for key, inner in value.items()}
    if isinstance(value, list):
        return [_coerce(item, schema.get("items", {})) for item in value]
    if not isinstance(value, str):
        return value
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "null" in types and value in ("null", "None", "~"):
        return None
    for kind, parse in (("integer", int), ("number", float)):
        if kind in types:
            try:
                return parse(value)
            except ValueError:
                pass
    if "boolean" in types and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _key(path: Any) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in path]
    return "".join(parts).lstrip(".") or "(top level)"


def _schema_problems(config: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        line = f"{_key(error.absolute_path)}: {error.message}"
        described = error.schema if isinstance(error.schema, dict) else {}
        if "description" in described:
            line += f" ({described['description'].strip()})"
        problems.append(line)
    return problems


def _semantic_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    datasets = config["datasets"]
    if config["dataset"] not in datasets:
        problems.append(
            f"dataset: {config['dataset']!r} is not a known dataset; allowed: "
            f"{', '.join(sorted(datasets)) or '(none: datasets is empty)'}"
        )
    for name, entry in datasets.items():
        for index, source in enumerate(entry["sources"]):
            where = f"datasets.{name}.sources[{index}]"
            expected = SOURCE_ROLES[source["format"]]
            if set(source["files"]) != expected:
                problems.append(
                    f"{where}.files: format {source['format']} needs the roles "
                    f"{sorted(expected)}, got {sorted(source['files'])}"
                )
            unverifiable = [r for r, f in source["files"].items() if not f.get("sha256")]
            if unverifiable and not entry.get("content_sha256"):
                problems.append(
                    f"{where}.files: {unverifiable} have no sha256 and datasets.{name} has no "
                    "content_sha256, so nothing could verify them; add either"
                )
    comparison = config["comparison"]
    if comparison["mode"] == "tolerance" and comparison["rtol"] == 0 and comparison["atol"] == 0:
        problems.append(
            "comparison: mode is 'tolerance' but rtol and atol are both 0; set one, or use mode: exact"
        )
    if comparison["mode"] == "exact" and (comparison["rtol"] or comparison["atol"]):
        problems.append(
            "comparison: rtol/atol are set but mode is 'exact'; set mode: tolerance to use them"
        )
    return problems


def validate_config(config: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Return ``config`` with defaults filled in, or raise ConfigError listing every problem."""
    filled = _coerce(copy.deepcopy(config), schema)
    _fill_defaults(filled, schema)
    problems = _schema_problems(filled, schema)
    if not problems:
        problems = _semantic_problems(filled)
    if problems:
        raise ConfigError(
            "invalid config (config.yaml, --configfile or --config):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    return filled
