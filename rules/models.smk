# The model, built for the dataset on the cell's backend and checked (it imports, is a Keras
# model, its output fits the labels) before any run trains it: every training rule takes its
# model.json.
rule check_model:
    input:
        manifest=dataset_manifest(),
    output:
        check="results/models/{model}/{backend}/model.json",
    log:
        "results/logs/check_model/{model}/{backend}.log",
    conda:
        "../envs/{backend}.yaml"
    params:
        model=lambda wildcards: model_spec(wildcards.model),
        model_sha256=lambda wildcards: MODEL_SHA256[model_spec(wildcards.model)],
        compile=config["compile"],
        backend=lambda wildcards: wildcards.backend,
        # models/ is a subpackage, which code() does not follow by itself
        code=code(
            "check_model.py",
            f"{PACKAGE_ROOT}/keras_repro/models/__init__.py",
            f"{PACKAGE_ROOT}/keras_repro/models/check.py",
        ),
    script:
        "../scripts/check_model.py"
