"""Schema-1 code fingerprint (one hash of every result-deciding file), and :func:`code_text`.

Cell keys no longer hold this fingerprint: since record schema 2 each key holds the digest of the
code its own cell runs (:mod:`coftad_lib.engine.code_closure`). The fingerprint stays for reading
older caches: :mod:`coftad_lib.engine.rekey` and :mod:`coftad_lib.engine.migrate` recognise a
schema-1 record by it. What follows describes how it was computed.

A cell's cache key (:meth:`coftad_lib.engine.cells.Cell.key`) includes this fingerprint, so a
change to a method, a loss, a backbone or a dataset loader invalidates the cached records it
produced without anyone bumping the library version. Reporting code (tables, figures, plots, the
report, the runner) is left out: changing how a result is shown must not recompute it. For the
same reason each file is hashed without its docstrings, comments and blank lines
(:func:`code_text`): rewording documentation keeps every cached record, while a change to any
statement, default or constant recomputes the cells it may change.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import tokenize
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]

#: top-level modules of coftad_lib that only show, name or explain results; every other top-level
#: module (the method, its training, backbones, images, density, metrics, and any new module) is
#: taken to decide results, so a new module can only cause a recomputation, never a stale record
#: (the paper's tables, report and values live in :mod:`coftad_lib.paper`, the study in
#: :mod:`coftad_lib.experiments`, the engine and runner in their packages: none of those is hashed)
REPORTING_MODULES: frozenset[str] = frozenset({
    "__init__.py", "__main__.py", "atomic_files.py", "errors.py", "figures.py", "kernel_quiet.py",
    "notebook_publish.py", "plots.py", "unit_records.py", "user_figures.py", "user_report.py", "versions.py",
})
#: sub-packages whose every ``.py`` decides results: the competitors and scorers, the loaders and protocols
RESULT_PACKAGES: tuple[str, ...] = ("methods", "datasets")
#: files inside those packages that only describe methods (their traits reach a result only through
#: a cell's kwargs, which its key holds) or only fetch archives (the loaders read what they unpack,
#: and a loader's own change is hashed): left out, so describing a method or changing a download
#: mirror never recomputes a cell
DESCRIPTIVE_FILES: frozenset[str] = frozenset({
    "methods/traits.py", "datasets/download.py", "datasets/ensure.py", "datasets/fetch.py", "datasets/sources.py",
})


def result_sources(package: Path = _PACKAGE) -> list[Path]:
    """The source files hashed by :func:`code_fingerprint`, sorted by their path inside ``package``."""
    files = [p for p in package.glob("*.py") if p.name not in REPORTING_MODULES]
    for sub in RESULT_PACKAGES:
        files += [p for p in sorted((package / sub).rglob("*.py"))
                  if p.relative_to(package).as_posix() not in DESCRIPTIVE_FILES]
    return sorted(files, key=lambda p: p.relative_to(package).as_posix())


def _docstrings(tree: ast.AST) -> list[ast.Constant]:
    """The docstring nodes of a module and of its classes and functions."""
    out = []
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            out.append(body[0].value)
    return out


def code_text(source: bytes) -> bytes:
    """What of a source file is hashed: its text without docstrings, comments and blank lines.

    Docstrings are found with :mod:`ast`, comments with :mod:`tokenize`; only their positions are
    used, so the result is the same on every Python version (an ``ast.dump`` is not: 3.12 added
    fields), and a driver and its workers, or a GPU machine and a laptop, agree on cell keys.
    A file that does not parse is hashed as its bytes (importing it fails anyway).
    """
    try:
        text = source.decode("utf-8")
        tree = ast.parse(text)
        comments = [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.COMMENT]
    except (SyntaxError, UnicodeDecodeError, tokenize.TokenError):
        return source
    lines = text.splitlines()

    def col(line: int, byte_offset: int) -> int:  # ast counts UTF-8 bytes, tokenize characters
        return len(lines[line - 1].encode()[:byte_offset].decode())

    spans = [((d.lineno, col(d.lineno, d.col_offset)), (d.end_lineno, col(d.end_lineno, d.end_col_offset)))
             for d in _docstrings(tree)] + [(t.start, t.end) for t in comments]
    for (l0, c0), (l1, c1) in sorted(spans, reverse=True):  # from the end, so earlier positions hold
        lines[l0 - 1:l1] = [lines[l0 - 1][:c0] + lines[l1 - 1][c1:]]
    return "\n".join(line.rstrip() for line in lines if line.strip()).encode()


@functools.lru_cache(maxsize=4)
def code_fingerprint(package: Path = _PACKAGE) -> str:
    """SHA-256 (first 16 hex digits) over the relative path and :func:`code_text` of every
    :func:`result_sources` file.

    Computed once per process: a long run keeps one fingerprint even if files are edited meanwhile.
    """
    h = hashlib.sha256()
    for path in result_sources(package):
        h.update(path.relative_to(package).as_posix().encode() + b"\0")
        h.update(code_text(path.read_bytes()) + b"\0")
    return h.hexdigest()[:16]
