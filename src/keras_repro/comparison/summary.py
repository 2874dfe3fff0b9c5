"""The comparison's one typed result: per seed, per repeat, per metric and epoch; the control
arm, the reference, the initializer checks.

``summarize`` builds it from the run records, ``summary_json`` writes and reads it as
``summary.json``; the report's Markdown and HTML are rendered from it, and the verdict is
judged from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keras_repro.comparison.compare import Divergence, Tolerance
from keras_repro.comparison.coverage import Coverage
from keras_repro.comparison.diagnosis import FieldChange
from keras_repro.comparison.initializer_checks import InitializerCheck
from keras_repro.comparison.noise import NoiseFloor
from keras_repro.comparison.steps import TraceComparison
from keras_repro.comparison.zoom import ZoomFinding
from keras_repro.records import RefusedRecord, RunOutcome


@dataclass
class ValueCell:
    """One run's value of a metric, against the same value of the seed's reference repeat."""

    hex: str | None  # float.hex; None when this run lacks the value
    differs: bool  # not bit-identical to the reference repeat's value (or missing)
    ulps: int | None = None  # distance from the reference value, when both exist and differ

    @property
    def value(self) -> float | None:
        return None if self.hex is None else float.fromhex(self.hex)


@dataclass
class MetricRow:
    metric: str  # a history metric, or evaluate.<metric>
    epoch: int | None  # 1-based; None for evaluate()
    cells: list[ValueCell]


@dataclass
class DigestCell:
    digests: list[str]
    differs: bool


@dataclass
class DigestRow:
    label: str
    when: str
    cells: list[DigestCell]


@dataclass
class PairResult:
    """One run against another of the same seed (or against the saved reference)."""

    repeat: int
    identical: bool
    divergences: int
    first_divergence: Divergence | None
    cause: str | None = (
        None  # environment, data, initialisation, compute or record: see diagnosis.explain
    )
    trace: TraceComparison | None = None
    segment: int | None = None  # a replayed segment against the run (verify: segments)
    steps: list[int] | None = None  # the segment's first and last step
    zoom: ZoomFinding | None = None  # where the pair's sides, replayed step by step, part

    @property
    def label(self) -> str:
        """What was compared with the seed's run: a repeat, or a segment and its steps."""
        if self.segment is None:
            return f"repeat {self.repeat}"
        return f"segment {self.segment}" + (
            f" (steps {self.steps[0]}–{self.steps[1]})" if self.steps else ""
        )


@dataclass
class SeedResult:
    reference_repeat: int
    repeats: list[int]
    identical: bool
    first_divergence: Divergence | None
    pairs: list[PairResult]
    metrics: list[MetricRow]
    digests: list[DigestRow]


@dataclass
class FingerprintRow:
    field: str
    values: list[str]  # one per run, in the order of Comparison.run_labels
    differs_within_seed: bool  # and can change a result (fields that vary by design never do)
    varies_by_design: bool = False  # differs within a seed, but cannot change a result


@dataclass
class RunTime:
    label: str
    arm: str
    seconds: float
    seconds_per_epoch: float


@dataclass
class ControlGroup:
    """Runs of the control arm, compared with each other."""

    arm: str  # unseeded (each run draws its seed) or nondeterministic (op determinism off)
    labels: list[str]
    identical: bool
    first_divergence: Divergence | None
    seconds_per_epoch: float  # median


@dataclass
class ControlResult:
    enabled: bool
    unseeded: ControlGroup | None = None
    nondeterministic: ControlGroup | None = None
    deterministic_seconds_per_epoch: float | None = None  # median of the same seed's runs
    # The model in whose cell (on this backend) the runs with op determinism off trained, when
    # they train once per backend and not here (control.nondeterministic: per_backend).
    nondeterministic_on: str | None = None

    @property
    def has_power(self) -> bool | None:
        """False when runs without a common seed came out identical."""
        return None if self.unseeded is None else not self.unseeded.identical

    @property
    def determinism_cost(self) -> float | None:
        """Seconds per epoch with op determinism on, over off."""
        if self.nondeterministic is None or not self.deterministic_seconds_per_epoch:
            return None
        return self.deterministic_seconds_per_epoch / self.nondeterministic.seconds_per_epoch


@dataclass
class ReferenceRun:
    """A seed's first run now, against the reference's run of that seed."""

    seed: int
    classification: str  # identical, bug (same environment) or drift (environment changed)
    changes: list[FieldChange]
    pair: PairResult


@dataclass
class ReferenceResult:
    path: str
    created: str
    drift: str  # what drift does to the verdict: report or fail
    not_comparable: list[str]  # why the reference cannot be compared with these runs
    runs: list[ReferenceRun]
    refused: str | None = None  # why the bundle could not be read: the verdict is refused

    def failures(self) -> list[str]:
        if self.refused:
            return []
        if self.not_comparable:
            return [f"reference {self.path} is not comparable: " + "; ".join(self.not_comparable)]
        return [
            f"seed {run.seed} differs from the reference {self.path}"
            + (
                " in the same environment: a reproducibility bug"
                if run.classification == "bug"
                else " after the environment changed (drift)"
            )
            for run in self.runs
            if run.classification == "bug"
            or (run.classification == "drift" and self.drift == "fail")
        ]


# A fault present in this share of a run's segments is what a sample of them is said against.
FAULT_SHARE = 0.2


@dataclass
class SegmentCoverage:
    """What ``verify: segments`` replayed of one seed's run."""

    seed: int
    total: int  # the run's segments (its checkpoints, less the first)
    replayed: list[int]  # the segments replayed (1-based)

    @property
    def unseen(self) -> float | None:
        """The chance that a fault in a fifth of the segments (each independently) is in none
        of those replayed; None when every segment was."""
        if len(self.replayed) >= self.total:
            return None
        return (1 - FAULT_SHARE) ** len(self.replayed)


@dataclass
class Verification:
    """How the cell's seeds were proven, and what that covered."""

    method: str  # repeats or segments
    requested: str  # what the config asked for
    why: str | None = None  # why segments were not possible here, said up front
    segments: list[SegmentCoverage] = field(default_factory=list)
    draw_seed: int | None = None  # what drew the segments replayed, when not all were
    checkpoint_bytes: int = 0  # the disk the seeded runs' checkpoints take

    @property
    def replayed(self) -> int:
        return sum(len(s.replayed) for s in self.segments)

    @property
    def total(self) -> int:
        return sum(s.total for s in self.segments)


@dataclass
class InitializerResult:
    processes: int
    global_seed: int | None
    checks: list[InitializerCheck]


@dataclass
class Comparison:
    # identical, mismatch, refused (a record could not be trusted), failed (a run met an op
    # without a deterministic kernel) or not-possible (every run was a known limit, said up front)
    verdict: str
    mode: str  # exact or tolerance
    mode_label: str
    tolerance: Tolerance | None
    runs: int
    run_labels: list[str]
    seeds: dict[int, SeedResult]
    seeds_differ: bool | None  # None: one seed, so seeds were not compared with each other
    initializers: InitializerResult
    fingerprints: list[FingerprintRow]
    divergences: list[Divergence] = field(default_factory=list)
    refused: list[RefusedRecord] = field(default_factory=list)
    controls: ControlResult = field(default_factory=lambda: ControlResult(enabled=False))
    reference: ReferenceResult | None = None
    times: list[RunTime] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # what fails the verdict beyond the pairs
    coverage: Coverage | None = None  # what was trained (summaries written before: None)
    outcomes: list[RunOutcome] = field(default_factory=list)  # runs that did not train
    verification: Verification | None = None  # None: summaries written before it was said
    noise: NoiseFloor | None = None  # the noise floor, when the config asked for it

    @property
    def identical(self) -> bool:
        return self.verdict == "identical"

    def headline_divergences(self) -> list[Divergence]:
        """The first divergence of each seed, then every failure that belongs to no one pair."""
        firsts = [s.first_divergence for s in self.seeds.values() if s.first_divergence]
        others = [d for d in self.divergences if d.kind in ("seed_ineffective", "initializer")]
        return firsts + others
