"""The notebook series: clean committed notebooks, strict parameter cells, the lesson shape of 04-18
(title, parameters, the context built from them, data, one fit, the table, what to look at, the
status), and a full smoke run."""

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
#: the notebooks that teach: the paper's tables and figures (04-16), your own data (17), the study (18)
LESSONS = [p for p in NOTEBOOKS if 4 <= int(p.name[:2]) <= 18]
TABLES_AND_FIGURES = [p for p in LESSONS if int(p.name[:2]) <= 16]
REQUIRED = {"PROFILE", "SEEDS", "DATA_ROOT", "PREP_DIR", "OUT_DIR", "NOTEBOOK", "OVERRIDES"}


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def _code(path: Path) -> list[str]:
    return [_source(c) for c in _cells(path) if c["cell_type"] == "code"]


def _params(path: Path) -> dict:
    cell = next(c for c in _cells(path) if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse(_source(cell))
    return {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)}


def _python(source: str) -> str:
    """A cell's source without IPython magics and shell lines (``%``, ``!``)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


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
def test_parameters_cell_is_the_first_code_cell_of_flat_literals(path):
    cells = _cells(path)
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    first_code = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    assert tagged == [first_code], f"{path.name}: exactly one cell tagged 'parameters', the first code cell"
    names = set()
    for node in ast.parse(_source(cells[first_code])).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), (
            f"{path.name}: parameters cell line {node.lineno} is not a plain assignment"
        )
        ast.literal_eval(node.value)  # flat literals only: a reader changes them, papermill overrides them
        names.add(node.targets[0].id)
    assert REQUIRED <= names, f"{path.name}: parameters cell lacks {sorted(REQUIRED - names)}"
    assert _params(path)["NOTEBOOK"] == path.stem, f"{path.name}: NOTEBOOK must name this notebook"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_opens_with_its_title_and_question_then_the_parameters(path):
    first, second = _cells(path)[:2]
    assert first["cell_type"] == "markdown" and _source(first).startswith("# "), f"{path.name}: title first"
    assert "question" in _source(first).lower(), f"{path.name}: the title cell says the question it answers"
    assert "parameters" in second.get("metadata", {}).get("tags", []), f"{path.name}: parameters after the title"


#: run-context calls that run cells: a notebook making one declares EXECUTOR, which reaches the context
CONTEXT_RUNNERS = ("run.table(", "run.figure_records(", "run.run_cells(", "run.example(")
#: calls that run cells outside the context; a notebook making one must hand them its EXECUTOR parameter
CELL_RUNNERS = ("run_cells(", "run_table(", "run_figure_cells(", "run_scorer_table(", "run_n_aug_table(",
                "run_imbalanced(", "run_rescored(")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cell_running_notebooks_take_an_executor(path):
    body = "\n".join(_code(path)[1:])
    if any(c in body for c in CONTEXT_RUNNERS):
        assert _params(path).get("EXECUTOR") == "local" and _params(path).get("EXECUTOR_OPTIONS") == {}, path.name
    calls = [c for c in CELL_RUNNERS if c in body]
    if not calls:
        return
    assert _params(path).get("EXECUTOR") == "local", f"{path.name} runs cells: declare EXECUTOR = \"local\""
    for node in ast.walk(ast.parse(_python(body))):
        if isinstance(node, ast.Call) and f"{getattr(node.func, 'attr', getattr(node.func, 'id', ''))}(" in calls:
            kw = {k.arg: k.value for k in node.keywords}
            assert isinstance(kw.get("executor"), ast.Name) and kw["executor"].id == "EXECUTOR", (
                f"{path.name} line {node.lineno}: pass executor=EXECUTOR"
            )


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_context_is_built_from_the_parameters(path, tmp_path):
    """Run the parameters cell, change every parameter as papermill would, run the next code cell:
    ``run`` must be the context of the changed parameters (whatever the call looks like)."""
    from coftad_lib.paper.context import RunContext

    code = _code(path)
    ns: dict = {"display": lambda *a, **k: None}
    exec(_python(code[0]), ns)  # noqa: S102  (the repository's own notebook)
    injected = {"PROFILE": "paper", "SEEDS": [3, 4], "DATA_ROOT": str(tmp_path / "d"), "PREP_DIR": str(tmp_path / "p"),
                "OUT_DIR": str(tmp_path / "o"), "NOTEBOOK": "injected", "OVERRIDES": {"steps": 2}}
    if "EXECUTOR" in ns:
        injected.update(EXECUTOR="cache", EXECUTOR_OPTIONS={"pack": 2})
    ns.update(injected)
    exec(_python(code[1]), ns)  # noqa: S102
    run = ns.get("run")
    assert isinstance(run, RunContext), f"{path.name}: the cell after the parameters builds `run`"
    assert (run.profile, run.seeds, run.data_root, run.prep_dir, run.out_dir, run.notebook) == (
        "paper", (3, 4), injected["DATA_ROOT"], injected["PREP_DIR"], injected["OUT_DIR"], "injected")
    assert dict(run.overrides) == {"steps": 2} and run.settings["steps"] == 2
    if "EXECUTOR" in injected:
        assert run.executor == "cache" and dict(run.executor_options) == {"pack": 2}


#: bookkeeping the run context does for a notebook (figures, tables, status)
BOOKKEEPING = ("record_status(", "save_figure(", ".savefig(", "FIGURES", "PROFILE ==", "PROFILE !=",
               'prof["', "run.settings[")


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_the_context_keeps_the_books(path):
    code = _code(path)
    for snippet in BOOKKEEPING:
        assert not any(snippet in c for c in code[1:]), f"{path.name}: {snippet!r} is the run context's job"
    assert _python(code[-1]).strip().startswith("run.finish("), f"{path.name}: the last cell is run.finish()"
    assert sum("run.finish(" in c for c in code) == 1, f"{path.name}: one run.finish(), at the end"


def _sections(path: Path) -> list[str]:
    return [line for c in _cells(path) if c["cell_type"] == "markdown"
            for line in _source(c).splitlines() if line.startswith("## ")]


@pytest.mark.parametrize("path", TABLES_AND_FIGURES, ids=lambda p: p.name)
def test_table_and_figure_notebooks_follow_the_lesson_order(path):
    heads = _sections(path)
    order = ["## The data", "## One fit", "## The table" if "_table_" in path.name else "## The figure",
             "## What to look at"]
    found = [next((i for i, h in enumerate(heads) if h.startswith(o)), None) for o in order]
    assert None not in found and found == sorted(found), f"{path.name}: sections {heads}, expected {order} in order"
    body = "\n".join(_code(path))
    spec = re.search(r'run\.example\("([^"]+)"\)', body)
    assert spec, f"{path.name}: the one fit is the table's own cell (run.example)"
    shown = "run.show_table(" if "_table_" in path.name else "run.figure("
    assert body.index("run.example(") < body.index(shown) < body.index("run.claims("), path.name
    assert f'run.claims("{spec.group(1)}")' in body, f"{path.name}: what to look at reads the register"


@pytest.mark.parametrize("path", [p for p in LESSONS if "_table_" in p.name], ids=lambda p: p.name)
def test_table_notebooks_compute_their_spec(path):
    """What a table is lives in its spec (coftad_lib/paper/specs.py), not in the notebook."""
    from coftad_lib.paper.specs import spec_for_notebook

    spec = spec_for_notebook(path.stem)
    assert spec is not None, f"{path.name}: no spec renders this notebook"
    assert json.loads(path.read_text())["metadata"]["kernelspec"]["name"] == "python3"
    assert not set(_params(path)) & {"METHODS", "EXTRACTORS"}, f"{path.name}: the rows live in the spec"
    body = "\n".join(_code(path))
    for call in (f'run.example("{spec.id}")', f'run.table("{spec.id}")', f'run.show_table("{spec.id}", df)'):
        assert call in body, f"{path.name}: {call} (the spec computes and writes the table)"


@pytest.mark.parametrize("path", TABLES_AND_FIGURES, ids=lambda p: p.name)
def test_what_to_look_at_types_no_result(path):
    """Numbers and verdicts come from the register and the records, never typed into the prose."""
    cells = _cells(path)
    start = next(i for i, c in enumerate(cells) if _source(c).startswith("## What to look at"))
    prose = "\n".join(_source(c) for c in cells[start:] if c["cell_type"] == "markdown")
    typed = re.findall(r"[-+]?\d+\.\d+|\b\d+(?:\.\d+)? ?%(?!\s*t-interval)", prose)
    assert not typed, f"{path.name}: 'What to look at' types numbers {typed}; read them from the run"


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
    md = "".join(_source(c) for c in _cells(path)[:4] if c["cell_type"] == "markdown")
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
    # the context recorded what each notebook showed
    status = {p.stem: json.loads(p.read_text()) for p in (out / "status").glob("*.json")}
    assert status["04_table_I_flowers17"]["tables"] == ["I"] and status["04_table_I_flowers17"]["n_cells"] > 0
    assert status["16_fig7_score_distributions"]["figures"] == ["fig7_score_distributions"]
