"""The per-backend benchmark's peak memory is the whole process tree's: a launcher and the
interpreter it starts count together, where ``ru_maxrss`` sees only the largest of them."""

from __future__ import annotations

import sys
import textwrap

from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

from harness import measure

MIB = 2**20


def holding(mib: int, then: str = "time.sleep(1.5)") -> str:
    """Python code that touches ``mib`` MiB, then runs ``then`` with it still held."""
    return f"import time\nheld = bytearray({mib * MIB})\nheld[::4096] = b'x' * len(held[::4096])\n{then}\n"


def test_tree_peak_counts_parent_and_child_together(tmp_path):
    child = holding(120)
    parent = holding(
        60,
        then=textwrap.dedent(
            f"""
            import subprocess, sys
            subprocess.run([sys.executable, "-c", {child!r}], check=True)
            """
        ),
    )
    measured = measure([sys.executable, "-c", parent], tmp_path / "log", sample_tree=True)
    # ru_maxrss: the largest child alone (of all this process's children so far: in a full
    # test session that is an earlier training run); the tree: both at once, while the child runs.
    assert measured.max_rss_mb >= 120
    assert measured.tree_rss_mb >= 175, "the parent's 60 MiB and the child's 120 MiB together"


def test_without_sampling_no_tree_figure(tmp_path):
    measured = measure([sys.executable, "-c", "pass"], tmp_path / "log")
    assert measured.tree_rss_mb is None
