# The model, built for the dataset on the cell's backend and checked (it imports, is a Keras
# model, its output fits the labels) before any run trains it, in a process of its own under a
# deadline: every training rule takes its model.json.
rule check_model:
    input:
        manifest=dataset_manifest(),
    output:
        check=MODEL_CHECK,
    log:
        "results/logs/check_model/{model}/{backend}.log",
    conda:
        "../envs/{backend}.yaml"
    params:
        model=lambda wildcards: model_spec(wildcards.model),
        model_sha256=cell_model_sha256,
        compile=config["compile"],
        backend=lambda wildcards: wildcards.backend,
        timeout_seconds=operational(config["model_check"]["timeout_seconds"]),
        code=code("check_model.py"),
    script:
        "../scripts/check_model.py"
