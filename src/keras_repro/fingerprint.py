"""What the running process is made of, read back from it, not from the config; and which of
its fields can change a result."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from keras_repro.backends import DEFAULT_BACKEND, result_fields
from keras_repro.gpus import assignment_from_environment

# Fields of every backend that can change a result (each backend adds its own: see
# keras_repro.backends); the others (host names, job ids, which card or CPUs a run got) vary
# by design and are shown, never judged.
RESULT_FIELDS = (
    "python",
    "keras",
    "numpy",
    "keras_backend",
    "platform",
    "cpu_model",
    "device",
    "gpus",
    "gpu_driver",
    "jit_compile",
    "floatx",
    "gpu_assignment.name",
    "environment.XLA_FLAGS",
    "environment.OMP_NUM_THREADS",
    "environment.NVIDIA_TF32_OVERRIDE",
    "environment.KERAS_BACKEND",
    "environment.OPENBLAS_CORETYPE",
)
ENVIRONMENT_VARIABLES = (
    "PYTHONHASHSEED",
    *(field.removeprefix("environment.") for field in RESULT_FIELDS if "environment." in field),
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "SLURM_JOB_ID",
)


def can_change_results(field: str, backends: Iterable[str] = (DEFAULT_BACKEND,)) -> bool:
    """Whether a (dotted) fingerprint field can change a result on any of ``backends``."""
    fields = set(RESULT_FIELDS).union(*(result_fields(name) for name in backends))
    return field in fields or field.startswith("gpus.")


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


def gpu_assignment() -> dict[str, Any] | None:
    """The card the launcher gave this run (None when it gave none: device cpu, or the CLI)."""
    assignment = assignment_from_environment()
    return None if assignment is None else assignment.to_dict()


def environment_fingerprint(backend: ModuleType, model: Any, device_used: str) -> dict[str, Any]:
    """What the running process is made of: Python, Keras, the backend (its own fields), the
    machine, the devices, the thread pools and the variables that steer them."""
    import keras

    affinity = cpu_affinity()
    framework = backend.fingerprint()
    return {
        "python": platform.python_version(),
        **framework,
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
        "gpu_driver": nvidia_driver_version() if framework.get("gpus") else None,
        "gpu_assignment": gpu_assignment(),
        "jit_compile": model.jit_compile,
        "floatx": keras.config.floatx(),
        "environment": {
            name: os.environ.get(name)
            for name in (*ENVIRONMENT_VARIABLES, *backend.ENVIRONMENT_VARIABLES)
        },
    }
