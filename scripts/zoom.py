"""Snakemake adapter: one side of a pair that parted, replayed step by step in a fresh process
from the last checkpoint both sides agree in, everything each step computes recorded."""

from keras_repro.config import RunSettings
from keras_repro.data import recorded_sha256, recorded_spec
from keras_repro.logs import configure_logging
from keras_repro.training import train_in_fresh_process

configure_logging(snakemake.log[0])
params, side = snakemake.params, snakemake.params.side
perturb = side["perturb"] or {}
train_in_fresh_process(
    snakemake.input.dataset,
    snakemake.output.record,
    snakemake.output.values,
    snakemake.log[0],
    RunSettings(
        seed=params.seed,
        repeat=side["repeat"],
        config=params.settings,
        perturb_step=perturb.get("step"),
        perturb_variable=perturb.get("variable"),
        perturb_batch=bool(perturb.get("batch")),
        dataset_sha256=recorded_sha256(snakemake.input.manifest),
        data_spec=recorded_spec(snakemake.input.manifest),
        model_sha256=params.model_sha256,
        backend=params.backend,
        save_checkpoints=False,
    ),
    runs_per_gpu=params.runs_per_gpu,
    gpu_lock_dir=params.gpu_lock_dir,
    zoom=(snakemake.input.run, params.checkpoint, tuple(params.window)),
)
