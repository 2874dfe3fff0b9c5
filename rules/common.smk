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

from snakemake.logging import logger

from keras_repro.config import ConfigError, validate_config
from keras_repro.processes import stale_lock_hint
from keras_repro.provenance import code_digest

try:
    config.update(validate_config(config))
except ConfigError as error:
    raise WorkflowError(str(error)) from None

# Snakemake's own message about a stale lock comes later and says less.
if "--unlock" not in sys.argv and (hint := stale_lock_hint(Path.cwd())):
    logger.warning(hint)


VERDICT = "results/report/verdict.txt"


def forget_verdict():
    """A verdict must not outlive the runs it judged: once any job is to run, the old one goes
    (a new one is written when everything has run and agrees)."""
    Path(VERDICT).unlink(missing_ok=True)


def code(script, *modules):
    """The digest of a script's content and of every package module it runs (``modules``:
    those it starts in another process). Passed as a param: an edit reruns the rule, a touch
    or a fresh clone does not (the profile leaves Snakemake's mtime-based code trigger off).
    """
    return code_digest([Path(workflow.basedir) / "scripts" / script, *modules])


def operational(value):
    """A param that cannot change any result, so must rerun nothing: Snakemake leaves params
    computed from a job's input, output, threads or resources out of its rerun check."""
    return lambda wildcards, output: value


def dataset_entry(wildcards):
    return config["datasets"][wildcards.dataset]


def dataset_file():
    return f"results/data/{config['dataset']}/dataset.npz"


def dataset_manifest():
    return f"results/data/{config['dataset']}/manifest.json"


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
