import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The workflow's own package, importable here and by every job (also in --sdm conda
# environments) without installing it.
PACKAGE_ROOT = str(Path(workflow.basedir) / "src")
sys.path.insert(0, PACKAGE_ROOT)
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])
    )
)

from keras_repro.config import ConfigError, validate_config

try:
    config.update(validate_config(config))
except ConfigError as error:
    raise WorkflowError(str(error)) from None


def dataset_entry(wildcards):
    return config["datasets"][wildcards.dataset]


def dataset_file():
    return f"results/data/{config['dataset']}/dataset.npz"


def run_records():
    return expand(
        "results/runs/seed{seed}/repeat{repeat}/history.json",
        seed=config["seeds"],
        repeat=range(1, config["repeats"] + 1),
    )


def initializer_draws():
    return expand(
        "results/initializers/process{process}.json",
        process=range(1, config["initializer_processes"] + 1),
    )


def gpus_per_run():
    return 1 if config["device"] == "gpu" else 0
