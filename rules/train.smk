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


# The noise floor (noise.repeats): the first seed with the determinism switches off ...
use rule train as train_noise_nondeterministic with:
    output:
        record=f"{NOISE_OFF}/history.json",
        trace=f"{NOISE_OFF}/trace.npz",
    log:
        f"{NOISE_OFF}/train.log",
    benchmark:
        f"{NOISE_OFF}/benchmark.tsv"
    params:
        **training_params("nondeterministic"),
        seed=config["seeds"][0],
        perturb=None,
        segment=None,


# ... and more seeds with them on.
use rule train as train_noise_seed with:
    output:
        record=f"{NOISE_SEED}/history.json",
        trace=f"{NOISE_SEED}/trace.npz",
    log:
        f"{NOISE_SEED}/train.log",
    benchmark:
        f"{NOISE_SEED}/benchmark.tsv"
    params:
        **training_params("seeded", checkpoints=False),
        seed=lambda wildcards: int(wildcards.seed),
        perturb=None,
        segment=None,


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
        **training_params("seeded", entry="keras_repro.training.replay"),
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


# A pair that parted (find_partings), one side at a time: replayed step by step in a fresh
# process from the last checkpoint both sides agree in, everything each step computes recorded.
rule zoom:
    input:
        dataset=dataset_file(),
        manifest=dataset_manifest(),
        model=MODEL_CHECK,
        run=lambda wildcards: zoom_side(wildcards)["record"],
    output:
        record=f"{ZOOM}/{{side}}.json",
        values=f"{ZOOM}/{{side}}.npz",
    log:
        f"{ZOOM}/{{side}}.log",
    benchmark:
        f"{ZOOM}/{{side}}.benchmark.tsv"
    conda:
        "../envs/{backend}.yaml"
    threads: config["threads"]
    resources:
        mem_mb=config["train_resources"]["mem_mb"],
        runtime=config["train_resources"]["runtime"],
        gpu=gpus_per_run(),
    params:
        settings=cell_run_config,
        model_sha256=cell_model_sha256,
        backend=lambda wildcards: wildcards.backend,
        seed=lambda wildcards: int(wildcards.seed),
        side=zoom_side,
        checkpoint=lambda wildcards: zoom_parting(wildcards).checkpoint,
        window=lambda wildcards: [
            zoom_parting(wildcards).keep_from,
            zoom_parting(wildcards).until,
        ],
        code=code("zoom.py", "keras_repro.training.zoom"),
        runs_per_gpu=operational(config["runs_per_gpu"]),
        gpu_lock_dir=operational("results/.gpu-locks"),
    script:
        "../scripts/zoom.py"
