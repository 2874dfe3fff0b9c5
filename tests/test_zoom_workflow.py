"""Where exactly, through the real workflow: a pair that parted is replayed step by step from the
last checkpoint both runs agree in, and named at the exact step, the first layer and the phase,
on TensorFlow, JAX and torch; a fault in the data fed is named as the data phase, and a
layer's unseeded noise as the forward pass. (The noise floor is measured on real data in
test_workflow.py.)"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from serving import serving
from workflows import snakemake, write_synthetic_config

pytestmark = pytest.mark.workflow

# A layer that adds noise drawn from the operating system's entropy: nothing a seed reaches.
NOISY_MODEL = textwrap.dedent(
    """
    import keras
    import numpy as np


    class Jitter(keras.layers.Layer):
        def call(self, x):
            noise = np.random.default_rng().normal(size=tuple(x.shape[1:])).astype("float32")
            return x + keras.ops.convert_to_tensor(noise * 0.01)


    def build(input_shape, num_classes):
        return keras.Sequential(
            [
                keras.Input(input_shape),
                keras.layers.Rescaling(1 / 255),
                keras.layers.Flatten(),
                keras.layers.Dense(8, activation="relu", name="hidden"),
                Jitter(name="jitter"),
                keras.layers.Dense(num_classes, activation="softmax", name="out"),
            ]
        )
    """
)
SMALL = {
    "seeds": [812],
    "repeats": 2,
    "epochs": 2,
    "pipeline": "numpy",
    "control": {"enabled": False},
    "trace": {"every_steps": 2},
}


def cell_summary(workdir: Path, model: str, backend: str) -> dict:
    return json.loads((workdir / f"results/report/{model}/{backend}/summary.json").read_text())


@pytest.fixture(scope="module")
def zoomed(tmp_path_factory) -> Path:
    """The recipe nudged in its second epoch on every backend (5 steps an epoch, a checkpoint
    per epoch, weights hashed every 2 steps)."""
    root = tmp_path_factory.mktemp("zoom")
    with serving(root / "served") as state:
        workdir = root / "work"
        write_synthetic_config(
            workdir,
            state.root,
            state.url,
            **SMALL,
            backends=["tensorflow", "jax", "torch"],
            perturb={"seed": 812, "repeat": 2, "step": 7},
        )
        result = snakemake(workdir)
        assert result.returncode != 0 and "NOT reproducible" in result.stdout, result.stdout[-5000:]
        yield workdir


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_a_nudge_between_weight_checkpoints_is_named_at_its_step_layer_and_the_update(
    zoomed, backend
):
    summary = cell_summary(zoomed, "recipe", backend)
    (pair,) = summary["seeds"]["812"]["pairs"]
    zoom = pair["zoom"]
    record = json.loads(
        (zoomed / f"results/runs/recipe/{backend}/seed812/repeat2/history.json").read_text()
    )
    nudged = record["settings"]["perturb_variable"]
    # the runs agree in the checkpoint after epoch 1 (step 5): only steps 6 to 8 are replayed
    assert (zoom["from_checkpoint"], zoom["steps_replayed"]) == (1, 3)
    assert (zoom["step"], zoom["phase"], zoom["name"]) == (7, "update", nudged)
    assert zoom["layer"] == nudged.rsplit("/", 1)[0] and zoom["ulps"] == 1
    said = pair["first_divergence"]["explanation"]
    assert f"they part at step 7, in the update of layer {zoom['layer']}" in said
    partings = json.loads((zoomed / f"results/report/recipe/{backend}/partings.json").read_text())
    assert [p["pair"] for p in partings["partings"]] == ["repeat2"], "only the pair that parted"
    # the matrix, the page the console points to, says the same step, phase and layer
    matrix = json.loads((zoomed / "results/report/matrix.json").read_text())
    (cell,) = [c for c in matrix["cells"] if (c["model"], c["backend"]) == ("recipe", backend)]
    parting = cell["seeds"][0]["parting"]
    assert (parting["step"], parting["first"], parting["layers"]) == (7, "update", [zoom["layer"]])
    page = (zoomed / "results/report/report.md").read_text()
    assert f"diverged at step 7, in the update; layer {zoom['layer']}; cause: compute" in page


@pytest.fixture(scope="module")
def fed_differently(tmp_path_factory) -> Path:
    """Two examples of the batch at step 3 swapped in one run, beside a model that draws
    unseeded noise (on TensorFlow: the forward pass is recorded on every backend by the nudged
    runs above, where it must agree for the update to be named)."""
    root = tmp_path_factory.mktemp("fed")
    with serving(root / "served") as state:
        workdir = root / "work"
        workdir.mkdir()
        (workdir / "noisy.py").write_text(NOISY_MODEL)
        write_synthetic_config(
            workdir,
            state.root,
            state.url,
            **SMALL,
            models=["recipe", "noisy.py:build"],
            perturb={"seed": 812, "repeat": 2, "step": 3, "batch": True},
        )
        result = snakemake(workdir)
        assert result.returncode != 0 and "NOT reproducible" in result.stdout, result.stdout[-5000:]
        (workdir / "console.txt").write_text(result.stdout)
        yield workdir


def test_a_batch_fed_differently_is_named_as_the_data_phase(fed_differently):
    said = (fed_differently / "console.txt").read_text()
    assert "a deliberate swap of two examples in the batch fed to seed 812 repeat 2 at step 3" in (
        said
    )
    (pair,) = cell_summary(fed_differently, "recipe", "tensorflow")["seeds"]["812"]["pairs"]
    assert pair["cause"] == "data"
    zoom = pair["zoom"]
    assert (zoom["step"], zoom["phase"], zoom["name"]) == (3, "data", "inputs")


def test_unseeded_noise_in_the_forward_pass_is_named_at_the_first_step_and_its_layer(
    fed_differently,
):
    summary = cell_summary(fed_differently, "noisy.build", "tensorflow")
    (pair,) = summary["seeds"]["812"]["pairs"]
    zoom = pair["zoom"]
    assert (zoom["from_checkpoint"], zoom["step"], zoom["phase"]) == (0, 1, "forward")
    assert zoom["layer"].endswith("/jitter"), zoom
