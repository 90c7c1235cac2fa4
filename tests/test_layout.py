"""The package's layers: engine (no paper) <- paper (no runner, no study) <- reproduce; method traits."""

from __future__ import annotations

import ast
from pathlib import Path

from coftad_lib.methods.registry import METHODS
from coftad_lib.methods.traits import TRAITS, method_traits, methods_with

PKG = Path(__file__).resolve().parents[1] / "coftad_lib"
#: layer -> packages it must not import (lazy imports included)
FORBIDDEN = {
    "engine": ("coftad_lib.paper", "coftad_lib.reproduce", "coftad_lib.experiments"),
    "paper": ("coftad_lib.reproduce", "coftad_lib.experiments"),
    "methods": ("coftad_lib.engine", "coftad_lib.paper", "coftad_lib.reproduce", "coftad_lib.experiments"),
    "datasets": ("coftad_lib.engine", "coftad_lib.paper", "coftad_lib.reproduce", "coftad_lib.experiments"),
}


def _imports(path: Path) -> set[str]:
    """Absolute module names ``path`` imports (relative imports resolved)."""
    pkg = ["coftad_lib", *path.relative_to(PKG).parent.parts]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = pkg[:len(pkg) - node.level + 1] if node.level else []
            mod = ".".join([*base, node.module] if node.module else base)
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def test_nothing_below_imports_from_above():
    bad = []
    for layer, banned in FORBIDDEN.items():
        for path in sorted((PKG / layer).rglob("*.py")):
            bad += [f"{path.relative_to(PKG)} imports {m}" for m in _imports(path) if m.startswith(banned)]
    assert not bad, bad


def test_every_registered_method_has_traits():
    assert set(TRAITS) == set(METHODS)
    assert methods_with(gaussian=True) == {"coftad", "coftad_np", "pretrained", "random"}
    assert methods_with(packable=True) == {"coftad", "coftad_np"}
    assert methods_with(trains=False) == {"pretrained", "random", "patchcore"}
    assert method_traits("not_registered").family == "default"
