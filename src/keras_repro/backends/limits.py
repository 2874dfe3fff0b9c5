"""Combinations that cannot train bit-reproducibly, known before the first step: a layer whose
gradient lowers, on this backend and device, to an op with no deterministic implementation,
so the framework's determinism switch refuses it (or, unchecked, it would sum in a different
order each run). Each limit names its source; docs/gpus.md's table is ``KNOWN_LIMITS``.

A layer counts only when its gradient is computed: some layer with trainable weights comes
before it (a resize on the raw input has no backprop); in a model whose weights do not
exist yet, every layer counts. Layers are walked in Keras' order,
nested models and layers too; for a subclassed model that is the order its layers were
assigned, which is usually the order they are called. An op called outside a layer (a bare
``keras.ops.image.resize`` in ``call``) is not seen here: the framework still refuses it at
run time (``keras_repro.backends.unsupported``).

Nothing here imports Keras: layers are told by their class names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_POOLING = ("MaxPooling1D", "MaxPooling2D", "MaxPooling3D")
# the ops that throw under use_deterministic_algorithms(True) (torch 2.13.0 lists the same)
TORCH_DOCS = (
    "https://docs.pytorch.org/docs/stable/generated/torch.use_deterministic_algorithms.html"
)


def _classes(layer: Any) -> set[str]:
    return {cls.__name__ for cls in type(layer).__mro__}


def _resizes(layer_classes: tuple[str, ...], interpolations: tuple[str, ...]) -> Callable:
    def matches(layer: Any) -> bool:
        return bool(_classes(layer) & set(layer_classes)) and (
            getattr(layer, "interpolation", None) in interpolations
        )

    return matches


@dataclass(frozen=True)
class KnownLimit:
    backend: str
    device: str
    layers: str  # which layers, as the docs' table says it
    op: str  # the op without a deterministic implementation, as the framework names it
    reason: str
    source: str
    matches: Callable[[Any], bool] = field(compare=False, repr=False)
    # The op is in the gradient the backend builds, so only a layer a gradient flows through
    # counts (else: the layer counts anywhere in the model, its own computation the limit).
    in_gradient: bool = True


KNOWN_LIMITS = (
    KnownLimit(
        backend="jax",
        device="gpu",
        layers="MaxPooling1D, MaxPooling2D, MaxPooling3D",
        op="select-and-scatter",
        reason="max pooling's gradient lowers to XLA's select-and-scatter, which has no "
        "deterministic GPU implementation: with --xla_gpu_deterministic_ops XLA refuses it",
        source="https://github.com/google/flax/issues/4233 ; https://openxla.org/xla/determinism",
        matches=lambda layer: bool(_classes(layer) & set(MAX_POOLING)),
    ),
    KnownLimit(
        backend="tensorflow",
        device="gpu",
        layers='Resizing(interpolation="nearest")',
        op="ResizeNearestNeighborGrad",
        reason="nearest-neighbour resizing backprops through ResizeNearestNeighborGrad, which "
        "has no deterministic GPU kernel: op determinism raises UnimplementedError (Keras 3 "
        'builds UpSampling2D(interpolation="nearest") from ops.repeat instead, a Tile: not '
        "affected)",
        source="https://github.com/tensorflow/tensorflow/pull/51023 ; "
        "https://github.com/tensorflow/community/blob/master/rfcs/20210119-determinism.md",
        matches=_resizes(("Resizing",), ("nearest",)),
    ),
    KnownLimit(
        backend="torch",
        device="gpu",
        layers='UpSampling2D or Resizing, interpolation="bilinear"',
        op="upsample_bilinear2d_backward_out_cuda",
        reason="bilinear resizing is torch's interpolate(mode='bilinear'), whose CUDA backward "
        "has no deterministic implementation: use_deterministic_algorithms raises RuntimeError",
        source=f"{TORCH_DOCS} ; https://github.com/pytorch/pytorch/issues/111335",
        matches=_resizes(("UpSampling2D", "Resizing"), ("bilinear",)),
    ),
    KnownLimit(
        backend="torch",
        device="gpu",
        layers='UpSampling2D or Resizing, interpolation="bicubic"',
        op="upsample_bicubic2d_backward_out_cuda",
        reason="bicubic resizing is torch's interpolate(mode='bicubic'), whose CUDA backward "
        "has no deterministic implementation: use_deterministic_algorithms raises RuntimeError",
        source=TORCH_DOCS,
        matches=_resizes(("UpSampling2D", "Resizing"), ("bicubic",)),
    ),
    KnownLimit(
        backend="tensorflow",
        device="gpu",
        layers="LSTM, GRU or SimpleRNN with recurrent_dropout > 0",
        op="recurrent dropout (the generic RNN loop)",
        reason="with recurrent_dropout > 0 the layer cannot use cuDNN and runs the generic loop, "
        "which was reported not to repeat bit for bit on a GPU even with op determinism on",
        source="https://github.com/keras-team/keras/issues/17983 ; "
        "https://github.com/tensorflow/tensorflow/issues/60170",
        matches=lambda layer: (
            "RNN" in _classes(layer)
            and bool(
                getattr(layer, "recurrent_dropout", 0)
                or getattr(getattr(layer, "cell", None), "recurrent_dropout", 0)
            )
        ),
        in_gradient=False,
    ),
)


@dataclass(frozen=True)
class NotPossible:
    """Why a run cannot be bit-reproducible here, said before it trains."""

    reason: str
    op: str
    source: str


def _sublayers(layer: Any) -> list[Any]:
    # Keras 3's own walk (Model.layers for models; a custom layer's tracked sublayers too).
    return list(layer._flatten_layers(include_self=False, recursive=False))


def walk_layers(model: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every layer inside ``model``, nested ones as ``outer/inner``, in Keras' order."""
    for layer in _sublayers(model):
        path = f"{prefix}{layer.name}"
        yield path, layer
        yield from walk_layers(layer, f"{path}/")


def backpropagated_layers(model: Any) -> Iterator[tuple[str, Any]]:
    """The layers whose gradient training computes: those after the first trainable weight
    (all of them in a model with no weights yet: a subclassed model creates them on its first
    call, so where they are is not known before)."""
    trained = not model.trainable_weights
    for path, layer in walk_layers(model):
        if trained:
            yield path, layer
        own = {id(v) for v in layer.trainable_weights} - {
            id(v) for sub in _sublayers(layer) for v in sub.trainable_weights
        }
        trained = trained or bool(own)


def limit_layers(model: Any, backend: str, device: str) -> list[tuple[KnownLimit, list[str]]]:
    """Each known limit of ``backend`` on ``device`` that ``model`` hits, with its layers."""
    found = []
    candidates = [lim for lim in KNOWN_LIMITS if (lim.backend, lim.device) == (backend, device)]
    backpropagated = list(backpropagated_layers(model)) if candidates else []
    everywhere = list(walk_layers(model)) if candidates else []
    for limit in candidates:
        layers = backpropagated if limit.in_gradient else everywhere
        hit = [path for path, layer in layers if limit.matches(layer)]
        if hit:
            found.append((limit, hit))
    return found


def known_limits(model: Any, backend: str, device: str) -> list[KnownLimit]:
    """The known limits that make ``model`` (built: its weights tell where gradients flow)
    impossible to train bit-reproducibly on ``backend`` and ``device`` ("cpu" or "gpu", the
    device used)."""
    return [limit for limit, _ in limit_layers(model, backend, device)]


def not_possible_here(
    model: Any, backend: str, device: str, op_determinism: bool
) -> NotPossible | None:
    """Why ``model`` cannot train bit-reproducibly here, or None (always None with op
    determinism off: those runs train, to show what determinism costs)."""
    if not op_determinism:
        return None
    hits = limit_layers(model, backend, device)
    if not hits:
        return None
    reason = "; ".join(
        f"{backend} on a {device.upper()}: layer {', '.join(paths)}: {limit.reason}"
        for limit, paths in hits
    )
    return NotPossible(
        reason=f"not possible here: {reason}",
        op=", ".join(limit.op for limit, _ in hits),
        source=" ; ".join(limit.source for limit, _ in hits),
    )
