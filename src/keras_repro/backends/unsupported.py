"""A framework's refusal to run an op deterministically, told from its error: TensorFlow's
``UnimplementedError`` under op determinism ("A deterministic GPU implementation of X is not
currently available"), and on any device its refusal of a clock read ("Timestamp cannot be
called when determinism is enabled", mostly used to seed random ops) or of an unseeded
random op; torch's "X does not have a deterministic implementation"; XLA's (JAX) "HLO
instruction X does not have a deterministic implementation". Such a run cannot be
bit-reproducible here; the error names the op so that the report can say so.
"""

from __future__ import annotations

import re

from keras_repro.errors import ReproError

# (pattern, group naming the op) in the frameworks' messages
PATTERNS = (
    re.compile(r"deterministic GPU implementation of (?P<op>[\w./:-]+)", re.IGNORECASE),
    re.compile(r"(?P<op>[\w./:-]+) does not have a deterministic implementation"),
    re.compile(r"(?P<op>Random ops?) require a seed to be set when determinism is enabled"),
    re.compile(r"deterministic implementation of (?P<op>[\w./:-]+)", re.IGNORECASE),
    re.compile(r"(?P<op>Timestamp) cannot be called when determinism is enabled"),
    re.compile(r"When determinism is enabled, (?P<op>random ops) must have a seed specified"),
)
ERROR_TYPES = (
    "UnimplementedError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "RuntimeError",
    "XlaRuntimeError",
)
NODE = re.compile(r"\{\{node (?P<node>[^}]+)\}\}")


class NoDeterministicKernel(ReproError):
    """An op the framework cannot run deterministically, here."""

    def __init__(self, op: str, message: str) -> None:
        super().__init__(message)
        self.op = op


def op_without_deterministic_kernel(error: BaseException) -> str | None:
    """The op a framework says has no deterministic implementation, or None."""
    if type(error).__name__ not in ERROR_TYPES:
        return None
    text = str(error)
    for pattern in PATTERNS:
        if found := pattern.search(text):
            return found["op"].rstrip(".")
    return None


def refuse_nondeterministic_op(error: BaseException, determinism_on: bool) -> None:
    """Raise NoDeterministicKernel, naming the op, when ``error`` is a framework's refusal
    under its determinism switches; return otherwise (the caller re-raises ``error``)."""
    op = op_without_deterministic_kernel(error) if determinism_on else None
    if op is None:
        return
    node = NODE.search(str(error))
    where = f" (node {node['node']})" if node else ""
    raise NoDeterministicKernel(
        op,
        f"op determinism: {type(error).__name__}: {op}{where} cannot run deterministically "
        "on this device, so this model cannot train bit-reproducibly here "
        "(not possible here: use another device, backend or layer)",
    ) from None
