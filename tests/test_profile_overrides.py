"""Profile overrides: ``--param backbone=efficientnet_lite0`` runs ``paper`` with the override as data
(``OVERRIDES = {"backbone": ...}``), labelled ``paper+backbone=efficientnet_lite0``; its cells differ
from paper's where the work differs (keys hold the work, not the name), its Table VI column is that
backbone; bad overrides are refused before anything runs."""

from __future__ import annotations

import pytest

from coftad_lib.errors import COFTADInputError
from coftad_lib.paper import get_profile, make_cell
from coftad_lib.paper import tables as tr
from coftad_lib.paper.prep_runs import semicon_volumes
from coftad_lib.paper.profiles import base_name, derive, derived_name, split_overrides
from coftad_lib.reproduce import runner as runner_mod
from coftad_lib.reproduce.__main__ import main as cli_main

LITE = "paper+backbone=efficientnet_lite0"


def test_a_derived_profile_changes_only_what_it_names():
    paper, lite = get_profile("paper"), derive("paper", {"backbone": "efficientnet_lite0"})
    assert derived_name("paper", {"backbone": "efficientnet_lite0"}) == LITE
    assert lite["name"] == LITE and base_name(lite) == "paper" and lite["backbone"] == "efficientnet_lite0"
    assert lite["limits"]["VI"]["backbones"] == ["efficientnet_lite0"] and paper["limits"]["VI"]["backbones"] == ["resnet18", "resnet50"]
    assert lite["out_dir"] == f"results/{LITE}"  # its own folder, never the named profile's
    assert {k: v for k, v in lite.items() if k not in ("name", "base", "backbone", "limits", "out_dir")} == \
        {k: v for k, v in paper.items() if k not in ("name", "backbone", "limits", "out_dir")}
    both = derive("smoke", {"steps": "3", "image_size": 48})
    assert (both["name"], both["steps"], both["image_size"]) == ("smoke+image_size=48+steps=3", 3, 48)
    assert semicon_volumes(lite) == semicon_volumes("paper") != semicon_volumes("smoke")
    assert derive("paper", {}) == paper


def test_derived_cells_use_the_override_and_are_cached_apart():
    a = make_cell("I", "flowers17", "Daffodil/Tulip", 5, "coftad", 0, "paper")
    lite = derive("paper", {"backbone": "efficientnet_lite0"})
    b = make_cell("I", "flowers17", "Daffodil/Tulip", 5, "coftad", 0, lite)
    assert a.method_kwargs["backbone"] == "resnet18" and b.method_kwargs["backbone"] == "efficientnet_lite0"
    assert a.key() != b.key()
    # an override that changes nothing a cell computes leaves its key alone: the same cell, computed once
    same = make_cell("I", "flowers17", "Daffodil/Tulip", 5, "coftad", 0, derive("paper", {"backbone": "resnet18"}))
    assert same.key() == a.key()
    vi = tr.ablation_cells(lite, [0])
    assert vi and {c.method_kwargs["backbone"] for c in vi} == {"efficientnet_lite0"}


@pytest.mark.parametrize(("base", "over", "match"), [
    ("paper", {"lr": 0.1}, "only backbone, image_size"),
    ("paper", {"steps": "ten"}, "steps='ten': expected int"),
    ("paper", {"steps": 0}, "expected an int >= 1"),
    ("papr", {"steps": 3}, "profile='papr' is not known"),
])
def test_bad_overrides_are_refused(base, over, match):
    with pytest.raises(COFTADInputError, match=match):
        derive(base, over)
    with pytest.raises(COFTADInputError, match="is not known"):
        get_profile(LITE)  # a label, not a name anything parses


def test_runner_folds_profile_params_into_the_profile(tmp_path, monkeypatch, capsys):
    assert split_overrides({"backbone": "x", "STEPS": 3}) == ({"backbone": "x"}, {"STEPS": 3})
    seen = {}

    def execute(nb_path, out_dir, params, kernel_name, profile, log_output=False):
        seen.update(params=params, profile=profile)
        return runner_mod.NotebookResult(name=nb_path.stem, status="ok", seconds=0.0, missing=[], profile=profile)

    nb = tmp_path / "nb" / "01_x.ipynb"
    nb.parent.mkdir()
    import nbformat

    book = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell('PROFILE = "smoke"\nSEEDS = [0]\nDATA_ROOT = ""\nPREP_DIR = ""\nOUT_DIR = ""\n'
                                     'NOTEBOOK = ""\nOVERRIDES = {}\n')
    cell.metadata["tags"] = ["parameters"]
    book.cells = [cell]
    nbformat.write(book, nb)
    monkeypatch.setattr(runner_mod, "execute", execute)
    code, _ = runner_mod.run_series("paper", out_dir=tmp_path / "out", notebooks_dir=nb.parent, report=False,
                                    params={"backbone": "efficientnet_lite0"})
    assert code == 0 and seen["profile"] == LITE and seen["params"]["PROFILE"] == "paper"
    assert seen["params"]["OVERRIDES"] == {"backbone": "efficientnet_lite0"} and "backbone" not in seen["params"]
    assert seen["params"]["NOTEBOOK"] == "01_x" and "EXECUTOR" not in seen["params"]
    assert cli_main(["--profile", "paper", "--param", "steps=0", "--notebooks", str(nb.parent),
                     "--out", str(tmp_path / "out")]) == 2
    assert "steps=0: expected an int >= 1" in capsys.readouterr().err
