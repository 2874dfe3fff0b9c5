# The seeded runs that are judged: every seed, every repeat, each in its own process.
rule train:
    input:
        dataset=dataset_file(),
        manifest=dataset_manifest(),
        model=model_check(),
    output:
        record="results/runs/seed{seed}/repeat{repeat}/history.json",
        trace="results/runs/seed{seed}/repeat{repeat}/trace.npz",
    log:
        "results/runs/seed{seed}/repeat{repeat}/train.log",
    benchmark:
        "results/runs/seed{seed}/repeat{repeat}/benchmark.tsv"
    conda:
        "../envs/keras.yaml"
    threads: config["threads"]
    resources:
        mem_mb=config["train_resources"]["mem_mb"],
        runtime=config["train_resources"]["runtime"],
        gpu=gpus_per_run(),
    params:
        **training_params("seeded"),
        seed=lambda wildcards: int(wildcards.seed),
        perturb=perturbation,
    script:
        "../scripts/train.py"


# The control arm: runs whose seed each process draws at random (they must differ) ...
use rule train as train_unseeded with:
    output:
        record="results/control/unseeded/repeat{repeat}/history.json",
        trace="results/control/unseeded/repeat{repeat}/trace.npz",
    log:
        "results/control/unseeded/repeat{repeat}/train.log",
    benchmark:
        "results/control/unseeded/repeat{repeat}/benchmark.tsv"
    params:
        **training_params("unseeded"),
        seed=None,
        perturb=None,


# ... and runs of the first seed with op determinism off (reported: do they differ, what it costs).
use rule train as train_nondeterministic with:
    output:
        record="results/control/nondeterministic/seed{seed}/repeat{repeat}/history.json",
        trace="results/control/nondeterministic/seed{seed}/repeat{repeat}/trace.npz",
    log:
        "results/control/nondeterministic/seed{seed}/repeat{repeat}/train.log",
    benchmark:
        "results/control/nondeterministic/seed{seed}/repeat{repeat}/benchmark.tsv"
    params:
        **training_params("nondeterministic"),
        seed=lambda wildcards: int(wildcards.seed),
        perturb=None,


rule initializers:
    output:
        "results/initializers/process{process}.json",
    log:
        "results/logs/initializers/process{process}.log",
    conda:
        "../envs/keras.yaml"
    params:
        global_seed=config["initializer_global_seed"],
        code=code("initializers.py"),
    script:
        "../scripts/initializers.py"
