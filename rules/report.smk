rule compare:
    input:
        **evidence_files(),
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
        **evidence_params(),
        code=code("compare.py"),
    script:
        "../scripts/compare.py"


# Judged apart from compare: a failing job loses its outputs, and the report must stay. The
# verdict compares the same evidence again: a summary.json edited by hand is refused.
rule verdict:
    input:
        **evidence_files(),
        summary=rules.compare.output.summary,
    output:
        verdict=VERDICT,
    log:
        "results/logs/verdict.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        **evidence_params(),
        code=code("verdict.py"),
    script:
        "../scripts/verdict.py"
