"""Checkpoints: the file read back exactly, hostile ones refused in one line before anything is
restored, the boundaries and the segments planned, every zoo model resumed bit for bit from a
checkpoint in a fresh process on each backend, and segments inside epochs judged identical."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO

from keras_repro.comparison.segments import compare_segment
from keras_repro.config import NPZ_KEYS, RunSettings
from keras_repro.data.dataset import write_npz_deterministic
from keras_repro.data.synthetic import make_arrays
from keras_repro.models import NAMES
from keras_repro.records import (
    Checkpoint,
    CheckpointError,
    planned_steps,
    read_checkpoint,
    read_run,
    replayed_segments,
    verify_checkpoint_file,
    write_checkpoint,
)
from keras_repro.records.checkpoint import INDEX

IDENTITY = {"seed": 3, "repeat": 1, "arm": "seeded", "model": "recipe", "backend": "jax"}
VARIABLES = {
    "model/dense/kernel": np.arange(12, dtype=np.float32).reshape(3, 4),
    "model/seed_generator/state": np.array([3, 0], dtype=np.uint32),
    "optimizer/adam/iteration": np.array(5, dtype=np.int64),
}
RANDOM = {"random/numpy_keys": np.arange(624, dtype=np.uint32)}


def expected(variables: dict[str, np.ndarray] = VARIABLES) -> dict[str, tuple]:
    return {name: (array.dtype, array.shape) for name, array in variables.items()}


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    checkpoint = Checkpoint(2, 10, 1, IDENTITY, {"iterators": 4}, {**VARIABLES, **RANDOM})
    path = tmp_path / "checkpoints" / "2.npz"
    sha256 = write_checkpoint(checkpoint, path)
    verify_checkpoint_file(path, sha256)
    return path


def test_a_checkpoint_reads_back_exactly(saved):
    read = read_checkpoint(saved, IDENTITY, expected(), random_prefix="random/")
    assert (read.index, read.step, read.epoch, read.position) == (2, 10, 1, {"iterators": 4})
    assert set(read.variables) == {*VARIABLES, *RANDOM}
    for name, array in {**VARIABLES, **RANDOM}.items():
        assert read.variables[name].dtype == array.dtype
        assert read.variables[name].tobytes() == array.tobytes()


def test_writing_the_same_state_twice_gives_the_same_bytes(saved, tmp_path):
    again = tmp_path / "again.npz"
    write_checkpoint(
        Checkpoint(2, 10, 1, IDENTITY, {"iterators": 4}, {**VARIABLES, **RANDOM}), again
    )
    assert again.read_bytes() == saved.read_bytes()


def rewrite(path: Path, change) -> None:
    """Rewrite the checkpoint's members through ``change(members: dict[name, bytes])``."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    change(members)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def index_of(members: dict[str, bytes]) -> dict:
    return json.loads(members[INDEX])


def set_index(members: dict[str, bytes], index: dict) -> None:
    members[INDEX] = json.dumps(index).encode()


def _wrong_shape(members):
    members["v0.npy"] = npy(np.zeros((4, 3), np.float32))


def _pickled_member(members):
    members["v0.npy"] = npy(np.array([{"a": 1}] * 12, dtype=object).reshape(3, 4), True)


def _inflating_member(members):
    # a header that announces far more data than the model's variable holds
    members["v0.npy"] = npy(np.zeros((3000, 4000), np.float32))


def _missing_variable(members):
    index = index_of(members)
    index["variables"] = index["variables"][1:]
    del members[f"v{len(index['variables'])}.npy"]
    set_index(members, index)


def _another_seed(members):
    index = index_of(members)
    index["identity"]["seed"] = 4
    set_index(members, index)


def _not_a_checkpoint(members):
    members.pop(INDEX)


def _huge_random_state(members):
    index = index_of(members)
    entry = next(e for e in index["variables"] if e["name"].startswith("random/"))
    entry["shape"] = [10_000_000]
    set_index(members, index)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_wrong_shape, "model/dense/kernel has shape (4, 3), the model's (3, 4)"),
        (_pickled_member, "holds Python objects (a pickle), which are never read"),
        (_inflating_member, "model/dense/kernel has shape (3000, 4000)"),
        (_missing_variable, "does not hold this model's state: missing ['model/dense/kernel']"),
        (_another_seed, "a checkpoint of seed 4, not of this run's 3: it belongs to another run"),
        (_not_a_checkpoint, "holds no index.json, so it is not a checkpoint"),
        (_huge_random_state, "random/numpy_keys is a uint32 array of shape (10000000,), not a"),
    ],
)
def test_a_hostile_checkpoint_is_refused_in_one_line(saved, change, message):
    rewrite(saved, change)
    with pytest.raises(CheckpointError) as refused:
        read_checkpoint(saved, IDENTITY, expected(), random_prefix="random/")
    assert message in str(refused.value)
    assert "\n" not in str(refused.value) and str(refused.value).startswith(f"checkpoint {saved}")


def test_a_pickle_truncated_file_or_link_is_refused(saved, tmp_path):
    pickled = tmp_path / "pickled.npz"
    pickled.write_bytes(pickle.dumps({"model/dense/kernel": VARIABLES["model/dense/kernel"]}))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    link = tmp_path / "link.npz"
    link.symlink_to(saved)
    for path, message in (
        (pickled, "not a readable checkpoint"),
        (truncated, "not a readable checkpoint"),
        (link, "is not a regular file"),
    ):
        with pytest.raises(CheckpointError, match=message):
            read_checkpoint(path, IDENTITY, expected(), random_prefix="random/")


def test_an_edited_checkpoint_is_told_by_its_sha256(saved):
    recorded = __import__("hashlib").sha256(saved.read_bytes()).hexdigest()
    rewrite(saved, _another_seed)
    with pytest.raises(CheckpointError, match="it was changed after training"):
        verify_checkpoint_file(saved, recorded)


def test_checkpoints_are_planned_at_the_boundaries_the_config_sets():
    every_epoch = {"every_epochs": 1, "every_steps": None}
    assert planned_steps(every_epoch, 3, 5) == [0, 5, 10, 15]
    assert planned_steps({"every_epochs": 2, "every_steps": None}, 3, 5) == [0, 10, 15]
    assert planned_steps({"every_epochs": None, "every_steps": 4}, 2, 5) == [0, 4, 8, 10]
    assert planned_steps({"every_epochs": None, "every_steps": None}, 2, 5) == []


def test_the_segments_replayed_are_drawn_with_the_first_and_the_last():
    assert replayed_segments(10, None, 0) == list(range(1, 11))
    drawn = replayed_segments(10, 3, 0)
    assert len(drawn) == 3 and drawn[0] == 1 and drawn[-1] == 10
    assert drawn == replayed_segments(10, 3, 0), "the same seed draws the same segments"
    assert replayed_segments(10, 3, 1) != drawn or replayed_segments(10, 3, 2) != drawn
    assert replayed_segments(3, 1, 0) == [1]


# Every model of the zoo, resumed from its run's checkpoint after epoch 1 in a fresh process,
# on each backend: every field the run recorded after that checkpoint is the same.


@pytest.fixture(scope="module")
def zoo_dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zoo") / "dataset.npz"
    arrays = make_arrays(n_train=48, n_test=16)
    write_npz_deterministic({NPZ_KEYS[role]: array for role, array in arrays.items()}, path)
    return path


def drive(mode: str, dataset: Path, folder: Path, backend: str) -> None:
    settings = RunSettings(
        seed=7, repeat=1, config={"threads": 1, "device": "cpu"}, backend=backend
    )
    environment = {**os.environ, **settings.child_environment(), "PYTHONHASHSEED": "7"}
    environment["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), environment["PYTHONPATH"]])
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests/zoo_driver.py"),
            mode,
            str(dataset),
            str(folder),
            backend,
        ],
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_every_zoo_model_resumes_bit_for_bit_in_a_fresh_process(zoo_dataset, tmp_path, backend):
    drive("train", zoo_dataset, tmp_path, backend)
    drive("replay", zoo_dataset, tmp_path, backend)
    for name in NAMES:
        run = read_run(tmp_path / name / "run/history.json")
        resumed = read_run(tmp_path / name / "segment2/history.json")
        record, again = run.record, resumed.record
        assert [c["step"] for c in record.checkpoints] == [0, 3, 6], name
        assert again.segment["first_step"] == 4 and again.segment["last_step"] == 6, name
        assert {k: v[1:] for k, v in record.history.items()} == again.history, name
        assert record.evaluation == again.evaluation, name
        assert record.weight_digests[1:] == again.weight_digests, name
        assert record.final_weight_digest == again.final_weight_digest, name
        assert again.data_digests == {
            "train": record.data_digests["train"][1:],
            "validation": record.data_digests["validation"][1:],
            "evaluate": record.data_digests["evaluate"],
        }, name
        assert again.segment["end_state"] == record.checkpoints[2]["variables"], name
        trace, replayed = run.trace.segment(4, 6), resumed.trace
        assert trace.step_loss.tobytes() == replayed.step_loss.tobytes(), name
        assert (trace.checkpoint_steps == replayed.checkpoint_steps).all(), name
        assert trace.weight_digests.tobytes() == replayed.weight_digests.tobytes(), name
        assert trace.batch_fingerprints.tobytes() == replayed.batch_fingerprints.tobytes(), name


@pytest.mark.slow
def test_segments_inside_epochs_replay_and_are_judged_identical(zoo_dataset, tmp_path):
    # The last segment starts inside the last epoch and ends the run: it validates at the
    # epoch's end, which is no pass of the run's to compare, and it runs no evaluate().
    drive("train-inside", zoo_dataset, tmp_path, "tensorflow")
    drive("replay-inside", zoo_dataset, tmp_path, "tensorflow")
    run = read_run(tmp_path / "recipe/run/history.json")
    assert [c["step"] for c in run.record.checkpoints] == [0, 2, 4, 6]
    for segment in (1, 2, 3):
        replay = read_run(tmp_path / f"recipe/segment{segment}/history.json")
        assert replay.record.data_digests == {"train": [], "validation": [], "evaluate": []}
        pair, divergences = compare_segment(run, replay, None)
        assert pair.identical and not divergences, (segment, divergences)
        assert pair.steps == [2 * segment - 1, 2 * segment]
