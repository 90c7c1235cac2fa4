"""The code a cell runs, by content: the import closure of its method, its loader and the engine's compute step.

A cell's key (:meth:`coftad_lib.engine.cells.Cell.key`) holds :func:`closure_digest` of the modules
its result depends on, found from a few roots by following their imports (every ``import`` and
``from ... import`` of the project's own packages, at module level or inside a function, since a
lazy import runs as surely as an eager one). So:

- an edit to one competitor (``methods/cflow.py``) moves only the cells of the methods whose
  closure holds it; COFT-AD's keys stay;
- a new module or sub-package is covered as soon as something in a closure imports it, with no
  list to keep;
- a pure move (a module renamed, its importers' import lines changed to the new path) moves no
  key: each module is hashed by its content, without docstrings, comments, blank lines
  (:func:`~coftad_lib.engine.fingerprint.code_text`) and without the module paths of its own
  project imports (only the imported names count), and the closure's digest does not depend on paths.

Package ``__init__`` files count when something imports from the package itself
(``from ..methods import make_detector``); a package's ``__init__`` that merely runs because a
submodule was imported does not (they only re-export names).

A *name table* (the method registry, the dataset registry) maps every method or dataset to its
module: adding a method edits it, and hashing it would move every key. Such a module says so with a
top-level ``__key_table__ = True``; it is neither hashed nor followed, and each cell's key holds its
own entry of the table instead (:meth:`coftad_lib.engine.cells.Cell.code`).
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

from .fingerprint import code_text

#: the folder holding the project's top-level packages (``coftad_lib``, ``data_prep``)
SOURCE_ROOT = Path(__file__).resolve().parents[2]
#: top-level packages whose modules enter a closure; imports of anything else (torch, numpy...) are
#: versions, recorded in each record, not code of ours
PACKAGES: tuple[str, ...] = ("coftad_lib", "data_prep")


def module_file(name: str, root: Path = SOURCE_ROOT) -> Path | None:
    """The source file of module ``name`` (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``); None if not ours."""
    if name.split(".")[0] not in PACKAGES:
        return None
    path = root.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    """The absolute module a ``from`` import names, inside module ``name``."""
    if not node.level:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(name: str, root: Path = SOURCE_ROOT) -> set[str]:
    """The project modules that module ``name`` imports anywhere in its text."""
    path = module_file(name, root)
    if path is None:
        return set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if module_file(a.name, root))
        elif isinstance(node, ast.ImportFrom):
            mod = _absolute(node, name, path.name == "__init__.py")
            if module_file(mod, root):
                out.add(mod)
            # ``from pkg import sub`` imports the submodule ``pkg.sub``
            out.update(f"{mod}.{a.name}" for a in node.names if module_file(f"{mod}.{a.name}", root))
    return out


@functools.lru_cache(maxsize=4096)
def is_key_table(name: str, root: Path = SOURCE_ROOT) -> bool:
    """Whether module ``name`` declares itself a name table (a top-level ``__key_table__ = True``)."""
    path = module_file(name, root)
    if path is None:
        return False
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__key_table__"
                                                for t in node.targets):
            return True
    return False


def closure(roots: Iterable[str], root: Path = SOURCE_ROOT) -> frozenset[str]:
    """Every project module reachable from ``roots`` by imports (roots included, unknown names and
    name tables (:func:`is_key_table`) dropped)."""
    seen: set[str] = set()
    todo = [r for r in roots if module_file(r, root)]
    while todo:
        mod = todo.pop()
        if mod not in seen and not is_key_table(mod, root):
            seen.add(mod)
            todo.extend(imported_modules(mod, root) - seen)
    return frozenset(seen)


def _is_project(node: ast.ImportFrom) -> bool:
    return bool(node.level) or (node.module or "").split(".")[0] in PACKAGES


def key_text(source: bytes) -> bytes:
    """What of a module enters a key: :func:`code_text` of the source with the module paths of its
    project imports dropped (``from ..x.y import a as b`` -> ``from _ import a as b``).

    Replaced in the text at the statements' positions (not through ``ast.unparse``, whose output
    changes between Python versions), so every machine computes the same keys.
    """
    try:
        text = source.decode("utf-8")
        tree = ast.parse(text)
    except (SyntaxError, UnicodeDecodeError):
        return code_text(source)
    lines = text.splitlines()
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and _is_project(n)]
    for node in sorted(nodes, key=lambda n: (n.lineno, n.col_offset), reverse=True):
        names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in node.names)
        first, last = lines[node.lineno - 1], lines[node.end_lineno - 1]
        head = first.encode()[: node.col_offset].decode()
        tail = last.encode()[node.end_col_offset:].decode()
        lines[node.lineno - 1: node.end_lineno] = [f"{head}from _ import {names}{tail}"]
    return code_text("\n".join(lines).encode())


@functools.lru_cache(maxsize=4096)
def module_digest(name: str, root: Path = SOURCE_ROOT) -> str:
    """SHA-256 of :func:`key_text` of module ``name`` (read once per process)."""
    path = module_file(name, root)
    return hashlib.sha256(key_text(path.read_bytes()) if path else b"").hexdigest()


@functools.lru_cache(maxsize=256)
def closure_digest(roots: tuple[str, ...], root: Path = SOURCE_ROOT) -> str:
    """SHA-256 (first 16 hex digits) over the sorted content digests of ``closure(roots)``.

    Computed once per process and set of roots: a long run keeps its keys while files are edited.
    """
    digests = sorted(module_digest(m, root) for m in closure(roots, root))
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]
