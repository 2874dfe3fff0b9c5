"""Snakemake adapter: one training run of a cell (a model on a backend), or one segment of a
seed's run replayed from its checkpoint, in a fresh process with PYTHONHASHSEED and the
backend's variables set."""

import logging

from keras_repro.config import RunSettings
from keras_repro.data import recorded_sha256, recorded_spec
from keras_repro.logs import configure_logging
from keras_repro.training import (
    check_perturb_step,
    manifest_train_examples,
    total_steps,
    train_in_fresh_process,
)

configure_logging(snakemake.log[0])
params = snakemake.params
if snakemake.threads != params.settings["threads"]:
    logging.warning(
        "the scheduler granted %d threads, the run uses %d as configured (results depend "
        "on the thread count, not on scheduling)",
        snakemake.threads,
        params.settings["threads"],
    )
if params.perturb:  # refused before the training process starts
    train_examples = manifest_train_examples(snakemake.input.manifest)
    check_perturb_step(
        params.perturb["step"],
        total_steps(train_examples, params.settings["batch_size"], params.settings["epochs"]),
    )
train_in_fresh_process(
    snakemake.input.dataset,
    snakemake.output.record,
    snakemake.output.trace,
    snakemake.log[0],
    RunSettings(
        seed=params.seed,
        repeat=int(snakemake.wildcards.get("repeat", 1)),
        config=params.settings,
        arm=params.arm,
        op_determinism=params.op_determinism,
        perturb_step=params.perturb["step"] if params.perturb else None,
        perturb_variable=params.perturb["variable"] if params.perturb else None,
        perturb_batch=bool(params.perturb and params.perturb["batch"]),
        dataset_sha256=recorded_sha256(snakemake.input.manifest),
        data_spec=recorded_spec(snakemake.input.manifest),
        model_sha256=params.model_sha256,
        compile_given=params.compile_given,
        backend=params.backend,
        save_checkpoints=params.save_checkpoints and params.segment is None,
    ),
    runs_per_gpu=params.runs_per_gpu,
    gpu_lock_dir=params.gpu_lock_dir,
    replay=None if params.segment is None else (snakemake.input.run, params.segment),
)
