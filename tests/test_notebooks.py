"""The notebook series: clean committed notebooks, strict parameter cells, and a full smoke run."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REQUIRED = {"PROFILE", "SEEDS", "DATA_ROOT", "PREP_DIR", "OUT_DIR", "NOTEBOOK", "OVERRIDES"}


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_series_covers_every_table_and_figure():
    names = " ".join(p.name for p in NOTEBOOKS)
    for table in ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"):
        assert re.search(rf"_table_{table}_", names), f"no notebook for Table {table}"
    for fig in ("fig5", "fig6", "fig7"):
        assert f"_{fig}_" in names, f"no notebook for {fig}"
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers)), "two notebooks share a number"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_has_no_outputs(path):
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name}: a code cell has outputs; strip them"
            assert cell.get("execution_count") is None, f"{path.name}: a code cell has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_is_flat_parameters(path):
    first = _cells(path)[0]
    assert first["cell_type"] == "code" and "parameters" in first.get("metadata", {}).get("tags", []), (
        f"{path.name}: the first cell must be a code cell tagged 'parameters'"
    )
    tree = ast.parse("".join(first["source"]))
    names = set()
    for node in tree.body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), (
            f"{path.name}: parameters cell line {node.lineno} is not a plain assignment"
        )
        ast.literal_eval(node.value)  # flat literals only
        names.add(node.targets[0].id)
    assert REQUIRED <= names, f"{path.name}: parameters cell lacks {sorted(REQUIRED - names)}"
    assert _params(path)["NOTEBOOK"] == path.stem, f"{path.name}: NOTEBOOK must name this notebook"


#: run-context calls that run cells: the context must be built with EXECUTOR and EXECUTOR_OPTIONS
CONTEXT_RUNNERS = ("run.table(", "run.figure_records(", "run.run_cells(")
#: calls that run cells; a notebook making one must hand them its EXECUTOR parameter
CELL_RUNNERS = ("run_cells(", "run_table(", "run_figure_cells(", "run_scorer_table(", "run_n_aug_table(",
                "run_imbalanced(", "run_rescored(")


def _params(path: Path) -> dict:
    tree = ast.parse("".join(_cells(path)[0]["source"]))
    return {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cell_running_notebooks_take_an_executor(path):
    body = "\n".join("".join(c["source"]) for c in _cells(path)[1:] if c["cell_type"] == "code")
    if any(c in body for c in CONTEXT_RUNNERS):
        assert _params(path).get("EXECUTOR") == "local" and _params(path).get("EXECUTOR_OPTIONS") == {}, path.name
        assert "OVERRIDES, EXECUTOR, EXECUTOR_OPTIONS)" in body, f"{path.name}: build run_context with the executor"
    calls = [c for c in CELL_RUNNERS if c in body]
    if not calls:
        return
    assert _params(path).get("EXECUTOR") == "local", f"{path.name} runs cells: declare EXECUTOR = \"local\""
    tree = ast.parse("\n".join(line for line in body.splitlines() if not line.lstrip().startswith(("%", "!"))))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and f"{getattr(node.func, 'attr', getattr(node.func, 'id', ''))}(" in calls:
            kw = {k.arg: k.value for k in node.keywords}
            assert isinstance(kw.get("executor"), ast.Name) and kw["executor"].id == "EXECUTOR", (
                f"{path.name} line {node.lineno}: pass executor=EXECUTOR"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_default_paths_stay_inside_the_repo(path):
    """A user's clone has no ../../shared; DATA_ROOT defaults to the repo's data/ (the runner finds others)."""
    params = _params(path)
    for name in ("DATA_ROOT", "PREP_DIR", "OUT_DIR"):
        value = str(params[name])
        assert not value.startswith("/") and not value.startswith("../.."), f"{path.name}: {name} = {value!r}"
    assert params["DATA_ROOT"] == "../data", f"{path.name}: DATA_ROOT should default to the repo's data/ ('../data')"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_title_names_what_it_regenerates(path):
    md = "".join("".join(c["source"]) for c in _cells(path)[:4] if c["cell_type"] == "markdown")
    title = next((line for line in md.splitlines() if line.startswith("# ")), "")
    assert title, f"{path.name}: no '# ' title in the first cells"
    m = re.match(r"\d\d_(table|fig)_?([IVX]+|\d)", path.name)
    if m:
        word = "Table" if m.group(1) == "table" else "Fig"
        assert word in title and m.group(2) in title, f"{path.name}: title {title!r} does not name {word} {m.group(2)}"


@pytest.mark.slow
@pytest.mark.timeout(45 * 60)  # the suite-wide 15 min limit is for single tests, not the series
def test_whole_series_runs_in_smoke_profile(tmp_path):
    """CI runs every notebook headlessly in the smoke profile into a scratch results folder."""
    out = tmp_path / "results"
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, "-m", "coftad_lib.reproduce", "--profile", "smoke", "--out", str(out),
         "--prep-dir", str(tmp_path / "prepared")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=40 * 60,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    tables = {p.name for p in (out / "tables").glob("table_*.md")}
    for table in ("I", "II", "IV", "V", "VI", "VII", "VIII", "IX", "X"):
        assert f"table_{table}.md" in tables, f"table {table} was not written"
    figures = {p.stem for p in (out / "figures").glob("*.png")}
    assert figures and all((out / "figures" / f"{f}.pdf").is_file() for f in figures)
    assert (out / "REPORT.md").is_file()
