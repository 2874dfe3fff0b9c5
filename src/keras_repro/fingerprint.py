"""What the running process is made of: read back from it, not from the config."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework.config import is_op_determinism_enabled

from keras_repro.gpus import assignment_from_environment

ENVIRONMENT_VARIABLES = (
    "PYTHONHASHSEED",
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_DETERMINISTIC",
    "TF_XLA_FLAGS",
    "XLA_FLAGS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OMP_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "NVIDIA_TF32_OVERRIDE",
    "KERAS_BACKEND",
    "OPENBLAS_CORETYPE",
    "SLURM_JOB_ID",
)


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_affinity() -> list[int] | None:
    """The CPUs this process may run on (taskset, cgroups, a scheduler's binding); None where
    the OS does not say. os.cpu_count() counts the machine's CPUs whatever the binding."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return sorted(os.sched_getaffinity(0))


def nvidia_driver_version() -> str | None:
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else None


def gpu_details() -> list[dict[str, Any]]:
    return [
        {"name": gpu.name, **tf.config.experimental.get_device_details(gpu)}
        for gpu in tf.config.get_visible_devices("GPU")
    ]


def gpu_assignment() -> dict[str, Any] | None:
    """The card the launcher gave this run (None when it gave none: device cpu, or the CLI)."""
    assignment = assignment_from_environment()
    return None if assignment is None else assignment.to_dict()


def environment_fingerprint(model: keras.Model, device_used: str) -> dict[str, Any]:
    build = tf.sysconfig.get_build_info()
    gpus = gpu_details()
    affinity = cpu_affinity()
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "keras_backend": keras.backend.backend(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "cpus_allowed": len(affinity) if affinity is not None else None,
        "device": device_used,
        "gpus": gpus,
        "gpu_driver": nvidia_driver_version() if gpus else None,
        "gpu_assignment": gpu_assignment(),
        "cuda_build": build.get("cuda_version"),
        "cudnn_build": build.get("cudnn_version"),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "op_determinism": bool(is_op_determinism_enabled()),
        "jit_compile": model.jit_compile,
        "floatx": keras.config.floatx(),
        "environment": {name: os.environ.get(name) for name in ENVIRONMENT_VARIABLES},
    }
