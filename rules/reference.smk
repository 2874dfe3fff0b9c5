# Not part of the default target: `snakemake --cores all results/references/NAME` exports the
# seeded runs of every cell, once they passed, as a reference to compare later runs with
# (`reference:`).
rule export_reference:
    input:
        records=seeded_files("history.json"),
        traces=seeded_files("trace.npz"),
        manifest=dataset_manifest(),
        verdict=VERDICT,
        absent=new_bundle,
    output:
        directory("results/references/{name}"),
    log:
        "results/logs/export_reference/{name}.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        config=exported_config(),
        code=code("export_reference.py"),
    script:
        "../scripts/export_reference.py"
