rule compare:
    input:
        records=run_records(),
        traces=run_files("trace.npz"),
        initializers=initializer_draws(),
        unseeded=control_files("unseeded", "history.json"),
        nondeterministic=control_files("nondeterministic", "history.json"),
        control_traces=control_files("unseeded", "trace.npz")
        + control_files("nondeterministic", "trace.npz"),
        reference=reference_files(),
        manifest=dataset_manifest(),
    output:
        summary="results/report/summary.json",
        markdown="results/report/report.md",
        html=report(
            "results/report/report.html",
            caption="../report/report.rst",
            category="Verdict",
        ),
        histories=report(
            "results/report/histories.csv",
            caption="../report/histories.rst",
            category="Histories",
        ),
        curves=report(
            "results/report/curves.png",
            caption="../report/curves.rst",
            category="Histories",
        ),
        steps=report(
            "results/report/steps.png",
            caption="../report/steps.rst",
            category="Where runs part",
        ),
        front_page=FRONT_PAGE,
    log:
        "results/logs/compare.log",
    conda:
        "../envs/analysis.yaml"
    params:
        comparison=config["comparison"],
        control=config["control"]["enabled"],
        reference=config["reference"],
        reference_drift=config["reference_drift"],
        code=code("compare.py"),
    script:
        "../scripts/compare.py"


# Judged apart from compare: a failing job loses its outputs, and the report must stay.
rule verdict:
    input:
        summary=rules.compare.output.summary,
    output:
        verdict=VERDICT,
    log:
        "results/logs/verdict.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        code=code("verdict.py"),
    script:
        "../scripts/verdict.py"
