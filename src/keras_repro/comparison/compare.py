"""Compare run records bit for bit (or within a stated tolerance) and name where they diverge."""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from keras_repro.records import RunRecord


@dataclass(frozen=True)
class Tolerance:
    """``|a - b| <= atol + rtol * |b|``; no tolerance means bit-exact."""

    rtol: float = 0.0
    atol: float = 0.0

    @classmethod
    def from_config(cls, comparison: dict[str, Any]) -> Tolerance | None:
        """The config's ``comparison`` section: None (bit-exact) unless mode is tolerance."""
        if comparison["mode"] == "exact":
            return None
        return cls(rtol=comparison["rtol"], atol=comparison["atol"])

    def describe(self) -> str:
        return f"within tolerance (rtol={self.rtol:g}, atol={self.atol:g})"


def describe_mode(tolerance: Tolerance | None) -> str:
    return "bit-exact" if tolerance is None else tolerance.describe()


@dataclass
class Divergence:
    # data, metric, length, missing_metric, weights, evaluation, state (a replayed segment's
    # end), seed_ineffective, initializer
    kind: str
    message: str
    seed: int | None = None
    repeat: int | None = None
    reference_repeat: int | None = None
    segment: int | None = None  # a replayed segment's (verify: segments)
    epoch: int | None = None  # 1-based
    metric: str | None = None
    reference_value: str | None = None  # float.hex, or a digest
    value: str | None = None
    ulps: int | None = None
    ulp_dtype: str | None = None
    data_already_differed: bool | None = None
    explanation: str | None = None  # why, for the first divergence of a pair (see diagnosis)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _ordered_bits(value: float, dtype: str) -> int:
    """Map a float's bits to an integer line on which neighbouring floats are 1 apart."""
    if dtype == "float32":
        (bits,) = struct.unpack("<I", struct.pack("<f", value))
        sign_bit, magnitude = 1 << 31, bits & 0x7FFF_FFFF
    else:
        (bits,) = struct.unpack("<Q", struct.pack("<d", value))
        sign_bit, magnitude = 1 << 63, bits & 0x7FFF_FFFF_FFFF_FFFF
    return -magnitude if bits & sign_bit else magnitude


def _is_float32(value: float) -> bool:
    if not math.isfinite(value):
        return True
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0] == value
    except OverflowError:
        return False


def ulp_distance(a: float, b: float) -> tuple[int | None, str]:
    """Distance in units in the last place, in float32 when both values are float32 (as
    Keras' metrics are), else in float64. None when either is NaN."""
    dtype = "float32" if _is_float32(a) and _is_float32(b) else "float64"
    if math.isnan(a) or math.isnan(b):
        return None, dtype
    return abs(_ordered_bits(a, dtype) - _ordered_bits(b, dtype)), dtype


def values_match(a: float, b: float, tolerance: Tolerance | None) -> bool:
    """Bit-exact (NaN matches NaN), or within ``tolerance`` when one is given."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if tolerance is None:
        return struct.pack("<d", a) == struct.pack("<d", b)
    return abs(a - b) <= tolerance.atol + tolerance.rtol * abs(b)


def describe_values(reference: float, value: float) -> tuple[str, int | None, str]:
    ulps, dtype = ulp_distance(reference, value)
    distance = f"{ulps} ULP ({dtype})" if ulps is not None else "NaN on one side"
    return f"{reference!r} vs {value!r}, {distance}", ulps, dtype


# Where a divergence falls within an epoch, in the order training produces things: the batches
# fed, the training metrics, the weights at the epoch's end, then validation. A divergence's
# place on the timeline is (epoch, phase, name); math.inf stands for "after the last epoch".
DATA, TRAINING, WEIGHTS, VALIDATION = range(4)
Timeline = Iterator[tuple[tuple[float, int, str], Divergence]]


def _phase(metric: str) -> int:
    return VALIDATION if metric.startswith("val_") else TRAINING


def _first_data_epoch(reference: RunRecord, other: RunRecord, first_epoch: int) -> float:
    """The first epoch whose training or validation batches differed (math.inf: none)."""
    first = math.inf
    for split in ("train", "validation"):
        pairs = itertools.zip_longest(
            reference.data_digests.get(split, []), other.data_digests.get(split, [])
        )
        for epoch, (a, b) in enumerate(pairs, start=first_epoch):
            if a != b:
                first = min(first, epoch)
                break
    return first


def _data_divergences(
    reference: RunRecord, other: RunRecord, where: dict[str, Any], first_epoch: int
) -> Timeline:
    for split in ("train", "validation", "evaluate"):
        pairs = itertools.zip_longest(
            reference.data_digests.get(split, []), other.data_digests.get(split, [])
        )
        start = first_epoch if split != "evaluate" else 1
        for index, (a, b) in enumerate(pairs, start=start):
            if a == b:
                continue
            epoch = index if split != "evaluate" else None
            yield (
                (epoch or math.inf, DATA, split),
                Divergence(
                    kind="data",
                    message=f"{split} batches of pass {index} differ (digest {a} vs {b})",
                    epoch=epoch,
                    metric=f"data.{split}",
                    reference_value=a,
                    value=b,
                    **where,
                ),
            )


def _history_divergences(
    reference: RunRecord,
    other: RunRecord,
    tolerance: Tolerance | None,
    where: dict[str, Any],
    data_epoch: float,
    first_epoch: int,
) -> Timeline:
    for name in sorted(set(reference.history) | set(other.history)):
        if name not in reference.history or name not in other.history:
            side = "the reference" if name not in reference.history else f"repeat {other.repeat}"
            yield (
                (0, _phase(name), name),
                Divergence(
                    kind="missing_metric",
                    message=f"metric {name!r} missing in {side}",
                    metric=name,
                    **where,
                ),
            )
            continue
        ref_values, values = reference.history[name], other.history[name]
        for epoch, (a, b) in enumerate(zip(ref_values, values, strict=False), start=first_epoch):
            if values_match(a, b, tolerance):
                continue
            text, ulps, dtype = describe_values(a, b)
            yield (
                (epoch, _phase(name), name),
                Divergence(
                    kind="metric",
                    message=f"{name} at epoch {epoch}: {text}",
                    epoch=epoch,
                    metric=name,
                    reference_value=a.hex(),
                    value=b.hex(),
                    ulps=ulps,
                    ulp_dtype=dtype,
                    data_already_differed=data_epoch <= epoch,
                    **where,
                ),
            )
        if len(ref_values) != len(values):
            epoch = min(len(ref_values), len(values)) + first_epoch
            yield (
                (epoch, _phase(name), name),
                Divergence(
                    kind="length",
                    message=f"{name}: {len(ref_values)} epochs in the reference, {len(values)} here",
                    epoch=epoch,
                    metric=name,
                    **where,
                ),
            )


def _weight_divergences(
    reference: RunRecord,
    other: RunRecord,
    where: dict[str, Any],
    data_epoch: float,
    first_epoch: int,
) -> Timeline:
    pairs = itertools.zip_longest(reference.weight_digests, other.weight_digests)
    for epoch, (a, b) in enumerate(pairs, start=first_epoch):
        if a != b:
            yield (
                (epoch, WEIGHTS, "weights"),
                Divergence(
                    kind="weights",
                    message=f"weights after epoch {epoch} differ",
                    epoch=epoch,
                    metric="weights",
                    reference_value=a,
                    value=b,
                    data_already_differed=data_epoch <= epoch,
                    **where,
                ),
            )
    if reference.final_weight_digest != other.final_weight_digest:
        yield (
            (math.inf, WEIGHTS, "final_weights"),
            Divergence(
                kind="weights",
                message="final weights differ",
                metric="final_weights",
                reference_value=reference.final_weight_digest,
                value=other.final_weight_digest,
                data_already_differed=data_epoch < math.inf,
                **where,
            ),
        )


def _evaluation_divergences(
    reference: RunRecord,
    other: RunRecord,
    tolerance: Tolerance | None,
    where: dict[str, Any],
    data_epoch: float,
) -> Timeline:
    for name in sorted(set(reference.evaluation) | set(other.evaluation)):
        a, b = reference.evaluation.get(name), other.evaluation.get(name)
        if a is not None and b is not None and values_match(a, b, tolerance):
            continue
        if a is None or b is None:
            message, ulps, dtype = f"evaluate() {name!r} missing on one side", None, None
        else:
            text, ulps, dtype = describe_values(a, b)
            message = f"evaluate() {name}: {text}"
        yield (
            (math.inf, VALIDATION, name),
            Divergence(
                kind="evaluation",
                message=message,
                metric=f"evaluate.{name}",
                reference_value=a.hex() if a is not None else None,
                value=b.hex() if b is not None else None,
                ulps=ulps,
                ulp_dtype=dtype,
                data_already_differed=data_epoch < math.inf,
                **where,
            ),
        )


def compare_runs(
    reference: RunRecord,
    other: RunRecord,
    tolerance: Tolerance | None = None,
    first_epoch: int = 1,
) -> list[Divergence]:
    """Every difference between two runs of one seed, in the order training produced them;
    their first epoch is ``first_epoch`` (a replayed segment's may be later).

    Weight digests can only be judged bit for bit, so a tolerance leaves them out.
    """
    where = {"seed": other.seed, "repeat": other.repeat, "reference_repeat": reference.repeat}
    data_epoch = _first_data_epoch(reference, other, first_epoch)
    weights = (
        _weight_divergences(reference, other, where, data_epoch, first_epoch)
        if tolerance is None
        else ()
    )
    timeline = [
        *_data_divergences(reference, other, where, first_epoch),
        *_history_divergences(reference, other, tolerance, where, data_epoch, first_epoch),
        *weights,
        *_evaluation_divergences(reference, other, tolerance, where, data_epoch),
    ]
    return [divergence for _, divergence in sorted(timeline, key=lambda item: item[0])]


def first_divergence(divergences: list[Divergence]) -> Divergence | None:
    """The earliest divergence in a metric or the weights, else the earliest of any kind."""
    computed = [d for d in divergences if d.kind != "data"]
    return (computed or divergences or [None])[0]


def compare_seeds(references: dict[int, RunRecord]) -> list[Divergence]:
    """Different seeds must train differently, or the seed is not reaching training: no two
    seeds may end with the same weights or the same history (grouped, not compared pairwise,
    so that a thousand seeds cost as little as two)."""
    groups: dict[tuple[str, Any], list[int]] = {}
    for seed, run in sorted(references.items()):
        history = tuple(
            (name, tuple(v.hex() for v in values)) for name, values in sorted(run.history.items())
        )
        for key in (("weights", run.final_weight_digest), ("history", history)):
            groups.setdefault(key, []).append(seed)
    divergences, reported = [], set()
    for seeds in groups.values():
        for seed_a, seed_b in itertools.pairwise(seeds):
            if (seed_a, seed_b) in reported:
                continue
            reported.add((seed_a, seed_b))
            divergences.append(
                Divergence(
                    kind="seed_ineffective",
                    message=f"seeds {seed_a} and {seed_b} gave identical histories or weights: "
                    "the seed is not reaching training",
                    seed=seed_b,
                    reference_value=str(seed_a),
                    value=str(seed_b),
                )
            )
    return divergences
