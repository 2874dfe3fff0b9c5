"""What one training run is asked to do: its config (the schema's keys marked
``x-run-setting``, validated by the schema) and who it is (seed, repeat, arm, nudge, dataset).

The launcher hands them to the training process as one JSON file; the training CLI takes the
same file, and an option per config key made from the schema. A new per-run knob is the
schema's entry and the code that uses it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keras_repro.backends import BACKENDS, DEFAULT_BACKEND, child_environment
from keras_repro.config.schema import ConfigError, load_schema, validate_config
from keras_repro.files import write_json_atomic

RUN_SETTING = "x-run-setting"
# The seeded runs that are judged, and the control arm (runs that must differ, and runs whose
# op determinism is off, to show what determinism costs and whether it matters here).
ARMS = ("seeded", "unseeded", "nondeterministic")
SETTINGS_FORMAT = "keras-repro/run-settings"


def run_setting_keys(schema: dict[str, Any] | None = None) -> list[str]:
    """The config's top-level keys that every training run is given."""
    properties = (schema or load_schema())["properties"]
    return [key for key, subschema in properties.items() if subschema.get(RUN_SETTING)]


def run_config(config: dict[str, Any]) -> dict[str, Any]:
    """The run settings of a validated config."""
    return {key: config[key] for key in run_setting_keys()}


def validate_run_config(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` validated by the schema, with its defaults for the keys not given. A process
    validates a config once: what it validated before (the launcher's settings handed on, the
    training CLI's file read back) is taken as it is."""
    text = json.dumps(values, sort_keys=True)
    if text in _VALIDATED:
        return json.loads(text)
    keys = run_setting_keys()
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise ConfigError(f"run settings: {unknown} are not run settings; known: {keys}")
    validated = run_config(validate_config(values))
    _VALIDATED.add(json.dumps(validated, sort_keys=True))
    return validated


# The run configs this process has validated, as sorted JSON (a validated config is its own
# validation).
_VALIDATED: set[str] = set()


@dataclass(frozen=True)
class RunSettings:
    seed: int | None  # None: the launcher draws one (the unseeded control)
    repeat: int
    config: dict[str, Any] = field(default_factory=dict)  # validated in __post_init__
    arm: str = "seeded"
    op_determinism: bool = True
    seed_drawn: bool = False
    # A deliberate one-ULP nudge of one weight variable after this step, to show the check sees it.
    perturb_step: int | None = None
    perturb_variable: str | None = None
    perturb_batch: bool = False  # the fault is two examples swapped in that step's batch
    dataset_sha256: str | None = None  # refuse a dataset file with another sha256
    # The manifest's input shape and class count; None: taken from the dataset file's arrays.
    data_spec: dict[str, Any] | None = None
    # The sha256 of the model's file (models.model_sha256): refuse a file edited since.
    model_sha256: str | None = None
    backend: str = DEFAULT_BACKEND  # the Keras backend it trains on (KERAS_BACKEND)
    # Whether it saves the checkpoints its config plans (the control arm's runs do not).
    save_checkpoints: bool = True
    # The keys of the config's compile that the user set (the rest are the schema's defaults):
    # only these are set over the compile of a model whose build compiled it.
    compile_given: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.arm not in ARMS:
            raise ValueError(f"arm must be one of {ARMS}, got {self.arm!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend {self.backend!r}: not one of {', '.join(BACKENDS)}")
        object.__setattr__(self, "config", validate_run_config(self.config))

    def __getitem__(self, key: str) -> Any:
        return self.config[key]

    @property
    def weight_nudge_step(self) -> int | None:
        """The step after which a weight is nudged by one ULP (None: none, or the fault is a
        batch fed differently)."""
        return None if self.perturb_batch else self.perturb_step

    def child_environment(self) -> dict[str, str]:
        """The variables the training process needs before Python starts: its backend's
        (``KERAS_BACKEND`` first, the thread and determinism switches)."""
        return child_environment(self.backend, self["threads"], self["device"], self.op_determinism)

    def to_json(self) -> dict[str, Any]:
        return {"format": SETTINGS_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSettings:
        if data.get("format") != SETTINGS_FORMAT:
            raise ConfigError(f"not a {SETTINGS_FORMAT} file (format={data.get('format')!r})")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - {"format"})
        if unknown:
            raise ConfigError(f"run settings: unknown fields {unknown}")
        return cls(**{name: value for name, value in data.items() if name in names})

    def write(self, path: Path) -> None:
        write_json_atomic(self.to_json(), path)

    @classmethod
    def read(cls, path: Path) -> RunSettings:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigError(f"cannot read run settings {path}: {error}") from None
        return cls.from_json(data)

    def to_record(self) -> dict[str, Any]:
        """The run record's ``settings``: who the run is, then its config."""
        identity = dataclasses.asdict(self)
        return {**{k: v for k, v in identity.items() if k != "config"}, **self.config}


def _boolean(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def _option_type(schema: dict[str, Any]) -> Any:
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds or []
    if "array" in kinds:
        return _option_type(schema.get("items", {}))
    if "boolean" in kinds:
        return _boolean
    return int if "integer" in kinds else float if "number" in kinds else str


def _config_options(schema: dict[str, Any]) -> list[tuple[str, tuple[str, ...], dict[str, Any]]]:
    """(option, config path, schema) of every run setting: ``--epochs``, ``--trace-every-steps``."""
    options = []
    for key in run_setting_keys(schema):
        subschema = schema["properties"][key]
        inner = subschema.get("properties")
        for path, leaf in (
            [((key, name), s) for name, s in inner.items()] if inner else [((key,), subschema)]
        ):
            options.append(("--" + "-".join(path).replace("_", "-"), path, leaf))
    return options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The training CLI's options: a settings file, who the run is, and one option per run
    setting of the schema (its description as help, its default when neither gives one)."""
    parser.add_argument("--settings", type=Path, help="a run settings file (the launcher's)")
    parser.add_argument("--seed", type=int, help="required unless the settings file has it")
    parser.add_argument("--repeat", type=int, help="which repeat this is (recorded)")
    parser.add_argument(
        "--backend", choices=BACKENDS, help=f"the Keras backend (default: {DEFAULT_BACKEND})"
    )
    parser.add_argument(
        "--no-op-determinism",
        dest="op_determinism",
        action="store_false",
        default=None,
        help="leave op determinism off",
    )
    parser.add_argument("--perturb-step", type=int, help="nudge a weight by one ULP after it")
    parser.add_argument("--perturb-variable", help="the variable to nudge (default: the first one)")
    parser.add_argument(
        "--dataset-sha256", help="refuse a dataset file whose sha256 differs (from its manifest)"
    )
    schema = load_schema()
    for option, path, leaf in _config_options(schema):
        parser.add_argument(
            option,
            dest=".".join(path),
            type=_option_type(leaf),
            nargs="+" if leaf.get("type") == "array" else None,
            choices=leaf.get("enum"),
            help=" ".join(leaf.get("description", "").split()).replace("%", "%%"),
        )


def from_arguments(args: argparse.Namespace) -> RunSettings:
    """Settings from the file, if any, with the options given on top."""
    base = RunSettings.read(args.settings) if args.settings else None
    config: dict[str, Any] = dict(base.config) if base else {}
    for _option, path, _leaf in _config_options(load_schema()):
        value = getattr(args, ".".join(path))
        if value is None:
            continue
        if len(path) == 1:
            config[path[0]] = value
        else:
            config[path[0]] = {**config.get(path[0], {}), path[1]: value}
    identity = dataclasses.asdict(base) if base else {"repeat": 0}
    identity.pop("config", None)
    given = [*identity.get("compile_given", [])]
    for _option, path, _leaf in _config_options(load_schema()):
        if path[0] == "compile" and getattr(args, ".".join(path)) is not None:
            given.append(path[1])
    identity["compile_given"] = list(dict.fromkeys(given))
    for name in ("seed", "repeat", "op_determinism", "perturb_step", "perturb_variable", "backend"):
        if getattr(args, name) is not None:
            identity[name] = getattr(args, name)
    if args.dataset_sha256 is not None:
        identity["dataset_sha256"] = args.dataset_sha256
    if identity.get("seed") is None:
        raise ConfigError("--seed is required (or a --settings file that has one)")
    return RunSettings(config=config, **identity)
