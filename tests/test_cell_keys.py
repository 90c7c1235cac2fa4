"""Cell keys from the code a cell runs (engine/code_closure.py) and the data it reads (engine/data_identity.py)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from coftad_lib.engine import code_closure as cc
from coftad_lib.engine.cells import Cell, code_roots
from coftad_lib.engine.data_identity import ABSENT, IDS_FILE, DataIds, folder_digest


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


#: a tiny project laid out like coftad_lib: two methods on a shared backbone, a loader, the engine's compute step
PROJECT = {
    "coftad_lib/__init__.py": "",
    "coftad_lib/backbones.py": "def net():\n    return 1\n",
    "coftad_lib/methods/__init__.py": "",
    "coftad_lib/methods/cflow.py": "from ..backbones import net\n\ndef fit():\n    return net() + 1\n",
    "coftad_lib/coftad.py": '"""COFT-AD."""\nfrom .backbones import net\n\ndef fit():\n    return net() * 2\n',
    "coftad_lib/datasets/__init__.py": "",
    "coftad_lib/datasets/mvtec.py": "def load():\n    return 'bottle'\n",
    "coftad_lib/engine/__init__.py": "",
    "coftad_lib/engine/compute.py": "def cap(task):\n    from ..datasets import protocols\n    return task[:10]\n",
    "coftad_lib/datasets/protocols.py": "def subsample(t):\n    return t\n",
}
COFTAD = ("coftad_lib.coftad", "coftad_lib.datasets.mvtec", "coftad_lib.engine.compute")
CFLOW = ("coftad_lib.methods.cflow", "coftad_lib.datasets.mvtec", "coftad_lib.engine.compute")


def _digests(root: Path) -> tuple[str, str]:
    cc.module_digest.cache_clear()
    cc.closure_digest.cache_clear()
    return cc.closure_digest(COFTAD, root), cc.closure_digest(CFLOW, root)


def test_closure_follows_imports_anywhere_and_not_other_methods(tmp_path):
    root = _tree(tmp_path, PROJECT)
    assert cc.closure(COFTAD, root) == {"coftad_lib.coftad", "coftad_lib.backbones", "coftad_lib.datasets.mvtec",
                                        "coftad_lib.engine.compute", "coftad_lib.datasets.protocols",
                                        "coftad_lib.datasets"}  # ``from ..datasets import protocols`` runs it
    assert "coftad_lib.methods.cflow" not in cc.closure(COFTAD, root)


def test_an_edit_to_one_competitor_moves_only_its_cells(tmp_path):
    root = _tree(tmp_path, PROJECT)
    coftad, cflow = _digests(root)
    _tree(root, {"coftad_lib/methods/cflow.py": "from ..backbones import net\n\ndef fit():\n    return net() + 2\n"})
    assert _digests(root) == (coftad, _digests(root)[1]) and _digests(root)[1] != cflow
    _tree(root, {"coftad_lib/methods/patchcore.py": "def fit():\n    return 0\n"})  # a new, unrelated method
    assert _digests(root)[0] == coftad


def test_a_pure_move_or_a_reworded_docstring_moves_no_key(tmp_path):
    root = _tree(tmp_path, PROJECT)
    before = _digests(root)
    (root / "coftad_lib/backbones.py").unlink()
    _tree(root, {"coftad_lib/core/__init__.py": "", "coftad_lib/core/backbones.py": "def net():\n    return 1\n",
                 "coftad_lib/methods/cflow.py": "from ..core.backbones import net\n\ndef fit():\n    return net() + 1\n",
                 "coftad_lib/coftad.py": '"""COFT-AD, reworded."""\nfrom .core.backbones import net  # moved\n\n'
                                         "def fit():\n    return net() * 2\n"})
    assert _digests(root) == before


def test_an_edit_to_the_engines_test_cap_or_a_shared_module_moves_all(tmp_path):
    root = _tree(tmp_path, PROJECT)
    coftad, cflow = _digests(root)
    _tree(root, {"coftad_lib/datasets/protocols.py": "def subsample(t):\n    return t[:5]\n"})
    new = _digests(root)
    assert new[0] != coftad and new[1] != cflow


def test_a_name_table_is_neither_hashed_nor_followed(tmp_path):
    root = _tree(tmp_path, {**PROJECT, "coftad_lib/datasets/__init__.py": "__key_table__ = True\nDATASETS = {'mvtec': 'mvtec'}\n"})
    before = _digests(root)
    _tree(root, {"coftad_lib/datasets/__init__.py": "__key_table__ = True\nDATASETS = {'mvtec': 'mvtec', 'aitex': 'aitex'}\n"})
    assert _digests(root) == before and "coftad_lib.datasets" not in cc.closure(COFTAD, root)


def test_real_roots_keep_competitors_apart():
    coftad = cc.closure(code_roots("coftad", "mvtec"))
    assert "coftad_lib.methods.cflow" not in coftad and "coftad_lib.engine.compute" in coftad
    assert "coftad_lib.methods.registry" not in coftad and "coftad_lib.datasets" not in coftad
    assert "coftad_lib.coftad" in coftad and "coftad_lib.datasets.mvtec" in coftad
    assert Cell(table="IV", dataset="mvtec", task="bottle", shots=5, method="coftad").code() != \
        Cell(table="IV", dataset="mvtec", task="bottle", shots=5, method="cflow").code()


def test_key_text_drops_project_import_paths_only():
    text = cc.key_text(b"from ..a.b import (x,\n  y as z)  # c\nfrom numpy import linalg\nimport torch\n").decode()
    assert text.splitlines() == ["from _ import x, y as z", "from numpy import linalg", "import torch"]


# ------------------------------------------------------------------ data ids
def test_data_id_changes_with_content_and_is_remembered_without_the_data(tmp_path):
    data = _tree(tmp_path / "data", {"magnetic_tile/MT_Free/Imgs/a.jpg": "x", "magnetic_tile/MT_Free/Imgs/b.jpg": "y"})
    cache = tmp_path / "cache"
    DataIds(data, cache)("magnetic_tile", {})
    assert not cache.exists()  # nothing written where no cache is yet (a --plan)
    cache.mkdir()
    first = DataIds(data, cache)("magnetic_tile", {})
    assert first.startswith("sha256:") and json.loads((cache / IDS_FILE).read_text()) == {"magnetic_tile:magnetic_tile": first}
    (data / "magnetic_tile/MT_Free/Imgs/b.jpg").write_text("z")  # same name and size, other bytes
    folder_digest.cache_clear()
    second = DataIds(data, cache)("magnetic_tile", {})
    assert second != first
    gone = tmp_path / "nowhere"
    assert DataIds(gone, cache)("magnetic_tile", {}) == second  # the cache remembers it
    assert DataIds(gone, None)("magnetic_tile", {}) == ABSENT


def test_mvtec_ids_are_per_category(tmp_path):
    data = _tree(tmp_path, {"mvtec_ad/bottle/train/good/000.png": "a", "mvtec_ad/cable/train/good/000.png": "b"})
    ids = DataIds(data)
    bottle = ids("mvtec", {"task": "bottle"})
    _tree(tmp_path, {"mvtec_ad/transistor/train/good/000.png": "c"})
    folder_digest.cache_clear()
    assert DataIds(data)("mvtec", {"task": "bottle"}) == bottle != ids("mvtec", {"task": "cable"})


@pytest.mark.realdata
def test_committed_records_name_the_data_here_where_it_is_unchanged():
    """Records of data that did not change since they were computed carry the id of the data here."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    cells = Path(__file__).resolve().parents[1] / "results" / "cache" / "cells"
    if not (shared / "flowers17").is_dir() or not cells.is_dir():
        pytest.skip("../shared/data or the committed cache absent")
    ids = DataIds(shared)
    seen = {}
    for path in sorted(cells.glob("*.json")):
        rec = json.loads(path.read_text())
        if rec.get("dataset") == "flowers17" and rec.get("data"):
            seen[rec["data"]] = seen.get(rec["data"], 0) + 1
    assert seen, "no flowers17 record names its data"
    assert set(seen) == {ids("flowers17", {"task": "Daffodil/Tulip"})}
