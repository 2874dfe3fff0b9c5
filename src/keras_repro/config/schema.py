"""The workflow's config: its schema is the one source of every default and description.

Validation (``validate_config``, which the Snakefile runs before planning) and the defaults
the CLIs take. ``config.yaml`` and the table of ``docs/configuration.md`` are generated from
the same schema by ``config_docs`` (``keras-repro-config update``).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from keras_repro.config.roles import SOURCE_ROLES
from keras_repro.errors import ReproError

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


class ConfigError(ReproError, ValueError):
    """The config cannot be used; the message names each offending key."""


@functools.cache
def _cached_schema(path: Path) -> dict[str, Any]:
    # libyaml's loader where PyYAML has it: ten times faster, and every process reads this.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(), Loader=loader)


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    return copy.deepcopy(_cached_schema(Path(path)))


def defaults(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The complete default config."""
    filled: dict[str, Any] = {}
    _fill_defaults(filled, schema or load_schema())
    return filled


def _fill_defaults(instance: dict[str, Any], schema: dict[str, Any]) -> None:
    for key, subschema in schema.get("properties", {}).items():
        default = subschema.get("default")
        if key not in instance and "default" in subschema:
            instance[key] = copy.deepcopy(default)
        elif isinstance(instance.get(key), dict) and isinstance(default, dict):
            # A mapping given in part keeps the default's other entries (e.g. datasets).
            for name, value in default.items():
                instance[key].setdefault(name, copy.deepcopy(value))
        if isinstance(instance.get(key), dict):
            _fill_defaults(instance[key], subschema)


def _coerce(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """Turn strings into what the schema expects: ``--config`` parses nested values
    (``seeds=[1,2]``, ``subset={train: 100}``) as strings."""
    while "$ref" in schema:  # "#/$defs/name"
        schema = root[schema["$ref"].split("/")[1]][schema["$ref"].split("/")[2]]
    if "oneOf" in schema and isinstance(value, str):
        for option in schema["oneOf"]:
            coerced = _coerce(value, option, root)
            if coerced is not value:
                return coerced
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {
            key: _coerce(inner, properties.get(key, extra if isinstance(extra, dict) else {}), root)
            for key, inner in value.items()
        }
    if isinstance(value, list):
        return [_coerce(item, schema.get("items", {}), root) for item in value]
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


def _schema_problems(
    config: dict[str, Any], schema: dict[str, Any], prefix: tuple[str, ...] = ()
) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        line = f"{_key([*prefix, *error.absolute_path])}: {error.message}"
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
        problems += _dataset_problems(name, entry)
    perturb = config["perturb"]
    unset = [key for key in ("seed", "repeat", "step") if perturb[key] is None]
    if perturb["step"] is not None or perturb["variable"] is not None:
        if unset:
            problems.append(f"perturb: set {', '.join(unset)} too, or no step to nudge nothing")
        elif perturb["seed"] not in config["seeds"] or perturb["repeat"] > config["repeats"]:
            problems.append(
                f"perturb: seed {perturb['seed']} repeat {perturb['repeat']} is not one of the "
                f"runs (seeds {config['seeds']}, repeats 1 to {config['repeats']})"
            )
    problems += _size_problems(config) + _verify_problems(config)
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


def _verify_problems(config: dict[str, Any]) -> list[str]:
    """Checkpoints set twice, segments without checkpoints, a nudge of a repeat that segments
    do not train."""
    checkpoints, problems = config["checkpoints"], []
    if checkpoints["every_epochs"] is not None and checkpoints["every_steps"] is not None:
        problems.append(
            "checkpoints: set every_epochs or every_steps, not both (every_epochs: null to "
            "checkpoint every N steps)"
        )
    if config["perturb"]["batch"] and config["pipeline"] != "numpy":
        problems.append(
            "perturb.batch swaps two examples of a batch, which only the numpy pipeline can do: "
            "set pipeline: numpy"
        )
    if config["verify"] == "segments":
        if checkpoints["every_epochs"] is None and checkpoints["every_steps"] is None:
            problems.append(
                "verify: segments replays the training between checkpoints, and checkpoints "
                "are off: set checkpoints.every_epochs (or every_steps)"
            )
        if config["perturb"]["step"] is not None and config["perturb"]["repeat"] != 1:
            problems.append(
                "perturb: with verify: segments each seed trains once (repeat 1): set "
                "perturb.repeat: 1"
            )
    return problems


def _size_problems(config: dict[str, Any]) -> list[str]:
    """A config that would plan more jobs than ``limits.max_runs``: refused before Snakemake
    spends minutes and gigabytes building a DAG nobody meant to run."""
    limit = config["limits"]["max_runs"]
    keys, values = ["seeds × repeats"], [f"{len(config['seeds'])} × {config['repeats']}"]
    runs = len(config["seeds"]) * config["repeats"]
    cells = len(config["models"] or [config["model"]]) * len(config["backends"])
    control, once = config["control"], ("", "", 0)  # what trains once per backend
    if control["enabled"] and (cells == 1 or control["nondeterministic"] == "per_cell"):
        keys.append("2 × control.repeats")
        values.append(f"2 × {control['repeats']}")
        runs += 2 * control["repeats"]
    elif control["enabled"]:
        keys.append("control.repeats")
        values.append(str(control["repeats"]))
        runs += control["repeats"]
        backends = len(config["backends"])
        once = (
            " + backends × control.repeats",
            f" + {backends} × {control['repeats']}",
            backends * control["repeats"],
        )
    planned, counted = " + ".join(keys), " + ".join(values)
    if cells > 1:
        planned = f"cells (models × backends) × ({planned}){once[0]}"
        counted = f"{cells} × ({counted}){once[1]}"
        runs = runs * cells + once[2]
    problems = []
    fix = "raise limits.max_runs if you mean it"
    if runs > limit:
        problems.append(
            f"{planned} = {counted} = {runs} training runs, more than the "
            f"{limit} one config may plan (limits.max_runs); use fewer, or {fix}"
        )
    if config["initializer_processes"] > limit:
        problems.append(
            f"initializer_processes = {config['initializer_processes']} processes, more than "
            f"the {limit} one config may plan (limits.max_runs); use fewer, or {fix}"
        )
    return problems


def _source_problems(name: str, entry: dict[str, Any]) -> list[str]:
    """What the schema cannot say about the sources of one entry of ``datasets``."""
    problems = []
    for index, source in enumerate(entry["sources"]):
        where = f"datasets.{name}.sources[{index}]"
        expected = SOURCE_ROLES[source["format"]]
        if set(source["files"]) != expected:
            problems.append(
                f"{where}.files: format {source['format']} needs the roles "
                f"{sorted(expected)}, got {sorted(source['files'])}"
            )
        names = [file["name"] for file in source["files"].values()]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            problems.append(f"{where}.files: {repeated} named for more than one role")
    return problems


def _dataset_problems(name: str, entry: dict[str, Any]) -> list[str]:
    problems = _source_problems(name, entry)
    for index, source in enumerate(entry["sources"]):
        where = f"datasets.{name}.sources[{index}]"
        unverifiable = [r for r, f in source["files"].items() if not f.get("sha256")]
        if unverifiable and not entry.get("content_sha256"):
            problems.append(
                f"{where}.files: {unverifiable} have no sha256 and datasets.{name} has no "
                "content_sha256, so nothing could verify them; add either"
            )
    return problems


def check_dataset_entry(name: str, entry: dict[str, Any]) -> None:
    """Refuse a ``datasets`` entry that is malformed or unsafe (file names that are not plain
    names, locations of other schemes) for callers that skip validate_config. Whether its
    files can be verified is the config's policy, not checked here."""
    schema = load_schema()
    problems = _schema_problems(
        entry, {"$defs": schema["$defs"], "$ref": "#/$defs/dataset"}, ("datasets", name)
    )
    if not problems:
        problems = _source_problems(name, entry)
    if problems:
        raise ConfigError(f"invalid dataset {name!r}:\n" + "\n".join(f"  - {p}" for p in problems))


def validate_config(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return ``config`` with defaults filled in, or raise ConfigError listing every problem."""
    schema = schema or load_schema()
    filled = _coerce(copy.deepcopy(config), schema, schema)
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


def load_config(path: Path) -> dict[str, Any]:
    """A config file, validated, with defaults filled in (for the CLIs)."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read config {path}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return validate_config(data)
