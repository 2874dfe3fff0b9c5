"""Fixtures: synthetic MNIST-format data, a real HTTP server on 127.0.0.1, a finished run.

Helpers live in modules of their own (helpers, serving, workflows, records); import them from
there, never from this file.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import LONGEST_FIRST, REPO
from serving import Server, serving
from workflows import snakemake, write_synthetic_config

from keras_repro.data.dataset import content_identity
from keras_repro.data.synthetic import make_arrays

# Processes the tests start (CLIs, snakemake jobs) import this checkout's package too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a module's order


def shared_folder(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The session's folder that every xdist worker sees (each has its own below it)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


@pytest.fixture(scope="session", autouse=True)
def jax_compilation_cache(
    tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> Iterator[None]:
    """One XLA compilation cache for every JAX process the tests start, on every worker: a model
    compiles once per session, not once per process (8 s instead of 21 for a tiny run here; the
    same bits). The workflow never sets it: a user's runs compile afresh, as a proof must."""
    folder = shared_folder(tmp_path_factory, worker_id) / "jax-compilation-cache"
    folder.mkdir(exist_ok=True)
    variables = {
        "JAX_COMPILATION_CACHE_DIR": str(folder),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path / "served") as state:
        yield state


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    return make_arrays()


@pytest.fixture
def identity(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    return content_identity(arrays)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The tiny synthetic workflow, run once to the end; copy it (``copied_run``) to change it.

    Built once for all xdist workers: the first to need it builds it under a lock in the
    folder they share, the others wait for it. Its download server is gone afterwards."""
    shared = shared_folder(tmp_path_factory, worker_id)
    root = shared / "finished-run"
    with open(shared / "finished-run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "done").exists():
            shutil.rmtree(root, ignore_errors=True)
            with serving(root / "served") as state:
                write_synthetic_config(root / "work", state.root, state.url)
                result = snakemake(root / "work")
            assert result.returncode == 0, result.stdout
            (root / "done").touch()
    return root / "work"


@pytest.fixture
def copied_run(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of the finished run, metadata and timestamps included, for a test to change."""
    copy = tmp_path / "work"
    shutil.copytree(finished_run, copy, symlinks=True)
    return copy
