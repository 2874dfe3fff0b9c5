# The pairs of a cell that parted: each is replayed step by step (rule zoom, in train.smk) from
# the last checkpoint both agree in, before the cell is compared. A clean cell lists none.
checkpoint find_partings:
    input:
        unpack(cell_files),
    output:
        f"{CELL_REPORT}/partings.json",
    log:
        "results/logs/find_partings/{model}/{backend}.log",
    benchmark:
        "results/logs/find_partings/{model}/{backend}.benchmark.tsv"
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        **evidence_params(),
        every=config["trace"]["every_steps"],
        code=code("find_partings.py"),
    script:
        "../scripts/find_partings.py"


# One cell (a model on a backend): every run compared, and the cell's report written. It never
# fails on a mismatch: the verdict does, after the matrix is written.
rule compare:
    input:
        unpack(cell_files),
        zooms=cell_zooms,
    output:
        summary=f"{CELL_REPORT}/summary.json",
        markdown=f"{CELL_REPORT}/report.md",
        html=report(
            f"{CELL_REPORT}/report.html",
            caption="../report/report.rst",
            category="Cells",
            subcategory="{model} on {backend}",
        ),
        histories=report(
            f"{CELL_REPORT}/histories.csv",
            caption="../report/histories.rst",
            category="Cells",
            subcategory="{model} on {backend}",
        ),
        curves=report(
            f"{CELL_REPORT}/curves.png",
            caption="../report/curves.rst",
            category="Cells",
            subcategory="{model} on {backend}",
        ),
        steps=report(
            f"{CELL_REPORT}/steps.png",
            caption="../report/steps.rst",
            category="Cells",
            subcategory="{model} on {backend}",
        ),
    log:
        "results/logs/compare/{model}/{backend}.log",
    conda:
        "../envs/analysis.yaml"
    params:
        **evidence_params(),
        matrix=MATRIX_PAGE,
        nondeterministic_on=lambda wildcards: nondeterministic_on(wildcards.model),
        code=code("compare.py"),
    script:
        "../scripts/compare.py"


# The matrix: one table of every cell, each linked to its report, and the front page of
# `snakemake --report`.
rule matrix:
    input:
        all_evidence(),
        every_zoom,
        summaries=cell_reports("summary.json"),
    output:
        html=report(
            MATRIX_PAGE,
            caption="../report/matrix.rst",
            category="Verdict",
        ),
        markdown="results/report/report.md",
        matrix="results/report/matrix.json",
        front_page=FRONT_PAGE,
        run_config=str(LAST_RUN_CONFIG),
    log:
        "results/logs/matrix.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        **evidence_params(),
        cells=lambda wildcards: matrix_cells(zooms=True),
        # What `snakemake --report` is built from; and the folders where earlier configs' cells
        # may lie. Neither changes what the matrix says of this run's cells.
        given_config=operational(GIVEN_CONFIG),
        earlier=operational(
            dict(
                reports="results/report",
                runs=[
                    "results/runs",
                    "results/control",
                    "results/noise",
                    "results/zoom",
                ],
            )
        ),
        report_files=operational(CELL_REPORT_FILES),
        code=code("matrix.py"),
    script:
        "../scripts/matrix.py"


# Judged apart from compare and matrix: a failing job loses its outputs, and the reports must
# stay. The verdict compares every cell's evidence again: a summary.json edited by hand is
# refused.
rule verdict:
    input:
        all_evidence(),
        every_zoom,
        summaries=cell_reports("summary.json"),
        matrix=rules.matrix.output.matrix,
    output:
        verdict=VERDICT,
    log:
        "results/logs/verdict.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        **evidence_params(),
        cells=lambda wildcards: matrix_cells(zooms=True),
        remove_checkpoints=operational(
            [] if config["keep_checkpoints"] else checkpoint_folders()
        ),
        code=code("verdict.py"),
    script:
        "../scripts/verdict.py"
