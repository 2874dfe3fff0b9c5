"""The recipe's initializer claims, checked over draws made in separate processes: seeded
initializers repeat within and across processes, two objects with the same seed agree, two
unseeded objects differ from each other and repeat across processes after set_random_seed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from keras_repro.comparison.compare import Divergence


@dataclass
class InitializerCheck:
    check: str
    claim: str
    holds: bool
    detail: str


def _initializer_checks(draws: list[dict[str, Any]]) -> Iterator[InitializerCheck]:
    first = draws[0]
    for initializer, values in first["seeded"].items():
        per_process = [d["seeded"][initializer] for d in draws]
        same_across = all(v == per_process[0] for v in per_process)
        yield InitializerCheck(
            initializer,
            f"seed={first['initializer_seed']} repeats within and across processes",
            same_across and all(v[0] == v[1] for v in per_process),
            f"{float.fromhex(values[0])!r} in process 1"
            + ("" if same_across else f"; per process {per_process}"),
        )
    for index, draw in enumerate(draws, start=1):
        a, b = draw["same_seed_objects"]
        yield InitializerCheck(
            f"GlorotNormal(seed={draw['initializer_seed']}) × 2, process {index}",
            "two objects with the same seed give equal values",
            a == b,
            f"{sum(x != y for x, y in zip(a, b, strict=False))} of {len(a)} values differ",
        )
        c, d = draw["unseeded_objects"]
        yield InitializerCheck(
            f"GlorotNormal() × 2, process {index}",
            "two unseeded objects differ from each other",
            c != d,
            f"{sum(x != y for x, y in zip(c, d, strict=False))} of {len(c)} values differ",
        )
    yield InitializerCheck(
        "GlorotNormal() across processes",
        "unseeded draws repeat across processes after set_random_seed",
        all(d["unseeded_objects"] == first["unseeded_objects"] for d in draws),
        f"{len(draws)} processes compared",
    )


def check_initializers(
    draws: list[dict[str, Any]],
) -> tuple[list[InitializerCheck], list[Divergence]]:
    """The recipe's initializer claims, per process and across processes: every check, and
    the failed ones as divergences."""
    checks = list(_initializer_checks(draws))
    failed = [
        Divergence(kind="initializer", message=f"{c.check}: {c.claim} does not hold ({c.detail})")
        for c in checks
        if not c.holds
    ]
    return checks, failed
