"""A generated texture task: the stand-in when no real dataset is on the machine.

Normal images are striped textures with random phase, frequency and pixel noise; anomalies are the
same textures with one bright red square (a "defect" of a quarter of the image side). It needs no
files, so the method tour (notebook 00) and the tests can always run. It is not one of the paper's
datasets; nothing measured on it says anything about the paper's numbers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import COFTADInputError
from .sampling import rng_for
from .task import FewShotTask

TASKS: list[str] = ["stripes"]

HOW_TO_GET = "Nothing to get: the synthetic texture task is generated in memory (coftad_lib.datasets.synthetic)."


def make_texture_arrays(n_train: int = 6, n_normal: int = 20, n_anom: int = 20, size: int = 64,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stripe textures; anomalies carry a bright red square of side ``size // 4``.

    Returns:
        train (n_train, size, size, 3) uint8, test (n_normal + n_anom, size, size, 3) uint8 with
        the normals first, labels (n_normal + n_anom,) int64 (1 = anomaly).
    """
    for name, val in (("n_train", n_train), ("n_normal", n_normal), ("n_anom", n_anom)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 0:
            raise COFTADInputError(f"{name}={val!r}: expected an int >= 0")
    if size < 8:
        raise COFTADInputError(f"size={size}: expected at least 8 pixels")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]

    def texture(n: int) -> np.ndarray:
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
        freq = rng.uniform(0.45, 0.55, size=(n, 1, 1))
        base = 0.5 + 0.25 * np.sin(freq * xx[None] + phase) + rng.normal(0, 0.03, size=(n, size, size))
        return np.stack([base, base * 0.9, base * 0.6], axis=-1)

    train, normal, anom = texture(n_train), texture(n_normal), texture(n_anom)
    s = size // 4
    for img in anom:
        y, x = rng.integers(0, size - s, size=2)
        img[y : y + s, x : x + s] = [1.0, 0.1, 0.1]

    def to_u8(a: np.ndarray) -> np.ndarray:
        return (np.clip(a, 0, 1) * 255).astype(np.uint8)

    test = np.concatenate([to_u8(normal), to_u8(anom)])
    labels = np.array([0] * n_normal + [1] * n_anom, dtype=np.int64)
    return to_u8(train), test, labels


def write_texture_folder(root: str | os.PathLike, n_train: int = 6, n_normal: int = 20, n_anom: int = 20,
                         size: int = 64, seed: int = 0, defect: str = "defect") -> Path:
    """Write :func:`make_texture_arrays` as a folder dataset: ``train/``, ``test/good/``, ``test/<defect>/``.

    The layout of :mod:`coftad_lib.datasets.folder` and of a user's data; PNG files ``NNN.png``.
    Returns ``root``.
    """
    from PIL import Image

    root = Path(root)
    train, test, labels = make_texture_arrays(n_train, n_normal, n_anom, size=size, seed=seed)
    items = [(root / "train", a) for a in train]
    items += [(root / "test" / (defect if y else "good"), a) for a, y in zip(test, labels, strict=True)]
    for i, (folder, arr) in enumerate(items):
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(folder / f"{i:03d}.png")
    return root


def load(root: str | os.PathLike | None = None, shots: int = 5, seed: int = 0, *, task: str = "stripes",
         n_test_normal: int = 20, n_test_abnormal: int = 20, size: int = 64) -> FewShotTask:
    """The texture task as a :class:`FewShotTask` (``root`` is ignored: nothing is read from disk).

    Args:
        shots: normal training images k.
        seed: generation seed (the images depend on it and on nothing else).
        n_test_normal / n_test_abnormal: test images of each label.
        size: image side in pixels.
    """
    if task not in TASKS:
        raise COFTADInputError(f"task={task!r}: the synthetic dataset has the tasks {', '.join(TASKS)}")
    if shots < 1:
        raise COFTADInputError(f"shots={shots}: at least one training image is needed")
    gen_seed = int(rng_for(seed, "synthetic", task).integers(2**31))
    train, test, labels = make_texture_arrays(shots, n_test_normal, n_test_abnormal, size, gen_seed)
    return FewShotTask(
        dataset="synthetic", name=task, train=train, test=test, test_labels=labels,
        test_kinds=["normal" if v == 0 else "red_square" for v in labels],
        train_ids=[f"train/{i}" for i in range(len(train))], test_ids=[f"test/{i}" for i in range(len(test))],
        info={"protocol": "generated stripe textures; anomalies carry a red square", "shots": shots, "seed": seed,
              "n_test_normal": n_test_normal, "n_test_abnormal": n_test_abnormal, "size": size},
    )
