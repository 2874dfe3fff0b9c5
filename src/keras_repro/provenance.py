"""Which source code decides a job's result: a rule's script and every package module it runs.

Snakemake reruns a ``script:`` rule when the script file is newer than the outputs, which says
nothing of the package the script imports and reruns on a mere ``touch``. Instead, each rule
gets the digest of its code's *content* as a param: an edit anywhere in what the job imports
reruns it, a touch or a checkout does not.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "keras_repro"
PACKAGE_DIR = Path(__file__).resolve().parent
# Files a module reads at run time besides its imports, relative to the package.
DATA_FILES = {
    "report": ("templates/report.md.j2", "templates/report.html.j2"),
    "front_page": ("templates/front_page.rst.j2",),
}


@functools.cache
def _imported_modules(source: Path) -> frozenset[str]:
    """The package's modules that ``source`` imports, anywhere in the file (by name)."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from keras_repro import x" may name a module x
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == PACKAGE and len(parts) > 1 and (PACKAGE_DIR / f"{parts[1]}.py").exists():
                found.add(parts[1])
    return frozenset(found)


def package_modules(entry_points: Iterable[str | Path]) -> list[str]:
    """Every package module the entry points run, transitively: a script path, or a module
    name (``keras_repro.train``) for code started as ``python -m`` in another process."""
    pending, seen = [], set()
    for entry in entry_points:
        entry = str(entry)
        if entry.startswith(f"{PACKAGE}."):
            pending.append(entry.split(".")[1])
        else:
            pending.extend(_imported_modules(Path(entry).resolve()))
    while pending:
        module = pending.pop()
        if module not in seen:
            seen.add(module)
            pending.extend(_imported_modules(PACKAGE_DIR / f"{module}.py"))
    return sorted(seen)


def code_files(entry_points: Iterable[str | Path]) -> list[Path]:
    """The files whose content decides what the entry points compute."""
    entry_points = list(entry_points)
    scripts = [Path(e) for e in map(str, entry_points) if not e.startswith(f"{PACKAGE}.")]
    modules = package_modules(entry_points)
    files = [PACKAGE_DIR / "__init__.py", *(PACKAGE_DIR / f"{m}.py" for m in modules)]
    files += [PACKAGE_DIR / data for m in modules for data in DATA_FILES.get(m, ())]
    return scripts + files


def code_digest(entry_points: Iterable[str | Path]) -> str:
    """sha256 over the names and contents of ``code_files(entry_points)``."""
    digest = hashlib.sha256()
    for path in code_files(entry_points):
        name = (
            path.relative_to(PACKAGE_DIR).as_posix()
            if path.is_relative_to(PACKAGE_DIR)
            else path.name
        )
        digest.update(f"{name}\0{len(path.read_bytes())}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
