"""Image conversion of every input kind and mode, and backbone weight loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from coftad_lib.backbones import build_backbone, resnet_weights_file
from coftad_lib.errors import COFTADInputError, ImageReadError, WeightsUnavailableError
from coftad_lib.images import images_to_tensor


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "RGB", "F"])
def test_every_pil_mode_is_converted(tmp_path, mode):
    arr = (np.arange(32 * 48).reshape(32, 48) % 251).astype(np.uint8)
    if mode == "I;16":
        img = Image.fromarray(arr.astype(np.uint16) * 200)
    elif mode == "F":
        img = Image.fromarray(arr.astype(np.float32) / 7)
    else:
        img = Image.fromarray(arr).convert(mode)
    path = tmp_path / f"img_{mode.replace(';', '')}.{'tif' if mode in ('I;16', 'F') else 'png'}"
    img.save(path)
    t = images_to_tensor([path, img], size=40)
    assert t.shape == (2, 3, 40, 40) and t.dtype == torch.float32
    assert 0.0 <= t.min() and t.max() <= 1.0 and t.std() > 0.05  # content survived the conversion


def test_array_and_tensor_batches_agree():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    a = images_to_tensor(batch, 32)
    b = images_to_tensor(torch.from_numpy(batch).permute(0, 3, 1, 2), 32)
    c = images_to_tensor(list(batch), 32)
    assert torch.allclose(a, b) and torch.allclose(a, c)
    gray = images_to_tensor(torch.rand(2, 1, 32, 32), 32)
    assert gray.shape == (2, 3, 32, 32)


def test_bad_inputs_are_specific(tmp_path):
    with pytest.raises(COFTADInputError, match="empty"):
        images_to_tensor([], 32)
    with pytest.raises(ImageReadError, match="missing.png"):
        images_to_tensor([tmp_path / "missing.png"], 32)
    (tmp_path / "notimg.png").write_text("hello")
    with pytest.raises(ImageReadError, match="notimg.png"):
        images_to_tensor([tmp_path / "notimg.png"], 32)
    with pytest.raises(COFTADInputError, match="single image"):
        images_to_tensor(str(tmp_path / "notimg.png"), 32)
    with pytest.raises(COFTADInputError, match=r"images\[0\]"):
        images_to_tensor([42], 32)


def test_resnet_from_local_weights_file(tmp_path):
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-local.pth"
    torch.save(ref.state_dict(), path)
    net = build_backbone("resnet18", weights_path=path)
    assert torch.equal(net.stem[0].weight, ref.conv1.weight)
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, 512)


def test_resnet_offline_error_says_where_to_put_the_file(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailableError) as err:
        build_backbone("resnet50")
    msg = str(err.value)
    assert str(resnet_weights_file("resnet50")) in msg and "weights_path=" in msg
    assert "resnet50-0676ba61.pth" in msg


def test_resnet_reads_hub_cache(monkeypatch, tmp_path):
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    target = resnet_weights_file("resnet18")
    target.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), target)
    assert build_backbone("resnet18").feature_dim == 512


def test_wrong_weights_file_is_named(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save({"foo": torch.zeros(1)}, path)
    with pytest.raises(WeightsUnavailableError, match="wrong.pth"):
        build_backbone("resnet18", weights_path=path)


def test_lite0_loads_real_imagenet_weights():
    net = build_backbone("efficientnet_lite0").eval()
    rand = build_backbone("efficientnet_lite0", pretrained=False).eval()
    assert not torch.equal(net.stem[0].weight, rand.stem[0].weight)
    x = torch.rand(2, 3, 64, 64)
    assert net(x).shape == (2, 1280)
    assert [m.shape[1] for m in net.feature_maps(x)] == list(net.map_channels)
