"""Snakemake adapter: compare every run and write each report file (the verdict is judged apart)."""

from keras_repro.compare import Tolerance
from keras_repro.logs import configure_logging
from keras_repro.report import ReportPaths, write_report

configure_logging(snakemake.log[0])
write_report(
    snakemake.input.records,
    snakemake.input.initializers,
    ReportPaths(
        summary=snakemake.output.summary,
        markdown=snakemake.output.markdown,
        html=snakemake.output.html,
        histories=snakemake.output.histories,
        curves=snakemake.output.curves,
    ),
    Tolerance.from_config(snakemake.params.comparison),
)
