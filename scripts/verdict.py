"""Snakemake adapter: compare the evidence again and fail the workflow unless every run was
identical (or summary.json says otherwise than the evidence)."""

from keras_repro.compare import Tolerance
from keras_repro.evidence import Evidence
from keras_repro.logs import configure_logging
from keras_repro.verdict import judge

configure_logging(snakemake.log[0])
inputs, params = snakemake.input, snakemake.params
judge(
    Evidence(
        inputs.records,
        inputs.initializers,
        Tolerance.from_config(params.comparison),
        controls={"unseeded": inputs.unseeded, "nondeterministic": inputs.nondeterministic}
        if params.control
        else None,
        reference=params.reference,
        reference_drift=params.reference_drift,
        manifest=inputs.manifest,
    ),
    inputs.summary,
    snakemake.output.verdict,
)
