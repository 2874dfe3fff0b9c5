"""Snakemake adapter: compare every run and write the report (the verdict is judged apart)."""

from pathlib import Path

from keras_repro.compare import Tolerance
from keras_repro.errors import send_logs_to
from keras_repro.report import write_report

send_logs_to(snakemake.log[0])
tolerance = snakemake.params.tolerance
write_report(
    snakemake.input.records,
    snakemake.input.initializers,
    Path(snakemake.output.summary).parent,
    Tolerance(**tolerance) if tolerance else None,
)
