"""Decoding, validation, subsetting and the byte-identical dataset file."""

from __future__ import annotations

import gzip
import json
import time

import numpy as np
import pytest

from keras_repro.data.dataset import (
    DatasetError,
    build_dataset,
    content_identity,
    encode_idx,
    load_dataset,
    validate_arrays,
)
from keras_repro.data.decoding import decode_idx
from keras_repro.data.download import download_dataset
from keras_repro.data.synthetic import write_idx_files, write_keras_npz


def download_local(tmp_path, arrays, fmt: str, name: str):
    """Generate a local source of ``fmt`` and download it: the folder build_dataset reads."""
    folder = tmp_path / f"{name}-source"
    if fmt == "npz":
        files = write_keras_npz(arrays, folder / "mnist.npz")
    else:
        files = write_idx_files(arrays, folder)
    source = {"name": name, "format": fmt, "location": str(folder), "files": files}
    record = tmp_path / name / "source.json"
    download_dataset("synthetic", [source], record, timeout=5, attempts=1, backoff_seconds=0)
    return record


@pytest.fixture
def download_dir(tmp_path, arrays):
    return download_local(tmp_path, arrays, "idx", "local")


def test_idx_round_trip_is_the_canonical_encoding(arrays):
    raw = encode_idx(arrays["train_images"])
    assert raw[:4] == bytes([0, 0, 8, 3])
    np.testing.assert_array_equal(decode_idx(raw), arrays["train_images"])


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + b"abc", "not an unsigned-byte IDX"),
        (bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + b"abc", "needs 13"),
        (b"\x00\x00", "too short"),
    ],
)
def test_malformed_idx_is_refused(raw, problem):
    with pytest.raises(DatasetError, match=problem):
        decode_idx(raw)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda a: a.update(train_labels=np.full(300, -1, np.int8)), "-1 found"),
        (lambda a: a.update(test_images=a["test_images"][:, :27]), "one sample shape"),
        (lambda a: a.update(train_labels=a["train_labels"][:-1]), "300 examples but 299 labels"),
        (lambda a: a.update(test_images=a["test_images"].astype(np.int32)), "uint8 or float"),
        (lambda a: a.update(test_labels=a["test_labels"].astype(np.float32)), "integers"),
        (lambda a: a.update(train_images=np.full((300, 4), np.nan, np.float32)), "NaN"),
        (lambda a: a.update(train_images=a["train_images"][:, 0, 0]), r"a shape per example"),
    ],
)
def test_invalid_arrays_are_refused(arrays, change, problem):
    change(arrays)
    with pytest.raises(DatasetError, match=problem):
        validate_arrays(arrays)


def test_counts_must_match_the_dataset_promise(arrays):
    with pytest.raises(DatasetError, match="train: 300 examples, the dataset promises 60000"):
        validate_arrays(arrays, {"train": 60000, "test": 100})


def test_build_writes_subset_and_manifest(tmp_path, download_dir, arrays, identity):
    manifest = build_dataset(
        download_dir, tmp_path / "d.npz", tmp_path / "m.json", {"train": 50, "test": None}
    )
    loaded = load_dataset(tmp_path / "d.npz")
    np.testing.assert_array_equal(loaded["train_images"], arrays["train_images"][:50])
    np.testing.assert_array_equal(loaded["test_labels"], arrays["test_labels"])
    assert manifest == json.loads((tmp_path / "m.json").read_text())
    assert manifest["counts"] == {
        "train": 50,
        "test": 100,
        "available_train": 300,
        "available_test": 100,
    }
    assert manifest["source_content_sha256"] == identity
    assert manifest["source"]["name"] == "local"
    assert manifest["preprocessing"]["subset"] == {"train": 50, "test": None}
    assert set(manifest["arrays"]) == {"x_train", "y_train", "x_test", "y_test"}
    with np.load(tmp_path / "d.npz", allow_pickle=False) as npz:
        assert npz["x_train"].dtype == np.uint8


def test_rebuild_is_byte_identical(tmp_path, download_dir):
    subset = {"train": None, "test": 20}
    build_dataset(download_dir, tmp_path / "a.npz", tmp_path / "a.json", subset)
    time.sleep(2.1)  # zip timestamps have 2 s resolution: a later build must not differ
    build_dataset(download_dir, tmp_path / "b.npz", tmp_path / "b.json", subset)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert (tmp_path / "a.json").read_text().replace("a.npz", "b.npz") == (
        tmp_path / "b.json"
    ).read_text()


def test_npz_and_idx_builds_hold_the_same_arrays(tmp_path, arrays):
    from_npz = download_local(tmp_path, arrays, "npz", "dl-npz")
    from_idx = download_local(tmp_path, arrays, "idx", "dl-idx")
    subset = {"train": None, "test": None}
    build_dataset(from_npz, tmp_path / "a.npz", tmp_path / "a.json", subset)
    build_dataset(from_idx, tmp_path / "b.npz", tmp_path / "b.json", subset)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_subset_larger_than_the_split_is_refused(tmp_path, download_dir):
    with pytest.raises(DatasetError, match=r"subset\.test = 500, but the test split has only 100"):
        build_dataset(download_dir, tmp_path / "d.npz", tmp_path / "m.json", {"test": 500})
    assert not (tmp_path / "d.npz").exists()


def test_download_changed_after_verification_is_refused(tmp_path, download_dir, arrays):
    path = download_dir.with_name("train-labels-idx1-ubyte.gz")
    changed = (arrays["train_labels"] + 1) % 10
    path.write_bytes(gzip.compress(encode_idx(changed)))
    with pytest.raises(DatasetError, match="changed after it was verified"):
        build_dataset(download_dir, tmp_path / "d.npz", tmp_path / "m.json", {})
    assert not (tmp_path / "d.npz").exists()


def test_content_identity_ignores_compression(arrays):
    assert content_identity(arrays) == content_identity({k: v.copy() for k, v in arrays.items()})


def other_data(n_train: int = 60, n_test: int = 30) -> dict[str, np.ndarray]:
    """Not MNIST: vectors of 20 floats, int64 labels of 3 classes."""
    rng = np.random.default_rng(1)
    return {
        f"{split}_{kind}": (
            rng.normal(size=(n, 20)).astype(np.float32)
            if kind == "images"
            else rng.integers(0, 3, n)
        )
        for split, n in (("train", n_train), ("test", n_test))
        for kind in ("images", "labels")
    }


def test_any_npz_in_keras_layout_builds_and_states_its_spec(tmp_path):
    arrays = other_data()
    record = download_local(tmp_path, arrays, "npz", "vectors")
    manifest = build_dataset(record, tmp_path / "d.npz", tmp_path / "m.json", {})
    assert manifest["spec"] == {"input_shape": [20], "num_classes": 3}
    loaded = load_dataset(tmp_path / "d.npz")
    assert loaded["train_images"].dtype == np.float32 and loaded["train_labels"].dtype == np.int64
    np.testing.assert_array_equal(loaded["test_images"], arrays["test_images"])


def test_data_larger_than_mnist_needs_max_megabytes(tmp_path):
    """The counts bound 784 bytes per example (MNIST's); bigger examples need the entry's
    max_megabytes, which bounds the arrays together instead."""
    rng = np.random.default_rng(2)
    arrays = {
        "train_images": rng.random((40, 16, 16, 3)).astype(np.float32),  # 3 KB an example
        "train_labels": rng.integers(0, 5, 40).astype(np.uint8),
        "test_images": rng.random((10, 16, 16, 3)).astype(np.float32),
        "test_labels": rng.integers(0, 5, 10).astype(np.uint8),
    }
    folder = tmp_path / "source"
    files = write_keras_npz(arrays, folder / "colour.npz")
    source = {"name": "local", "format": "npz", "location": str(folder), "files": files}
    counts = {"train": 40, "test": 10}
    options = {"expected_counts": counts, "timeout": 5, "attempts": 1, "backoff_seconds": 0}
    with pytest.raises(Exception, match=r"set the dataset's max_megabytes"):
        download_dataset("colour", [source], tmp_path / "a/source.json", **options)
    with pytest.raises(Exception, match=r"more than the .* max_megabytes allows"):
        download_dataset(
            "colour", [source], tmp_path / "b/source.json", max_megabytes=0.1, **options
        )
    record = download_dataset(
        "colour", [source], tmp_path / "c/source.json", max_megabytes=1, **options
    )
    manifest = build_dataset(
        tmp_path / "c/source.json", tmp_path / "d.npz", tmp_path / "m.json", {}, counts, 1
    )
    assert record["format"] == "npz"
    assert manifest["spec"] == {"input_shape": [16, 16, 3], "num_classes": 5}


def build_from_npz(tmp_path, arrays, **options):
    """Download ``arrays`` as a local npz source and build them: the manifest."""
    record = download_local(tmp_path, arrays, "npz", "own")
    return build_dataset(record, tmp_path / "d.npz", tmp_path / "m.json", {}, **options)


def test_a_label_that_makes_an_absurd_model_is_refused_naming_its_array_and_index(tmp_path):
    arrays = other_data()
    arrays["train_labels"][17] = 2**31 - 1
    with pytest.raises(DatasetError) as refused:
        build_from_npz(tmp_path, arrays)
    assert str(refused.value) == (
        "y_train[17] is 2,147,483,647, which makes 2,147,483,648 classes (the highest label + "
        "1), more than the 100,000 limits.max_classes allows: correct that label, or raise "
        "limits.max_classes if the data has that many classes"
    )
    assert not (tmp_path / "d.npz").exists() and not (tmp_path / "m.json").exists()
    arrays["train_labels"][17] = 2
    arrays["test_labels"][3] = 60
    with pytest.raises(DatasetError, match=r"^y_test\[3\] is 60, which makes 61 classes .* 50 "):
        build_from_npz(tmp_path, arrays, max_classes=50)


def test_classes_without_an_example_are_said_and_recorded(tmp_path, caplog):
    arrays = other_data()  # labels 0-2
    arrays["test_labels"][0] = 5  # classes 3 and 4 have no example
    arrays["train_labels"][arrays["train_labels"] == 1] = 0
    arrays["train_labels"][0] = 1
    manifest = build_dataset(
        download_local(tmp_path, arrays, "npz", "own"),
        tmp_path / "d.npz",
        tmp_path / "m.json",
        {"train": 20},  # the one training example of class 1 is the first
        batch_size=8,
    )
    assert manifest["spec"]["num_classes"] == 6
    assert manifest["classes"] == {"count": 6, "empty": [3, 4], "missing_from_training": [5]}
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said[0].startswith("classes 3–4 have no example: the labels run from 0 to 5")
    assert said[1].startswith("the training examples have none of class 5")


@pytest.mark.parametrize(("split", "use"), [("train", "trains on"), ("test", "validates")])
def test_an_empty_split_is_refused_when_the_data_is_built(tmp_path, split, use):
    arrays = other_data()
    for kind in ("images", "labels"):
        arrays[f"{split}_{kind}"] = arrays[f"{split}_{kind}"][:0]
    with pytest.raises(DatasetError) as refused:
        build_from_npz(tmp_path, arrays)
    assert str(refused.value).startswith(
        f"the {split} split is empty (x_{split} and y_{split} hold 0 examples), and every run {use}"
    )
    assert not (tmp_path / "d.npz").exists()


def test_a_subset_smaller_than_one_batch_is_said(tmp_path, download_dir, caplog):
    build_dataset(
        download_dir, tmp_path / "d.npz", tmp_path / "m.json", {"train": 10}, batch_size=64
    )
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said[0] == (
        "the train split has 10 examples, fewer than one batch (batch_size 64): each epoch is "
        "a single step of 10"
    )
    assert "the test split" not in " ".join(said), "the whole test split, 100, fills a batch"


def test_int64_labels_and_small_float_inputs_fit_the_counts_bound(tmp_path):
    """What scikit-learn's load_digits gives (float64 8×8 images, int64 labels), with counts:
    within the counts' bound (784 bytes per example, 8 per label of any integer type). 1,500
    int64 labels were refused: 12,000 bytes, past a bound of one byte per label."""
    rng = np.random.default_rng(3)
    arrays = {
        "train_images": rng.integers(0, 17, (1500, 8, 8)).astype(np.float64),
        "train_labels": rng.integers(0, 10, 1500),  # int64, as np.array makes them
        "test_images": rng.integers(0, 17, (300, 8, 8)).astype(np.float64),
        "test_labels": rng.integers(0, 10, 300),
    }
    folder = tmp_path / "source"
    files = write_keras_npz(arrays, folder / "digits.npz")
    source = {"name": "local", "format": "npz", "location": str(folder), "files": files}
    counts = {"train": 1500, "test": 300}
    download_dataset(
        "digits", [source], tmp_path / "dl/source.json", expected_counts=counts, timeout=5, attempts=1,
        backoff_seconds=0,
    )  # fmt: skip
    manifest = build_dataset(
        tmp_path / "dl/source.json", tmp_path / "d.npz", tmp_path / "m.json", {}, counts
    )
    assert manifest["spec"] == {"input_shape": [8, 8], "num_classes": 10}
    assert manifest["arrays"]["y_train"]["dtype"] == "<i8"


def test_an_array_past_the_counts_bound_is_named_with_its_dtype_shape_and_the_fix(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {
        "train_images": rng.random((40, 16, 16, 3)).astype(np.float32),
        "train_labels": rng.integers(0, 5, 40),
        "test_images": rng.random((10, 16, 16, 3)).astype(np.float32),
        "test_labels": rng.integers(0, 5, 10),
    }
    folder = tmp_path / "source"
    files = write_keras_npz(arrays, folder / "colour.npz")
    source = {"name": "local", "format": "npz", "location": str(folder), "files": files}
    with pytest.raises(Exception) as refused:
        download_dataset(
            "colour", [source], tmp_path / "a/source.json", expected_counts={"train": 40, "test": 10},
            timeout=5, attempts=1, backoff_seconds=0,
        )  # fmt: skip
    assert "colour.npz: x_train is float32 (40, 16, 16, 3): it inflates to" in str(refused.value)
    assert "set the dataset's max_megabytes to at least 0.2" in str(refused.value)
    download_dataset(
        "colour", [source], tmp_path / "b/source.json", expected_counts={"train": 40, "test": 10},
        max_megabytes=0.2, timeout=5, attempts=1, backoff_seconds=0,
    )  # fmt: skip
