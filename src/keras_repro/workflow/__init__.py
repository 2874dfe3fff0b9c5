"""The package's side of the Snakemake workflow: the digest of the code a rule runs (its rerun
trigger), the processes behind a job and a workflow's lock, a quick exit for a framework's
process, the snakemake command line on a work folder (for the smoke test, the tests and the
benchmarks), and the config of the last run that wrote the report (what ``snakemake --report``
bundles)."""

from keras_repro.workflow.command import SNAKEFILE, snakemake_command
from keras_repro.workflow.last_run import LAST_RUN_CONFIG, last_run_config, only_reporting
from keras_repro.workflow.processes import (
    die_with_parent,
    exit_now,
    job_owner,
    stale_lock_hint,
)
from keras_repro.workflow.provenance import code_digest

__all__ = [
    "LAST_RUN_CONFIG",
    "SNAKEFILE",
    "code_digest",
    "die_with_parent",
    "exit_now",
    "job_owner",
    "last_run_config",
    "only_reporting",
    "snakemake_command",
    "stale_lock_hint",
]
