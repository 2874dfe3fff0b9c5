"""What every backend shares: the fingerprint fields that can change a result whatever the
backend (each backend module adds its own ``RESULT_FIELDS``), and the variables every training
process records."""

from __future__ import annotations

# The others (host names, job ids, which card or CPUs a run got) vary by design and are shown,
# never judged.
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
