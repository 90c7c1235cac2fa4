"""``--cells-only``: a run's cells computed into the cache with no notebook and no Jupyter package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from coftad_lib.engine.cells import cell_path
from coftad_lib.engine.data_identity import DataIds
from coftad_lib.paper.profiles import derive, get_profile
from coftad_lib.reproduce import __main__ as cli
from coftad_lib.reproduce import plan as plan_mod

REPO = Path(__file__).resolve().parents[1]
#: a tiny derived smoke profile, so the real fits take seconds
TINY = ["--param", "image_size=32", "--param", "steps=1", "--param", "batch_size=4"]
PROFILE = "smoke+batch_size=4+image_size=32+steps=1"  # the label of that run's records
TINY_PROFILE = derive("smoke", {"image_size": 32, "steps": 1, "batch_size": 4})
#: Jupyter's packages, absent on a lent GPU machine: --cells-only must not import them
BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"nbformat", "papermill", "nbclient", "jupyter_client", "ipykernel", "openTSNE"}:
            raise ImportError(f"blocked for the test: {name}")
sys.meta_path.insert(0, Block())
from coftad_lib.reproduce.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_cells_only_fills_the_cache_without_jupyter(flowers_root, tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    data.mkdir()
    (data / "flowers17").symlink_to(flowers_root)  # the loader reads DATA_ROOT/flowers17
    args = ["--profile", "smoke", "--only", "13", "--cells-only", "--data-root", str(data),
            "--out", str(out), "--notebooks", str(REPO / "notebooks"), *TINY]
    proc = subprocess.run([sys.executable, "-c", BLOCKER, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the run's cells name their data (the same ids the run computed from DATA_ROOT)
    tiny = {**TINY_PROFILE, "data_ids": DataIds([str(data), str(REPO / "prepared_data")], out / "cache")}
    cells = plan_mod.notebook_cells(next((REPO / "notebooks").glob("13_*.ipynb")), tiny, [0])
    assert cells and f"{len(cells)} cells into" in proc.stdout and f"{len(cells)} ok" in proc.stdout
    assert not (out / "executed").exists()  # no notebook ran
    for cell in cells:  # what the notebook will look up is there
        rec = json.loads(cell_path(out / "cache", cell.key()).read_text())
        assert rec["status"] == "ok" and rec["profile"] == PROFILE and "device" in rec["versions"]
    # Table X's per-column scorings are cached too: a cache-only render finds every column
    from coftad_lib.paper.specs import get_spec

    df = get_spec("X").run(tiny, [0], data, out / "cache", executor="cache")
    assert len(df) and set(df["status"]) == {"ok"}
    # a second call finds every cell cached and computes nothing
    proc2 = subprocess.run([sys.executable, "-c", BLOCKER, *args], capture_output=True, text=True, cwd=REPO,
                           timeout=600)
    assert proc2.returncode == 0 and f"{len(cells)} ok" in proc2.stdout


def test_cells_only_reports_missing_data_and_strict_exits_3(tmp_path, capsys):
    empty = tmp_path / "no_data"
    empty.mkdir()
    args = ["--profile", "smoke", "--only", "13", "--cells-only", "--data-root", str(empty),
            "--out", str(tmp_path / "out"), *TINY]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "missing" in text and "flowers17" in text
    assert cli.main([*args, "--strict"]) == 3
    assert not list((tmp_path / "out" / "cache").rglob("*.json"))  # missing cells are never cached


def test_cells_only_refuses_notebooks_without_cells(tmp_path, capsys):
    code = cli.main(["--profile", "smoke", "--only", "00", "--cells-only", "--out", str(tmp_path)])
    assert code == 2 and "have no cells" in capsys.readouterr().err


def test_a_cell_two_notebooks_share_is_computed_with_the_first():
    from coftad_lib.reproduce.prefill import cells_by_notebook

    nbs = [next((REPO / "notebooks").glob(f"{n}_*.ipynb")) for n in ("09", "16")]
    (nb9, cells9), (nb16, cells16) = cells_by_notebook(nbs, get_profile("smoke"), [0])
    all16 = plan_mod.notebook_cells(nb16, get_profile("smoke"), [0])
    assert len(all16) == 4 and cells16 == []  # Fig. 7's four models are Table VI rows
    assert len(cells9) == len(plan_mod.notebook_cells(nb9, get_profile("smoke"), [0]))


def test_recompute_unpinned_sets_aside_only_records_from_before_the_pin(tmp_path):
    from coftad_lib.engine.cells import Cell
    from coftad_lib.reproduce.prefill import SUPERSEDED, set_aside_unpinned

    old, new = (Cell(table="I", dataset="flowers17", task=t, shots=5, method="coftad") for t in ("A/B", "B/A"))
    for cell, kernels in ((old, None), (new, "avx2")):
        path = cell_path(tmp_path, cell.key())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"key": cell.key(), "status": "ok", **({"kernels": kernels} if kernels else {})}))
    assert set_aside_unpinned([old, new], tmp_path) == 1
    assert not cell_path(tmp_path, old.key()).exists() and cell_path(tmp_path, new.key()).exists()
    assert (tmp_path / SUPERSEDED / f"{old.key()}.json").is_file()  # kept, not deleted
