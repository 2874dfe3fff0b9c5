"""The noise floor: does the implementation's noise matter for a result? Beside the seeded runs,
N runs of one seed with the backend's determinism switches off (what the implementation alone
spreads) and N more seeds with them on (what the seed spreads): per metric at the end of
training, both spreads side by side, and one sentence on whether the first is negligible next
to the second (Pham et al., ASE 2020; Morin & Willetts 2020)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from keras_repro.records import RunRecord

# Implementation noise is said to be negligible when its spread is at most this share of the
# seeds' spread.
NEGLIGIBLE_SHARE = 0.1


@dataclass
class Spread:
    values: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.pstdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)


@dataclass
class NoiseRow:
    metric: str  # evaluate.<name>, or a history metric's last epoch
    implementation: Spread  # one seed, determinism off
    seeds: Spread  # one run per seed, determinism on

    @property
    def share(self) -> float | None:
        """The implementation's spread as a share of the seeds' (None: the seeds' is 0)."""
        if self.seeds.std == 0:
            return None if self.implementation.std else 0.0
        return self.implementation.std / self.seeds.std

    @property
    def negligible(self) -> bool:
        share = self.share
        return share is not None and share <= NEGLIGIBLE_SHARE


@dataclass
class NoiseFloor:
    seed: int  # the seed of the runs with determinism off
    implementation_runs: int
    seeds: list[int] = field(default_factory=list)
    rows: list[NoiseRow] = field(default_factory=list)

    @property
    def headline(self) -> NoiseRow | None:
        """The row the sentence is about: evaluate()'s accuracy, else its loss, else the
        first."""
        by_name = {row.metric: row for row in self.rows}
        for name in ("evaluate.accuracy", "evaluate.loss"):
            if name in by_name:
                return by_name[name]
        return self.rows[0] if self.rows else None


def _finals(record: RunRecord) -> dict[str, float]:
    finals = {f"evaluate.{name}": value for name, value in record.evaluation.items()}
    finals |= {name: values[-1] for name, values in record.history.items() if values}
    return finals


def noise_floor(implementation: list[RunRecord], seeds: list[RunRecord]) -> NoiseFloor | None:
    """Both spreads of every metric the runs share at the end of training; None without runs
    on both sides."""
    if not implementation or not seeds:
        return None
    off, on = [_finals(r) for r in implementation], [_finals(r) for r in seeds]
    shared = sorted(set.intersection(*(set(f) for f in off + on)), key=lambda m: (m[0] != "e", m))
    return NoiseFloor(
        seed=implementation[0].seed,
        implementation_runs=len(implementation),
        seeds=[r.seed for r in seeds],
        rows=[
            NoiseRow(name, Spread([f[name] for f in off]), Spread([f[name] for f in on]))
            for name in shared
        ],
    )
