"""The verdict's sentences, each said in one place: the headline of a comparison, a divergence
described, why runs did not train, what fails a cell, the planted nudge, and the line of an
identical verdict. The cell's report, the matrix, the front page and the verdict on the console
all say them from here."""

from __future__ import annotations

from collections.abc import Iterable

from keras_repro.comparison.compare import Divergence
from keras_repro.comparison.noise import NoiseFloor
from keras_repro.comparison.summary import Comparison, Verification
from keras_repro.comparison.zoom import ZoomFinding
from keras_repro.files import human_size

RETRAIN_REFUSED = "Delete each refused record and run the workflow again to retrain it."
# Said on the matrix page and the front page of `snakemake --report`.
KEEP_APART = (
    "Results are kept by model and backend only: a run of this cell with another config "
    "(dataset, subset, epochs, compile...) replaces its runs and its report. Keep experiments "
    "apart with a folder each, its config.yaml in it: snakemake --cores all --directory "
    "EXPERIMENT (a model file's path is then relative to that folder)."
)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def describe_divergence(divergence: Divergence) -> str:
    """Where a divergence is (seed, repeat, epoch), what it is, and what explains it."""
    parts = [f"seed {divergence.seed}"] if divergence.seed is not None else []
    if divergence.segment is not None:
        parts.append(f"segment {divergence.segment}")
    elif divergence.repeat is not None:
        parts.append(f"repeat {divergence.repeat} vs {divergence.reference_repeat}")
    if divergence.epoch is not None:
        parts.append(f"epoch {divergence.epoch}")
    text = ", ".join(parts) + (": " if parts else "") + divergence.message
    if divergence.explanation:
        return f"{text} — {divergence.explanation}"
    if divergence.data_already_differed is not None:
        text += (
            " — the data fed had already differed"
            if divergence.data_already_differed
            else " — the data fed was identical, so the compute diverged"
        )
    return text


PHASE_WORDS = {
    "data": "the data fed",
    "forward": "the forward pass",
    "loss": "the loss",
    "backward": "the backward pass",
    "update": "the update",
}


UNZOOMED_SENTENCE = (
    "not replayed step by step: its checkpoints were removed once a verdict had passed "
    "(keep_checkpoints: false; train it again with them kept to see the step, layer and phase)"
)


def zoom_sentence(zoom: ZoomFinding, runs_parted: tuple[int, int] | None = None) -> str:
    """Where a pair's two sides, replayed step by step from a checkpoint, first part; and,
    when that is not where the runs parted (``runs_parted``: their window), both places."""
    replayed = (
        f"replayed step by step from checkpoint {zoom.from_checkpoint} "
        f"({plural(zoom.steps_replayed, 'step')} each)"
    )
    where = f"the runs parted within steps {runs_parted[0]}–{runs_parted[1]}" if runs_parted else ""
    if zoom.step is None:
        return (
            f"{replayed}, the two sides did not part again: the difference does not repeat "
            f"itself (nondeterminism that is itself nondeterministic?)"
            + (f"; {where}" if where else "")
        )
    what = {
        "data": f"the batch's {zoom.name}",
        "forward": f"the output of layer {zoom.layer}",
        "loss": "the loss",
        "backward": f"the gradient of {zoom.name}",
        "update": f"{zoom.name} after the optimizer's update",
    }[zoom.phase]
    distance = f", {plural(zoom.ulps, 'ULP')}" if zoom.ulps is not None else ""
    said = (
        f"{replayed}, they part at step {zoom.step}, in {PHASE_WORDS[zoom.phase]}"
        + (f" of layer {zoom.layer}" if zoom.layer else "")
        + f" ({what}{distance})"
    )
    if runs_parted and not runs_parted[0] <= zoom.step <= runs_parted[1]:
        said += f"; not where the runs parted: {where}"
    return said


def noise_sentence(noise: NoiseFloor) -> str:
    """Whether the implementation's noise is negligible next to the seeds' spread."""
    row = noise.headline
    if row is None:
        return "the noise floor's runs share no metric: nothing to compare"
    spreads = (
        f"{row.metric} spreads by {row.implementation.std:.4g} (std over "
        f"{plural(noise.implementation_runs, 'run')} of seed {noise.seed} with the determinism "
        f"switches off) against {row.seeds.std:.4g} (over {plural(len(noise.seeds), 'seed')} "
        "with them on)"
    )
    if row.share is None:
        return (
            f"{spreads}: the seeds do not spread it, so the implementation's noise is all there is"
        )
    verdict = "negligible" if row.negligible else "NOT negligible"
    return (
        f"{spreads}: the implementation's noise is {verdict} next to the seeds' spread "
        f"({100 * row.share:.0f} % of it)"
    )


def refused_records(count: int) -> str:
    return plural(count, "run record")


def headline(comparison: Comparison) -> str:
    if comparison.verdict == "refused":
        count = len(comparison.refused)
        refused = [refused_records(count)] if count else []
        if comparison.reference is not None and comparison.reference.refused:
            refused.append("the reference bundle")
        verb = "was" if len(refused) == 1 and count <= 1 else "were"
        return f"REFUSED: {' and '.join(refused)} {verb} refused, so no verdict can be given"
    if comparison.verdict == "failed":
        failed = [o for o in comparison.outcomes if o.status == "failed"]
        ops = ", ".join(dict.fromkeys(o.op or "an op" for o in failed))
        return (
            f"FAILED: {plural(len(failed), 'run')} met an op without a deterministic kernel "
            f"here ({ops})"
        )
    if comparison.verdict == "not-possible":
        return f"NOT POSSIBLE HERE: {outcome_reasons(comparison)}"
    if comparison.identical:
        proven = covered(comparison.verification)
        return f"IDENTICAL ({comparison.mode_label}): all {comparison.runs} runs agree" + (
            f", {proven}" if proven else ""
        )
    return f"MISMATCH ({comparison.mode_label}): {found(comparison)}"


def found(comparison: Comparison) -> str:
    """What a comparison found that fails it, counted as the verdict lists it: the seeds whose
    runs diverged (each seed's first divergence is listed, and how many values differed in
    all), the other divergences (seeds alike, initializers), the failed checks."""
    diverged = [result for result in comparison.seeds.values() if result.first_divergence]
    in_seeds = sum(
        d.kind not in ("seed_ineffective", "initializer") for d in comparison.divergences
    )
    said = []
    if diverged:
        listed = "the first listed" if len(diverged) == 1 else "each seed's first listed"
        said.append(
            f"{len(diverged)} of {plural(len(comparison.seeds), 'seed')} diverged"
            + (f" ({in_seeds} differences in all, {listed})" if in_seeds > len(diverged) else "")
        )
    others = len(comparison.headline_divergences()) - len(diverged)
    said += [plural(others, "divergence")] if others else []
    said += [plural(len(comparison.failures), "failed check")] if comparison.failures else []
    return ", ".join(said)


def outcome_reasons(comparison: Comparison) -> str:
    """Why runs did not train, each reason once, with its source."""
    return "; ".join(
        dict.fromkeys(
            f"{o.reason} (source: {o.source})" if o.source else o.reason
            for o in comparison.outcomes
        )
    )


def problems(comparison: Comparison) -> list[str]:
    """One line for each thing that fails the verdict: the runs that met an op without a
    deterministic kernel, then the first divergences."""
    failed = [
        f"seed {o.seed}, repeat {o.repeat}{'' if o.arm == 'seeded' else f' ({o.arm})'}: {o.reason}"
        for o in comparison.outcomes
        if o.status == "failed"
    ]
    return (
        failed
        + [describe_divergence(d) for d in comparison.headline_divergences()]
        + list(comparison.failures)
    )


def refused_reasons(comparison: Comparison) -> list[str]:
    """Why each refused record, and the reference bundle, were refused."""
    lines = [r.reason for r in comparison.refused]
    if comparison.reference is not None and comparison.reference.refused:
        lines.append(comparison.reference.refused)
    return lines


def not_reproducible(comparison: Comparison) -> str:
    return f"runs are NOT reproducible ({comparison.mode_label}): {found(comparison)}."


def planted_expected(nudges: str) -> str:
    return f"planted: {nudges}: this divergence is expected."


def planted_missed(nudges: str) -> str:
    return (
        f"planted: {nudges}, yet every run came out identical: the check missed it, or the "
        "nudge never happened"
    )


def covered(verification: Verification | None) -> str | None:
    """What the verification covered, when segments were asked for: the segments replayed,
    what those not replayed leave unseen, or why segments were not possible here."""
    if verification is None or verification.requested != "segments":
        return None
    if verification.method != "segments":
        return (
            f"verify: segments was not possible here ({verification.why}), so repeats verified it"
        )
    sampled = [s for s in verification.segments if s.unseen is not None]
    if not sampled:
        runs = plural(len(verification.segments), "run")
        return f"proven by replaying the {plural(verification.total, 'segment')} of {runs}"
    worst = max(sampled, key=lambda s: s.unseen or 0)
    drawn = (
        f" (drawn with seed {verification.draw_seed})" if verification.draw_seed is not None else ""
    )
    return (
        f"{verification.replayed} of {verification.total} segments replayed{drawn}: a fault "
        f"present in a fifth of the segments would go unseen with probability "
        f"{worst.unseen:.2f}"
    )


def verified_by(comparison: Comparison) -> str:
    """How the cell's seeds were proven, for the report's table of what was trained."""
    verification = comparison.verification
    repeats = ", ".join(map(str, comparison.coverage.repeats)) if comparison.coverage else "?"
    if verification is None or verification.method == "repeats":
        said = f"repeats: {repeats} runs of each seed, each in its own process"
        if verification is not None and verification.requested == "segments":
            said += f" (segments were asked for, but are not possible here: {verification.why})"
    else:
        said = (
            "segments: each seed trained once with checkpoints, every segment between two "
            "checkpoints replayed in a fresh process of its own and held against the run; "
            + (covered(verification) or "")
        )
    if verification is not None and verification.checkpoint_bytes:
        said += f"; the checkpoints take {human_size(verification.checkpoint_bytes)}"
    return said


def identical_line(
    modes: Iterable[str],
    runs: int,
    seeds: Iterable[int],
    report: str,
    cells: str = "",
    proven: Iterable[str | None] = (),
    dataset: str | None = None,
) -> str:
    """The verdict's line when every judged run agreed; ``cells``: how many cells and which
    (a matrix of more than one); ``proven``: what segments replayed covered (``covered``);
    ``dataset``: what they trained on (the manifest's name, when known)."""
    said = "; ".join(dict.fromkeys(p for p in proven if p))
    return (
        f"identical ({', '.join(dict.fromkeys(modes))}): {plural(runs, 'run')}{cells}, "
        f"seeds {', '.join(map(str, dict.fromkeys(seeds)))}"
        + (f", {said}" if said else "")
        + (f", on dataset {dataset}" if dataset else "")
        + f" — report: {report}"
    )
