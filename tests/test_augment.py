"""Batched augmentations of Sec. IV-C: shapes, range, determinism, strength, CutPaste geometry, errors."""

from __future__ import annotations

import math

import kornia
import pytest
import torch

from coftad_lib.augment import (
    CUTPASTE_MODES,
    NEGATIVES,
    PRESETS,
    ColorJitter,
    CutPaste,
    GaussianBlur,
    RandomAffine,
    affine_theta,
    make_augmentations,
)
from coftad_lib.errors import COFTADInputError

S = 48


def _batch(b: int = 6, h: int = S, w: int = S, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _all_augs():
    for preset in PRESETS:
        pair = make_augmentations(preset, S)
        yield f"{preset}-positive", pair.positive
        yield f"{preset}-negative", pair.negative
    for name in NEGATIVES:
        yield f"negative-{name}", make_augmentations("flowers", S, negative=name).negative


ALL = list(_all_augs())


@pytest.mark.parametrize("name,aug", ALL, ids=[n for n, _ in ALL])
def test_shape_range_and_determinism(name, aug):
    x = _batch()
    a, b, c = aug(x, generator=_gen(1)), aug(x, generator=_gen(1)), aug(x, generator=_gen(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b), "same generator state must give the same output"
    assert not torch.equal(a, c), "another seed must give another output"
    assert not torch.equal(a, x)


@pytest.mark.parametrize("name,aug", ALL, ids=[n for n, _ in ALL])
def test_global_rng_without_generator(name, aug):
    x = _batch()
    torch.manual_seed(5)
    a = aug(x)
    torch.manual_seed(5)
    assert torch.equal(a, aug(x))


@pytest.mark.parametrize("preset", PRESETS)
def test_strength_zero_is_identity_and_strength_grows_the_change(preset):
    x = _batch()
    out = make_augmentations(preset, S, strength=0).positive(x, generator=_gen(0))
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)
    assert out is not x
    change = [(make_augmentations(preset, S, strength=s).positive(x, generator=_gen(0)) - x).abs().mean()
              for s in (0.25, 1.0)]
    assert 0 < change[0] < change[1]


@pytest.mark.parametrize("name,aug", ALL, ids=[n for n, _ in ALL])
def test_parameters_differ_within_a_batch(name, aug):
    x = _batch(1).expand(8, -1, -1, -1).contiguous()  # the same image 8 times
    out = aug(x, generator=_gen(0)).flatten(1)
    distinct = {row.numpy().tobytes() for row in out}
    assert len(distinct) == 8, f"{name}: samples of one batch got (nearly) the same parameters"


def test_cutpaste_normal_changes_one_region_of_the_documented_area():
    h = w = 128
    x = _batch(32, h, w)
    out = CutPaste("normal", jitter=0.0)(x, generator=_gen(0))
    changed = (out != x).any(1).flatten(1).float().sum(1) / (h * w)  # fraction of pixels per image
    # Pixel-centre rasterisation of a rectangle of area A lies within A +- its perimeter.
    assert changed.min() >= 0.02 - 4 * math.sqrt(0.15) / h and changed.max() <= 0.15 + 4 * math.sqrt(0.15) / h
    assert changed.std() > 0.01  # areas vary across the batch
    rows = (out != x).any(1).any(2).float().sum(1)  # one contiguous rectangle: rows x cols ~ area
    cols = (out != x).any(1).any(1).float().sum(1)
    torch.testing.assert_close(rows * cols / (h * w), changed, atol=0.02, rtol=0.1)


def test_cutpaste_small_is_milder():
    x = _batch(32, 96, 96)
    big = make_augmentations("industrial", 96, "normal").negative(x, generator=_gen(0))
    small = make_augmentations("industrial", 96, "normal", negative="cutpaste_small").negative(x, generator=_gen(0))
    frac = [(o != x).any(1).float().mean() for o in (big, small)]
    assert frac[1] < frac[0] / 3 and frac[1] <= 0.02 + 0.01


def test_negative_names_pick_the_transform():
    x = _batch()
    cifar = make_augmentations("cifar_c", S)
    photometric = make_augmentations("flowers", S, negative="photometric")
    torch.testing.assert_close(cifar.negative(x, generator=_gen(0)), photometric.negative(x, generator=_gen(0)))
    assert isinstance(make_augmentations("cifar_c", S, "scar", negative="cutpaste").negative, CutPaste)
    assert make_augmentations("flowers", S, "scar").negative.mode == "scar"


def test_affine_theta_is_the_inverse_of_the_forward_map_on_non_square_images():
    h, w, a, s, t = 20, 40, 0.3, 1.2, torch.tensor([3.0, -2.0])
    theta = affine_theta(torch.tensor([a]), t[:1], t[1:], torch.tensor([s]), h, w)[0]
    p_out = torch.tensor([5.0, -4.0])  # pixels from the centre, (x, y)
    p_in = theta @ torch.tensor([p_out[0] / (w / 2), p_out[1] / (h / 2), 1.0]) * torch.tensor([w / 2, h / 2])
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    torch.testing.assert_close(s * rot @ p_in + t, p_out)


def test_affine_rotation_by_90_degrees_is_rot90():
    x = _batch(2, 16, 16)
    torch.testing.assert_close(RandomAffine((90, 90), 0, (1, 1))(x), torch.rot90(x, 3, (2, 3)), atol=1e-5, rtol=0)


def test_colour_jitter_single_factors_follow_torchvision_formulas():
    x = _batch() * 0.5
    luma = torch.tensor([0.299, 0.587, 0.114])
    gray = ColorJitter(grayscale_p=1.0)(x)
    torch.testing.assert_close(gray, (x * luma.view(1, 3, 1, 1)).sum(1, keepdim=True).expand_as(x))
    torch.testing.assert_close(ColorJitter(hue=0.5, p=1.0)(gray), gray)  # hue leaves grey alone
    bright = ColorJitter(brightness=0.5)(x, generator=_gen(0))
    ratio = (bright / x).flatten(1)
    torch.testing.assert_close(ratio.min(1).values, ratio.max(1).values)  # one factor per image


def test_blur_matches_kornia_at_a_fixed_sigma_on_non_square_images():
    x = _batch(3, 40, 56)
    ref = kornia.filters.gaussian_blur2d(x, (7, 7), (1.5, 1.5), border_type="reflect")
    torch.testing.assert_close(GaussianBlur(7, (1.5, 1.5))(x), ref, atol=1e-5, rtol=0)


def test_blur_keeps_constant_images_and_smooths_noise():
    blur = GaussianBlur(7, (1.0, 2.0))
    const = torch.full((2, 3, 16, 16), 0.4)
    torch.testing.assert_close(blur(const), const)
    x = _batch()
    assert blur(x).std() < 0.6 * x.std()
    torch.testing.assert_close(GaussianBlur(7, (1.0, 2.0), p=0.0)(x), x)
    half = GaussianBlur(7, (1.0, 2.0), p=0.5)
    changed = (half(x, generator=_gen(3)) != x).flatten(1).any(1)
    assert 0 < changed.sum() < len(x)  # some samples blurred, the others returned exactly
    tiny = GaussianBlur(7, (1.0, 2.0), p=1e-9)  # no sample drawn: the empty subset works
    torch.testing.assert_close(tiny(x), x)


def test_bfloat16_autocast_and_bf16_inputs():
    x = _batch()
    for _, aug in ALL:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert aug(x, generator=_gen(0)).dtype == torch.float32
            assert aug(x.bfloat16(), generator=_gen(0)).dtype == torch.bfloat16


def test_no_kornia_module_in_the_training_path_and_modules_move():
    for _, aug in ALL:
        assert not any(type(m).__module__.startswith("kornia") for m in aug.modules())
        assert aug.to("cpu") is aug  # nn.Module plumbing (.to, .cuda) still works


@pytest.mark.parametrize("kwargs,match", [
    (dict(preset="nope"), "preset='nope'.*flowers"),
    (dict(negative="blur"), "negative='blur'.*cutpaste, photometric, cutpaste_small"),
    (dict(cutpaste_mode="diagonal"), "cutpaste_mode='diagonal'.*union"),
    (dict(strength=-1.0), "strength=-1.0"),
    (dict(strength=float("nan")), "strength=nan"),
    (dict(padding_mode="wrap"), "padding_mode='wrap'.*reflection"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(COFTADInputError, match=match):
        make_augmentations(**{"preset": "flowers", "image_size": S, **kwargs})


def test_bad_images_and_generators_raise_clear_errors():
    aug = make_augmentations("flowers", S).positive
    with pytest.raises(COFTADInputError, match=r"\(B, 3, H, W\) float"):
        aug(torch.rand(3, S, S))
    with pytest.raises(COFTADInputError, match=r"\(B, 3, H, W\) float"):
        aug(torch.zeros(2, 3, S, S, dtype=torch.uint8))
    with pytest.raises(COFTADInputError, match="generator must be a torch.Generator"):
        aug(_batch(), generator=0)
    with pytest.raises(COFTADInputError, match="cutpaste mode"):
        CutPaste("diagonal")
    assert set(CUTPASTE_MODES) == {"normal", "scar", "union"}
