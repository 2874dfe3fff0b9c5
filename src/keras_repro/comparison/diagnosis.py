"""Why two runs differ, from the evidence they recorded: the environment, the data fed, the
step-level trace, the weights.

Fingerprint fields are of two kinds (``keras_repro.training.fingerprint`` and each backend say which):
those that can change a result (library versions, CPU, GPU, driver, CUDA/cuDNN, thread counts,
determinism flags, and the environment variables that steer them), which are judged; and those
that vary by design between runs (job ids, host names, which card or CPUs a run got), which are
shown but never count as a difference.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from keras_repro.backends import DEFAULT_BACKEND, can_change_results
from keras_repro.comparison.compare import Divergence
from keras_repro.comparison.steps import TraceComparison


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """A fingerprint as dotted field names and their values as text."""
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key, inner in value.items():
            flat.update(flatten(inner, f"{prefix}.{key}" if prefix else key))
        return flat
    return {prefix: json.dumps(value) if isinstance(value, list) else str(value)}


def fingerprint_backends(fingerprints: Iterable[dict[str, Any]]) -> set[str]:
    """The backends the fingerprints were taken on (records before backends: TensorFlow)."""
    return {str(f.get("keras_backend") or DEFAULT_BACKEND) for f in fingerprints}


@dataclass
class FieldChange:
    field: str
    reference: str
    value: str


def environment_changes(reference: dict[str, Any], other: dict[str, Any]) -> list[FieldChange]:
    """The fingerprint fields that can change a result and differ between two runs."""
    a, b = flatten(reference), flatten(other)
    # KERAS_BACKEND unset (records before the backends) is Keras' default: TensorFlow.
    for flat in (a, b):
        if flat.get("environment.KERAS_BACKEND") in (None, "None"):
            flat["environment.KERAS_BACKEND"] = "tensorflow"
    backends = fingerprint_backends([reference, other])
    return [
        FieldChange(field, a.get(field, "—"), b.get(field, "—"))
        for field in sorted(set(a) | set(b))
        if can_change_results(field, backends) and a.get(field) != b.get(field)
    ]


def describe_changes(changes: list[FieldChange]) -> str:
    return "; ".join(f"{c.field} {c.reference} → {c.value}" for c in changes)


def explain(
    first: Divergence,
    weights_identical: bool,
    trace: TraceComparison | None,
    changes: list[FieldChange],
) -> tuple[str, str]:
    """The cause of a pair's first divergence, and a sentence saying so."""
    if changes:
        return "environment", f"the environments differ ({describe_changes(changes)})"
    if first.kind == "data" or first.data_already_differed:
        return "data", "the data fed had already differed"
    if trace is not None and trace.identical and weights_identical:
        return "record", (
            "every step's loss and every weight are identical, so the metric computation "
            "differs, or the record was changed after training"
        )
    if trace is None and weights_identical:
        return "record", (
            "the weights are identical, so the metric computation differs, or the record was "
            "changed after training"
        )
    initial = trace.first_weight_checkpoint if trace is not None else None
    if initial is not None and initial.step == 0:
        return "initialisation", (
            "the initial weights differ, before the first step, in "
            f"{', '.join(initial.variables)}: the model's initialisation did not repeat (an "
            "initializer drawing from an unseeded source?)"
        )
    if trace is not None and not trace.identical:
        where = []
        if trace.first_loss_step:
            step = trace.first_loss_step
            where.append(
                f"the loss first differs at step {step.step} (epoch {step.epoch}, batch "
                f"{step.batch}, {step.ulps} ULP)"
            )
        if trace.first_weight_checkpoint:
            checkpoint = trace.first_weight_checkpoint
            where.append(
                f"the weights first differ after step {checkpoint.step}, in "
                f"{', '.join(checkpoint.variables)}"
            )
        return "compute", (
            "the data fed was identical and the compute diverged: "
            + "; ".join(where)
            + f" ({trace.order()})"
        )
    return "compute", "the data fed was identical, so the compute diverged"
