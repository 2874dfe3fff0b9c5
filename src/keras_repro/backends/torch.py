"""PyTorch: thread pools, devices and deterministic algorithms; what it says about itself; the
step recorder, called in its eager train and test steps.

Keras picks its torch device when it is imported and cuBLAS reads CUBLAS_WORKSPACE_CONFIG when
CUDA starts, so those are set in the training process's environment before Python starts
(``child_environment``). CPU results change with the thread count (pytorch #88718), so both
pools are fixed before the first parallel op.

PyTorch is imported inside the functions (see ``keras_repro.backends``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from keras_repro.backends.host import HostBuffers
from keras_repro.errors import ReproError

log = logging.getLogger(__name__)

RESULT_FIELDS = (
    "torch",
    "cuda_build",
    "cudnn_build",
    "intra_op_threads",
    "inter_op_threads",
    "deterministic_algorithms",
    "deterministic_algorithms_warn_only",
    "cudnn_benchmark",
    "cudnn_deterministic",
    "cudnn_allow_tf32",
    "cuda_matmul_allow_tf32",
    "float32_matmul_precision",
    "mkldnn_enabled",
    "mkldnn_deterministic",
    "environment.CUBLAS_WORKSPACE_CONFIG",
    "environment.MKL_NUM_THREADS",
    "environment.KERAS_TORCH_DEVICE",
)
ENVIRONMENT_VARIABLES = tuple(
    field.removeprefix("environment.")
    for field in RESULT_FIELDS
    if field.startswith("environment.")
)
# cuBLAS' deterministic workspace (CUDA's reproducibility notes; torch refuses
# use_deterministic_algorithms on cuBLAS ops without it).
CUBLAS_WORKSPACE = ":4096:8"


class DeviceError(ReproError):
    """The requested device is not available."""


def child_environment(threads: int, device: str, op_determinism: bool) -> dict[str, str]:
    """The variables the training process needs before Python starts: the backend, OpenMP's
    threads, cuBLAS' deterministic workspace, and for device cpu Keras' torch device (CUDA
    hidden)."""
    environment = {"KERAS_BACKEND": "torch", "OMP_NUM_THREADS": str(threads)}
    if op_determinism:
        environment["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    if device == "cpu":
        environment["KERAS_TORCH_DEVICE"] = "cpu"
        environment["CUDA_VISIBLE_DEVICES"] = ""
    return environment


def configure(threads: int, device: str) -> str:
    """Fix both thread pools before the first parallel op; returns the device used."""
    import keras
    import torch

    torch.set_num_threads(threads)
    try:
        if torch.get_num_interop_threads() != threads:  # set once: runs one after another
            torch.set_num_interop_threads(threads)
    except RuntimeError as error:  # raised once inter-op work has started
        raise ReproError(f"torch's inter-op threads cannot be set any more: {error}") from None
    used = keras.ops.convert_to_tensor(0.0).device.type
    if device == "cpu" and used != "cpu":
        raise DeviceError(
            f"device: cpu, but Keras already put tensors on {used}: set KERAS_TORCH_DEVICE=cpu "
            "before Keras is imported (the launcher and keras-repro-train do)"
        )
    if device == "gpu" and used != "cuda":
        raise DeviceError(
            f"device: gpu, but Keras' torch backend runs on {used} (torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda}, CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}). Install torch's CUDA build "
            "(docs/gpus.md) or set device: auto or cpu."
        )
    if used != "cuda":
        if device == "auto":
            log.info("device: auto and torch sees no GPU: running on the CPU")
        return "cpu"
    log.info("running on GPU: %s", torch.cuda.get_device_name())
    return "gpu"


def enable_determinism() -> None:
    """``torch.use_deterministic_algorithms(True)``, cuDNN's benchmark off and its
    deterministic kernels (oneDNN's too), after the seed is set."""
    import torch

    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.mkldnn.deterministic = True


def fingerprint() -> dict[str, Any]:
    import torch

    gpus = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            gpus.append(
                {
                    "name": properties.name,
                    "compute_capability": f"{properties.major}.{properties.minor}",
                    "memory_bytes": properties.total_memory,
                }
            )
    return {
        "torch": torch.__version__,
        "gpus": gpus,
        "cuda_build": torch.version.cuda,
        "cudnn_build": torch.backends.cudnn.version()
        if torch.backends.cudnn.is_available()
        else None,
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
        "parallel_backend": torch.__config__.parallel_info()
        .split("ATen parallel backend: ")[-1]
        .splitlines()[0]
        .strip(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_algorithms_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "mkldnn_enabled": torch.backends.mkldnn.enabled,
        "mkldnn_deterministic": torch.backends.mkldnn.deterministic,
    }


def host_callback(function: Any, *tensors: Any) -> None:
    """Call ``function`` with the tensors' values on the host (torch's steps run eagerly)."""
    function(*(_to_numpy(t) for t in tensors))


def flush() -> None:
    """Nothing to wait for: a host callback has run when it returns."""


def global_random_state() -> dict[str, np.ndarray]:
    """The random state outside Keras' seed generators that a run draws from here: torch's
    global generators (an unseeded ``Dropout`` draws from them). Saved with a checkpoint."""
    import torch

    state = {"torch_cpu": torch.get_rng_state().numpy().copy()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, cuda in enumerate(torch.cuda.get_rng_state_all()):
            state[f"torch_cuda{index}"] = cuda.numpy().copy()
    return state


def restore_global_random_state(state: dict[str, np.ndarray]) -> None:
    """Put back ``global_random_state()``'s arrays. Called once ``fit`` has begun (a
    callback's ``on_train_begin``): restored before, the run does not go on bit for bit."""
    import torch

    torch.set_rng_state(torch.from_numpy(np.ascontiguousarray(state["torch_cpu"])))
    for name, array in state.items():
        if name.startswith("torch_cuda"):
            torch.cuda.set_rng_state(torch.from_numpy(array), int(name.removeprefix("torch_cuda")))


class StepRecorder:
    """What every step consumed and computed, from inside the (eager) train and test steps.

    Per training step its loss, detached into a preallocated float32 tensor on the loss's
    device (no host round trip); for every batch the model consumes (training, validation,
    evaluate) an 8-byte fingerprint (blake2b) of its inputs and labels as they reach the
    model, taken on the host. The buffers are read once, after training.
    """

    def __init__(self, train_steps: int, test_steps: int) -> None:
        self._buffers = HostBuffers(train_steps, test_steps)
        self._losses: Any = None

    def __call__(self, training: bool, iterations: Any, x: Any, y: Any, loss: Any) -> None:
        import torch
        from keras.src.backend.common.symbolic_scope import in_symbolic_scope

        if in_symbolic_scope():  # Keras building the model's state from placeholder tensors
            return
        index = self._buffers.add_batch(training, _to_numpy(x), _to_numpy(y))
        if training:
            if self._losses is None:
                self._losses = torch.zeros(
                    len(self._buffers.losses), dtype=torch.float32, device=loss.device
                )
            self._losses[index] = loss.detach().to(torch.float32)

    def step_losses(self) -> np.ndarray:
        if self._losses is None:
            return self._buffers.losses
        return self._losses.cpu().numpy()

    def train_batches(self) -> np.ndarray:
        return self._buffers.train

    def test_batches(self) -> np.ndarray:
        return self._buffers.test[: self._buffers.test_count]


def _to_numpy(structure: Any) -> Any:
    if isinstance(structure, dict):
        return {key: _to_numpy(value) for key, value in structure.items()}
    if isinstance(structure, list | tuple):
        return [_to_numpy(value) for value in structure]
    if hasattr(structure, "detach"):
        return structure.detach().cpu().numpy()
    return structure


def make_step_recorder(train_steps: int, test_steps: int, first_step: int = 1) -> StepRecorder:
    """A recorder for ``train_steps`` training steps from ``first_step`` (it counts the steps
    it sees, so where they start does not matter here)."""
    return StepRecorder(train_steps, test_steps)
