"""The pieces of a COFT-AD fit (coftad_lib.training) and the fine-tuning study's knobs."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from torch import nn

from coftad_lib import COFTAD
from coftad_lib.augment import make_augmentations
from coftad_lib.backbones import build_backbone
from coftad_lib.byol import ema_lists, ema_update
from coftad_lib.coftad import SETTINGS, COFTADConfig
from coftad_lib.errors import COFTADInputError
from coftad_lib.losses import byol_loss, cross_instance_loss, negative_pair_loss
from coftad_lib.training import (
    Trainer,
    build_fit_modules,
    draw_views,
    fit_backbone,
    loss_terms,
    make_optimizer,
)

TINY = dict(backbone="resnet18", pretrained=False, image_size=32, steps=2, batch_size=4, n_aug=2,
            proj_hidden=32, proj_dim=16, device="cpu", progress=False)


@pytest.fixture(scope="module")
def net():
    return build_backbone("resnet18", pretrained=False)


def _shots(k: int = 3, size: int = 32) -> torch.Tensor:
    return torch.rand(k, 3, size, size, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("negative", [False, True])
def test_draw_views_shapes_and_generator_only(negative):
    cfg = COFTADConfig(**TINY, use_negative=negative)
    aug = make_augmentations("industrial", 32)
    shots = _shots()
    torch.manual_seed(0)
    a = draw_views(cfg, aug, shots, torch.Generator().manual_seed(1))
    torch.manual_seed(99)  # the global RNG must not matter
    b = draw_views(cfg, aug, shots, torch.Generator().manual_seed(1))
    n = 3 if negative else 2
    assert a.online_in.shape == a.target_in.shape == (n * 4, 3, 32, 32)
    assert torch.equal(a.online_in, b.online_in) and torch.equal(a.perm, b.perm)
    assert not torch.equal(a.online_in[:4], a.online_in[4:8])  # the two views differ
    if negative:  # the target sees the clean images where the online network sees t_n(x)
        assert torch.equal(a.target_in[8:], shots[a.idx])
    assert sorted(a.perm.tolist()) == list(range(4))


def _heads(dim: int) -> types.SimpleNamespace:
    lin = [nn.Linear(dim, dim) for _ in range(3)]
    return types.SimpleNamespace(projector=lin[0], predictor=lin[1], target_projector=lin[2], center=None)


def test_loss_terms_are_the_weighted_equations():
    cfg = COFTADConfig(**TINY, use_negative=True)
    g = torch.Generator().manual_seed(0)
    zo, zt = torch.randn(12, 8, generator=g), torch.randn(12, 8, generator=g)
    views = types.SimpleNamespace(batch_size=4, perm=torch.tensor([2, 0, 3, 1]))
    h = _heads(8)
    terms = loss_terms(cfg, zo, zt, h, views)
    p, t = h.predictor(h.projector(zo[:8])), h.target_projector(zt[:8])
    assert torch.allclose(terms["con"], byol_loss(p[:4], p[4:], t[:4], t[4:]))
    assert torch.allclose(terms["pp"], 0.8 * cross_instance_loss(zo[:4], zt[4:8], views.perm))
    assert torch.allclose(terms["np"], 0.6 * negative_pair_loss(zt[8:], zo[8:]))


def test_loss_terms_run_under_vmap():
    cfg = COFTADConfig(**TINY, use_negative=True)
    zo, zt = torch.randn(3, 12, 8), torch.randn(3, 12, 8)
    views = types.SimpleNamespace(batch_size=4, perm=torch.tensor([1, 2, 3, 0]))
    h = _heads(8)
    batched = torch.func.vmap(lambda a, b: loss_terms(cfg, a, b, h, views))(zo, zt)
    for i in range(3):
        one = loss_terms(cfg, zo[i], zt[i], h, views)
        for k in one:
            assert torch.allclose(batched[k][i], one[k], atol=1e-6)


def test_heads_do_not_depend_on_global_rng(net):
    cfg = COFTADConfig(**TINY)
    torch.manual_seed(0)
    a = build_fit_modules(cfg, net, _shots(), torch.device("cpu"))
    torch.manual_seed(1)
    b = build_fit_modules(cfg, net, _shots(), torch.device("cpu"))
    for pa, pb in zip(a.projector.parameters(), b.projector.parameters(), strict=True):
        assert torch.equal(pa, pb)
    c = build_fit_modules(COFTADConfig(**{**TINY, "seed": 1}), net, _shots(), torch.device("cpu"))
    assert not torch.equal(a.projector[0].weight, c.projector[0].weight)


def test_optimizer_groups_and_frozen_stages(net):
    cfg = COFTADConfig(**TINY, backbone_lr_scale=0.1, train_stages=1)
    mods = build_fit_modules(cfg, net, _shots(), torch.device("cpu"))
    opt = make_optimizer(cfg, mods)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([3e-5, 3e-4])
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert all(id(p) not in in_opt for p in mods.online.stages[0].parameters())
    assert all(id(p) in in_opt for p in mods.online.stages[-1].parameters())
    before = [p.clone() for p in mods.online.stem.parameters()]
    trainer = Trainer(cfg, mods)
    gen = torch.Generator().manual_seed(0)
    trainer.step(draw_views(cfg, make_augmentations("flowers", 32), _shots(), gen))
    assert all(torch.equal(a, b) for a, b in zip(before, mods.online.stem.parameters(), strict=True))
    assert not torch.equal(mods.online.stages[-1][0].conv1.weight, mods.target.stages[-1][0].conv1.weight)


def test_ema_lists_match_plain_update_and_skip_frozen():
    online, target = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    ref = [p.clone() for p in target.parameters()]
    online[0].requires_grad_(False)
    with torch.no_grad():
        online[1].running_mean.fill_(1.0)
    ema_update(None, None, 0.5, lists=ema_lists(target, online))
    assert torch.equal(target[0].weight, ref[0])  # frozen in the online net: left alone
    assert torch.allclose(target[1].weight, 0.5 * ref[2] + 0.5 * online[1].weight)
    assert torch.allclose(target[1].running_mean, torch.full((3,), 0.5))


def test_fit_backbone_history_and_determinism(net):
    cfg = COFTADConfig(**TINY, use_negative=True)
    aug = make_augmentations("flowers", 32)
    out = [fit_backbone(cfg, net, _shots(), aug, torch.Generator().manual_seed(0), progress=False) for _ in range(2)]
    (n1, h1), (n2, h2) = out
    assert [r["step"] for r in h1] == [0, 1] and set(h1[0]) == {"step", "loss", "con", "pp", "np"}
    assert h1 == h2
    assert all(torch.equal(a, b) for a, b in zip(n1.parameters(), n2.parameters(), strict=True))
    assert h1[0]["loss"] == pytest.approx(h1[0]["con"] + h1[0]["pp"] + h1[0]["np"], abs=1e-5)


def test_compile_failure_falls_back_to_eager(net, monkeypatch):
    def broken(fn, **_):
        def run(*a, **k):
            raise RuntimeError("no compiler here")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    cfg = COFTADConfig(**TINY, compile=True)
    aug = make_augmentations("flowers", 32)
    with pytest.warns(UserWarning, match="torch.compile failed"):
        _, hist = fit_backbone(cfg, net, _shots(), aug, torch.Generator().manual_seed(0), progress=False)
    assert len(hist) == 2 and np.isfinite(hist[-1]["loss"])


def test_settings_fill_only_missing_sizes():
    cpu = COFTADConfig(device="cpu")
    assert (cpu.image_size, cpu.steps, cpu.batch_size) == tuple(SETTINGS["cpu"].values())
    paper = COFTADConfig(device="cpu", settings="paper", steps=7)
    assert (paper.image_size, paper.steps, paper.batch_size) == (224, 7, 64)
    with pytest.raises(COFTADInputError, match="settings='fast'"):
        COFTADConfig(settings="fast")
    with pytest.raises(COFTADInputError, match="compile"):
        COFTADConfig(device="cpu", compile="yes")


def test_feature_stage_pools_an_earlier_stage():
    full = build_backbone("resnet18", pretrained=False)
    cut = build_backbone("resnet18", pretrained=False, feature_stage=1)
    assert (full.feature_dim, cut.feature_dim) == (512, 128)
    assert cut(torch.rand(2, 3, 32, 32)).shape == (2, 128)
    with pytest.raises(COFTADInputError, match="feature_stage=9"):
        build_backbone("resnet18", pretrained=False, feature_stage=9)


def test_study_knobs_round_trip_through_save(tmp_path):
    kw = dict(TINY, backbone_lr_scale=0.1, train_stages=2, feature_stage=2, aug_strength=0.5,
              negative="cutpaste", preset="flowers")
    x = _shots(4)
    det = COFTAD(**kw).fit(x)
    det.save(tmp_path / "d")
    back = COFTAD.load(tmp_path / "d", device="cpu")
    for key in ("backbone_lr_scale", "train_stages", "feature_stage", "aug_strength", "negative",
                "image_size", "steps", "batch_size"):
        assert getattr(back.config, key) == getattr(det.config, key)
    np.testing.assert_allclose(back.score_samples(x), det.score_samples(x), rtol=1e-6)


def test_slow_fit_prints_one_line_estimate(net, monkeypatch, capsys):
    import coftad_lib.training as training

    cfg = COFTADConfig(**{**TINY, "steps": 4})
    aug = make_augmentations("flowers", 32)
    monkeypatch.setattr(training, "SLOW_FIT_S", 0.0)
    fit_backbone(cfg, net, _shots(), aug, torch.Generator().manual_seed(0), progress=False)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "settings='cpu'" in out[0] and "x 4 steps" in out[0]
    monkeypatch.setattr(training, "SLOW_FIT_S", 1e9)
    fit_backbone(cfg, net, _shots(), aug, torch.Generator().manual_seed(0), progress=False)
    assert capsys.readouterr().out == ""
