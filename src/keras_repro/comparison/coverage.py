"""What a comparison covers, taken from the runs' own records and the dataset's manifest (never
from the current config): the report's first block, the front page of Snakemake's report, and
the nudge planted on purpose, said as such wherever the verdict is."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from keras_repro.records import Run

# Records from before the model registry name no model: the recipe's CNN (the registry's
# "recipe") was the only one.
RECIPE_MODEL = "recipe"
# Fingerprint fields shown even when every run agrees; the other agreeing ones are folded.
KEY_FINGERPRINT_FIELDS = frozenset(
    {
        "python",
        "tensorflow",
        "keras",
        "keras_backend",
        "numpy",
        "device",
        "cpu_model",
        "gpus",
        "gpu_driver",
        "op_determinism",
        "intra_op_threads",
        "inter_op_threads",
        "hostname",
        "platform",
    }
)


@dataclass
class Nudge:
    """A deliberate one-ULP nudge of one weight variable, planted to see the check catch it."""

    seed: int
    repeat: int
    step: int
    variable: str
    batch: bool = False  # two examples swapped in the step's batch, not a weight nudged

    def describe(self) -> str:
        if self.batch:
            return (
                f"a deliberate swap of two examples in the batch fed to seed {self.seed} "
                f"repeat {self.repeat} at step {self.step}"
            )
        return (
            f"a deliberate one-ULP nudge in seed {self.seed} repeat {self.repeat} after step "
            f"{self.step}, {self.variable}"
        )


@dataclass
class Coverage:
    """What was trained. Each list holds the distinct values over the runs, in their order: one
    value when the runs agree, as they should."""

    dataset: str | None  # the manifest's dataset name; None without a manifest
    dataset_sha256: list[str]
    subset: dict[str, int | None] | None
    train_examples: list[int]
    test_examples: list[int]
    epochs: list[int]
    batch_size: list[int]
    model: list[str]
    backend: list[str]
    seeds: list[int]  # in the order configured (the order the records were given)
    repeats: list[int]  # runs per seed
    threads: list[int]
    device: list[str]  # the device each run used
    hosts: list[str]
    finished: list[str]  # when the first and the last run finished (UTC)
    nudges: list[Nudge] = field(default_factory=list)
    # Summaries written before these were said hold none of them.
    input_shape: list[list[int]] = field(default_factory=list)  # one example's shape
    classes: list[int] = field(default_factory=list)
    pipeline: list[str] = field(default_factory=list)  # tfdata or numpy
    compiled: list[str] = field(default_factory=list)  # what model.compile was given, said

    def rows(self, verified: str | None = None) -> list[tuple[str, str]]:
        """What was trained, as (what, value) rows: the table every page opens with (a cell's
        report, the matrix, the front page of `snakemake --report`)."""

        def said(values: list[Any]) -> str:
            return ", ".join(map(str, values)) or "not recorded"

        shapes = ", ".join("×".join(map(str, shape)) for shape in self.input_shape)
        rows = [
            ("dataset", f"{self.dataset or 'not recorded'}, sha256 {said(self.dataset_sha256)}"),
            (
                "subset",
                f"{self._subset()}: {said(self.train_examples)} training, "
                f"{said(self.test_examples)} test examples",
            ),
            ("input shape, classes", f"{shapes or 'not recorded'}, {said(self.classes)}"),
            (
                "models, backends"
                if len(self.model) > 1 or len(self.backend) > 1
                else "model, backend",
                f"{said(self.model)}, {said(self.backend)}",
            ),
            ("pipeline", said(self.pipeline)),
            ("compiled with", "; ".join(self.compiled) or "not recorded"),
            ("epochs, batch size", f"{said(self.epochs)}, {said(self.batch_size)}"),
            (
                "seeds, repeats",
                f"{said(self.seeds)} (as configured), {said(self.repeats)} runs "
                "each, every run in its own process",
            ),
        ]
        rows += [("verified by", verified)] if verified else []
        return [
            *rows,
            ("threads, device", f"{said(self.threads)} per run, {said(self.device)}"),
            (
                "runs finished",
                f"{' to '.join(self.finished) or 'not recorded'} on {said(self.hosts)}",
            ),
        ]

    def _subset(self) -> str:
        if self.subset is None:
            return "not recorded"
        if not (self.subset.get("train") or self.subset.get("test")):
            return "the whole splits"
        return (
            f"the first {self.subset.get('train') or 'all'} training and "
            f"{self.subset.get('test') or 'all'} test examples"
        )


def _distinct(values: Iterable[Any]) -> list[Any]:
    """The values but None, each once, in their order (lists told apart by their items)."""
    seen: dict[Any, Any] = {}
    for value in values:
        if value is not None:
            seen.setdefault(repr(value) if isinstance(value, list | dict) else value, value)
    return list(seen.values())


def _finished(run: Run) -> str | None:
    """When a run finished: its record says so; older records by their file's time (None: a
    record read from no file)."""
    recorded = run.record.timings.get("finished")
    if recorded:
        return str(recorded)
    if not run.path.is_file():
        return None
    moment = datetime.datetime.fromtimestamp(run.path.stat().st_mtime, datetime.timezone.utc)
    return moment.isoformat(timespec="seconds")


def _nudge(run: Run) -> Nudge | None:
    settings = run.record.settings
    if settings.get("perturb_step") is None:
        return None
    # Records from before the variable was recorded say None: the first variable was nudged.
    variable = settings.get("perturb_variable") or (
        run.trace.variable_names[0] if run.trace is not None else "the first weight variable"
    )
    batch = bool(settings.get("perturb_batch"))
    return Nudge(run.record.seed, run.record.repeat, settings["perturb_step"], variable, batch)


# Optimizer settings left out of what a report says (the record keeps them all).
_UNSAID_OPTIMIZER_KEYS = frozenset({"name", "ema_momentum", "ema_overwrite_frequency"})


def _value(value: Any) -> str:
    """A serialized Keras object (a learning-rate schedule) as Class(key=value, ...)."""
    if isinstance(value, dict) and "class_name" in value:
        inner = ", ".join(
            f"{k}={_value(v)}" for k, v in (value.get("config") or {}).items() if k != "name"
        )
        return f"{value['class_name']}({inner})"
    return str(value)


def describe_compiled(compiled: dict[str, Any]) -> str:
    """What a run's model was compiled with (its record's ``compiled``), in one line: the
    optimizer's class and its settings (a learning-rate schedule included), the loss, the
    metrics, and whose compile it was."""
    optimizer = compiled.get("optimizer") or {}
    said = ", ".join(
        f"{key}={_value(value)}"
        for key, value in (optimizer.get("config") or {}).items()
        if key not in _UNSAID_OPTIMIZER_KEYS and value not in (None, False)
    )
    whose = (
        "the model's own compile"
        + (
            f", with {', '.join(compiled['overridden'])} from the config"
            if compiled.get("overridden")
            else ""
        )
        if compiled.get("by") == "model"
        else "the config's compile"
    )
    return (
        f"{optimizer.get('class_name', '?')}({said}), loss {_value(compiled.get('loss'))}, "
        f"metrics {', '.join(map(_value, compiled.get('metrics') or [])) or 'none'}, "
        f"jit_compile {compiled.get('jit_compile')}: {whose}"
    )


def _spec(settings: dict[str, Any], manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The data spec a run trained on (input shape, classes): its settings', else the
    manifest's (records written before the settings held it)."""
    if settings.get("input_shape") is not None:
        return settings
    return (manifest or {}).get("spec") or {}


def describe_coverage(runs: list[Run], manifest: dict[str, Any] | None) -> Coverage:
    """What ``runs`` (the seeded runs, in the order configured) trained, and on what."""
    settings = [run.record.settings for run in runs]
    fingerprints = [run.record.fingerprint for run in runs]
    seeds = _distinct(run.record.seed for run in runs)
    finished = sorted(_distinct(_finished(run) for run in runs))
    return Coverage(
        dataset=(manifest or {}).get("source", {}).get("dataset"),
        dataset_sha256=_distinct(s.get("dataset_sha256") for s in settings),
        subset=(manifest or {}).get("preprocessing", {}).get("subset"),
        train_examples=_distinct(s.get("train_examples") for s in settings),
        test_examples=_distinct(s.get("test_examples") for s in settings),
        epochs=_distinct(s.get("epochs") for s in settings),
        batch_size=_distinct(s.get("batch_size") for s in settings),
        model=_distinct(s.get("model", RECIPE_MODEL) for s in settings),
        backend=_distinct(f.get("keras_backend") for f in fingerprints),
        seeds=seeds,
        repeats=_distinct(sum(run.record.seed == seed for run in runs) for seed in seeds),
        threads=_distinct(s.get("threads") for s in settings),
        device=_distinct(f.get("device") for f in fingerprints),
        hosts=_distinct(f.get("hostname") for f in fingerprints),
        finished=_distinct([finished[0], finished[-1]]) if finished else [],
        nudges=[nudge for run in runs if (nudge := _nudge(run)) is not None],
        input_shape=_distinct(_spec(s, manifest).get("input_shape") for s in settings),
        classes=_distinct(_spec(s, manifest).get("num_classes") for s in settings),
        pipeline=_distinct(run.record.setting("pipeline") for run in runs),
        compiled=_distinct(
            describe_compiled(run.record.compiled) for run in runs if run.record.compiled
        ),
    )


def combined_coverage(coverages: list[Coverage | None]) -> Coverage | None:
    """What every cell of a matrix trained, as one coverage: each list the distinct values
    over the cells (one dataset, one subset, the first and the last run finished)."""
    known = [c for c in coverages if c is not None]
    if not known:
        return None

    def over(name: str) -> list[Any]:
        return _distinct(v for c in known for v in getattr(c, name))

    finished = sorted(over("finished"))
    nudges = {(n.seed, n.repeat, n.step, n.variable): n for c in known for n in c.nudges}
    return Coverage(
        dataset=", ".join(_distinct(c.dataset for c in known)) or None,
        dataset_sha256=over("dataset_sha256"),
        subset=next((c.subset for c in known if c.subset is not None), None),
        **{name: over(name) for name in _LISTS},
        finished=_distinct([finished[0], finished[-1]]) if finished else [],
        nudges=list(nudges.values()),
    )


_LISTS = (
    "train_examples",
    "test_examples",
    "epochs",
    "batch_size",
    "model",
    "backend",
    "seeds",
    "repeats",
    "threads",
    "device",
    "hosts",
    "input_shape",
    "classes",
    "pipeline",
    "compiled",
)


def planted(coverage: Coverage | None) -> str | None:
    """The nudges planted on purpose, described, or None when none was."""
    if coverage is None or not coverage.nudges:
        return None
    return "; ".join(nudge.describe() for nudge in coverage.nudges)


def folded_fingerprint(row: Any) -> bool:
    """A fingerprint row the report folds away: the same in every run, and not a key field."""
    return (
        not row.differs_within_seed
        and not row.varies_by_design
        and len(set(row.values)) == 1
        and row.field not in KEY_FINGERPRINT_FIELDS
    )
