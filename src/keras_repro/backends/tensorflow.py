"""TensorFlow: thread pools, devices and op determinism; what it says about itself; the step
recorder written inside its compiled train and test steps.

TensorFlow is imported inside the functions (see ``keras_repro.backends``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from keras_repro.errors import ReproError

log = logging.getLogger(__name__)

RESULT_FIELDS = (
    "tensorflow",
    "cuda_build",
    "cudnn_build",
    "intra_op_threads",
    "inter_op_threads",
    "op_determinism",
    "environment.TF_ENABLE_ONEDNN_OPTS",
    "environment.TF_DETERMINISTIC_OPS",
    "environment.TF_CUDNN_DETERMINISTIC",
    "environment.TF_XLA_FLAGS",
    "environment.TF_NUM_INTRAOP_THREADS",
    "environment.TF_NUM_INTEROP_THREADS",
)
ENVIRONMENT_VARIABLES = tuple(
    field.removeprefix("environment.")
    for field in RESULT_FIELDS
    if field.startswith("environment.")
)
# TensorFlow 2.21 has no public getter for op determinism, so the fingerprint records what
# configure() switched on (the public enable_op_determinism() raises rather than fail quietly).
_op_determinism = False


class DeviceError(ReproError):
    """The requested device is not available."""


def child_environment(threads: int, device: str, op_determinism: bool) -> dict[str, str]:
    """The variables the training process needs before Python starts: the backend and
    OpenMP's threads (thread pools, devices and op determinism are set from Python)."""
    return {"KERAS_BACKEND": "tensorflow", "OMP_NUM_THREADS": str(threads)}


def configure(threads: int, device: str) -> str:
    """Fix thread pools and devices before TensorFlow initializes; returns the device used.
    Called again with the same threads in one process (runs trained one after another), it
    changes nothing."""
    import tensorflow as tf

    threading = tf.config.threading
    if (
        threading.get_intra_op_parallelism_threads(),
        threading.get_inter_op_parallelism_threads(),
    ) != (threads, threads):
        threading.set_intra_op_parallelism_threads(threads)
        threading.set_inter_op_parallelism_threads(threads)
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu" or (device == "auto" and not gpus):
        if tf.config.get_visible_devices("GPU"):
            tf.config.set_visible_devices([], "GPU")
        if device == "auto":
            log.info("device: auto and TensorFlow sees no GPU: running on the CPU")
        return "cpu"
    if not gpus:
        raise DeviceError(
            "device: gpu, but TensorFlow sees no GPU "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}). Install "
            "tensorflow[and-cuda] (pip install -e '.[gpu]') or set device: auto or cpu."
        )
    for gpu in gpus:
        # Several runs may share one card.
        tf.config.experimental.set_memory_growth(gpu, True)
    log.info("running on GPU: %s", ", ".join(g.name for g in gpus))
    return "gpu"


def enable_determinism() -> None:
    """``tf.config.experimental.enable_op_determinism()``, after the seed is set."""
    import tensorflow as tf

    global _op_determinism
    tf.config.experimental.enable_op_determinism()
    _op_determinism = True


def fingerprint() -> dict[str, Any]:
    import tensorflow as tf

    build = tf.sysconfig.get_build_info()
    return {
        "tensorflow": tf.__version__,
        "gpus": [
            {"name": gpu.name, **tf.config.experimental.get_device_details(gpu)}
            for gpu in tf.config.get_visible_devices("GPU")
        ],
        "cuda_build": build.get("cuda_version"),
        "cudnn_build": build.get("cudnn_version"),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "op_determinism": _op_determinism,
    }


def host_callback(function: Any, *tensors: Any) -> None:
    """Call ``function`` with the tensors' values on the host, from inside a train step (eager
    or a ``tf.function``)."""
    import tensorflow as tf

    if tf.executing_eagerly():
        function(*(np.asarray(t) for t in tensors))
    else:
        tf.py_function(lambda *values: function(*(v.numpy() for v in values)), list(tensors), [])


def flush() -> None:
    """Nothing to wait for: a host callback has run when the step returns."""


def global_random_state() -> dict[str, np.ndarray]:
    """None here: Keras draws TensorFlow's random numbers statelessly from its seed
    generators' variables, which a checkpoint saves with the model."""
    return {}


def restore_global_random_state(state: dict[str, np.ndarray]) -> None:
    """Nothing to put back (``global_random_state`` saves nothing)."""


class StepRecorder:
    """What every step consumed and computed, written inside the compiled train and test steps
    into buffers that are read once at the end: no Python and no host round trip per batch.

    Per training step its loss, and for every batch the model consumes (training, validation,
    evaluate) a fingerprint (farmhash64, ``tf.fingerprint``) of its inputs and labels as they
    reach the model: the data fed, order and content.
    """

    def __init__(self, train_steps: int, test_steps: int, first_step: int = 1) -> None:
        import tensorflow as tf

        # The optimizer's iterations count every step from the first of the run: a segment's
        # recorder starts at its own first step.
        self._offset = first_step - 1
        # On the CPU: the buffers are read there, and uint8 needs no GPU kernel.
        with tf.device("/CPU:0"):
            self._loss = tf.Variable(tf.zeros([train_steps], tf.float32), trainable=False)
            self._train = tf.Variable(tf.zeros([train_steps, 2, 8], tf.uint8), trainable=False)
            self._test = tf.Variable(tf.zeros([test_steps, 2, 8], tf.uint8), trainable=False)
            self._test_count = tf.Variable(tf.constant(0, tf.int64), trainable=False)

    def __call__(self, training: bool, iterations: Any, x: Any, y: Any, loss: Any) -> None:
        import tensorflow as tf

        batch = tf.stack([_fingerprint(x), _fingerprint(y)])
        if training:
            index = tf.cast(iterations, tf.int64)
            if self._offset:
                index -= self._offset
            self._loss[index].assign(tf.cast(loss, tf.float32))
            self._train[index].assign(batch)
        else:
            index = self._test_count.assign_add(1) - 1
            self._test[index].assign(batch)

    def step_losses(self) -> np.ndarray:
        return self._loss.numpy()

    def train_batches(self) -> np.ndarray:
        return self._train.numpy()

    def test_batches(self) -> np.ndarray:
        """The test batches recorded (validation and evaluate), in order."""
        return self._test.numpy()[: int(self._test_count.numpy())]


def _fingerprint(tensor: Any) -> Any:
    """farmhash64 of a tensor's bytes, as 8 uint8."""
    import tensorflow as tf

    return tf.fingerprint(tf.reshape(tensor, [1, -1]))[0]


def make_step_recorder(train_steps: int, test_steps: int, first_step: int = 1) -> StepRecorder:
    """A recorder for ``train_steps`` training steps from ``first_step``."""
    return StepRecorder(train_steps, test_steps, first_step)
