"""Snakemake adapter: compare the evidence again and fail the workflow unless every run was
identical (or summary.json says otherwise than the evidence)."""

from keras_repro.evidence import job_evidence
from keras_repro.logs import configure_logging
from keras_repro.verdict import judge

configure_logging(snakemake.log[0])
judge(
    job_evidence(snakemake.input, snakemake.params),
    snakemake.input.summary,
    snakemake.output.verdict,
)
