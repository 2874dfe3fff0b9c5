"""The peak RSS of a whole process tree: the sum over the processes alive together, sampled.

``ru_maxrss`` from ``wait4`` is the largest single process of a tree; a launcher beside its
training interpreter holds memory too, so the per-backend section also samples the sum of
the resident sets of a process and its descendants (``/proc/<pid>/task/*/children``,
``/proc/<pid>/statm``) every ``interval`` seconds while it runs, and keeps the largest.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, as far as /proc shows them now."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:  # it exited meanwhile
            continue
        for task in tasks:
            try:
                pending.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def tree_rss_bytes(pid: int) -> int:
    """The sum of the resident sets of ``pid`` and its descendants now."""
    total = 0
    for member in descendants(pid):
        try:
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * PAGE_BYTES
        except (OSError, IndexError, ValueError):
            continue
    return total


class TreeRssSampler:
    """Samples ``tree_rss_bytes(pid)`` on a thread until ``stop()``, which returns the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.peak = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stopped.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self.pid))
            self._stopped.wait(self.interval)

    def stop(self) -> int:
        self._stopped.set()
        self._thread.join()
        return self.peak
