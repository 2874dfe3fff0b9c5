"""Progress while a run trains: a concise line per run at each epoch's end and at most every
``INTERVAL_SECONDS`` in between, written to the run's log by the training process
(``progress_callback.Progress``) and forwarded from there to the console by the launcher (its
stderr reaches Snakemake's console; the training process's own output goes to the log only).
Nothing here imports TensorFlow: the launcher runs it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any

from keras_repro.config import RunSettings
from keras_repro.models import model_name

MARKER = "progress: "
# Several runs side by side each print a line this often at most, besides one per epoch.
INTERVAL_SECONDS = 15.0


def run_label(settings: RunSettings, segment: int | None = None) -> str:
    """Which run: its cell (model on backend), seed and repeat, the control arm's, or a
    segment replayed of it."""
    label = f"{model_name(settings['model'])} on {settings.backend}, seed {settings.seed}"
    label += f" segment {segment}" if segment is not None else f" repeat {settings.repeat}"
    return label if settings.arm == "seeded" else f"{settings.arm} {label}"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def progress_line(label: str, epoch: int, epochs: int, step: int, steps: int, loss: Any) -> str:
    return f"{MARKER}{label}: epoch {epoch}/{epochs}, step {step}/{steps}, " + (
        "loss ?" if loss is None else f"loss {float(loss):.4f}"
    )


def eta(steady: float, done: int, total: int) -> str:
    """The time left at the pace of the steps after the first (``steady``: the seconds they
    took; the first step compiles, on JAX for long), or "done"."""
    if done >= total:
        return "done"
    return "ETA " + (_duration(steady / (done - 1) * (total - done)) if done > 1 else "?")


class ProgressForwarder:
    """Copies the progress lines a training process appends to ``log_path`` to ``stream``
    (written there directly: the launcher's logging appends to that same log)."""

    def __init__(self, log_path: Path, stream: IO[str] = sys.stderr) -> None:
        self.path, self.stream = Path(log_path), stream
        self.offset = self.path.stat().st_size if self.path.exists() else 0
        self.partial = b""

    def forward(self) -> None:
        """Forward the complete lines appended since the last call."""
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in lines:
            text = line.decode(errors="replace")
            if MARKER in text:
                self.stream.write("training " + text[text.index(MARKER) + len(MARKER) :] + "\n")
        self.stream.flush()
