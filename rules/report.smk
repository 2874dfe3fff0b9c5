rule compare:
    input:
        records=run_records(),
        initializers=initializer_draws(),
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
    log:
        "results/logs/compare.log",
    conda:
        "../envs/analysis.yaml"
    params:
        comparison=config["comparison"],
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
