import copy
import functools
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The workflow's own package, importable here and by every job (also in --sdm conda
# environments) without installing it.
PACKAGE_ROOT = str(Path(workflow.basedir) / "src")
sys.path.insert(0, PACKAGE_ROOT)
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])
    )
)

from snakemake.logging import logger
from snakemake.settings.types import DeploymentMethod

from keras_repro.backends import BACKENDS as KNOWN_BACKENDS, missing_frameworks
from keras_repro.comparison import ReferenceError, check_place, read_partings
from keras_repro.config import ConfigError, run_config, validate_config
from keras_repro.errors import ReproError
from keras_repro.models import ModelError, matrix_models, model_sha256
from keras_repro.pipelines import RESUMES_MID_EPOCH
from keras_repro.records import edited_checkpoint, planned_steps, replayed_segments
from keras_repro.workflow import (
    LAST_RUN_CONFIG,
    code_digest,
    last_run_config,
    only_reporting,
    stale_lock_hint,
)

# `snakemake --report` bundles the results of the run that wrote the report: its DAG is built
# from that run's config, whatever this one says (another config's cells have no results).
if only_reporting(sys.argv):
    try:
        LAST_RUN = last_run_config()
    except ReproError as error:
        raise WorkflowError(str(error)) from None
    if LAST_RUN is not None:
        logger.info(
            f"The report bundles the last run's results, with its config ({LAST_RUN_CONFIG})."
        )
        config.clear()
        config.update(LAST_RUN)
# The config as given (before the schema fills in its defaults): what a report made later is
# built from.
GIVEN_CONFIG = copy.deepcopy(config)
# The keys of compile the user set (config.yaml leaves them unset): only these go over the
# compile of a model whose build compiled it.
COMPILE_GIVEN = (
    sorted(config["compile"]) if isinstance(config.get("compile"), dict) else []
)

try:
    config.update(validate_config(config))
except ConfigError as error:
    raise WorkflowError(str(error)) from None

# The matrix: each model (by its name in paths) on each backend is a cell, checked cheaply
# here (a file that is not there, two models in one folder); check_model builds each.
try:
    MODELS = matrix_models(config["model"], config["models"])
except ModelError as error:
    raise WorkflowError(str(error)) from None
BACKENDS = config["backends"]
# Without --sdm conda the jobs run in this Python: each framework they need must be here.
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    if missing := missing_frameworks(BACKENDS, config["pipeline"]):
        raise WorkflowError("; ".join(missing))
CELLS = [(model, backend) for model in MODELS for backend in BACKENDS]
# Each file's sha256 is a run setting (an edit retrains that model's runs).
MODEL_SHA256 = {spec: model_sha256(spec) for spec in MODELS.values()}

if config["reference"] is not None:
    if not (Path(config["reference"]) / "reference.json").is_file():
        raise WorkflowError(
            f"reference: {config['reference']} is not a reference bundle (no reference.json in it); "
            "export one with `snakemake --cores all results/references/NAME`, or set reference: null"
        )
    try:
        check_place(Path(config["reference"]), Path("results"))
    except ReferenceError as error:
        raise WorkflowError(str(error)) from None

# Snakemake's own message about a stale lock comes later and says less.
if "--unlock" not in sys.argv and (hint := stale_lock_hint(Path.cwd())):
    logger.warning(hint)


# Where a run of a cell keeps its files (record, trace, log, benchmark, checkpoints): the seeded
# runs, a segment replayed from a seed's run (verify: segments), and the control arm's groups.
RUN = "results/runs/{model}/{backend}/seed{seed}/repeat{repeat}"
SEGMENT_RUN = "results/runs/{model}/{backend}/seed{seed}/repeat1"
SEGMENT = f"{SEGMENT_RUN}/segments/segment{{segment}}"
UNSEEDED_RUN = "results/control/{model}/{backend}/unseeded/repeat{repeat}"
NONDETERMINISTIC_RUN = (
    "results/control/{model}/{backend}/nondeterministic/seed{seed}/repeat{repeat}"
)
MODEL_CHECK = "results/models/{model}/{backend}/model.json"
# The noise floor's runs (noise.repeats): the first seed with determinism off, more seeds with
# it on.
NOISE_OFF = "results/noise/{model}/{backend}/nondeterministic/repeat{repeat}"
NOISE_SEED = "results/noise/{model}/{backend}/seeds/seed{seed}"
# A pair that parted, one side replayed step by step (the zoom).
ZOOM = "results/zoom/{model}/{backend}/seed{seed}/{pair}"
VERDICT = "results/report/verdict.txt"
MATRIX_PAGE = "results/report/report.html"
FRONT_PAGE = "results/report/front_page.rst"
CELL_REPORT = "results/report/{model}/{backend}"
# What compare (and find_partings) write in a cell's report folder.
CELL_REPORT_FILES = (
    "partings.json",
    "summary.json",
    "report.md",
    "report.html",
    "histories.csv",
    "curves.png",
    "steps.png",
)


# A checkpoint changed after its run recorded it is refused before any job (a replay from it, or
# a verdict resting on it, would not be the run's), and the verdict that rested on it goes.
if problem := edited_checkpoint(Path("results")):
    Path(VERDICT).unlink(missing_ok=True)
    raise WorkflowError(problem)


def planned_steps_per_epoch():
    """Training steps per epoch, from the dataset's counts and the subset; None where the
    counts are not said."""
    counts = config["datasets"][config["dataset"]].get("counts") or {}
    train = [n for n in (config["subset"]["train"], counts.get("train")) if n]
    return -(-min(train) // config["batch_size"]) if train else None


def planned_checkpoints():
    """How many checkpoints each seeded run saves (the state before the first step
    included): none when they are off."""
    checkpoints = config["checkpoints"]
    per_epoch = 1 if checkpoints["every_steps"] is None else planned_steps_per_epoch()
    if per_epoch is None:
        raise WorkflowError(
            f"checkpoints.every_steps: the dataset's counts are needed to plan the checkpoints "
            f"(datasets.{config['dataset']}.counts), or checkpoint every N epochs (every_epochs)"
        )
    return len(planned_steps(checkpoints, config["epochs"], per_epoch))


def verification():
    """How the seeds are proven (verify), and why segments are not possible here when they
    were asked for: said before any job, and in the report."""
    requested, why = config["verify"], None
    if requested == "segments" and config["checkpoints"]["every_steps"] is not None:
        if not RESUMES_MID_EPOCH[config["pipeline"]]:
            why = (
                f"the {config['pipeline']} pipeline resumes only at an epoch's end, and "
                "checkpoints.every_steps puts checkpoints inside epochs"
            )
    used = "repeats" if why else requested
    if why:
        logger.warning(
            f"verify: segments is not possible here: {why}; each seed is verified by "
            f"{config['repeats']} repeats instead (the report says so). Set pipeline: numpy or "
            "checkpoints.every_epochs to replay segments."
        )
    return dict(
        requested=requested,
        used=used,
        why=why,
        draw_seed=config["segments"]["draw_seed"] if used == "segments" else None,
    )


CHECKPOINTS = planned_checkpoints()
VERIFY = verification()
SEGMENTS = (
    replayed_segments(
        CHECKPOINTS - 1, config["segments"]["replay"], config["segments"]["draw_seed"]
    )
    if VERIFY["used"] == "segments"
    else []
)


def forget_verdict():
    """A verdict must not outlive the runs it judged, nor a report the runs it compared: when
    they are to be made again, the old ones go before any job starts (the report files with
    the verdict), so that a job failing on the way leaves nothing on disk that disagrees.
    """
    for job in workflow.dag.needrun_jobs():
        if job.rule.name in ("compare", "matrix", "verdict"):
            for path in job.output:
                Path(path).unlink(missing_ok=True)


def announce_verdict():
    """A successful run ends with its verdict on the console, as a failing one does."""
    if Path(VERDICT).is_file():
        logger.info(Path(VERDICT).read_text().strip())


def front_page():
    """The front page of `snakemake --report`: the one the compare rule wrote from the runs'
    records; before any comparison, one that says so (never one built from the config).
    """
    if Path(FRONT_PAGE).is_file():
        return str(Path(FRONT_PAGE).resolve())
    return "report/workflow.rst"


def code(script, *modules):
    """The digest of a script's content and of every package module it runs (``modules``:
    those it starts in another process). Passed as a param: an edit reruns the rule, a touch
    or a fresh clone does not (the profile leaves Snakemake's mtime-based code trigger off).
    """
    return code_digest([Path(workflow.basedir) / "scripts" / script, *modules])


def operational(value):
    """A param that cannot change any result, so must rerun nothing: Snakemake leaves params
    computed from a job's input, output, threads or resources out of its rerun check."""
    return lambda wildcards, output: value


def dataset_entry(wildcards):
    return config["datasets"][wildcards.dataset]


def model_spec(name):
    return MODELS[name]


def cell_run_config(wildcards):
    """The config's run settings (the schema's keys marked x-run-setting), as one value, with
    the cell's model."""
    return {**run_config(config), "model": MODELS[wildcards.model]}


def control_run_config(wildcards):
    """A control run's settings: no checkpoints are saved in the control arm, so their
    interval is not among them (a new one retrains no control run)."""
    return {k: v for k, v in cell_run_config(wildcards).items() if k != "checkpoints"}


def cell_model_sha256(wildcards):
    return MODEL_SHA256[MODELS[wildcards.model]]


def dataset_file():
    return f"results/data/{config['dataset']}/dataset.npz"


def dataset_manifest():
    return f"results/data/{config['dataset']}/manifest.json"


def run_files(name, model, backend):
    """``name`` (history.json or trace.npz) of every seeded run of one cell: each seed's
    repeats, or its one run when segments are replayed."""
    repeats = 1 if VERIFY["used"] == "segments" else config["repeats"]
    return expand(
        f"{RUN}/{{name}}",
        model=model,
        backend=backend,
        seed=config["seeds"],
        repeat=range(1, repeats + 1),
        name=name,
    )


def checkpoint_folder(run):
    """The folder of the checkpoints a run saves (``run``: its folder's pattern), when it
    saves any. One output whatever their number, so that a changed interval reruns it as any
    changed param does; its files are removed once a verdict has passed if keep_checkpoints
    is false (the folder stays, so nothing retrains for it)."""
    return directory(f"{run}/checkpoints") if CHECKPOINTS else []


def noise_seeds():
    """The seeds the noise floor trains with determinism on: after the first configured one,
    none of the configured ones."""
    count, chosen, seed = config["noise"]["repeats"] or 0, [], config["seeds"][0]
    while len(chosen) < count:
        seed += 1
        if seed not in config["seeds"]:
            chosen.append(seed)
    return chosen


def noise_files(group, name, model, backend):
    """``name`` of every run of one group of the noise floor (none when it is off)."""
    count = config["noise"]["repeats"] or 0
    if group == "nondeterministic":
        return expand(
            f"{NOISE_OFF}/{{name}}",
            model=model,
            backend=backend,
            repeat=range(1, count + 1),
            name=name,
        )
    return expand(
        f"{NOISE_SEED}/{{name}}",
        model=model,
        backend=backend,
        seed=noise_seeds(),
        name=name,
    )


def segment_files(name, model, backend):
    """``name`` of every segment replayed of one cell's runs (none unless verify: segments)."""
    return expand(
        f"{SEGMENT}/{{name}}",
        model=model,
        backend=backend,
        seed=config["seeds"],
        segment=SEGMENTS,
        name=name,
    )


def checkpoint_folders():
    """The checkpoint folders of every seeded run the verdict judges (keep_checkpoints: false
    empties them once it has passed)."""
    if not CHECKPOINTS:
        return []
    return [
        str(Path(path).parent / "checkpoints") for path in seeded_files("history.json")
    ]


def seeded_files(name):
    """``name`` of every seeded run of every cell."""
    return [
        path for model, backend in CELLS for path in run_files(name, model, backend)
    ]


def nondeterministic_on(model):
    """Where the runs of the cell ``model`` is in (on any backend) with op determinism off
    are: None in the cell itself; the first model's name when they train once per backend,
    in its cell (control.nondeterministic: per_backend); None too when the arm is off.
    """
    control = config["control"]
    if not control["enabled"] or control["nondeterministic"] == "per_cell":
        return None
    first = next(iter(MODELS))
    return None if model == first else first


def control_files(arm, name, model, backend):
    """``name`` of every run of one control group of a cell; none when the control arm is
    off, nor for runs with op determinism off that train in another cell."""
    if not config["control"]["enabled"]:
        return []
    if arm == "nondeterministic" and nondeterministic_on(model) is not None:
        return []
    pattern = {"unseeded": UNSEEDED_RUN, "nondeterministic": NONDETERMINISTIC_RUN}[arm]
    return expand(
        f"{pattern}/{{name}}",
        model=model,
        backend=backend,
        seed=config["seeds"][0],
        repeat=range(1, config["control"]["repeats"] + 1),
        name=name,
    )


def training_params(arm, checkpoints=True, entry="keras_repro.training.cli"):
    """What every training job passes its script, each a rerun trigger but the operational;
    the run settings are one value (without the checkpoints' interval for runs that save
    none: the control arm, the noise floor); ``entry``: the module the training process
    runs (a replay's, for replay_segment)."""
    checkpoints = checkpoints and arm == "seeded"
    return dict(
        arm=arm,
        op_determinism=arm != "nondeterministic",
        settings=cell_run_config if checkpoints else control_run_config,
        model_sha256=cell_model_sha256,
        compile_given=COMPILE_GIVEN,
        backend=lambda wildcards: wildcards.backend,
        save_checkpoints=checkpoints,
        code=code("train.py", entry),
        runs_per_gpu=operational(config["runs_per_gpu"]),
        gpu_lock_dir=operational("results/.gpu-locks"),
    )


def perturbation(wildcards):
    """The deliberate nudge for this one run (in every cell), if the config asks for it."""
    perturb = config["perturb"]
    if perturb["step"] is None or (int(wildcards.seed), int(wildcards.repeat)) != (
        perturb["seed"],
        perturb["repeat"],
    ):
        return None
    return {
        "step": perturb["step"],
        "variable": perturb["variable"],
        "batch": perturb["batch"],
    }


def cell_evidence(model, backend):
    """What a cell's compare judges: every file its comparison is derived from."""
    return dict(
        records=run_files("history.json", model, backend),
        traces=run_files("trace.npz", model, backend),
        initializers=initializer_draws(backend),
        unseeded=control_files("unseeded", "history.json", model, backend),
        nondeterministic=control_files(
            "nondeterministic", "history.json", model, backend
        ),
        control_traces=control_files("unseeded", "trace.npz", model, backend)
        + control_files("nondeterministic", "trace.npz", model, backend),
        reference=reference_files(),
        manifest=dataset_manifest(),
        segments=segment_files("history.json", model, backend),
        segment_traces=segment_files("trace.npz", model, backend),
        noise_nondeterministic=noise_files(
            "nondeterministic", "history.json", model, backend
        ),
        noise_seeds=noise_files("seeds", "history.json", model, backend),
        noise_traces=noise_files("nondeterministic", "trace.npz", model, backend)
        + noise_files("seeds", "trace.npz", model, backend),
    )


def cell_files(wildcards):
    return cell_evidence(wildcards.model, wildcards.backend)


def partings(model, backend):
    """The pairs of a cell that parted (find_partings' list, once it has run)."""
    listed = checkpoints.find_partings.get(model=model, backend=backend).output[0]
    return read_partings(listed)


def zoom_files(model, backend):
    """Both sides' zoom records of every pair of a cell that parted."""
    return [
        f"{ZOOM}/{side}.json".format(
            model=model, backend=backend, seed=parting.seed, pair=parting.pair
        )
        for parting in partings(model, backend)
        for side in ("reference", "other")
    ]


def cell_zooms(wildcards):
    return zoom_files(wildcards.model, wildcards.backend)


def every_zoom(wildcards):
    return [path for model, backend in CELLS for path in zoom_files(model, backend)]


def zoom_parting(wildcards):
    """The parting a zoom job replays one side of."""
    for parting in partings(wildcards.model, wildcards.backend):
        if (parting.seed, parting.pair) == (int(wildcards.seed), wildcards.pair):
            return parting
    raise WorkflowError(f"no pair {wildcards.pair} of seed {wildcards.seed} parted")


def zoom_side(wildcards):
    return zoom_parting(wildcards).sides[wildcards.side]


def cell_reports(name):
    """``name`` (summary.json, report.html...) of every cell's report."""
    return [f"{CELL_REPORT}/{name}".format(model=m, backend=b) for m, b in CELLS]


def matrix_cells(zooms=False):
    """Each cell and its evidence, for the matrix and the verdict (with its zoom records once
    they exist: ``zooms``); the files are inputs too."""
    return [
        dict(
            model=model,
            backend=backend,
            evidence={
                **cell_evidence(model, backend),
                **({"zooms": zoom_files(model, backend)} if zooms else {}),
            },
            summary=f"{CELL_REPORT}/summary.json".format(model=model, backend=backend),
            page=f"{CELL_REPORT}/report.html".format(model=model, backend=backend),
            nondeterministic_on=nondeterministic_on(model),
        )
        for model, backend in CELLS
    ]


def all_evidence():
    """Every cell's evidence files, as one list."""
    return sorted(
        {
            path
            for cell in matrix_cells()
            for paths in cell["evidence"].values()
            for path in ([paths] if isinstance(paths, str) else paths)
        }
    )


def evidence_params():
    """The config values compare and verdict judge the evidence by. (A reference that is this
    workflow's own results/ was refused while the Snakefile was read.)"""
    return dict(
        comparison=config["comparison"],
        control=config["control"]["enabled"],
        reference=config["reference"],
        reference_drift=config["reference_drift"],
        verify=VERIFY,
    )


@functools.cache
def reference_files():
    """Every file of the saved reference bundle, so that an edit to one re-compares (listed
    once: every cell's evidence holds them)."""
    if config["reference"] is None:
        return []
    return sorted(str(p) for p in Path(config["reference"]).rglob("*") if p.is_file())


def new_bundle(wildcards):
    """No input: refuses, while the DAG is built and before any job, to export onto a bundle
    that exists (Snakemake would remove a directory output before its job). A bundle, once
    written, is never changed or removed."""
    bundle = Path("results/references") / wildcards.name
    if os.path.lexists(bundle):
        raise WorkflowError(
            f"{bundle} exists already, and a bundle once written is never changed or "
            "replaced: nothing was done; export under another name (results/references/NEW_NAME)"
        )
    return []


def exported_config():
    """The config a reference bundle records: everything but other datasets' entries."""
    return {
        **{key: value for key, value in config.items() if key != "datasets"},
        "datasets": {config["dataset"]: config["datasets"][config["dataset"]]},
    }


def initializer_draws(backend):
    return expand(
        "results/initializers/{backend}/process{process}.json",
        backend=backend,
        process=range(1, config["initializer_processes"] + 1),
    )


def gpus_per_run():
    return 1 if config["device"] == "gpu" else 0
