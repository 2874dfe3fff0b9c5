rule download:
    output:
        source="results/download/{dataset}/source.json",
    log:
        "results/logs/download/{dataset}.log",
    # No job-level retries: transient failures are retried with backoff in code, and what
    # survives that (a name that does not resolve, a wrong checksum) would only print again.
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        sources=lambda wildcards: dataset_entry(wildcards)["sources"],
        content_sha256=lambda wildcards: dataset_entry(wildcards).get("content_sha256"),
        counts=lambda wildcards: dataset_entry(wildcards).get("counts"),
        max_megabytes=lambda wildcards: dataset_entry(wildcards).get("max_megabytes"),
        timeout=operational(config["download"]["timeout"]),
        attempts=operational(config["download"]["attempts"]),
        backoff_seconds=operational(config["download"]["backoff_seconds"]),
        code=code("download.py"),
    script:
        "../scripts/download.py"


rule build_dataset:
    input:
        source=rules.download.output.source,
    output:
        dataset="results/data/{dataset}/dataset.npz",
        manifest="results/data/{dataset}/manifest.json",
    log:
        "results/logs/build_dataset/{dataset}.log",
    conda:
        "../envs/analysis.yaml"
    params:
        subset=config["subset"],
        counts=lambda wildcards: dataset_entry(wildcards).get("counts"),
        max_megabytes=lambda wildcards: dataset_entry(wildcards).get("max_megabytes"),
        # a bound and a warning: they change no dataset file
        max_classes=operational(config["limits"]["max_classes"]),
        batch_size=operational(config["batch_size"]),
        code=code("build_dataset.py"),
    script:
        "../scripts/build_dataset.py"
