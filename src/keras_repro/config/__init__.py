"""The config: its schema (``config.schema.yaml``, the one source of every default and
description), its validation, what one training run is given (``RunSettings``), the names of a
dataset entry's files and arrays (``roles``), and the generated ``config.yaml`` and docs table
(``docs``, which no rule runs)."""

from keras_repro.config.roles import NPZ_KEYS, ROLES, SOURCE_ROLES
from keras_repro.config.schema import (
    ConfigError,
    check_dataset_entry,
    defaults,
    load_config,
    load_schema,
    validate_config,
)
from keras_repro.config.settings import (
    ARMS,
    RunSettings,
    add_arguments,
    from_arguments,
    run_config,
    run_setting_keys,
)

__all__ = [
    "ARMS",
    "NPZ_KEYS",
    "ROLES",
    "SOURCE_ROLES",
    "ConfigError",
    "RunSettings",
    "add_arguments",
    "check_dataset_entry",
    "defaults",
    "from_arguments",
    "load_config",
    "load_schema",
    "run_config",
    "run_setting_keys",
    "validate_config",
]
