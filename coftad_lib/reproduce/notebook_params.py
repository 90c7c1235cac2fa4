"""Strict notebook parameters: names injected by the runner must be assigned in the ``parameters`` cell.

papermill only warns about a parameter the notebook does not declare, and the notebook then
silently runs with its default; we refuse instead, naming the notebook and the parameter.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import COFTADInputError


class UnknownParameterError(COFTADInputError):
    """A parameter given to a notebook is not assigned in its ``parameters`` cell."""


def parameters_source(nb_path: str | os.PathLike) -> str:
    """Source of the code cell tagged ``parameters`` in notebook ``nb_path``.

    Raises:
        COFTADInputError: unreadable notebook, or none / several cells tagged ``parameters``.
    """
    path = Path(nb_path)
    # Plain JSON (nbformat 4) rather than nbformat: planning and --cells-only then need no Jupyter
    # package, so they run on a machine that has only the method's (a lent GPU, a cluster node).
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise COFTADInputError(f"{path}: cannot read notebook ({exc})") from exc
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise COFTADInputError(f"{path}: not a Jupyter notebook (expected a JSON object with a 'cells' list)")
    cells = [c for c in nb["cells"] if isinstance(c, dict) and c.get("cell_type") == "code"
             and "parameters" in (c.get("metadata") or {}).get("tags", [])]
    if len(cells) != 1:
        raise COFTADInputError(f"{path}: expected exactly one code cell tagged 'parameters', found {len(cells)}")
    source = cells[0].get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _targets(node: ast.expr) -> Iterable[str]:
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, (ast.Tuple, ast.List)):
        for elt in node.elts:
            yield from _targets(elt)
    elif isinstance(node, ast.Starred):
        yield from _targets(node.value)


def assigned_names(source: str, where: str = "parameters cell") -> set[str]:
    """Names bound at top level of ``source`` by ``=``, annotated, augmented or tuple assignment.

    IPython magics and shell lines (``%``, ``!``) are skipped before parsing.
    """
    lines = ["" if ln.lstrip().startswith(("%", "!")) else ln for ln in source.splitlines()]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError as exc:
        raise COFTADInputError(f"{where}: not valid Python ({exc.msg}, line {exc.lineno})") from exc
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            for tgt in stmt.targets:
                names.update(_targets(tgt))
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            names.update(_targets(stmt.target))
    return names


def parameter_names(nb_path: str | os.PathLike) -> set[str]:
    """Names assigned in the ``parameters`` cell of notebook ``nb_path``."""
    return assigned_names(parameters_source(nb_path), where=f"{nb_path}: parameters cell")


def check_parameters(nb_path: str | os.PathLike, params: Iterable[str]) -> None:
    """Raise :class:`UnknownParameterError` if a name in ``params`` is not assigned in the parameters cell."""
    known = parameter_names(nb_path)
    unknown = sorted(set(params) - known)
    if unknown:
        raise UnknownParameterError(
            f"{Path(nb_path).name}: parameter(s) {', '.join(unknown)} not assigned in its 'parameters' cell "
            f"(it assigns: {', '.join(sorted(known)) or 'nothing'}); papermill would ignore them"
        )
