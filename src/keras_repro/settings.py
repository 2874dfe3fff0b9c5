"""What one training run is asked to do: one definition for the launcher, the training CLI and
the run record's ``settings``."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

DEVICES = ("auto", "cpu", "gpu")
# The seeded runs that are judged, and the control arm (runs that must differ, and runs whose
# op determinism is off, to show what determinism costs and whether it matters here).
ARMS = ("seeded", "unseeded", "nondeterministic")


@dataclass(frozen=True)
class RunSettings:
    seed: int | None  # None: the launcher draws one (the unseeded control)
    repeat: int
    epochs: int
    batch_size: int
    threads: int
    device: str
    trace_every: int  # hash every weight variable every this many steps (and at epoch ends)
    arm: str = "seeded"
    op_determinism: bool = True
    seed_drawn: bool = False
    # A deliberate one-ULP nudge of one weight variable after this step, to show the check sees it.
    perturb_step: int | None = None
    perturb_variable: str | None = None
    dataset_sha256: str | None = None  # refuse a dataset file with another sha256

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.arm not in ARMS:
            raise ValueError(f"arm must be one of {ARMS}, got {self.arm!r}")

    def to_arguments(self) -> list[str]:
        """The training CLI's options for these settings."""
        if self.seed is None:
            raise ValueError("draw the seed before starting the run")
        arguments = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            option = "--" + field.name.replace("_", "-")
            if field.name == "op_determinism":
                arguments += [] if value else ["--no-op-determinism"]
            elif field.name == "seed_drawn":
                arguments += ["--seed-drawn"] if value else []
            elif value is not None:
                arguments.append(f"{option}={value}")
        return arguments

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def add_arguments(parser: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
    """The training CLI's options, with the config schema's defaults."""
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=0, help="which repeat this is (recorded)")
    parser.add_argument("--epochs", type=int, default=defaults["epochs"])
    parser.add_argument("--batch-size", type=int, default=defaults["batch_size"])
    parser.add_argument(
        "--threads", type=int, default=defaults["threads"], help="TF intra- and inter-op threads"
    )
    parser.add_argument("--device", choices=DEVICES, default=defaults["device"])
    parser.add_argument(
        "--trace-every",
        type=int,
        default=defaults["trace"]["every_steps"],
        help="hash every weight variable every this many steps (and at each epoch's end)",
    )
    parser.add_argument("--arm", choices=ARMS, default="seeded", help="recorded with the run")
    parser.add_argument(
        "--no-op-determinism",
        dest="op_determinism",
        action="store_false",
        help="leave tf.config.experimental.enable_op_determinism() out",
    )
    parser.add_argument(
        "--seed-drawn", action="store_true", help="record that the seed was drawn at random"
    )
    parser.add_argument("--perturb-step", type=int, help="nudge a weight by one ULP after it")
    parser.add_argument("--perturb-variable", help="the variable to nudge (default: the first one)")
    parser.add_argument(
        "--dataset-sha256", help="refuse a dataset file whose sha256 differs (from its manifest)"
    )


def from_arguments(args: argparse.Namespace) -> RunSettings:
    return RunSettings(
        **{field.name: getattr(args, field.name) for field in dataclasses.fields(RunSettings)}
    )
