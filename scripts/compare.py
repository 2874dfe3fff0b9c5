"""Snakemake adapter: compare every run and write each report file (the verdict is judged apart)."""

from keras_repro.evidence import job_evidence
from keras_repro.logs import configure_logging
from keras_repro.report import ReportPaths, write_report

configure_logging(snakemake.log[0])
inputs, outputs = snakemake.input, snakemake.output
write_report(
    job_evidence(inputs, snakemake.params),
    ReportPaths(
        summary=outputs.summary,
        markdown=outputs.markdown,
        html=outputs.html,
        histories=outputs.histories,
        curves=outputs.curves,
        steps=outputs.steps,
        front_page=outputs.front_page,
    ),
)
