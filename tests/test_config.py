"""Config validation: defaults, and every invalid value refused with its key named."""

from __future__ import annotations

import copy
import shutil

import pytest
import yaml
from helpers import REPO

from keras_repro.config.docs import CONFIG_DOC, stale_generated_files
from keras_repro.config.schema import ConfigError, load_schema, validate_config

SCHEMA = load_schema(REPO / "schemas" / "config.schema.yaml")
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def with_changes(**changes):
    config = copy.deepcopy(CONFIG)
    config.update(changes)
    return config


def test_shipped_config_is_valid():
    config = validate_config(CONFIG, SCHEMA)
    assert config["seeds"] == [812, 42]
    assert config["repeats"] == 3 and config["epochs"] == 2 and config["batch_size"] == 64


def test_every_key_has_a_default_and_a_description():
    for key, sub in SCHEMA["properties"].items():
        assert "default" in sub and "description" in sub, key
        for inner, inner_sub in sub.get("properties", {}).items():
            assert "default" in inner_sub and "description" in inner_sub, f"{key}.{inner}"


def test_defaults_fill_an_empty_config():
    config = validate_config({"datasets": CONFIG["datasets"]}, SCHEMA)
    assert config["dataset"] == "mnist"
    assert config["subset"] == {"train": None, "test": None}
    assert config["comparison"] == {"mode": "exact", "rtol": 0.0, "atol": 0.0}
    assert config["device"] == "auto" and config["threads"] == 1
    assert config["runs_per_gpu"] == 1


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"repeats": 1}, "repeats: 1 is less than the minimum of 2"),
        ({"epochs": 0}, "epochs: 0 is less than the minimum of 1"),
        ({"seeds": [812, 812]}, "seeds: [812, 812] has non-unique elements"),
        ({"seeds": [-1]}, "seeds[0]: -1 is less than the minimum of 0"),
        ({"subset": {"train": -5}}, "subset.train: -5 is less than the minimum of 1"),
        (
            {"dataset": "cifar"},
            "dataset: 'cifar' is not a known dataset; allowed: fashion_mnist, mnist",
        ),
        ({"threads": 0}, "threads: 0 is less than the minimum of 1"),
        ({"runs_per_gpu": 0}, "runs_per_gpu: 0 is less than the minimum of 1"),
        ({"device": "tpu"}, "device: 'tpu' is not one of ['auto', 'cpu', 'gpu']"),
        ({"batch_size": 0}, "batch_size: 0 is less than the minimum of 1"),
        ({"repats": 3}, "'repats' was unexpected"),
        (
            {"comparison": {"mode": "tolerance"}},
            "mode is 'tolerance' but rtol and atol are both 0",
        ),
        ({"comparison": {"rtol": 1e-6}}, "rtol/atol are set but mode is 'exact'"),
    ],
)
def test_invalid_values_are_refused_naming_the_key(changes, named):
    with pytest.raises(ConfigError) as raised:
        validate_config(with_changes(**changes), SCHEMA)
    assert named in str(raised.value)


def test_command_line_strings_are_read_as_the_schema_types():
    # snakemake --config seeds=[1,2] 'subset={train: 100}' passes nested values as strings
    config = validate_config(
        with_changes(seeds=["1", "2"], subset={"train": "100", "test": "null"}), SCHEMA
    )
    assert config["seeds"] == [1, 2]
    assert config["subset"] == {"train": 100, "test": None}


def test_source_roles_must_fit_the_format():
    config = copy.deepcopy(CONFIG)
    config["datasets"]["mnist"]["sources"][0]["files"] = {"x": {"name": "a", "sha256": None}}
    with pytest.raises(ConfigError, match=r"sources\[0\]\.files: format npz needs the roles"):
        validate_config(config, SCHEMA)


def test_a_file_nothing_can_verify_is_refused():
    config = copy.deepcopy(CONFIG)
    config["datasets"]["mnist"]["sources"][0]["files"]["archive"]["sha256"] = None
    with pytest.raises(
        ConfigError, match=r"have no sha256 and datasets\.mnist has no content_sha256"
    ):
        validate_config(config, SCHEMA)


def test_malformed_checksum_is_refused():
    config = copy.deepcopy(CONFIG)
    config["datasets"]["mnist"]["sources"][0]["files"]["archive"]["sha256"] = "abc"
    with pytest.raises(ConfigError, match=r"datasets\.mnist\.sources\[0\]\.files\.archive\.sha256"):
        validate_config(config, SCHEMA)


def test_config_yaml_and_the_docs_table_agree_with_the_schema():
    assert stale_generated_files(REPO) == [], "run: keras-repro-config update"


@pytest.mark.parametrize("name", ["config.yaml", CONFIG_DOC])
def test_a_default_changed_outside_the_schema_is_caught(tmp_path, name):
    for file in ("config.yaml", CONFIG_DOC):
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / file, tmp_path / file)
    edited = tmp_path / name
    old = "`[812, 42]`" if name == CONFIG_DOC else "seeds: [812, 42]"
    assert old in edited.read_text()
    edited.write_text(edited.read_text().replace(old, old.replace("812, 42", "812, 43")))
    assert stale_generated_files(tmp_path) == [edited]


def test_the_clis_take_their_defaults_from_the_schema(monkeypatch):
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["initializer_global_seed"]["default"] = 7
    monkeypatch.setattr("keras_repro.config.schema._cached_schema", lambda path: schema)
    captured = {}
    monkeypatch.setattr(
        "keras_repro.training.initializers.draw_initializers",
        lambda global_seed, initializer_seed: captured.update(seed=global_seed) or {},
    )
    monkeypatch.setattr(
        "keras_repro.training.initializers.write_json_atomic", lambda data, path: None
    )
    from keras_repro.training import initializers

    initializers.main(["out.json"])
    assert captured["seed"] == 7


def test_command_line_strings_deep_in_a_dataset_entry_are_read_as_the_schema_types():
    # snakemake --config 'datasets={mnist: {counts: {train: 100, test: 10}}}'
    config = with_changes()
    config["datasets"]["mnist"]["counts"] = {"train": "100", "test": "10"}
    config["datasets"]["mnist"]["content_sha256"] = "null"
    validated = validate_config(config, SCHEMA)
    assert validated["datasets"]["mnist"]["counts"] == {"train": 100, "test": 10}
    assert validated["datasets"]["mnist"]["content_sha256"] is None


def test_a_matrix_counts_the_control_runs_of_each_cell_and_those_once_per_backend():
    models = ["recipe", "batchnorm_cnn", "lstm_rows"]
    cells = {"models": models, "backends": ["tensorflow", "jax"], "repeats": 400}
    matrix = with_changes(**cells)
    with pytest.raises(ConfigError) as raised:
        validate_config(matrix, SCHEMA)
    assert (
        "cells (models × backends) × (seeds × repeats + control.repeats) + backends × "
        "control.repeats = 6 × (2 × 400 + 2) + 2 × 2 = 4816 training runs, more than the 2000"
    ) in str(raised.value)
    every_cell = with_changes(**cells, control={"nondeterministic": "per_cell"})
    with pytest.raises(ConfigError, match=r"6 × \(2 × 400 \+ 2 × 2\) = 4824 training runs"):
        validate_config(every_cell, SCHEMA)


def test_config_yaml_leaves_the_compile_keys_unset_so_that_those_given_are_known():
    # a model compiled by its own build keeps its compile but for the keys a user sets
    assert CONFIG["compile"] == {}
    assert validate_config(CONFIG, SCHEMA)["compile"]["optimizer"] == "adam"
    assert "  # optimizer: adam\n" in (REPO / "config.yaml").read_text()
