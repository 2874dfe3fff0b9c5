"""JAX and torch: real training runs on tiny data, each in its own process, on the NumPy input
pipeline: repeats identical, seeds different, a nudge caught at its step, the switches
recorded, the same batches on every backend, and JAX trained with TensorFlow unimportable."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_run

from keras_repro.backends import load_backend
from keras_repro.comparison.steps import checkpoint_differences, compare_traces
from keras_repro.config.roles import NPZ_KEYS
from keras_repro.data.dataset import write_npz_deterministic
from keras_repro.data.synthetic import make_arrays
from keras_repro.records.record import read_run
from keras_repro.training.launch import TrainingFailed, train_in_fresh_process

SEED, OTHER_SEED, NUDGED_STEP = 3, 4, 3
RUN = {"epochs": 2, "batch_size": 16, "pipeline": "numpy", "trace": {"every_steps": 1}}


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "dataset.npz"
    arrays = make_arrays(n_train=64, n_test=32)
    write_npz_deterministic({NPZ_KEYS[role]: array for role, array in arrays.items()}, path)
    return path


def launch(folder: Path, dataset: Path, backend: str, seed: int, repeat: int, **identity):
    record = folder / f"seed{seed}" / f"repeat{repeat}" / "history.json"
    settings = dataclasses.replace(tiny_run(seed, repeat, **RUN), backend=backend, **identity)
    train_in_fresh_process(
        dataset,
        record,
        record.with_name("trace.npz"),
        record.with_name("train.log"),
        settings,
        runs_per_gpu=1,
        gpu_lock_dir=folder / "locks",
    )
    return read_run(record)


# The JAX user's run: TensorFlow cannot be imported, the backend comes from --backend. The
# import is refused by a finder, as if TensorFlow were not installed (a None in sys.modules
# would not do: Keras takes "tensorflow" in sys.modules to mean that it was imported).
WITHOUT_TENSORFLOW = """
import sys

class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")

sys.meta_path.insert(0, NoTensorFlow())
from keras_repro.training.cli import main
main(sys.argv[1:])
import keras

assert keras.backend.backend() == "jax"
assert "tensorflow" not in sys.modules, "TensorFlow was imported after all"
"""


def train_without_tensorflow(folder: Path, dataset: Path, seed: int, repeat: int):
    record = folder / f"seed{seed}" / f"repeat{repeat}" / "history.json"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("KERAS_", "XLA_"))}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_TENSORFLOW,
            str(dataset),
            str(record),
            f"--seed={seed}",
            f"--repeat={repeat}",
            "--backend=jax",
            "--pipeline=numpy",
            "--epochs=2",
            "--batch-size=16",
            "--threads=1",
            "--device=cpu",
            "--trace-every-steps=1",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**environment, "PYTHONHASHSEED": str(seed)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return read_run(record)


@pytest.fixture(scope="module")
def runs(tiny_dataset, tmp_path_factory) -> dict[str, dict[str, object]]:
    """Per backend: two repeats of one seed, another seed, a nudged repeat."""
    made = {}
    for backend in ("jax", "torch"):
        folder = tmp_path_factory.mktemp(backend)
        first = launch(folder, tiny_dataset, backend, SEED, 1)
        if backend == "jax":
            again = train_without_tensorflow(folder, tiny_dataset, SEED, 2)
        else:
            again = launch(folder, tiny_dataset, backend, SEED, 2)
        made[backend] = {
            "first": first,
            "again": again,
            "other_seed": launch(folder, tiny_dataset, backend, OTHER_SEED, 1),
            "nudged": launch(folder, tiny_dataset, backend, SEED, 3, perturb_step=NUDGED_STEP),
        }
    return made


def bits(run) -> dict[str, object]:
    record = run.record
    return {
        "history": {k: [v.hex() for v in vs] for k, vs in record.history.items()},
        "evaluate": {k: v.hex() for k, v in record.evaluation.items()},
        "weights": record.weight_digests,
        "final": record.final_weight_digest,
        "data": record.data_digests,
        "loss": run.trace.step_loss.tobytes(),
        "checkpoints": run.trace.weight_digests.tobytes(),
    }


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_two_repeats_of_a_seed_are_bit_identical(runs, backend):
    first, again = runs[backend]["first"], runs[backend]["again"]
    assert first.record.settings["backend"] == again.record.settings["backend"] == backend
    assert first.record.fingerprint["keras_backend"] == backend
    assert len(first.trace.step_loss) == 8 and (first.trace.step_loss > 0).all()
    assert bits(first) == bits(again)
    assert compare_traces(first.trace, again.trace).identical


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_two_seeds_differ(runs, backend):
    first, other = runs[backend]["first"], runs[backend]["other_seed"]
    assert first.record.history != other.record.history
    assert first.record.final_weight_digest != other.record.final_weight_digest
    assert first.record.data_digests["train"] != other.record.data_digests["train"]
    assert first.record.data_digests["evaluate"] == other.record.data_digests["evaluate"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_nudge_is_caught_at_its_step(runs, backend):
    first, nudged = runs[backend]["first"], runs[backend]["nudged"]
    comparison = compare_traces(first.trace, nudged.trace)
    assert comparison.first_weight_checkpoint.step == NUDGED_STEP
    assert comparison.first_weight_checkpoint.variables == ["sequential/conv2d/kernel"]
    # The nudge stays in the weights that train on (JAX's trainer keeps them in its own state).
    steps, differing = checkpoint_differences(first.trace, nudged.trace)
    assert (differing[steps < NUDGED_STEP] == 0).all() and (
        differing[steps >= NUDGED_STEP] > 0
    ).all()
    assert first.record.final_weight_digest != nudged.record.final_weight_digest
    # A one-ULP nudge of one weight may not move a float32 loss; none moves before it.
    assert comparison.first_loss_step is None or comparison.first_loss_step.step > NUDGED_STEP


@pytest.mark.slow
def test_the_fingerprint_records_each_backends_switches_and_threads(runs):
    jax_print = runs["jax"]["first"].record.fingerprint
    assert jax_print["xla_gpu_deterministic_ops"] is True
    assert "--xla_gpu_deterministic_ops=true" in jax_print["environment"]["XLA_FLAGS"]
    assert jax_print["xla_cpu_threads"] == 1 and jax_print["jax_platform"] == "cpu"
    assert jax_print["environment"]["JAX_PLATFORMS"] == "cpu"
    assert jax_print["environment"]["KERAS_BACKEND"] == "jax"
    torch_print = runs["torch"]["first"].record.fingerprint
    assert torch_print["deterministic_algorithms"] is True
    assert torch_print["cudnn_benchmark"] is False and torch_print["cudnn_deterministic"]
    assert torch_print["intra_op_threads"] == torch_print["inter_op_threads"] == 1
    assert torch_print["environment"]["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch_print["environment"]["OMP_NUM_THREADS"] == "1"
    for fingerprint in (jax_print, torch_print):
        assert fingerprint["device"] == "cpu" and "tensorflow" not in fingerprint


@pytest.mark.slow
def test_the_numpy_pipeline_feeds_the_same_batches_on_every_backend(runs, tiny_dataset, tmp_path):
    on_tensorflow = launch(tmp_path, tiny_dataset, "tensorflow", SEED, 1)
    digests = [
        runs["jax"]["first"].record.data_digests,
        runs["torch"]["first"].record.data_digests,
        on_tensorflow.record.data_digests,
    ]
    assert digests[0] == digests[1] == digests[2]
    assert digests[0]["train"][0] != digests[0]["train"][1], "a new permutation every epoch"
    assert digests[0]["validation"] == digests[0]["evaluate"] * 2
    # The recipe's preprocessing runs in its model: the variables keep the recipe's paths.
    assert on_tensorflow.trace.variable_names[0] == "sequential/conv2d/kernel"


def test_the_launcher_sets_the_backend_before_python_starts(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # as a scheduler granting no GPU does
    log = tmp_path / "train.log"
    settings = dataclasses.replace(tiny_run(SEED, **RUN, device="gpu"), backend="torch")
    with pytest.raises(TrainingFailed, match="device: gpu, but Keras' torch backend runs on cpu"):
        train_in_fresh_process(
            tiny_dataset,
            tmp_path / "history.json",
            tmp_path / "trace.npz",
            log,
            settings,
            runs_per_gpu=1,
            gpu_lock_dir=tmp_path / "locks",
        )
    assert log.read_text().startswith(f"$ PYTHONHASHSEED={SEED} KERAS_BACKEND=torch ")
    assert not (tmp_path / "history.json").exists()


def test_keras_on_another_backend_than_the_run_is_a_clear_error(tiny_dataset, tmp_path):
    # A caller of train_and_record whose Keras was imported on another backend (the CLI and the
    # launcher set KERAS_BACKEND first, so they cannot get here).
    caller = textwrap.dedent(
        """
        import dataclasses
        import sys
        import keras
        from helpers import tiny_run
        from keras_repro.errors import ReproError
        from keras_repro.training.run import train_and_record
        settings = dataclasses.replace(tiny_run(1, pipeline="numpy"), backend="torch")
        try:
            train_and_record(sys.argv[1], sys.argv[2], sys.argv[3], settings)
        except ReproError as error:
            sys.exit(f"error: {error}")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", caller, str(tiny_dataset), *(str(tmp_path / n) for n in "rt")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": str(Path(__file__).parent)},
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "error: the run trains on torch, but Keras here runs tensorflow" in done.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "t").exists()


def test_child_environments_merge_the_users_xla_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x --xla_gpu_deterministic_ops=false")
    jax = load_backend("jax")
    on = jax.child_environment(1, "cpu", op_determinism=True)
    assert on["XLA_FLAGS"] == "--xla_dump_to=/tmp/x --xla_gpu_deterministic_ops=true"
    assert on["KERAS_BACKEND"] == "jax" and on["JAX_PLATFORMS"] == "cpu"
    off = jax.child_environment(2, "gpu", op_determinism=False)
    assert off["XLA_FLAGS"] == "--xla_dump_to=/tmp/x" and "JAX_PLATFORMS" not in off
    assert off["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" and off["OMP_NUM_THREADS"] == "2"
    torch = load_backend("torch").child_environment(4, "cpu", op_determinism=True)
    assert torch == {
        "KERAS_BACKEND": "torch",
        "OMP_NUM_THREADS": "4",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        "KERAS_TORCH_DEVICE": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
    }
    assert "CUBLAS_WORKSPACE_CONFIG" not in load_backend("torch").child_environment(
        1, "auto", op_determinism=False
    )
    assert load_backend("tensorflow").child_environment(1, "auto", True) == {
        "KERAS_BACKEND": "tensorflow",
        "OMP_NUM_THREADS": "1",
    }


JAX_POOL = textwrap.dedent(
    """
    import json, os
    os.environ["JAX_PLATFORMS"] = "cpu"
    from keras_repro.backends import load_backend
    backend = load_backend("jax")
    backend.configure(1, "cpu")
    print(json.dumps([backend.xla_cpu_threads(), len(os.sched_getaffinity(0))]))
    """
)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to tell 1 thread")
def test_jax_starts_xla_with_a_cpu_pool_of_the_run_threads_and_gives_the_cpus_back():
    done = subprocess.run(
        [sys.executable, "-c", JAX_POOL], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    pool, allowed = json.loads(done.stdout.splitlines()[-1])
    assert pool == 1 and allowed == len(os.sched_getaffinity(0))


def test_batch_fingerprints_see_content_and_order():
    from keras_repro.digest import batch_fingerprint

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert batch_fingerprint(a).shape == (8,) and batch_fingerprint(a).dtype == np.uint8
    assert (batch_fingerprint(a) != batch_fingerprint(a[::-1])).any()
    assert (batch_fingerprint({"x": a, "z": a[:1]}) == batch_fingerprint([a, a[:1]])).all()
