"""The seams: backends, models, input pipelines and run settings each have one place, and the
training run itself knows none of their specifics."""

from __future__ import annotations

import ast
import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import REPO

from keras_repro.backends import BACKENDS, can_change_results, cpu_only_environment, load_backend
from keras_repro.backends.common import RESULT_FIELDS
from keras_repro.backends.keras_import import INTEGRATIONS
from keras_repro.config.schema import ConfigError, load_schema
from keras_repro.config.settings import RunSettings, run_setting_keys, validate_run_config
from keras_repro.models import ModelError, resolve_model
from keras_repro.pipelines import PIPELINES, load_pipeline

PACKAGE = REPO / "src/keras_repro"
FRAMEWORKS = ("tensorflow", "jax", "torch")


def module_level_imports(path: Path) -> set[str]:
    """What a module imports when it is imported: not inside its functions, but inside the
    blocks its body runs (``with keras_without_integrations():``)."""
    names = set()
    pending: list[ast.AST] = list(ast.parse(path.read_text()).body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            pending += ast.iter_child_nodes(node)
    return names


def imported_when_importing(module: str) -> dict[str, set[str]]:
    """Every package module imported (at module level) by importing ``module``, with what
    each imports."""
    seen: dict[str, set[str]] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        parts = name.split(".")[1:]
        path = PACKAGE.joinpath(*parts).with_suffix(".py")
        if not path.exists():
            path = PACKAGE.joinpath(*parts, "__init__.py")
        if not path.exists():
            continue  # "from keras_repro.x import name" names a function, not a module
        seen[name] = module_level_imports(path)
        pending += [n for n in seen[name] if n.startswith("keras_repro.")]
        # importing a.b.c imports a.b first
        pending += [".".join(name.split(".")[:i]) for i in range(2, len(name.split(".")))]
    return seen


def test_the_training_run_imports_no_framework_but_keras():
    for module, imports in imported_when_importing("keras_repro.training.run").items():
        frameworks = {name.split(".")[0] for name in imports} & set(FRAMEWORKS)
        assert not frameworks, (
            f"{module} imports {frameworks} when keras_repro.training.run is imported"
        )


# How each process that trains, replays, zooms, checks a model or draws initializers imports
# Keras first: a run's CLI gets as far as the missing dataset, a model check as far as the
# missing model file.
FIRST_KERAS_IMPORTS = {
    "run": "from keras_repro.training.cli import main\nmain(['missing.npz', 'h.json', '--seed=1'])",
    "replayed segment": "import keras_repro.training.replay",
    "zoom": "import keras_repro.training.zoom",
    "initializer draw": "import keras_repro.training.initializers",
    "model check": "from keras_repro.models.check import check_model\n"
    "check_model('missing.py:build', {}, {})",
}


def loaded_after(code: str, backend: str) -> list[str]:
    """Whether a fresh process on ``backend`` has imported Keras once ``code`` ran (or failed),
    and which of its integrations."""
    probe = textwrap.dedent("""\
        import atexit, json, sys
        from keras_repro.backends.keras_import import INTEGRATIONS
        def loaded():
            print(json.dumps([n for n in ("keras", *INTEGRATIONS) if n in sys.modules]))
        atexit.register(loaded)
    """)
    environment = {**os.environ, **cpu_only_environment(backend), "PYTHONPATH": str(PACKAGE.parent)}
    done = subprocess.run(
        [sys.executable, "-c", probe + code],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("process", FIRST_KERAS_IMPORTS)
def test_a_framework_process_imports_keras_without_the_integrations_it_never_uses(process):
    assert loaded_after(FIRST_KERAS_IMPORTS[process], "tensorflow") == ["keras"]


def test_the_integrations_stay_importable_and_the_backend_keeps_its_framework():
    with_keras = "from keras_repro.backends import keras_without_integrations\n"
    with_keras += "with keras_without_integrations():\n    import keras\n"
    assert loaded_after(with_keras, "torch") == ["keras"]
    with_keras += "import sklearn, matplotlib.pyplot, pandas"
    assert loaded_after(with_keras, "jax") == ["keras", *INTEGRATIONS]


def test_only_backends_pipelines_and_models_name_a_framework():
    allowed = ("backends/", "pipelines/", "models/")
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text())
        named = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in (node.names if isinstance(node, ast.Import) else [])
        } | {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }
        if named & set(FRAMEWORKS):
            assert relative.startswith(allowed), f"{relative} imports {named & set(FRAMEWORKS)}"


def test_the_config_offers_exactly_the_backends_there_are():
    schema = load_schema()["properties"]
    assert tuple(schema["backends"]["items"]["enum"]) == BACKENDS
    assert PIPELINES and set(schema["pipeline"]["enum"]) == set(PIPELINES)


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_has_the_same_functions(name):
    backend = load_backend(name)
    for function in (
        "child_environment",
        "configure",
        "enable_determinism",
        "fingerprint",
        "make_step_recorder",
    ):
        assert callable(getattr(backend, function)), f"{name}.{function}"
    assert backend.RESULT_FIELDS and not set(backend.RESULT_FIELDS) & set(RESULT_FIELDS)
    assert set(backend.ENVIRONMENT_VARIABLES) <= {
        f.removeprefix("environment.") for f in backend.RESULT_FIELDS
    }


def test_an_unknown_backend_is_named():
    with pytest.raises(ValueError, match="unknown backend 'theano'; known: tensorflow, jax, torch"):
        load_backend("theano")


def test_which_fields_can_change_a_result_depends_on_the_backend():
    assert "tensorflow" in load_backend("tensorflow").RESULT_FIELDS
    assert can_change_results("tensorflow", ["tensorflow"])
    assert can_change_results("keras", []) and not can_change_results("tensorflow", [])
    assert not can_change_results("hostname", ["tensorflow"])
    assert can_change_results("gpus.0.compute_capability", [])


@pytest.mark.parametrize("name", PIPELINES)
def test_every_pipeline_has_the_same_names(name):
    pipeline = load_pipeline(name)
    for function in ("make_pipelines", "steps", "fit_callbacks", "batch_fingerprints"):
        assert callable(getattr(pipeline, function)), f"{name}.{function}"
    assert isinstance(pipeline.MAPS_PREPROCESSING, bool)


def test_the_recipe_does_its_preprocessing_in_its_model_for_a_pipeline_that_maps_none():
    import keras

    entry = resolve_model("recipe")
    paths = {}
    for name, build, batch in (
        ("mapped", entry.build, (None, 32, 32, 1)),
        ("inside", entry.build_with_preprocessing, (None, 28, 28)),
    ):
        keras.utils.clear_session()  # layer names count per session
        model = build((28, 28), 3)
        model.build(batch)
        assert model.output_shape == (None, 3)
        paths[name] = [w.path for w in model.weights]
    keras.utils.clear_session()
    assert paths["inside"] == paths["mapped"]
    assert paths["inside"][0] == "sequential/conv2d/kernel"


def test_the_recipe_is_the_first_model():
    entry = resolve_model("recipe")
    assert entry.name == "recipe" and entry.preprocess is not None
    model = entry.build((28, 28), 3)
    model.build((None, 32, 32, 1))
    assert model.name == "sequential" and model.output_shape == (None, 3)
    assert model.weights[0].path == "sequential/conv2d/kernel"


USER_MODELS = {
    "sequential": """
        import keras
        def build(input_shape, num_classes):
            return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                                     keras.layers.Dense(num_classes, activation="softmax")])
    """,
    "functional": """
        import keras
        def build(input_shape, num_classes):
            inputs = keras.Input(input_shape)
            hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(inputs))
            return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(hidden))
    """,
    "subclassed": """
        import keras
        class Small(keras.Model):
            def __init__(self, num_classes):
                super().__init__()
                self.flatten = keras.layers.Flatten()
                self.out = keras.layers.Dense(num_classes, activation="softmax")
            def call(self, x):
                return self.out(self.flatten(x))
        def build(input_shape, num_classes):
            return Small(num_classes)
    """,
}


TRAIN_EACH = """
import json, sys
import keras, numpy as np
from keras_repro.data.synthetic import make_arrays
from keras_repro.backends import load_backend
from keras_repro.models import resolve_model
from keras_repro.pipelines import load_pipeline
from keras_repro.training.recording import record_steps, weights_sha256

traced, specs = sys.argv[1] == "traced", sys.argv[2:]
backend = load_backend("tensorflow")
backend.configure(1, "cpu")
backend.enable_determinism()
arrays = make_arrays(n_train=40, n_test=16)
for spec in specs:
    keras.utils.set_random_seed(3)
    train, _ = load_pipeline("tfdata").make_pipelines(arrays, 8, None, 3)
    model = resolve_model(spec).build((28, 28), 10)
    recorder = backend.make_step_recorder(5, 1)
    if traced:
        record_steps(model, recorder)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=False)
    model.fit(train, epochs=1, verbose=0)
    losses = recorder.step_losses()
    print(json.dumps({
        "weights": weights_sha256(model),
        "losses_recorded": bool(np.isfinite(losses).all() and (losses > 0).all()),
        "batches_recorded": bool((recorder.train_batches() != 0).any(axis=(1, 2)).all()),
    }))
"""


@pytest.mark.slow
def test_a_user_model_file_is_built_and_its_steps_are_traced(tmp_path):
    """Any Keras model (Sequential, functional, subclassed) is traced as it is: the hook needs
    no subclass of ours, and training with it gives the same weights as training without it
    (the traced and the plain runs each in a fresh process, the models one after another)."""
    specs = []
    for kind, source in USER_MODELS.items():
        (tmp_path / f"{kind}.py").write_text(textwrap.dedent(source))
        specs.append(f"{tmp_path / kind}.py:build")
    results = {}
    for variant in ("traced", "plain"):
        done = subprocess.run(
            [sys.executable, "-c", TRAIN_EACH, variant, *specs],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": "3"},
        )
        assert done.returncode == 0, done.stderr
        results[variant] = [json.loads(line) for line in done.stdout.splitlines()[-len(specs) :]]
    for kind, traced, plain in zip(USER_MODELS, results["traced"], results["plain"], strict=True):
        assert traced["losses_recorded"] and traced["batches_recorded"], kind
        assert not plain["losses_recorded"], f"{kind}: nothing recorded without the hook"
        assert traced["weights"] == plain["weights"], kind


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nowhere/model.py:build", r"nowhere/model\.py does not exist"),
        ("EXISTING:missing", r"has no function 'missing'"),
        ("BROKEN:build", r"importing .* failed: ZeroDivisionError: division by zero"),
        ("resnet", r"not a known model \(recipe, batchnorm_cnn, .*\) nor path/to/file\.py:func"),
    ],
)
def test_a_model_that_cannot_be_found_is_named(tmp_path, spec, message):
    (tmp_path / "fine.py").write_text("def build(input_shape, num_classes):\n    return None\n")
    (tmp_path / "broken.py").write_text("1 / 0\n")
    spec = spec.replace("EXISTING", str(tmp_path / "fine.py"))
    spec = spec.replace("BROKEN", str(tmp_path / "broken.py"))
    with pytest.raises(ModelError, match=message):
        resolve_model(spec)


def test_run_settings_travel_as_one_json_file(tmp_path):
    settings = RunSettings(seed=3, repeat=2, config={"epochs": 4, "trace": {"every_steps": 2}})
    settings.write(tmp_path / "settings.json")
    again = RunSettings.read(tmp_path / "settings.json")
    assert again == settings and again["epochs"] == 4 and again["batch_size"] == 64
    data = json.loads((tmp_path / "settings.json").read_text())
    assert data["config"]["trace"] == {"every_steps": 2}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"epochs": 0}, r"epochs: 0 is less than the minimum of 1"),
        ({"device": "tpu"}, r"device: 'tpu' is not one of"),
        ({"seeds": [1]}, r"\['seeds'\] are not run settings"),
    ],
)
def test_run_settings_are_validated_by_the_schema(config, message):
    with pytest.raises(ConfigError, match=message):
        validate_run_config(config)


def test_a_new_run_setting_is_the_schema_and_nothing_else(monkeypatch):
    """A key marked x-run-setting in the schema reaches the run's settings, the training CLI
    and the record without any other edit."""
    import argparse

    from keras_repro.config import schema as config_schema
    from keras_repro.config import settings

    schema = copy.deepcopy(config_schema.load_schema())
    schema["properties"]["warmup_steps"] = {
        "x-run-setting": True,
        "type": "integer",
        "minimum": 0,
        "default": 0,
        "description": "Steps of learning-rate warm-up.",
    }
    monkeypatch.setattr(config_schema, "_cached_schema", lambda path: schema)
    assert "warmup_steps" in run_setting_keys()
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    args = parser.parse_args(["--seed=1", "--warmup-steps=7", "--trace-every-steps=3"])
    made = settings.from_arguments(args)
    assert made["warmup_steps"] == 7 and made["trace"] == {"every_steps": 3}
    assert made.to_record()["warmup_steps"] == 7
    assert RunSettings(seed=1, repeat=1)["warmup_steps"] == 0
