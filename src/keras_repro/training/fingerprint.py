"""What the running process is made of, read back from it, not from the config (which of its
fields can change a result is the backends' to say: ``keras_repro.backends.can_change_results``)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from keras_repro.backends import ENVIRONMENT_VARIABLES
from keras_repro.training.gpus import assignment_from_environment


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
