"""The comparison: how two runs are compared (``compare.py``: every metric, the weights,
``evaluate()``, bit for bit or within a tolerance; ``steps.py``: where their step traces part;
``pairs.py``: one run against another, explained by ``diagnosis.py``), the typed result
(``summary.py``, as JSON in ``summary_json.py``) derived from the evidence in one place
(``evidence.py`` → ``summarize.py``), what it covers (``coverage.py``), saved references
(``reference.py``), the matrix of cells (``matrix.py``, ``matrix_json.py``), and the verdict
(``verdict.py``), whose sentences are ``wording.py``'s.

Adding a check that can fail the verdict: compute it in ``summarize`` (its ``_failures``), typed
in ``summary.Comparison.failures``; the report's templates show it.
"""

from keras_repro.comparison.compare import Divergence, Tolerance
from keras_repro.comparison.coverage import folded_fingerprint, planted
from keras_repro.comparison.evidence import (
    Evidence,
    compare_evidence,
    find_cell_partings,
    job_evidence,
)
from keras_repro.comparison.matrix import Cell, Matrix, build_matrix, workflow_cells
from keras_repro.comparison.matrix_json import matrix_to_json
from keras_repro.comparison.reference import ReferenceError, check_place, export_reference
from keras_repro.comparison.steps import (
    TraceComparison,
    checkpoint_differences,
    compare_traces,
    step_ulps,
)
from keras_repro.comparison.summary import Comparison, DigestCell
from keras_repro.comparison.summary_json import read_summary, summary_to_json, write_summary
from keras_repro.comparison.verdict import VerdictError, judge, judge_matrix
from keras_repro.comparison.wording import (
    KEEP_APART,
    covered,
    describe_divergence,
    headline,
    noise_sentence,
    problems,
    verified_by,
)
from keras_repro.comparison.zoom import Parting, read_partings, write_partings

__all__ = [
    "KEEP_APART",
    "Cell",
    "Comparison",
    "DigestCell",
    "Divergence",
    "Evidence",
    "Matrix",
    "Parting",
    "ReferenceError",
    "Tolerance",
    "TraceComparison",
    "VerdictError",
    "build_matrix",
    "check_place",
    "checkpoint_differences",
    "compare_evidence",
    "compare_traces",
    "covered",
    "describe_divergence",
    "export_reference",
    "find_cell_partings",
    "folded_fingerprint",
    "headline",
    "job_evidence",
    "judge",
    "judge_matrix",
    "matrix_to_json",
    "noise_sentence",
    "planted",
    "problems",
    "read_partings",
    "read_summary",
    "step_ulps",
    "summary_to_json",
    "verified_by",
    "workflow_cells",
    "write_partings",
    "write_summary",
]
