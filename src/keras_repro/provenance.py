"""Which source code decides a job's result: a rule's script and every package module it runs.

Snakemake reruns a ``script:`` rule when the script file is newer than the outputs, which says
nothing of the package the script imports and reruns on a mere ``touch``. Instead, each rule
gets the digest of its code's *content* as a param: an edit anywhere in what the job imports
reruns it, a touch or a checkout does not.

Imports are followed by reading the source (``ast``), anywhere in a file (lazy ones too), into
subpackages (``keras_repro.backends.tensorflow``, ``from keras_repro.models import recipe``,
``from . import x``), with the ``__init__.py`` of every package on the way, as Python runs them.
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
    f"{PACKAGE}.report": ("templates/report.md.j2", "templates/report.html.j2"),
    f"{PACKAGE}.front_page": ("templates/front_page.rst.j2",),
    f"{PACKAGE}.matrix_pages": (
        "templates/matrix.md.j2",
        "templates/matrix.html.j2",
        "templates/front_page_matrix.rst.j2",
    ),
}


def module_file(module: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The file of the package's module ``module`` (dotted: ``keras_repro.backends.tensorflow``;
    a package's is its ``__init__.py``), or None when it names no module of the package."""
    parts = module.split(".")
    if parts[0] != package_dir.name or "" in parts:
        return None
    base = package_dir.joinpath(*parts[1:])
    candidates = [base / "__init__.py"] + ([base.with_suffix(".py")] if len(parts) > 1 else [])
    return next((path for path in candidates if path.is_file()), None)


def _with_packages(module: str) -> list[str]:
    """``module`` and every package above it: importing it runs each of their ``__init__.py``."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts) + 1)]


def _absolute(node: ast.ImportFrom, importer: str | None, is_package: bool) -> str | None:
    """What ``from ... import`` names as an absolute module, relative imports resolved against
    ``importer`` (the importing module's dotted name; None for a script, which has none)."""
    if not node.level:
        return node.module
    if importer is None:
        return None
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    if node.level - 1 >= len(package):
        return None
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


@functools.cache
def _imports(source: Path, importer: str | None, package_dir: Path) -> frozenset[str]:
    """The package's modules that ``source`` names in an import, anywhere in the file: the
    module itself for ``from keras_repro.backends import tensorflow``, the package for
    ``from keras_repro.backends import Backend``."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, importer, source.name == "__init__.py")
            if base is not None:
                for alias in node.names:
                    inner = f"{base}.{alias.name}"
                    found.add(inner if module_file(inner, package_dir) else base)
    return frozenset(name for name in found if module_file(name, package_dir))


def module_imports(module: str, package_dir: Path = PACKAGE_DIR) -> frozenset[str]:
    """The package's modules that ``module`` imports itself (an edge of the import graph)."""
    path = module_file(module, package_dir)
    if path is None:
        raise ValueError(f"{module} is not a module of {package_dir}")
    return _imports(path, module, package_dir)


def _runs(source: Path, importer: str | None, package_dir: Path) -> set[str]:
    """What importing ``source``'s imports runs: each module and the packages above it."""
    names = _imports(source, importer, package_dir)
    return {m for name in names for m in _with_packages(name) if module_file(m, package_dir)}


def package_modules(
    entry_points: Iterable[str | Path], package_dir: Path = PACKAGE_DIR
) -> list[str]:
    """Every package module the entry points run, transitively, by dotted name: an entry point
    is a script path, or a module name (``keras_repro.train``) for code started as
    ``python -m`` in another process."""
    package = package_dir.name
    pending: list[str] = []
    for entry in map(str, entry_points):
        if entry.startswith(f"{package}."):
            pending.extend(_with_packages(entry))
        else:
            pending.extend(_runs(Path(entry).resolve(), None, package_dir))
    seen: set[str] = set()
    while pending:
        module = pending.pop()
        if module not in seen and (path := module_file(module, package_dir)):
            seen.add(module)
            pending.extend(_runs(path, module, package_dir))
    return sorted(seen)


def code_files(entry_points: Iterable[str | Path], package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The files whose content decides what the entry points compute."""
    entry_points = list(entry_points)
    package = package_dir.name
    scripts = [Path(e) for e in map(str, entry_points) if not e.startswith(f"{package}.")]
    modules = [package, *package_modules(entry_points, package_dir)]
    files = dict.fromkeys(module_file(m, package_dir) for m in modules)
    files.update(dict.fromkeys(package_dir / d for m in modules for d in DATA_FILES.get(m, ())))
    return scripts + [path for path in files if path is not None]


def code_digest(entry_points: Iterable[str | Path], package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over the names and contents of ``code_files(entry_points)``."""
    digest = hashlib.sha256()
    for path in code_files(entry_points, package_dir):
        name = (
            path.relative_to(package_dir).as_posix()
            if path.is_relative_to(package_dir)
            else path.name
        )
        digest.update(f"{name}\0{len(path.read_bytes())}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
