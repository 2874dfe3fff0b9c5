# The seeded runs that are judged: every cell (model on backend), seed and repeat, each in its
# own process.
rule train:
    input:
        dataset=dataset_file(),
        manifest=dataset_manifest(),
        model=MODEL_CHECK,
    output:
        record=f"{RUN}/history.json",
        trace=f"{RUN}/trace.npz",
        checkpoints=checkpoint_folder(RUN),
    log:
        f"{RUN}/train.log",
    benchmark:
        f"{RUN}/benchmark.tsv"
    conda:
        "../envs/{backend}.yaml"
    threads: config["threads"]
    resources:
        mem_mb=config["train_resources"]["mem_mb"],
        runtime=config["train_resources"]["runtime"],
        gpu=gpus_per_run(),
    params:
        **training_params("seeded"),
        seed=lambda wildcards: int(wildcards.seed),
        perturb=perturbation,
        segment=None,
    script:
        "../scripts/train.py"


# verify: segments. A segment of a seed's run, replayed in a fresh process from the checkpoint
# the run saved at its start: a job of its own, so that as many run side by side as there is
# room for.
use rule train as replay_segment with:
    input:
        dataset=dataset_file(),
        manifest=dataset_manifest(),
        model=MODEL_CHECK,
        run=f"{SEGMENT_RUN}/history.json",
        checkpoints=f"{SEGMENT_RUN}/checkpoints",
    output:
        record=f"{SEGMENT}/history.json",
        trace=f"{SEGMENT}/trace.npz",
    log:
        f"{SEGMENT}/train.log",
    benchmark:
        f"{SEGMENT}/benchmark.tsv"
    params:
        **training_params("seeded"),
        seed=lambda wildcards: int(wildcards.seed),
        perturb=None,
        segment=lambda wildcards: int(wildcards.segment),


# The control arm: runs whose seed each process draws at random (they must differ) ...
use rule train as train_unseeded with:
    output:
        record=f"{UNSEEDED_RUN}/history.json",
        trace=f"{UNSEEDED_RUN}/trace.npz",
    log:
        f"{UNSEEDED_RUN}/train.log",
    benchmark:
        f"{UNSEEDED_RUN}/benchmark.tsv"
    params:
        **training_params("unseeded"),
        seed=None,
        perturb=None,
        segment=None,


# ... and runs of the first seed with op determinism off (reported: do they differ, what it costs).
use rule train as train_nondeterministic with:
    output:
        record=f"{NONDETERMINISTIC_RUN}/history.json",
        trace=f"{NONDETERMINISTIC_RUN}/trace.npz",
    log:
        f"{NONDETERMINISTIC_RUN}/train.log",
    benchmark:
        f"{NONDETERMINISTIC_RUN}/benchmark.tsv"
    params:
        **training_params("nondeterministic"),
        seed=lambda wildcards: int(wildcards.seed),
        perturb=None,
        segment=None,


rule initializers:
    output:
        "results/initializers/{backend}/process{process}.json",
    log:
        "results/logs/initializers/{backend}/process{process}.log",
    conda:
        "../envs/{backend}.yaml"
    params:
        global_seed=config["initializer_global_seed"],
        backend=lambda wildcards: wildcards.backend,
        code=code("initializers.py"),
    script:
        "../scripts/initializers.py"
