"""Snakemake adapter: compare every run and write each report file (the verdict is judged apart)."""

from keras_repro.compare import Tolerance
from keras_repro.evidence import Evidence
from keras_repro.logs import configure_logging
from keras_repro.report import ReportPaths, write_report

configure_logging(snakemake.log[0])
inputs, outputs, params = snakemake.input, snakemake.output, snakemake.params
write_report(
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
