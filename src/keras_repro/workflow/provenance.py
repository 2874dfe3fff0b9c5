"""Which source code decides a job's result: a rule's script and every package module it runs.

Snakemake reruns a ``script:`` rule when the script file is newer than the outputs, which says
nothing of the package the script imports and reruns on a mere ``touch``. Instead, each rule
gets the digest of its code's *content* as a param: an edit anywhere in what the job runs
reruns it, a touch or a checkout does not.

Imports are followed by reading the source (``ast``), anywhere in a file (lazy ones too), into
subpackages (``keras_repro.backends.tensorflow``, ``from keras_repro.models import recipe``,
``from . import x``). A name taken from a stage's face (``from keras_repro.training import
train_in_fresh_process``) is followed to the module that defines it, through the face's own
``from ... import``; a package's ``__init__.py`` on the way is part of the digest, and its other
imports are followed only when the code uses a name it defines itself. The templates a module
names (``"report.html.j2"``, found in its folder's ``templates/``) are part of its code.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

PACKAGE = "keras_repro"
PACKAGE_DIR = Path(__file__).resolve().parent.parent
TEMPLATES = "templates"


def module_file(module: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The file of the package's module ``module`` (dotted: ``keras_repro.backends.tensorflow``;
    a package's is its ``__init__.py``), or None when it names no module of the package."""
    parts = module.split(".")
    if parts[0] != package_dir.name or "" in parts:
        return None
    base = package_dir.joinpath(*parts[1:])
    candidates = [base / "__init__.py"] + ([base.with_suffix(".py")] if len(parts) > 1 else [])
    return next((path for path in candidates if path.is_file()), None)


def _is_package(module: str, package_dir: Path) -> bool:
    path = module_file(module, package_dir)
    return path is not None and path.name == "__init__.py"


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
def _parsed(source: Path) -> ast.Module:
    return ast.parse(source.read_text(), str(source))


@functools.cache
def _import_statements(source: Path) -> tuple[ast.Import | ast.ImportFrom, ...]:
    """``source``'s import statements, anywhere in it, in ``ast.walk``'s order (walked once:
    the Snakefile asks for them again for every rule's code)."""
    return tuple(
        node for node in ast.walk(_parsed(source)) if isinstance(node, (ast.Import, ast.ImportFrom))
    )


def _from_imports(
    source: Path, importer: str | None
) -> Iterator[tuple[ast.ImportFrom | ast.Import, str | None, str]]:
    """Every import in ``source`` as (statement, module it names, name taken): ``import a.b``
    gives (a.b, a.b), ``from a import b`` (a, b)."""
    for node in _import_statements(source):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, importer, source.name == "__init__.py")
            for alias in node.names:
                yield node, base, alias.name


@functools.cache
def _imports(source: Path, importer: str | None, package_dir: Path) -> frozenset[str]:
    """The package's modules that ``source`` names in an import, anywhere in the file: the
    module itself for ``from keras_repro.backends import tensorflow``, the package for
    ``from keras_repro.backends import Backend``."""
    found = set()
    for node, base, name in _from_imports(source, importer):
        if base is None:
            continue
        if isinstance(node, ast.Import):
            found.add(base)
            continue
        inner = f"{base}.{name}"
        found.add(inner if module_file(inner, package_dir) else base)
    return frozenset(name for name in found if module_file(name, package_dir))


def module_imports(module: str, package_dir: Path = PACKAGE_DIR) -> frozenset[str]:
    """The package's modules that ``module`` imports itself (an edge of the import graph)."""
    path = module_file(module, package_dir)
    if path is None:
        raise ValueError(f"{module} is not a module of {package_dir}")
    return _imports(path, module, package_dir)


def _origin(base: str, name: str, package_dir: Path, depth: int = 0) -> str | None:
    """The module whose code ``from base import name`` runs: ``base.name`` when that is a
    module; for a package that re-exports ``name`` (``from X import name`` in its
    ``__init__.py``), where X takes it from; else ``base`` itself."""
    if module_file(f"{base}.{name}", package_dir):
        return f"{base}.{name}"
    if depth < 8 and _is_package(base, package_dir):
        init = module_file(base, package_dir)
        for node in _parsed(init).body:
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        source = _absolute(node, base, True)
                        if source is not None:
                            return _origin(source, alias.name, package_dir, depth + 1)
    return base if module_file(base, package_dir) else None


@functools.cache
def _runs(source: Path, importer: str | None, package_dir: Path) -> frozenset[str]:
    """The package's modules whose code ``source``'s imports run (each followed further)."""
    found = set()
    for node, base, name in _from_imports(source, importer):
        if base is None:
            continue
        if isinstance(node, ast.Import):
            found.add(base)
        elif origin := _origin(base, name, package_dir):
            found.add(origin)
    return frozenset(name for name in found if module_file(name, package_dir))


def _followed(entry_points: Iterable[str | Path], package_dir: Path) -> set[str]:
    """The modules the entry points run, transitively (packages on the way not included)."""
    package = package_dir.name
    pending: list[str] = []
    for entry in map(str, entry_points):
        if entry.startswith(f"{package}."):
            pending.append(entry)
        else:
            pending.extend(_runs(Path(entry).resolve(), None, package_dir))
    seen: set[str] = set()
    while pending:
        module = pending.pop()
        if module not in seen and (path := module_file(module, package_dir)):
            seen.add(module)
            pending.extend(_runs(path, module, package_dir))
    return seen


def package_modules(
    entry_points: Iterable[str | Path], package_dir: Path = PACKAGE_DIR
) -> list[str]:
    """Every package module the entry points run, by dotted name, with the packages on the way
    (their ``__init__.py`` runs): an entry point is a script path, or a module name
    (``keras_repro.training.cli``) for code started as ``python -m`` in another process."""
    followed = _followed(entry_points, package_dir)
    on_the_way = {p for module in followed for p in _with_packages(module)}
    return sorted(m for m in followed | on_the_way if module_file(m, package_dir))


def _templates(module: str, package_dir: Path) -> list[Path]:
    """The templates ``module`` names, as string constants, in its folder's ``templates/``."""
    path = module_file(module, package_dir)
    if path is None or not (folder := path.parent / TEMPLATES).is_dir():
        return []
    names = {
        node.value
        for node in ast.walk(_parsed(path))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    return sorted(
        folder / name
        for name in names
        if name.endswith(".j2") and "/" not in name and (folder / name).is_file()
    )


def code_files(entry_points: Iterable[str | Path], package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The files whose content decides what the entry points compute."""
    entry_points = list(entry_points)
    package = package_dir.name
    scripts = [Path(e) for e in map(str, entry_points) if not e.startswith(f"{package}.")]
    modules = [package, *package_modules(entry_points, package_dir)]
    files = dict.fromkeys(module_file(m, package_dir) for m in modules)
    files.update(dict.fromkeys(t for m in modules for t in _templates(m, package_dir)))
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
