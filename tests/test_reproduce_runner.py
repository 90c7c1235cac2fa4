"""The notebook runner: strict parameters, a real papermill run of tiny notebooks, exit codes, Makefile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from coftad_lib.reproduce import __main__ as cli
from coftad_lib.reproduce import runner
from coftad_lib.reproduce.notebook_params import (
    UnknownParameterError,
    assigned_names,
    check_parameters,
    parameter_names,
)

REPO = Path(__file__).resolve().parents[1]

PARAMS_CELL = ('PROFILE = "smoke"\nSEEDS = [0]\nDATA_ROOT = ""\nPREP_DIR = ""\nOUT_DIR = ""\nNOTEBOOK = ""\n'
               'OVERRIDES = {}\nMODE = "missing"\n')

# Runs inside the kernel: writes what it received, makes one missing cell through the real
# run_cells (with a load_task that reports the data as absent), records its status.
BODY_MISSING = '''
import json, pathlib, sys
from coftad_lib.errors import DatasetNotFoundError
from coftad_lib.paper import Cell, cache_dir, record_status, run_cells
from coftad_lib.engine import cells as C

def absent(*a, **k):
    raise DatasetNotFoundError("SemiCon is private: ask the authors; put it under DATA_ROOT/semicon")

C._load_task = absent
pathlib.Path(OUT_DIR, "kernel.json").write_text(json.dumps(
    {"executable": sys.executable, "seeds": SEEDS, "profile": PROFILE, "data_root": DATA_ROOT, "mode": MODE}))
df = run_cells([Cell("IX", "semicon", "semicon", 10, "coftad", {}, SEEDS[0])], DATA_ROOT, cache_dir(OUT_DIR), PROFILE,
               progress=False)
record_status(OUT_DIR, df, tables=["IX"], notebook=NOTEBOOK)
'''
BODY_FAIL = 'raise RuntimeError("deliberate failure in " + MODE)\n'


def make_notebook(path: Path, params: str, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# fixture"), p, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# ------------------------------------------------------------------ parameters cell
def test_assigned_names_covers_assignment_forms():
    src = "A = 1\nB: int = 2\nC, (D, *E) = 1, (2, 3)\nF += 1\n%matplotlib inline\nimport os\ndef g():\n    H = 1\n"
    assert assigned_names(src) == {"A", "B", "C", "D", "E", "F"}


def test_unknown_parameter_is_refused_with_names(tmp_path):
    nb = make_notebook(tmp_path / "nb" / "01_x.ipynb", PARAMS_CELL, "pass")
    assert parameter_names(nb) == {"PROFILE", "SEEDS", "DATA_ROOT", "PREP_DIR", "OUT_DIR", "NOTEBOOK", "OVERRIDES", "MODE"}
    check_parameters(nb, ["PROFILE", "MODE"])
    with pytest.raises(UnknownParameterError, match=r"01_x\.ipynb.*STEPS"):
        check_parameters(nb, ["PROFILE", "STEPS"])


def test_notebook_without_parameters_cell_is_refused(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("A = 1")]
    path = tmp_path / "01_np.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(Exception, match="tagged 'parameters'"):
        parameter_names(path)


def test_runner_refuses_unknown_param_before_running_anything(tmp_path, capsys):
    nbdir = tmp_path / "nb"
    make_notebook(nbdir / "01_a.ipynb", PARAMS_CELL, "pass")
    make_notebook(nbdir / "02_b.ipynb", PARAMS_CELL.replace('MODE = "missing"\n', ""), "pass")
    code = cli.main(["--profile", "smoke", "--notebooks", str(nbdir), "--out", str(tmp_path / "out"),
                     "--param", "MODE=fail"])
    assert code == runner.EXIT_USAGE
    assert "02_b.ipynb" in capsys.readouterr().err
    assert not (tmp_path / "out" / "executed").exists()


def test_select_and_param_parsing(tmp_path):
    nbs = [tmp_path / "01_flowers.ipynb", tmp_path / "04_mvtec.ipynb"]
    assert runner.select(nbs, ["04"]) == [nbs[1]]
    assert runner.select(nbs, ["mvtec", "01_flowers"]) == nbs
    with pytest.raises(Exception, match="05"):
        runner.select(nbs, ["05"])
    assert cli.parse_param("STEPS=5") == ("STEPS", 5)
    assert cli.parse_param("NAME=abc") == ("NAME", "abc")
    assert cli.parse_param("L=[1, 2]") == ("L", [1, 2])
    with pytest.raises(Exception, match="KEY=VALUE"):
        cli.parse_param("novalue")


def test_kernel_is_this_interpreter():
    runner.check_kernel("python3")
    with pytest.raises(Exception, match="not installed"):
        runner.check_kernel("no-such-kernel-xyz")


# ------------------------------------------------------------------ real papermill run (2 notebooks)
@pytest.mark.slow
def test_series_runs_notebooks_and_writes_summary(tmp_path):
    nbdir, out = tmp_path / "nb", tmp_path / "out"
    make_notebook(nbdir / "01_missing.ipynb", PARAMS_CELL, BODY_MISSING)
    make_notebook(nbdir / "02_fail.ipynb", PARAMS_CELL, BODY_FAIL)
    (out / "status").mkdir(parents=True)
    (out / "status" / "02_fail.json").write_text('{"status": "ok"}')  # stale: must not count
    code, results = runner.run_series("smoke", seeds=[3], data_root=tmp_path / "data", out_dir=out,
                                      params={"MODE": "x"}, notebooks_dir=nbdir)
    assert code == runner.EXIT_FAILED
    by = {r.name: r for r in results}
    assert by["01_missing"].status == "missing" and by["01_missing"].missing[0]["dataset"] == "semicon"
    assert by["02_fail"].status == "failed" and "deliberate failure in x" in by["02_fail"].error
    seen = json.loads((out / "kernel.json").read_text())
    assert Path(seen["executable"]).resolve() == Path(sys.executable).resolve()
    assert seen["seeds"] == [3] and seen["profile"] == "smoke" and seen["mode"] == "x"
    assert seen["data_root"] == str((tmp_path / "data").resolve())
    assert (out / "executed" / "01_missing.ipynb").exists() and (out / "executed" / "02_fail.ipynb").exists()
    assert sorted(p.name for p in (out / "executed").iterdir()) == ["01_missing.ipynb", "02_fail.ipynb"]  # no temporaries
    assert not (out / ".runner.lock").exists()  # released
    summary = (out / "runs" / "summary.md").read_text()
    assert "| 01_missing | missing |" in summary and "| 02_fail | failed |" in summary
    assert "SemiCon is private" in summary
    assert json.loads((out / "runs" / "summary.json").read_text())["meta"]["seeds"] == [3]
    assert "01_missing" in (out / "REPORT.md").read_text()
    # the executed notebooks are published (committable, no machine paths) and the report links them
    assert sorted(p.name for p in (out / "notebooks").iterdir()) == ["01_missing.ipynb", "02_fail.ipynb"]
    assert "deliberate failure in x" in (out / "notebooks" / "02_fail.ipynb").read_text()
    assert str(tmp_path) not in (out / "notebooks" / "01_missing.ipynb").read_text()
    assert "[html](html/02_fail.html) / [ipynb](notebooks/02_fail.ipynb)" in (out / "REPORT.md").read_text()
    assert "deliberate failure in x" in (out / "html" / "02_fail.html").read_text()


# ------------------------------------------------------------------ exit codes without a kernel
def _fake_execute(statuses):
    def execute(nb_path, out_dir, params, kernel_name, profile, log_output=False):
        st = statuses[nb_path.stem]
        miss = [{"dataset": "aitex", "message": "get AITEX"}] if st == "missing" else []
        return runner.NotebookResult(name=nb_path.stem, status=st, seconds=0.1, missing=miss, profile=profile)
    return execute


@pytest.mark.parametrize(("statuses", "strict", "expected"), [
    ({"01_a": "ok", "02_b": "missing"}, False, runner.EXIT_OK),
    ({"01_a": "ok", "02_b": "missing"}, True, runner.EXIT_STRICT),
    ({"01_a": "failed", "02_b": "missing"}, True, runner.EXIT_FAILED),
    ({"01_a": "ok", "02_b": "no status"}, False, runner.EXIT_FAILED),
])
def test_exit_codes(tmp_path, monkeypatch, statuses, strict, expected):
    nbdir = tmp_path / "nb"
    for name in statuses:
        make_notebook(nbdir / f"{name}.ipynb", PARAMS_CELL, "pass")
    monkeypatch.setattr(runner, "execute", _fake_execute(statuses))
    args = ["--profile", "smoke", "--notebooks", str(nbdir), "--out", str(tmp_path / "out")]
    assert cli.main(args + (["--strict"] if strict else [])) == expected
    summary = (tmp_path / "out" / "runs" / "summary.md").read_text()
    assert all(f"| {n} | {s} |" in summary for n, s in statuses.items())


def test_a_second_runner_on_one_out_fails_at_once_and_a_stale_lock_is_taken_over(tmp_path, monkeypatch, capsys):
    nbdir, out = tmp_path / "nb", tmp_path / "out"
    make_notebook(nbdir / "01_a.ipynb", PARAMS_CELL, "pass")
    monkeypatch.setattr(runner, "execute", _fake_execute({"01_a": "ok"}))
    args = ["--profile", "smoke", "--notebooks", str(nbdir), "--out", str(out)]
    out.mkdir()
    (out / ".runner.lock").write_text(f"{os.getpid()} 2026-01-01T00:00:00\n")  # a live runner: this process
    assert cli.main(args) == runner.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"another runner (pid {os.getpid()}" in err and str(out) in err
    assert not (out / "runs").exists()  # nothing was written
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".runner.lock").write_text(f"{dead.pid} 2026-01-01T00:00:00\n")  # its process is gone
    assert cli.main(args) == runner.EXIT_OK
    assert (out / "runs" / "summary.md").exists() and not (out / ".runner.lock").exists()


# ------------------------------------------------------------------ Makefile bootstrap
@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_makefile_installs_once_per_pyproject(tmp_path):
    """A fake venv python logs its calls: pip runs on the first `make venv`, not the second, again after an edit."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    venv_bin = tmp_path / "v" / "bin"
    venv_bin.mkdir(parents=True)
    log = tmp_path / "calls.log"
    fake = venv_bin / "python"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)

    def make():
        subprocess.run(["make", "-s", "-f", str(REPO / "Makefile"), "-C", str(tmp_path), "venv", "VENV=v"],
                       check=True, capture_output=True)
        return log.read_text().splitlines() if log.exists() else []

    assert make() == ["-m pip install -e .[test]"]
    assert len(make()) == 1
    (tmp_path / "pyproject.toml").write_text("[project]\nname='y'\n")
    assert len(make()) == 2
    assert len(list((tmp_path / "v").glob(".installed-*"))) == 1


def test_summary_and_report_print_paths_relative_to_the_data_root(tmp_path):
    from coftad_lib.paper import record_status
    from coftad_lib.paper.report import write_report

    root, out = tmp_path / "machine" / "data", tmp_path / "out"
    msg = f"MVTec AD not found under {root}/mvtec_ad/carpet; download it"
    record_status(out, notebook="07_mvtec", missing=[{"dataset": "mvtec", "message": msg}])
    st = json.loads((out / "status" / "07_mvtec.json").read_text())
    st["failed"] = [{"table": "IV", "dataset": "mvtec", "task": "bottle", "method": "csi", "seed": 0,
                     "message": f"OSError: cannot read {root}/mvtec_ad/bottle/x.png"}]
    (out / "status" / "07_mvtec.json").write_text(json.dumps(st))
    res = runner.NotebookResult(name="07_mvtec", status="failed", seconds=1.0, missing=st["missing"],
                                error="1 cell(s) failed", failed_cells=st["failed"])
    meta = {"profile": "smoke", "seeds": [0], "data_root": str(root), "prep_dir": str(tmp_path / "prep"),
            "out_dir": str(out)}
    summary = runner.write_summary([res], out, meta).read_text()
    report = write_report(out).read_text()
    for text in (summary, report):
        assert str(tmp_path) not in text.split("## ", 1)[1], text
        assert "mvtec_ad/carpet" in text and "mvtec_ad/bottle/x.png" in text and "| csi |" in text.replace("CSI", "csi")
    notebooks = json.loads((out / "runs" / "summary.json").read_text())["notebooks"]
    assert str(root) not in json.dumps(notebooks) and "mvtec_ad/bottle/x.png" in json.dumps(notebooks)
    # a status written with the run's roots names no machine folder in the first place
    record_status(out, notebook="07_mvtec", missing=[{"dataset": "mvtec", "message": msg}], roots={"DATA_ROOT": str(root)})
    st = json.loads((out / "status" / "07_mvtec.json").read_text())
    assert st["missing"][0]["message"] == "MVTec AD not found under mvtec_ad/carpet; download it"


# ------------------------------------------------------------------ publishing and the console
def _writing_execute(data_root: Path):
    """A fake :func:`runner.execute` that leaves an executed notebook (printing a machine path) and a status."""
    def execute(nb_path, out_dir, params, kernel_name, profile, log_output=False):
        from coftad_lib.paper import record_status

        nb = nbformat.read(nb_path, as_version=4)
        nb.cells[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"read {data_root}/flowers17\n")]
        executed = Path(out_dir) / "executed" / nb_path.name
        executed.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, executed)
        record_status(out_dir, notebook=nb_path.stem)
        return runner.NotebookResult(name=nb_path.stem, status="ok", seconds=0.1, executed=str(executed),
                                     profile=profile)
    return execute


def test_run_publishes_executed_notebooks_and_the_report_links_them(tmp_path, monkeypatch, capsys):
    nbdir, out, data = tmp_path / "repo" / "notebooks", tmp_path / "repo" / "results" / "smoke", tmp_path / "data"
    for name in ("01_a", "02_b"):
        make_notebook(nbdir / f"{name}.ipynb", PARAMS_CELL, "print('x')")
    monkeypatch.setattr(runner, "execute", _writing_execute(data.resolve()))
    code, _ = runner.run_series("smoke", data_root=data, out_dir=out, notebooks_dir=nbdir, only=["01", "02"])
    assert code == runner.EXIT_OK
    published = sorted(p.name for p in (out / "notebooks").iterdir())
    assert published == ["01_a.ipynb", "02_b.ipynb"]
    text = (out / "notebooks" / "01_a.ipynb").read_text()
    assert "read <DATA_ROOT>/flowers17" in text and str(tmp_path) not in text
    report = (out / "REPORT.md").read_text()
    assert "[html](html/01_a.html)" in report and "executed/01_a" not in report
    page = (out / "html" / "01_a.html").read_text()  # the committed page: no machine path, the profile named
    assert "read &lt;DATA_ROOT&gt;/flowers17" in page and str(tmp_path) not in page
    assert "<code>smoke</code> profile" in page and "make reproduce PROFILE=smoke" in page
    console = capsys.readouterr().out
    lines = [ln for ln in console.splitlines() if ln.startswith("[reproduce]")]
    assert "2 notebook(s); 0 cells" in lines[0]  # the estimate comes before the first notebook
    assert lines[1].startswith("[reproduce] [1/2] 01_a: starting (run elapsed 0:00:")
    assert lines[2].startswith("[reproduce] [1/2] 01_a: ok in 0.1 s (run elapsed 0:00:")
    assert any(ln.startswith("[reproduce] published 2 executed notebooks") for ln in lines)
    assert any(ln.startswith("[reproduce] rendered 2 notebooks to") for ln in lines)
    # without a page the report links the published copy; without either, the executed one
    (out / "html" / "01_a.html").unlink()
    (out / "html" / "02_b.html").unlink()
    (out / "notebooks" / "02_b.ipynb").unlink()
    from coftad_lib.paper.report import write_report

    report = write_report(out).read_text()
    assert "| [ipynb](notebooks/01_a.ipynb) |" in report and "[ipynb](executed/02_b.ipynb)" in report


def test_a_failed_publication_is_reported_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    nbdir, out = tmp_path / "nb", tmp_path / "out"
    make_notebook(nbdir / "01_a.ipynb", PARAMS_CELL, "pass")
    monkeypatch.setattr(runner, "execute", _writing_execute(tmp_path / "data"))

    def over_budget(*a, **k):
        raise runner.COFTADInputError("over the budget")

    monkeypatch.setattr(runner, "publish_executed", over_budget)
    code, _ = runner.run_series("smoke", data_root=tmp_path / "data", out_dir=out, notebooks_dir=nbdir)
    assert code == runner.EXIT_OK and (out / "REPORT.md").exists()
    assert "not published" in capsys.readouterr().out and "[ipynb](executed/01_a.ipynb)" in (out / "REPORT.md").read_text()
