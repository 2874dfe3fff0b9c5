"""Running the real snakemake CLI on a work folder, with a config written by the test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from conftest import REPO, make_arrays, write_idx_files

from keras_repro.dataset import content_identity

# Small enough to train in seconds, large enough for a CNN to learn something.
SYNTHETIC_COUNTS = {"train": 320, "test": 96}


def snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(workdir),
            "--cores",
            "2",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # snakemake logs to stdout, jobs to stderr: read both
        text=True,
        timeout=timeout,
    )


def write_config(workdir: Path, **overrides: object) -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["download"] = {"timeout": 10, "attempts": 2, "backoff_seconds": 0.1}
    config.update(overrides)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def write_synthetic_config(workdir: Path, served: Path, url: str, **overrides: object) -> None:
    """A config training on synthetic MNIST-format data that ``url`` serves from ``served``."""
    arrays = make_arrays(n_train=SYNTHETIC_COUNTS["train"], n_test=SYNTHETIC_COUNTS["test"])
    files = write_idx_files(arrays, served / "synthetic")
    settings: dict[str, object] = {
        "dataset": "synthetic",
        "datasets": {
            **yaml.safe_load((REPO / "config.yaml").read_text())["datasets"],
            "synthetic": {
                "counts": SYNTHETIC_COUNTS,
                "content_sha256": content_identity(arrays),
                "sources": [
                    {
                        "name": "loopback",
                        "format": "idx",
                        "location": url + "synthetic/",
                        "files": files,
                    }
                ],
            },
        },
        "seeds": [812, 42],
        "repeats": 2,
        "epochs": 1,
        "threads": 1,
    }
    settings.update(overrides)
    write_config(workdir, **settings)
