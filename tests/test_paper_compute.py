"""Issue 19's experiment: one fit scored three ways equals the library's detector, and the verdict's arithmetic."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from coftad_lib import COFTAD
from coftad_lib.density import GaussianDensity
from coftad_lib.experiments import paper_compute as pc
from coftad_lib.images import images_to_tensor
from coftad_lib.metrics import auroc

TINY = pc.Compute(image_size=32, steps=2, batch_size=4, device="cpu", eval_batch_size=16, label="tiny")


@pytest.mark.parametrize("scoring", ["target", "online"])
def test_one_fit_scores_as_the_library_detector(texture_task, scoring):
    train, test, _ = texture_task
    unit = pc.Unit("cifar", "x", len(train[:4]), 0, "wo_np")
    torch.set_num_threads(1)
    nets, copies, det, history, _ = pc.fit_unit(unit, train[:4], TINY)
    c = det.config
    density = GaussianDensity(l2_normalize=c.l2_normalize, eps=c.eps).fit(pc.features(nets[scoring], copies, 32, det.device, 16))
    ours = density.score(pc.features(nets[scoring], pc.prepare_test(test, 32), 32, det.device, 16)).numpy()
    ref = COFTAD(**pc.detector_kwargs(unit, TINY), score_with=scoring).fit(train[:4])
    np.testing.assert_allclose(ours, ref.score_samples(test), rtol=1e-5)
    assert len(history) == 2 and ref.history[-1]["loss"] == pytest.approx(history[-1]["loss"])


def test_uint8_input_is_resized_on_the_device_as_images_to_tensor_does(texture_task):
    _, test, _ = texture_task
    net = torch.nn.Flatten()
    ours = pc.features(net, pc.prepare_test(test, 48), 48, torch.device("cpu"), 7)
    ref = images_to_tensor(test, 48).flatten(1)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=1e-6)


def test_run_groups_writes_each_unit_once_and_resumes(texture_task, tmp_path, monkeypatch):
    train, test, labels = texture_task
    task = SimpleNamespace(train=train[:3], test=test, test_labels=labels, test_ids=[f"t{i}" for i in range(len(labels))])
    monkeypatch.setattr(pc, "load_group", lambda group, roots, compute: (task, pc.prepare_test(test, 32)))
    groups = pc.plan(["cifar"], ["wo_np", "w_np"], [0])[:1]
    assert pc.run_groups(groups, {}, TINY, tmp_path, log=lambda s: None) == 2
    frame = pc.load_records(tmp_path)
    assert sorted(frame["config"]) == ["w_np", "wo_np"] and set(frame["n_test"]) == {len(labels)}
    assert frame[["auroc_pretrained", "auroc_online", "auroc_target"]].notna().all().all()
    # each unit recomputes from its own record (issue 29): stored scores and labels give its AUROCs
    for path in sorted(tmp_path.glob("*.json")):
        rec = json.loads(path.read_text())
        for net in ("pretrained", "online", "target"):
            assert 100 * auroc(np.asarray(rec[f"scores_{net}"]), np.asarray(rec["labels"])) == rec[f"auroc_{net}"]
        assert rec["kernels"] in ("avx2", "native") and len(rec["test_ids_digest"]) == 16
    # a rerun claims nothing (the claim file of the finished group stays); cleared claims: nothing is missing
    assert pc.run_groups(groups, {}, TINY, tmp_path, log=lambda s: None) == 0
    pc.clear_claims(tmp_path)
    assert pc.run_groups(groups, {}, TINY, tmp_path, log=lambda s: None) == 0


def test_verdict_pairs_each_seed_with_its_start_and_drops_incomplete_seeds():
    rows = []
    for seed, (start, tuned) in enumerate([(60.0, 62.0), (62.0, 64.5), (64.0, 65.5)]):
        for task, shift in (("a", -1.0), ("b", 1.0)):
            rows.append({"profile": "p", "family": "cifar", "config": "wo_np", "seed": seed, "task": task,
                         "auroc_pretrained": start + shift, "auroc_online": tuned + shift,
                         "auroc_target": start + shift + 0.1})
    rows.append({"profile": "p", "family": "cifar", "config": "wo_np", "seed": 3, "task": "a",
                 "auroc_pretrained": 0.0, "auroc_online": 100.0, "auroc_target": 0.0})  # seed 3 incomplete
    table = pc.verdict(pd.DataFrame(rows)).set_index("scoring")
    on, tg = table.loc["online"], table.loc["target"]
    assert on["seeds"] == 3 and on["diff"] == pytest.approx(2.0)
    assert on["spread"] == pytest.approx(max(np.std([62, 64.5, 65.5], ddof=1), 2.0)) and on["exceeds"] == bool(2.0 > on["spread"])
    assert tg["diff"] == pytest.approx(0.1) and not tg["exceeds"]
    assert on["tasks"] == "2/10"
    assert "| p | cifar | wo_np | online | 2/10 | 3 |" in pc.verdict_markdown(table.reset_index())
    assert not math.isnan(on["start_std"])


def test_bad_names_are_refused():
    with pytest.raises(Exception, match="family='nope'"):
        pc.plan(["nope"], ["wo_np"], [0])
    with pytest.raises(Exception, match="config='x'"):
        pc.plan(["cifar"], ["x"], [0])
    with pytest.raises(Exception, match="task='plane'.*airplane"):
        pc.plan(["cifar"], ["wo_np"], [0], tasks=["plane"])


def test_a_plan_can_hold_only_some_tasks_seed_major():
    groups = pc.plan(["cifar"], ["wo_np", "w_np"], [0, 1], tasks=["cat", "airplane"])
    assert [(g[0].seed, g[0].task) for g in groups] == [(0, "airplane"), (0, "cat"), (1, "airplane"), (1, "cat")]
    assert [u.config for u in groups[0]] == ["wo_np", "w_np"]
