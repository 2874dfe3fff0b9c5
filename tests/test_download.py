"""The download against a real HTTP server on 127.0.0.1, serving files the tests generate."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from serving import Server

from keras_repro.data.dataset import read_source_arrays
from keras_repro.data.download import DownloadError, download_dataset
from keras_repro.data.synthetic import write_idx_files, write_keras_npz

FAST = {"timeout": 5.0, "attempts": 3, "backoff_seconds": 0.01}


def npz_source(server: Server, arrays: dict, name: str = "keras") -> dict:
    files = write_keras_npz(arrays, server.root / "mnist.npz")
    return {"name": name, "format": "npz", "location": server.url, "files": files}


def idx_source(server: Server, arrays: dict, name: str = "mirror") -> dict:
    files = write_idx_files(arrays, server.root / "idx")
    return {"name": name, "format": "idx", "location": server.url + "idx/", "files": files}


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def assert_nothing_written(output: Path) -> None:
    assert not output.exists()
    assert list(output.parent.iterdir()) == [], "staging folders were left behind"


def test_good_npz_is_accepted_with_its_content_identity(tmp_path, server, arrays, identity):
    output = tmp_path / "out" / "mnist"
    record = download_dataset(
        "mnist", [npz_source(server, arrays)], output / "source.json", identity, **FAST
    )
    assert record["name"] == "keras"
    assert record["content_sha256"] == identity
    assert json.loads((output / "source.json").read_text()) == record
    assert (output / "mnist.npz").read_bytes() == (server.root / "mnist.npz").read_bytes()


def test_wrong_checksum_is_a_clear_error_and_writes_nothing(tmp_path, server, arrays):
    source = npz_source(server, arrays)
    source["files"]["archive"]["sha256"] = "0" * 64
    output = tmp_path / "out" / "mnist"
    with pytest.raises(DownloadError, match=r"sha256 [0-9a-f]{64}, expected 0{64}"):
        download_dataset("mnist", [source], output / "source.json", **FAST)
    assert_nothing_written(output)
    assert server.count("mnist.npz") == 1, "a checksum mismatch is not transient: no retry"


def test_one_server_error_then_success_is_retried(tmp_path, server, arrays):
    source = npz_source(server, arrays)
    server.faults["/mnist.npz"] = ["500"]
    download_dataset("mnist", [source], tmp_path / "out" / "mnist" / "source.json", **FAST)
    assert server.count("mnist.npz") == 2


def test_truncated_body_is_retried_and_then_refused(tmp_path, server, arrays):
    source = npz_source(server, arrays)
    server.faults["/mnist.npz"] = ["truncate"] * 3
    output = tmp_path / "out" / "mnist"
    with pytest.raises(DownloadError, match="truncated"):
        download_dataset("mnist", [source], output / "source.json", **FAST)
    assert_nothing_written(output)
    assert server.count("mnist.npz") == 3


def test_truncated_once_then_complete_is_accepted(tmp_path, server, arrays, identity):
    source = npz_source(server, arrays)
    server.faults["/mnist.npz"] = ["truncate"]
    record = download_dataset(
        "mnist", [source], tmp_path / "out" / "m" / "source.json", identity, **FAST
    )
    assert record["content_sha256"] == identity


def test_not_found_is_not_retried_and_the_next_source_is_used(tmp_path, server, arrays):
    missing = {
        "name": "gone",
        "format": "npz",
        "location": server.url + "nowhere/",
        "files": {"archive": {"name": "mnist.npz", "sha256": None}},
    }
    record = download_dataset(
        "mnist",
        [missing, idx_source(server, arrays)],
        tmp_path / "out" / "m" / "source.json",
        **FAST,
    )
    assert record["name"] == "mirror"
    assert server.requests.count("/nowhere/mnist.npz") == 1


def test_all_sources_down_gives_one_message_listing_each(tmp_path, server, arrays):
    down = {**npz_source(server, arrays, "down"), "location": closed_port_url()}
    broken = idx_source(server, arrays, "broken")
    server.faults["/idx/train-images-idx3-ubyte.gz"] = ["500"] * 3
    output = tmp_path / "out" / "mnist"
    with pytest.raises(DownloadError) as raised:
        download_dataset("mnist", [down, broken], output / "source.json", **FAST)
    message = str(raised.value)
    assert "every source failed" in message
    assert "- down (" in message and "Connection refused" in message
    assert "- broken (" in message and "HTTP 500" in message
    assert "datasets.mnist.sources" in message, "the message says how to use a local copy"
    assert_nothing_written(output)


def test_recompressed_mirror_is_verified_by_content_identity(tmp_path, server, arrays, identity):
    source = idx_source(server, arrays)
    for entry in source["files"].values():
        entry["sha256"] = None
    record = download_dataset(
        "mnist", [source], tmp_path / "out" / "m" / "source.json", identity, **FAST
    )
    assert record["content_sha256"] == identity


def test_wrong_content_is_refused_even_without_file_checksums(tmp_path, server, arrays, identity):
    altered = {**arrays, "train_labels": (arrays["train_labels"] + 1) % 10}
    source = idx_source(server, altered)
    for entry in source["files"].values():
        entry["sha256"] = None
    output = tmp_path / "out" / "m"
    with pytest.raises(DownloadError, match=r"content identity differs.*train_labels"):
        download_dataset("mnist", [source], output / "source.json", identity, **FAST)
    assert_nothing_written(output)


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_local_copies_are_sources_too(tmp_path, arrays, identity, as_url):
    folder = tmp_path / "keras-cache"
    files = write_keras_npz(arrays, folder / "mnist.npz")
    location = folder.as_uri() if as_url else str(folder)
    source = {"name": "cache", "format": "npz", "location": location, "files": files}
    record = download_dataset(
        "mnist", [source], tmp_path / "out" / "m" / "source.json", identity, **FAST
    )
    assert record["name"] == "cache"


def test_npz_and_idx_sources_give_identical_arrays(tmp_path, server, arrays, identity):
    from_npz = download_dataset(
        "d", [npz_source(server, arrays)], tmp_path / "a" / "source.json", **FAST
    )
    from_idx = download_dataset(
        "d", [idx_source(server, arrays)], tmp_path / "b" / "source.json", **FAST
    )
    assert from_npz["content_sha256"] == from_idx["content_sha256"] == identity
    a = read_source_arrays("npz", {"archive": tmp_path / "a" / "mnist.npz"})
    b = read_source_arrays(
        "idx", {role: tmp_path / "b" / entry["name"] for role, entry in from_idx["files"].items()}
    )
    for role in a:
        np.testing.assert_array_equal(a[role], b[role])
        assert a[role].dtype == b[role].dtype == np.uint8


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_a_failed_local_dataset_says_what_to_check_not_to_go_offline(tmp_path, arrays, as_url):
    folder = tmp_path / "mine"
    files = write_keras_npz(arrays, folder / "mine.npz")
    files["archive"]["sha256"] = "0" * 64
    location = folder.as_uri() if as_url else str(folder)
    source = {"name": "local", "format": "npz", "location": location, "files": files}
    with pytest.raises(DownloadError) as raised:
        download_dataset("mine", [source], tmp_path / "out" / "source.json", **FAST)
    message = str(raised.value)
    assert "expected 0000" in message
    assert message.splitlines()[-1] == (
        "Every source of datasets.mine is a file here: check that the files are where its entry "
        "says, and that the entry matches them (for an .npz, keras-repro-add-dataset mine "
        "FILE.npz prints a matching entry)."
    )
    assert "Offline?" not in message and "copy you already have" not in message
