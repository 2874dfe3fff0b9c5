"""Where exactly two runs part: which pairs to zoom into (the pairs that parted, from the last
checkpoint at which both still agreed, up to the first weight checkpoint of their traces that
differs), and the two sides' zoom records laid side by side: the exact step, the first layer,
the phase (the data fed, the forward pass, the loss, the backward pass, the update) and the
distance in ULPs there. A pair whose initial weights differ needs no zoom: its trace says so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keras_repro.comparison.steps import TraceComparison
from keras_repro.files import write_json_atomic
from keras_repro.records import Run, checkpoints_removed, read_zoom, read_zoom_value

PARTINGS_FORMAT = "keras-repro/partings"


@dataclass
class Parting:
    """A pair to zoom into: its sides replayed from a checkpoint, over a window of steps."""

    seed: int
    pair: str  # "repeat2", or "segment3" (verify: segments)
    # Each side: the run record it replays, its repeat and its nudge (None: none), as
    # {"reference": {...}, "other": {...}}
    sides: dict[str, dict[str, Any]]
    checkpoint: int  # the last checkpoint both sides agree in
    keep_from: int  # the first step of the window whose values are kept in full
    until: int  # the last step replayed: the first weight checkpoint of the traces that differs


def last_agreeing_checkpoint(a: list[dict], b: list[dict], before: int) -> int | None:
    """The index of the last checkpoint both runs saved in the very same state, at a step
    before ``before``."""
    agreed = None
    for mine, theirs in zip(a, b, strict=False):
        if mine["step"] >= before:
            break
        if mine["step"] == theirs["step"] and mine["variables"] == theirs["variables"]:
            agreed = mine["index"]
        else:
            break
    return agreed


def window(trace: TraceComparison, last_step: int, every: int) -> tuple[int, int] | None:
    """The steps to keep in full and the last to replay: from just after the last weight
    checkpoint of the traces that still agreed to the first that differs (or to the first
    step whose loss differs, when no weight checkpoint does). None: the traces never part
    after the initial weights (those need no zoom)."""
    first_loss = trace.first_loss_step.step if trace.first_loss_step else None
    weights = trace.first_weight_checkpoint
    if weights is not None and weights.step == 0:
        return None
    until = weights.step if weights is not None else first_loss
    if until is None:
        return None
    until = min(until, last_step)
    start = min(first_loss or until, until)
    return max(1, min(start, until - every + 1)), until


@dataclass
class ZoomFinding:
    """Where two sides replayed from one checkpoint first part."""

    from_checkpoint: int
    steps_replayed: int  # per side
    step: int | None  # None: they did not part again
    phase: str | None  # data, forward, loss, backward or update
    name: str | None  # the layer (forward), the variable (backward, update), the batch part
    layer: str | None  # the layer that holds it
    ulps: int | None  # the largest distance between the two values there, in ULPs


def _layer(phase: str, name: str) -> str | None:
    if phase == "forward":
        return name.split("#", 1)[0].split("[", 1)[0]
    if phase in ("backward", "update"):
        return name.rsplit("/", 1)[0] if "/" in name else name
    return None


def max_ulps(a: np.ndarray, b: np.ndarray) -> int | None:
    """The largest distance, element by element, in ULPs of the arrays' float type."""
    if a.shape != b.shape or a.dtype != b.dtype or a.dtype.kind != "f" or a.dtype.itemsize > 8:
        return None
    if not a.size:
        return 0
    width = {2: np.int16, 4: np.int32, 8: np.int64}[a.dtype.itemsize]
    mask = np.iinfo(width).max
    kind = object if a.dtype.itemsize == 8 else np.int64  # float64's distances overflow int64
    ordered = [
        np.where(bits < 0, -(bits & mask), bits).astype(kind)
        for bits in (a.view(width).astype(np.int64), b.view(width).astype(np.int64))
    ]
    return int(np.max(np.abs(ordered[0] - ordered[1])))


def _first_difference(
    mine: list[tuple[str, str, str]], theirs: list[tuple[str, str, str]]
) -> tuple[str, str] | None:
    """In one step, the first value that differs: the data, then the forward pass in the
    order computed, the loss, the gradient computed first (the layer nearest the output),
    then the variables after the update."""
    other = {(phase, name): digest for phase, name, digest in theirs}
    differing = [(p, n) for p, n, d in mine if other.get((p, n)) != d]
    differing += [(p, n) for p, n, _ in theirs if (p, n) not in {(q, m) for q, m, _ in mine}]
    for phase in ("data", "forward", "loss"):
        found = [entry for entry in differing if entry[0] == phase]
        if found:
            return found[0]
    backward = [entry for entry in differing if entry[0] == "backward"]
    if backward:
        return backward[-1]
    update = [entry for entry in differing if entry[0] == "update"]
    return update[0] if update else None


def zoom_window(finding: ZoomFinding, paths: tuple[Path, Path]) -> tuple[int, int]:
    """The steps within which the runs' traces parted: what the zoom kept in full."""
    zoom = read_zoom(paths[0])
    return zoom.keep_from, zoom.last_step


def compare_zooms(paths: tuple[Path, Path]) -> ZoomFinding:
    """Where the two sides' zoom records (reference, other) first part."""
    a, b = (read_zoom(path) for path in paths)
    for step in sorted(set(a.steps) & set(b.steps)):
        found = _first_difference(a.steps[step], b.steps[step])
        if found is None:
            continue
        phase, name = found
        key = f"{step}|{phase}|{name}"
        values = [
            read_zoom_value(path, zoom, key) for path, zoom in zip(paths, (a, b), strict=True)
        ]
        ulps = max_ulps(*values) if all(v is not None for v in values) else None
        return ZoomFinding(
            a.from_checkpoint, len(a.steps), step, phase, name, _layer(phase, name), ulps
        )
    return ZoomFinding(a.from_checkpoint, len(a.steps), None, None, None, None, None)


def find_partings(pairs: list[tuple[int, str, Any, Run, Run | None]], every: int) -> list[Parting]:
    """The pairs to zoom into: each ``(seed, pair, trace comparison, reference run, other run)``
    that parted after its initial weights (the other run None for a replayed segment: both
    sides then replay the reference run, one with its nudge and one without), from the last
    checkpoint both agree in."""
    found = []
    for seed, pair, trace, reference, other in pairs:
        last_step = reference.trace.last_step if reference.trace is not None else 0
        steps = window(trace, last_step, every) if trace is not None else None
        checkpoints = reference.record.checkpoints or []
        if steps is None or not checkpoints:
            continue
        if other is None:
            index = int(pair.removeprefix("segment")) - 1
            sides = {"reference": _side(reference, True), "other": _side(reference, False)}
        else:
            index = last_agreeing_checkpoint(
                checkpoints, other.record.checkpoints or [], before=steps[0]
            )
            sides = {"reference": _side(reference, True), "other": _side(other, True)}
        if index is None or checkpoints_gone(reference, other):
            continue
        found.append(
            Parting(
                seed, pair, sides, index, max(steps[0], checkpoints[index]["step"] + 1), steps[1]
            )
        )
    return found


def checkpoints_gone(*runs: Run | None) -> bool:
    """Whether any of ``runs`` had its checkpoint files removed (keep_checkpoints: false): its
    pairs cannot be replayed step by step."""
    return any(
        run is not None and checkpoints_removed(Path(run.path).parent, run.record.checkpoints)
        for run in runs
    )


def pair_name(pair: Any) -> str:
    """A pair's name in paths: ``repeat2``, or ``segment3``."""
    return f"segment{pair.segment}" if pair.segment is not None else f"repeat{pair.repeat}"


def parted_pairs(
    comparison: Any, runs: list[Run]
) -> list[tuple[int, str, TraceComparison | None, Run, Run | None]]:
    """Every pair of ``comparison`` that parted, with the runs it compared (the reference's
    first repeat, and the other repeat; None for a replayed segment)."""
    by_key = {(run.record.seed, run.record.repeat): run for run in runs}
    found = []
    for seed, result in comparison.seeds.items():
        reference = by_key.get((seed, result.reference_repeat))
        for pair in result.pairs:
            if pair.identical or reference is None:
                continue
            other = None if pair.segment is not None else by_key.get((seed, pair.repeat))
            if pair.segment is None and other is None:
                continue
            found.append((seed, pair_name(pair), pair.trace, reference, other))
    return found


def zoom_groups(paths: list[Path]) -> dict[tuple[int, str], tuple[Path, Path]]:
    """The zoom records by (seed, pair): ``…/seed{s}/{pair}/reference.json`` and
    ``other.json``."""
    sides: dict[tuple[int, str], dict[str, Path]] = {}
    for path in map(Path, paths):
        key = (int(path.parent.parent.name.removeprefix("seed")), path.parent.name)
        sides.setdefault(key, {})[path.stem] = path
    return {
        key: (found["reference"], found["other"])
        for key, found in sides.items()
        if {"reference", "other"} <= set(found)
    }


def _side(run: Run, nudged: bool) -> dict[str, Any]:
    """What one side replays: the run's record, its repeat, and its nudge (a segment's replay
    side has none: the replay did not repeat it)."""
    settings = run.record.settings
    step = settings.get("perturb_step") if nudged else None
    perturb = {
        "step": step,
        "variable": settings.get("perturb_variable"),
        "batch": bool(settings.get("perturb_batch")),
    }
    return {
        "record": str(run.path),
        "repeat": run.record.repeat,
        "perturb": perturb if step else None,
    }


def write_partings(partings: list[Parting], path: Path) -> None:
    write_json_atomic({"format": PARTINGS_FORMAT, "partings": [asdict(p) for p in partings]}, path)


def read_partings(path: Path) -> list[Parting]:
    """The partings ``find_partings`` listed (a file this workflow wrote: checked lightly)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("format") != PARTINGS_FORMAT:
        raise ValueError(f"{path}: not a {PARTINGS_FORMAT} file")
    return [Parting(**entry) for entry in data["partings"]]
