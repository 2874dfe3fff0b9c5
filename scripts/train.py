"""Snakemake adapter: one training run, in a fresh process with PYTHONHASHSEED set."""

import logging

from keras_repro.dataset import recorded_sha256
from keras_repro.launch import train_in_fresh_process
from keras_repro.logs import configure_logging

configure_logging(snakemake.log[0])
if snakemake.threads != snakemake.params.threads:
    logging.warning(
        "the scheduler granted %d threads, the run uses %d as configured (results depend "
        "on the thread count, not on scheduling)",
        snakemake.threads,
        snakemake.params.threads,
    )
train_in_fresh_process(
    snakemake.input.dataset,
    snakemake.output.record,
    snakemake.log[0],
    seed=int(snakemake.wildcards.seed),
    repeat=int(snakemake.wildcards.repeat),
    epochs=snakemake.params.epochs,
    batch_size=snakemake.params.batch_size,
    threads=snakemake.params.threads,
    device=snakemake.params.device,
    runs_per_gpu=snakemake.params.runs_per_gpu,
    gpu_lock_dir=snakemake.params.gpu_lock_dir,
    expected_dataset_sha256=recorded_sha256(snakemake.input.manifest),
)
