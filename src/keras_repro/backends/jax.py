"""JAX: XLA's CPU thread pool, devices and GPU op determinism; what it says about itself; the
step recorder, an ordered host callback from inside the (jitted, stateless) train step.

XLA reads ``XLA_FLAGS`` and ``JAX_PLATFORMS`` when its first client starts, so they are set in
the training process's environment before Python starts (``child_environment``). No XLA flag
holds the CPU thread count here (jax 0.10: ``--xla_cpu_multi_thread_eigen=false`` leaves the
pool's threads running and a float32 sum's bits unchanged): XLA sizes its CPU pool from the
CPUs the process may run on when the client starts, and a sum's bits change with it, so
``configure`` narrows the process's CPU affinity to ``threads`` CPUs while the client starts
and restores it after.

JAX is imported inside the functions (see ``keras_repro.backends``).
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from keras_repro.backends.host import HostBuffers
from keras_repro.errors import ReproError

log = logging.getLogger(__name__)

RESULT_FIELDS = (
    "jax",
    "jaxlib",
    "jax_platform",
    "xla_cpu_threads",
    "xla_gpu_deterministic_ops",
    "jax_enable_x64",
    "jax_default_matmul_precision",
    "jax_threefry_partitionable",
    "environment.JAX_PLATFORMS",
    "environment.JAX_ENABLE_X64",
    "environment.JAX_DEFAULT_MATMUL_PRECISION",
)
ENVIRONMENT_VARIABLES = tuple(
    field.removeprefix("environment.")
    for field in RESULT_FIELDS
    if field.startswith("environment.")
)
DETERMINISTIC_OPS = "--xla_gpu_deterministic_ops"
# The name XLA gives the threads of its CPU pool (tsl's "tf_" prefix and the pool's name).
POOL_THREAD_NAME = "tf_XLAEigen"


class DeviceError(ReproError):
    """The requested device is not available."""


def child_environment(threads: int, device: str, op_determinism: bool) -> dict[str, str]:
    """The variables the training process needs before Python starts: the backend, op
    determinism in ``XLA_FLAGS`` (the user's other flags kept), the CPU platform for device
    cpu, and no up-front grab of GPU memory otherwise (several runs may share a card)."""
    flags = [
        flag
        for flag in os.environ.get("XLA_FLAGS", "").split()
        if flag.split("=")[0] != DETERMINISTIC_OPS
    ]
    if op_determinism:
        flags.append(f"{DETERMINISTIC_OPS}=true")
    environment = {
        "KERAS_BACKEND": "jax",
        "OMP_NUM_THREADS": str(threads),
        "XLA_FLAGS": " ".join(flags),
    }
    if device == "cpu":
        environment["JAX_PLATFORMS"] = "cpu"
    else:
        environment["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return environment


def configure(threads: int, device: str) -> str:
    """Start XLA's clients with a CPU pool of ``threads`` threads; returns the device used."""
    import jax

    if device == "cpu":
        jax.config.update("jax_platforms", "cpu")
    allowed = sorted(os.sched_getaffinity(0))
    if threads > len(allowed):
        log.warning(
            "threads: %d, but this process may run on %d CPUs: XLA's CPU pool has %d threads",
            threads,
            len(allowed),
            len(allowed),
        )
    os.sched_setaffinity(0, allowed[:threads])
    try:
        devices = jax.devices()
    except RuntimeError as error:
        raise DeviceError(f"JAX cannot start: {str(error).splitlines()[0]}") from None
    finally:
        os.sched_setaffinity(0, allowed)
    pool = xla_cpu_threads()
    if pool is not None and pool != min(threads, len(allowed)):
        log.warning(
            "XLA's CPU pool has %d threads, not %d (started before configure?)", pool, threads
        )
    gpus = [d for d in devices if d.platform == "gpu"]
    if device == "gpu" and not gpus:
        raise DeviceError(
            "device: gpu, but JAX sees no GPU "
            f"(platforms {sorted({d.platform for d in devices})}, CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}). Install jax[cuda12] "
            "(docs/gpus.md) or set device: auto or cpu."
        )
    if not gpus:
        if device == "auto":
            log.info("device: auto and JAX sees no GPU: running on the CPU")
        return "cpu"
    log.info("running on GPU: %s", ", ".join(str(d) for d in gpus))
    return "gpu"


def enable_determinism() -> None:
    """Check that XLA started with ``--xla_gpu_deterministic_ops=true`` (it cannot be
    switched on once running)."""
    if _deterministic_ops() is not True:
        raise ReproError(
            f"op determinism on JAX needs XLA_FLAGS={DETERMINISTIC_OPS}=true before Python "
            f"starts (XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}); the launcher and "
            "keras-repro-train set it"
        )


def _deterministic_ops() -> bool | None:
    """The last ``--xla_gpu_deterministic_ops`` in ``XLA_FLAGS`` (XLA's own parse rule)."""
    value = None
    for flag in os.environ.get("XLA_FLAGS", "").split():
        name, _, given = flag.partition("=")
        if name == DETERMINISTIC_OPS:
            value = given.lower() in ("", "true", "1")
    return value


def xla_cpu_threads() -> int | None:
    """The threads of XLA's CPU pool, counted by name (None where /proc does not say)."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return None
    names = []
    for task in tasks.iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # a thread that ended meanwhile
            continue
    return sum(name.startswith(POOL_THREAD_NAME) for name in names)


def fingerprint() -> dict[str, Any]:
    import jax
    import jaxlib

    devices = jax.devices()
    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "jax_platform": jax.default_backend(),
        "jax_devices": [str(d) for d in devices],
        "gpus": [
            {
                "name": str(d),
                "device_kind": d.device_kind,
                "compute_capability": getattr(d, "compute_capability", None),
            }
            for d in devices
            if d.platform == "gpu"
        ],
        "xla_cpu_threads": xla_cpu_threads(),
        "xla_gpu_deterministic_ops": _deterministic_ops(),
        "jax_enable_x64": bool(jax.config.jax_enable_x64),
        "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
        "jax_threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
    }


def host_callback(function: Any, *tensors: Any) -> None:
    """Call ``function`` with the tensors' values on the host, from inside a train step (under
    ``jax.grad`` too: an ordered debug callback; ``flush`` waits for the calls)."""
    import jax

    jax.debug.callback(
        lambda *values: function(*(np.asarray(v) for v in values)), *tensors, ordered=True
    )


def flush() -> None:
    """Wait until every host callback made so far has run."""
    import jax

    jax.effects_barrier()


def global_random_state() -> dict[str, np.ndarray]:
    """None here: Keras draws JAX's random numbers from its seed generators' variables, which
    a checkpoint saves with the model."""
    return {}


def restore_global_random_state(state: dict[str, np.ndarray]) -> None:
    """Nothing to put back (``global_random_state`` saves nothing)."""


class StepRecorder:
    """What every step consumed and computed, handed from inside the train and test steps to
    host buffers by an ordered ``jax.debug.callback`` (the step is stateless and, with
    ``jit_compile``, compiled: nothing can be written into a variable there).

    Per training step its loss (float32), and for every batch the model consumes (training,
    validation, evaluate) an 8-byte fingerprint (blake2b) of its inputs and labels as they
    reach the model. The buffers are read once, after training.
    """

    def __init__(self, train_steps: int, test_steps: int) -> None:
        self._buffers = HostBuffers(train_steps, test_steps)

    def __call__(self, training: bool, iterations: Any, x: Any, y: Any, loss: Any) -> None:
        import jax

        # The step counter lives outside the stateless step: the host counts, in step order.
        jax.debug.callback(functools.partial(self._record, training), x, y, loss, ordered=True)

    def _record(self, training: bool, x: Any, y: Any, loss: Any) -> None:
        index = self._buffers.add_batch(training, x, y)
        if training:
            self._buffers.losses[index] = np.float32(np.asarray(loss))

    def _done(self) -> HostBuffers:
        import jax

        jax.effects_barrier()
        return self._buffers

    def step_losses(self) -> np.ndarray:
        return self._done().losses

    def train_batches(self) -> np.ndarray:
        return self._done().train

    def test_batches(self) -> np.ndarray:
        buffers = self._done()
        return buffers.test[: buffers.test_count]


def make_step_recorder(train_steps: int, test_steps: int, first_step: int = 1) -> StepRecorder:
    """A recorder for ``train_steps`` training steps from ``first_step`` (it counts the steps
    it sees, so where they start does not matter here)."""
    return StepRecorder(train_steps, test_steps)
