# The seeded runs that are judged: every cell (model on backend), seed and repeat, each in its
# own process.
rule train:
    input:
        dataset=dataset_file(),
        manifest=dataset_manifest(),
        model="results/models/{model}/{backend}/model.json",
    output:
        record="results/runs/{model}/{backend}/seed{seed}/repeat{repeat}/history.json",
        trace="results/runs/{model}/{backend}/seed{seed}/repeat{repeat}/trace.npz",
    log:
        "results/runs/{model}/{backend}/seed{seed}/repeat{repeat}/train.log",
    benchmark:
        "results/runs/{model}/{backend}/seed{seed}/repeat{repeat}/benchmark.tsv"
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
    script:
        "../scripts/train.py"


# The control arm: runs whose seed each process draws at random (they must differ) ...
use rule train as train_unseeded with:
    output:
        record="results/control/{model}/{backend}/unseeded/repeat{repeat}/history.json",
        trace="results/control/{model}/{backend}/unseeded/repeat{repeat}/trace.npz",
    log:
        "results/control/{model}/{backend}/unseeded/repeat{repeat}/train.log",
    benchmark:
        "results/control/{model}/{backend}/unseeded/repeat{repeat}/benchmark.tsv"
    params:
        **training_params("unseeded"),
        seed=None,
        perturb=None,


# ... and runs of the first seed with op determinism off (reported: do they differ, what it costs).
use rule train as train_nondeterministic with:
    output:
        record="results/control/{model}/{backend}/nondeterministic/seed{seed}/repeat{repeat}/history.json",
        trace="results/control/{model}/{backend}/nondeterministic/seed{seed}/repeat{repeat}/trace.npz",
    log:
        "results/control/{model}/{backend}/nondeterministic/seed{seed}/repeat{repeat}/train.log",
    benchmark:
        "results/control/{model}/{backend}/nondeterministic/seed{seed}/repeat{repeat}/benchmark.tsv"
    params:
        **training_params("nondeterministic"),
        seed=lambda wildcards: int(wildcards.seed),
        perturb=None,


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
