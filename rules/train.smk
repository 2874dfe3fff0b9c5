rule train:
    input:
        dataset=dataset_file(),
        manifest=dataset_manifest(),
    output:
        record="results/runs/seed{seed}/repeat{repeat}/history.json",
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
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        threads=config["threads"],
        device=config["device"],
        code=code("train.py", "keras_repro.train"),
        runs_per_gpu=operational(config["runs_per_gpu"]),
        gpu_lock_dir=operational("results/.gpu-locks"),
    script:
        "../scripts/train.py"


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
