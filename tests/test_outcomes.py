"""Runs that cannot train bit-reproducibly end as outcomes: known limits said before the first
step (checked against the gradients the installed frameworks build), the outcome file, and a
real training run that TensorFlow refuses under op determinism. docs/gpus.md's table is
``limits.KNOWN_LIMITS``, checked."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from helpers import REPO, tiny_run
from keras import layers
from records import write_runs

from keras_repro.backends.limits import KNOWN_LIMITS, known_limits, not_possible_here
from keras_repro.backends.unsupported import op_without_deterministic_kernel
from keras_repro.config.roles import NPZ_KEYS
from keras_repro.data.dataset import write_npz_deterministic
from keras_repro.data.synthetic import make_arrays
from keras_repro.models import resolve_model
from keras_repro.models.recipe import build_model as build_recipe
from keras_repro.records.outcomes import OutcomeError, read_outcome, split_outcomes, write_outcome
from keras_repro.records.record import read_record, read_runs
from keras_repro.records.trace import TraceError, read_trace
from keras_repro.training.launch import train_in_fresh_process

BACKENDS = ("tensorflow", "jax", "torch")
MAX_POOLING, TF_NEAREST, TORCH_BILINEAR, TORCH_BICUBIC, TF_RECURRENT_DROPOUT = KNOWN_LIMITS
TABLE_START = "<!-- limits table: checked by tests/test_outcomes.py -->"
TABLE_END = "<!-- end of limits table -->"


def zoo(name: str) -> keras.Model:
    return resolve_model(name).build((28, 28), 10)


def conv_then(*after: layers.Layer) -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(2, 3, padding="same")(inputs)
    for layer in after:
        x = layer(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(3)(x))


class Upsampler(keras.Model):
    """A subclassed model holding a Sequential that holds the bilinear upsampling."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = layers.Conv2D(2, 3, padding="same", name="stem")
        self.block = keras.Sequential(
            [layers.UpSampling2D(2, interpolation="bilinear", name="up")], name="block"
        )
        self.head = keras.Sequential([layers.GlobalAveragePooling2D(), layers.Dense(3)])

    def call(self, x):
        return self.head(self.block(self.stem(x)))


def test_the_zoo_upsampling_model_is_impossible_on_jax_on_a_gpu_only():
    model = zoo("upsampling_cnn")
    assert known_limits(model, "jax", "gpu") == [MAX_POOLING]
    # Keras 3's UpSampling2D(nearest) is ops.repeat, not ResizeNearestNeighbor (checked below)
    assert known_limits(model, "tensorflow", "gpu") == []
    assert known_limits(model, "torch", "gpu") == []
    assert all(known_limits(model, backend, "cpu") == [] for backend in BACKENDS)
    assert known_limits(zoo("batchnorm_cnn"), "jax", "gpu") == [MAX_POOLING]
    assert known_limits(zoo("lstm_rows"), "jax", "gpu") == []


def test_recurrent_dropout_is_a_tensorflow_gpu_limit_wherever_the_layer_is():
    # keras #17983, tensorflow #60170: not repeatable on a GPU even with op determinism
    assert known_limits(zoo("lstm_rows"), "tensorflow", "gpu") == [TF_RECURRENT_DROPOUT]
    assert known_limits(zoo("lstm_rows"), "tensorflow", "cpu") == []
    first = keras.Sequential([keras.Input((5, 3)), layers.GRU(4, recurrent_dropout=0.1)])
    assert known_limits(first, "tensorflow", "gpu") == [TF_RECURRENT_DROPOUT]
    wrapped = keras.Sequential(
        [keras.Input((5, 3)), layers.RNN(layers.SimpleRNNCell(4, recurrent_dropout=0.1))]
    )
    assert known_limits(wrapped, "tensorflow", "gpu") == [TF_RECURRENT_DROPOUT]
    plain = keras.Sequential([keras.Input((5, 3)), layers.LSTM(4, dropout=0.1)])
    assert known_limits(plain, "tensorflow", "gpu") == []


def test_a_resize_is_a_limit_only_where_its_gradient_is_computed():
    nearest = conv_then(layers.Resizing(16, 16, interpolation="nearest"))
    assert known_limits(nearest, "tensorflow", "gpu") == [TF_NEAREST]
    assert known_limits(nearest, "tensorflow", "cpu") == []
    assert known_limits(conv_then(layers.UpSampling2D(2)), "tensorflow", "gpu") == []
    bicubic = conv_then(layers.Resizing(16, 16, interpolation="bicubic"))
    assert known_limits(bicubic, "torch", "gpu") == [TORCH_BICUBIC]
    # The recipe's preprocessing resizes (bilinear) the raw input: no gradient goes through it.
    recipe = build_recipe((28, 28), 10, preprocessing=True)
    recipe.build((None, 28, 28))  # as training does: an unbuilt Sequential has no weights yet
    assert known_limits(recipe, "torch", "gpu") == []
    assert known_limits(recipe, "jax", "gpu") == [MAX_POOLING]
    pooled_input = keras.Sequential(
        [keras.Input((8, 8, 1)), layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3)]
    )
    assert known_limits(pooled_input, "jax", "gpu") == []


def test_layers_nested_in_subclassed_and_sequential_models_are_found():
    model = Upsampler()
    # Before its first call a subclassed model has no weights: every layer counts.
    assert known_limits(model, "torch", "gpu") == [TORCH_BILINEAR]
    model(np.zeros((1, 8, 8, 1), np.float32))
    found = not_possible_here(model, "torch", "gpu", op_determinism=True)
    assert found is not None and found.op == TORCH_BILINEAR.op
    assert "layer block/up:" in found.reason and found.reason.startswith("not possible here")
    assert found.source == TORCH_BILINEAR.source
    assert not_possible_here(model, "torch", "gpu", op_determinism=False) is None
    assert not_possible_here(model, "torch", "cpu", op_determinism=True) is None
    inputs, pool = keras.Input((8, 8, 1)), layers.MaxPooling1D(2)
    inner = keras.Model(inputs, pool(layers.Reshape((64, 1))(inputs)))
    outer_in = keras.Input((8, 8, 1))
    x = layers.Conv2D(1, 3, padding="same")(outer_in)
    outer = keras.Model(outer_in, layers.Flatten()(inner(x)))
    assert known_limits(outer, "jax", "gpu") == [MAX_POOLING]
    hit = not_possible_here(outer, "jax", "gpu", op_determinism=True)
    assert f"layer {inner.name}/{pool.name}:" in hit.reason


# For each limit: a model that hits it, and what its gradient holds on the installed framework
# (the names differ on the CPU, the op does not: the GPU kernel is what has no deterministic
# implementation). The negative line backs the zoo's UpSampling2D(nearest) on TensorFlow.
PROBES = {
    MAX_POOLING: ("layers.MaxPooling2D(2)", "select_and_scatter"),
    TF_NEAREST: ('layers.Resizing(16, 16, interpolation="nearest")', "ResizeNearestNeighborGrad"),
    TORCH_BILINEAR: ('layers.UpSampling2D(2, interpolation="bilinear")', "UpsampleBilinear2D"),
    TORCH_BICUBIC: ('layers.Resizing(16, 16, interpolation="bicubic")', "UpsampleBicubic2D"),
}
NOT_LIMITS = {"tensorflow": ('layers.UpSampling2D(2, interpolation="nearest")', "ResizeNearest")}
GRADIENT_OPS = {
    "tensorflow": """
        import tensorflow as tf
        def gradient_ops(model):
            @tf.function
            def step(x):
                with tf.GradientTape() as tape:
                    y = tf.reduce_sum(model(x))
                return tape.gradient(y, model.trainable_variables)
            graph = step.get_concrete_function(tf.TensorSpec((2, 8, 8, 1))).graph
            return " ".join(op.type for op in graph.get_operations())
    """,
    "jax": """
        import jax, jax.numpy as jnp
        def gradient_ops(model):
            fixed = [v.value for v in model.non_trainable_variables]
            def loss(trained, x):
                return jnp.sum(model.stateless_call(trained, fixed, x)[0])
            trained = [v.value for v in model.trainable_variables]
            return jax.jit(jax.grad(loss)).lower(trained, jnp.ones((2, 8, 8, 1))).as_text()
    """,
    "torch": """
        import torch
        def gradient_ops(model):
            seen, stack = set(), [model(torch.ones(2, 8, 8, 1)).sum().grad_fn]
            while stack:
                node = stack.pop()
                if node is not None and node not in seen:
                    seen.add(node)
                    stack.extend(next_node for next_node, _ in node.next_functions)
            return " ".join(type(node).__name__ for node in seen)
    """,
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_limit_is_in_the_gradient_its_backend_builds(backend):
    cases = [
        (True, *PROBES[limit])
        for limit in KNOWN_LIMITS
        if limit.backend == backend and limit.in_gradient
    ]
    cases += [(False, *NOT_LIMITS[backend])] if backend in NOT_LIMITS else []
    assert cases, f"no known limit of {backend} to check"
    script = textwrap.dedent(GRADIENT_OPS[backend]) + textwrap.dedent(
        """
        import json, sys
        import keras
        from keras import layers
        for expected, layer, marker in json.loads(sys.argv[1]):
            inputs = keras.Input((8, 8, 1))
            x = eval(layer)(layers.Conv2D(2, 3, padding="same")(inputs))
            model = keras.Model(inputs, layers.Dense(3)(layers.GlobalAveragePooling2D()(x)))
            assert (marker in gradient_ops(model)) == expected, (layer, marker, expected)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases)],
        env={**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_docs_table_is_known_limits():
    def links(source: str) -> str:
        return ", ".join(f"<{part.strip()}>" for part in source.split(";"))

    rows = [
        f"| {lim.backend} | {lim.device} | {lim.layers} | `{lim.op}` | {links(lim.source)} |"
        for lim in KNOWN_LIMITS
    ]
    text = (REPO / "docs/gpus.md").read_text()
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip().splitlines()
    assert table[2:] == rows, "\n".join(rows)


def test_an_outcome_file_round_trips_and_its_trace_is_no_trace(tmp_path):
    record, trace = tmp_path / "seed3/repeat1/history.json", tmp_path / "seed3/repeat1/trace.npz"
    settings = tiny_run(3, 1)
    written = write_outcome(
        record, trace, settings, "not-possible", "why", "select-and-scatter", "flax#4233", {"a": 1}
    )
    outcome = read_outcome(record)
    assert outcome == dataclasses.replace(written, path=str(record))
    assert (outcome.seed, outcome.repeat, outcome.arm, outcome.status) == (
        3,
        1,
        "seeded",
        "not-possible",
    )
    assert (outcome.op, outcome.source) == ("select-and-scatter", "flax#4233")
    data = json.loads(record.read_text())
    assert data["format"] == "keras-repro/run-outcome" and data["format_version"] == 1
    assert data["settings"]["epochs"] == 1 and data["fingerprint"] == {"a": 1}
    assert (
        sorted(np.load(trace)) == ["outcome"] and str(np.load(trace)["outcome"]) == "not-possible"
    )
    with pytest.raises(TraceError, match="not the members of a trace"):
        read_trace(trace)
    assert sorted(p.name for p in record.parent.iterdir()) == ["history.json", "trace.npz"]
    with pytest.raises(ValueError, match="status must be one of"):
        write_outcome(tmp_path / "x.json", tmp_path / "x.npz", settings, "diverged", "why")
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"status": "fine"}, r"status must be one of \('not-possible', 'failed'\), got 'fine'"),
        (
            {"format_version": 2},
            r"a keras-repro/run-outcome file of version 2; this version reads v1",
        ),
        ({"reason": ""}, r"reason must be a non-empty string"),
        ({"repeat": "1"}, r"repeat must be an integer, got '1'"),
        ({"op": 3}, r"op must be a string or null, got 3"),
    ],
)
def test_a_malformed_outcome_file_is_refused_naming_it(tmp_path, edit, message):
    path = tmp_path / "history.json"
    write_outcome(path, tmp_path / "trace.npz", tiny_run(3), "failed", "why", "Timestamp")
    path.write_text(json.dumps({**json.loads(path.read_text()), **edit}))
    with pytest.raises(OutcomeError, match=f"{re.escape(str(path))}: {message}"):
        read_outcome(path)


def test_split_outcomes_leaves_run_records_to_their_reader(tmp_path):
    records, _ = write_runs(tmp_path / "runs")
    outcome_path = tmp_path / "runs/seed812/repeat3/history.json"
    write_outcome(
        outcome_path, outcome_path.with_name("trace.npz"), tiny_run(812, 3), "failed", "x"
    )
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "keras-repro/run-outcome", "format_version": 1}')
    outcomes, others, refused_outcomes = split_outcomes([*records, outcome_path, broken])
    assert [r.path for r in refused_outcomes] == [str(broken)]
    assert [(o.seed, o.repeat, o.path) for o in outcomes] == [(812, 3, str(outcome_path))]
    assert others == records
    runs, refused = read_runs(others)
    assert len(runs) == 4 and refused == []
    assert read_outcome(records[0]) is None and read_record(records[0]).seed == 812


def test_an_error_text_names_the_op_xla_refuses():
    text = (
        "UNIMPLEMENTED: HLO instruction select-and-scatter.401.0 does not have a deterministic "
        "implementation, but run-to-run determinism is required by --xla_gpu_deterministic_ops."
    )
    assert op_without_deterministic_kernel(RuntimeError(text)) == "select-and-scatter.401.0"


# A user's layer that seeds its noise from the clock: TensorFlow refuses tf.timestamp under op
# determinism on every device (FailedPreconditionError), so this runs on the CPU.
CLOCK_MODEL = """
import keras
import tensorflow as tf
from keras import layers


class ClockNoise(layers.Layer):
    def call(self, x, training=False):
        if not training:
            return x
        seed = tf.cast(tf.timestamp() * 1000, tf.int32)
        return x + 0.01 * tf.random.stateless_normal(tf.shape(x), seed=tf.stack([seed, 0]))


def build(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    x = layers.Dense(8, activation="relu")(layers.Flatten()(inputs))
    outputs = layers.Dense(num_classes, activation="softmax")(ClockNoise()(x))
    return keras.Model(inputs, outputs)
"""


def test_a_run_tensorflow_refuses_ends_as_a_failed_outcome_naming_the_op(tmp_path):
    dataset = tmp_path / "dataset.npz"
    arrays = make_arrays(n_train=32, n_test=16)
    write_npz_deterministic({NPZ_KEYS[role]: array for role, array in arrays.items()}, dataset)
    (tmp_path / "clock.py").write_text(CLOCK_MODEL)
    record = tmp_path / "runs/seed5/repeat1/history.json"
    settings = tiny_run(5, 1, model=f"{tmp_path / 'clock.py'}:build", pipeline="numpy")
    train_in_fresh_process(
        dataset,
        record,
        record.with_name("trace.npz"),
        record.with_name("train.log"),
        settings,
        runs_per_gpu=1,
        gpu_lock_dir=tmp_path / "locks",
    )
    outcome = read_outcome(record)
    assert outcome is not None and (outcome.status, outcome.op) == ("failed", "Timestamp")
    assert "FailedPreconditionError: Timestamp (node " in outcome.reason
    assert json.loads(record.read_text())["fingerprint"]["device"] == "cpu"
    assert sorted(np.load(record.with_name("trace.npz"))) == ["outcome"]
    log = record.with_name("train.log").read_text()
    assert "training stopped: op determinism: FailedPreconditionError: Timestamp" in log
    assert sorted(p.name for p in record.parent.iterdir()) == [
        "checkpoints",
        "history.json",
        "trace.npz",
        "train.log",
    ]
    assert list(record.with_name("checkpoints").iterdir()) == [], "no checkpoint of a failed run"


@pytest.mark.parametrize("status", ["failed", "not-possible"])
def test_a_cell_whose_runs_did_not_train_is_reported_and_fails_the_verdict(tmp_path, status):
    from keras_repro.comparison.evidence import Evidence
    from keras_repro.comparison.verdict import VerdictError, judge
    from keras_repro.report.cell import ReportPaths, write_report

    _, draws = write_runs(tmp_path / "runs")
    outcomes = []
    for seed in (812, 42):
        for repeat in (1, 2):
            path = tmp_path / f"cell/seed{seed}/repeat{repeat}/history.json"
            op, source = ("MaxPoolGrad", None) if status == "failed" else (None, "https://x/<b>")
            write_outcome(
                path,
                path.with_name("trace.npz"),
                tiny_run(seed, repeat),
                status,
                "no <kernel>",
                op=op,
                source=source,
            )
            outcomes.append(path)
    paths = ReportPaths.in_folder(tmp_path / "report")
    comparison = write_report(Evidence(outcomes, draws), paths)
    assert comparison.verdict == status and comparison.runs == 0
    html = paths.html.read_text()
    assert "Runs that did not train" in html and "no &lt;kernel&gt;" in html
    assert ("<code>MaxPoolGrad</code>" in html) == (status == "failed")
    assert "seed 42, repeat 2 (seeded)" in paths.markdown.read_text()
    with pytest.raises(VerdictError) as raised:
        judge(Evidence(outcomes, draws), paths.summary, tmp_path / "verdict.txt")
    said = str(raised.value)
    if status == "failed":
        assert "FAILED: 4 runs met an op without a deterministic kernel here (MaxPoolGrad)" in said
    else:
        assert "NOT POSSIBLE HERE: no <kernel> (source: https://x/<b>)" in said
        assert "Nothing was trained, so nothing was judged." in said
    assert not (tmp_path / "verdict.txt").exists()


@pytest.mark.slow
def test_the_model_check_says_up_front_what_a_gpu_would_refuse():
    code = textwrap.dedent(
        """
        import json
        from keras_repro.config.schema import defaults
        from keras_repro.models.check import check_model
        spec = {"input_shape": [28, 28], "num_classes": 10}
        print(json.dumps(check_model("recipe", spec, defaults()["compile"])["not_possible_on_gpu"]))
        """
    )
    said = {}
    for backend in ("jax", "torch"):
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        said[backend] = json.loads(done.stdout.splitlines()[-1]), done.stderr
    found, log = said["jax"]
    assert found["op"] == "select-and-scatter" and "flax/issues/4233" in found["source"]
    assert "on a GPU: not possible here: jax on a GPU: layer max_pooling2d" in log
    assert said["torch"][0] is None, "the recipe's input Resizing gets no gradient"
