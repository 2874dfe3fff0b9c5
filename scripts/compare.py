"""Snakemake adapter: compare every run of one cell (a model on a backend) and write its report
files (the verdict is judged apart, over every cell)."""

from keras_repro.comparison import job_evidence
from keras_repro.logs import configure_logging
from keras_repro.report import ReportPaths, write_report

configure_logging(snakemake.log[0])
inputs, outputs, wildcards = snakemake.input, snakemake.output, snakemake.wildcards
write_report(
    job_evidence(
        inputs,
        snakemake.params,
        cell=(wildcards.model, wildcards.backend),
        nondeterministic_on=snakemake.params.nondeterministic_on,
    ),
    ReportPaths(
        summary=outputs.summary,
        markdown=outputs.markdown,
        html=outputs.html,
        histories=outputs.histories,
        curves=outputs.curves,
        steps=outputs.steps,
        matrix=snakemake.params.matrix,
    ),
)
