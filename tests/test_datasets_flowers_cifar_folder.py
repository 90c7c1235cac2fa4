"""Flowers17, CIFAR-C, folder loaders and the test-set protocols, on generated fixtures and real data."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from coftad_lib.datasets import cifar_c, flowers17, folder, load_task
from coftad_lib.datasets.protocols import imbalanced, subsample_test
from coftad_lib.datasets.task import FewShotTask
from coftad_lib.errors import COFTADInputError, DatasetNotFoundError, ImageReadError
from coftad_lib.images import images_to_tensor

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# ----------------------------------------------------------------------------- Flowers17


def _class_colour(c: int) -> tuple[int, int, int]:
    """Class colour of conftest's ``flowers_root`` fixture."""
    return (15 * c, 255 - 15 * c, 100)


def _decoded_class(path: str) -> int:
    px = np.asarray(Image.open(path).convert("RGB"), dtype=float)[4, 4]
    return int(np.argmin([np.abs(px - _class_colour(c)).sum() for c in range(17)]))


def test_flowers_tasks_are_table_one_pairs_both_ways():
    assert len(flowers17.TASKS) == 8
    pairs = [tuple(t.split("/")) for t in flowers17.TASKS]
    for a, b in pairs:
        assert (b, a) in pairs
    assert flowers17.TASKS[:4] == [
        "Crocus/Bluebell",
        "Bluebell/Crocus",
        "Daffodil/Tulip",
        "Tulip/Daffodil",
    ]
    assert flowers17.ILLEGIBLE_PAIR_CHOICE["chosen"] == "Pansy"


def test_flowers_protocol_counts_classes_and_disjointness(flowers_root):
    task = flowers17.load(flowers_root, shots=5, seed=0, task="Daffodil/Tulip")
    assert isinstance(task, FewShotTask)
    assert task.shots == 5
    assert (task.test_labels == 0).sum() == 70 and (task.test_labels == 1).sum() == 10
    assert not set(task.train) & set(task.test)
    assert len(set(task.test)) == 80
    # Daffodil is class 0, Tulip class 7 in the official order; decode from pixel colours.
    assert {_decoded_class(p) for p in task.train} == {0}
    normal = [p for p, lab in zip(task.test, task.test_labels, strict=True) if lab == 0]
    abnormal = [p for p, lab in zip(task.test, task.test_labels, strict=True) if lab == 1]
    assert {_decoded_class(p) for p in normal} == {0}
    assert {_decoded_class(p) for p in abnormal} == {7}
    assert set(task.test_kinds) == {"Daffodil", "Tulip"}
    assert all(i.startswith("jpg/image_") for i in task.test_ids + task.train_ids)


def test_flowers_deterministic_and_seed_dependent(flowers_root):
    a = flowers17.load(flowers_root, shots=5, seed=3, task="Crocus/Bluebell")
    b = flowers17.load(flowers_root, shots=5, seed=3, task="Crocus/Bluebell")
    c = flowers17.load(flowers_root, shots=5, seed=4, task="Crocus/Bluebell")
    assert a.train == b.train and a.test == b.test
    assert a.test != c.test
    # the test set does not depend on the shot count
    ten = flowers17.load(flowers_root, shots=10, seed=3, task="Crocus/Bluebell")
    assert ten.test == a.test and ten.shots == 10


def test_flowers_root_may_be_jpg_folder_and_pansy_choice_recorded(flowers_root):
    task = flowers17.load(flowers_root / "jpg", shots=5, seed=0, task="Pansy/Windflower")
    assert task.info["pair_choice"]["chosen"] == "Pansy"
    assert {_decoded_class(p) for p in task.train} == {16}
    # through the package dispatcher as well
    same = load_task("flowers17", flowers_root, shots=5, seed=0, task="Pansy/Windflower")
    assert same.test == task.test


def test_flowers_errors(flowers_root, tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        flowers17.load(tmp_path / "nowhere", shots=5, seed=0)
    assert "nowhere" in str(e.value) and "17flowers.tgz" in str(e.value)
    with pytest.raises(COFTADInputError, match="Rose"):
        flowers17.load(flowers_root, shots=5, seed=0, task="Rose/Tulip")
    with pytest.raises(COFTADInputError, match="n_test_normal=70"):
        flowers17.load(flowers_root, shots=11, seed=0)
    # incomplete copy: one tulip missing
    part = tmp_path / "part" / "jpg"
    part.mkdir(parents=True)
    for n in flowers17.species_image_names("Daffodil") + flowers17.species_image_names("Tulip")[1:]:
        os.symlink(flowers_root / "jpg" / n, part / n)
    with pytest.raises(DatasetNotFoundError, match="image_0561.jpg"):
        flowers17.load(part.parent, shots=5, seed=0, task="Daffodil/Tulip")


def test_flowers_truncated_image_named_when_read(flowers_root, tmp_path):
    jpg = tmp_path / "copy" / "jpg"
    jpg.mkdir(parents=True)
    for n in flowers17.species_image_names("Daffodil") + flowers17.species_image_names("Tulip"):
        os.symlink(flowers_root / "jpg" / n, jpg / n)
    task = flowers17.load(jpg.parent, shots=5, seed=0, task="Daffodil/Tulip")
    victim = Path(task.test[0])
    data = victim.read_bytes()
    victim.unlink()
    victim.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match=victim.name):
        images_to_tensor(task.test, 16)


def test_flowers_real_data():
    root = SHARED_DATA / "flowers17"
    if not (root / "jpg").is_dir():
        pytest.skip("../shared/data/flowers17 not present")
    assert len((root / "jpg" / "files.txt").read_text().split()) == 1360
    task = flowers17.load(root, shots=5, seed=0, task="Daffodil/Tulip")
    assert len(task.test) == 80 and task.shots == 5
    assert all(Path(p).is_file() for p in task.train + task.test)
    batch = images_to_tensor(task.train, 32)
    assert batch.shape == (5, 3, 32, 32)


# ----------------------------------------------------------------------------- CIFAR-C

# The standard CIFAR-100 fine -> coarse label list (index = fine label), as published with the
# dataset's python version and widely copied (e.g. "sparse2coarse").
STANDARD_COARSE = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
]  # fmt: skip


def test_cifar100_coarse_mapping_is_standard():
    assert cifar_c.CIFAR100_COARSE_OF_FINE.tolist() == STANDARD_COARSE
    assert cifar_c.CIFAR100_FINE_CLASSES.index("tulip") == 92
    assert np.bincount(cifar_c.CIFAR100_COARSE_OF_FINE).tolist() == [5] * 20
    assert cifar_c.task_labels("cifar100c", "superclass_2") == (
        "superclass_2",
        [54, 62, 70, 82, 92],
    )
    assert cifar_c.task_labels("cifar100c", "flowers")[0] == "superclass_2"


def _write_batch(
    path: Path, images: np.ndarray, labels: np.ndarray, key: bytes = b"labels", extra=None
):
    d = {b"data": images.transpose(0, 3, 1, 2).reshape(len(images), -1), key: labels.tolist()}
    d.update(extra or {})
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


def _official_cifar10(tmp: Path, n_per_class: int = 6, seed: int = 0):
    """Official python batches + official-layout CIFAR-10-C whose rows encode (image, severity)."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(10), n_per_class)
    rng.shuffle(labels)  # official test order interleaves classes
    clean = rng.integers(0, 200, size=(len(labels), 32, 32, 3), dtype=np.uint8)
    batches = tmp / "clean" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    _write_batch(batches / "test_batch", clean, labels)
    train_imgs = []
    for b in range(1, 6):
        tl = np.arange(10).repeat(2)
        ti = rng.integers(0, 255, size=(len(tl), 32, 32, 3), dtype=np.uint8)
        _write_batch(batches / f"data_batch_{b}", ti, tl)
        train_imgs.append((ti, tl))
    croot = tmp / "CIFAR-10-C"
    croot.mkdir()
    n = len(labels)
    for k, name in enumerate(cifar_c.DEFAULT_CORRUPTIONS):
        stack = np.concatenate(
            [(clean.astype(int) + 10 * s + k) % 256 for s in range(1, 6)]
        ).astype(np.uint8)
        np.save(croot / f"{name}.npy", stack)
    np.save(croot / "labels.npy", np.tile(labels, 5).astype(np.uint8))
    assert len(np.load(croot / "labels.npy")) == 5 * n
    return croot, tmp / "clean", clean, labels, train_imgs


def test_cifar10c_official_layout_alignment_and_train_shots(tmp_path):
    croot, clean_root, clean, labels, train_imgs = _official_cifar10(tmp_path)
    task = cifar_c.load(
        croot, shots=3, seed=0, variant="cifar10c", task="cat", clean_root=clean_root
    )
    cat = cifar_c.CIFAR10_CLASSES.index("cat")
    n_cat = int((labels == cat).sum())
    assert task.info["shots_from"] == "train" and task.info["aligned_with_clean"]
    assert task.train.shape == (3, 32, 32, 3) and task.train.dtype == np.uint8
    all_train = np.concatenate([t for t, _ in train_imgs])
    all_train_labels = np.concatenate([lab for _, lab in train_imgs])
    for img in task.train:
        match = np.flatnonzero((all_train == img).all(axis=(1, 2, 3)))
        assert len(match) == 1 and all_train_labels[match[0]] == cat
    assert task.test.shape == (10 * n_cat, 32, 32, 3)
    assert (task.test_labels == 0).sum() == n_cat
    for img, kind, tid, lab in zip(
        task.test, task.test_kinds, task.test_ids, task.test_labels, strict=True
    ):
        idx = int(tid.rsplit("/", 1)[1])
        assert labels[idx] == cat
        if kind == "clean":
            assert lab == 0 and np.array_equal(img, clean[idx])
        else:
            k = cifar_c.DEFAULT_CORRUPTIONS.index(kind)
            # severity 4 block and the same clean image underneath
            assert lab == 1 and np.array_equal(
                img, ((clean[idx].astype(int) + 40 + k) % 256).astype(np.uint8)
            )


def test_cifar10c_shots_from_test_are_removed_with_their_corruptions(tmp_path):
    croot, clean_root, clean, labels, _ = _official_cifar10(tmp_path)
    task = cifar_c.load(
        croot, shots=2, seed=1, task="ship", clean_root=clean_root, shots_from="test"
    )
    shot_ids = set(task.train_ids)
    assert len(shot_ids) == 2
    # normals are "test/<i>", anomalies "<corruption>/<severity>/test/<i>"
    underlying = {
        t if k == "clean" else t.split("/", 2)[2]
        for t, k in zip(task.test_ids, task.test_kinds, strict=True)
    }
    assert not shot_ids & underlying
    n_ship = int((labels == 8).sum())
    assert (task.test_labels == 0).sum() == n_ship - 2
    assert (task.test_labels == 1).sum() == 9 * (n_ship - 2)


def test_cifar10c_subsample_deterministic(tmp_path):
    croot, clean_root, *_ = _official_cifar10(tmp_path)
    kw = dict(task="dog", clean_root=clean_root, max_test_normal=3, max_test_per_corruption=2)
    a = cifar_c.load(croot, shots=2, seed=5, **kw)
    b = cifar_c.load(croot, shots=2, seed=5, **kw)
    assert a.test_ids == b.test_ids and np.array_equal(a.test, b.test)
    assert (a.test_labels == 0).sum() == 3 and (a.test_labels == 1).sum() == 18
    via = load_task("cifar10c", croot, shots=2, seed=5, **kw)
    assert via.test_ids == a.test_ids


def test_cifar100c_superclass(tmp_path):
    rng = np.random.default_rng(0)
    fine = np.tile(np.arange(100), 2)
    clean = rng.integers(0, 255, size=(len(fine), 32, 32, 3), dtype=np.uint8)
    d = tmp_path / "clean" / "cifar-100-python"
    d.mkdir(parents=True)
    coarse = {b"coarse_labels": [STANDARD_COARSE[f] for f in fine]}
    _write_batch(d / "test", clean, fine, key=b"fine_labels", extra=coarse)
    _write_batch(
        d / "train", clean[::-1].copy(), fine[::-1].copy(), key=b"fine_labels", extra=coarse
    )
    croot = tmp_path / "CIFAR-100-C"
    croot.mkdir()
    for name in ("contrast", "fog"):
        np.save(croot / f"{name}.npy", np.concatenate([clean] * 5))
    np.save(croot / "labels.npy", np.tile(fine, 5).astype(np.uint8))
    task = cifar_c.load(
        croot, shots=4, seed=0, variant="cifar100c", task="superclass_17", corruptions=["contrast", "fog"],
        clean_root=tmp_path / "clean",
    )  # fmt: skip
    trees = {cifar_c.CIFAR100_FINE_CLASSES.index(n) for n in cifar_c.CIFAR100_SUPERCLASSES["trees"]}
    normal_idx = [
        int(t.split("/")[1])
        for t, k in zip(task.test_ids, task.test_kinds, strict=True)
        if k == "clean"
    ]
    assert {int(fine[i]) for i in normal_idx} == trees and len(normal_idx) == 10
    assert len(task.test) == 30 and task.name == "superclass_17"
    # a CIFAR-100-C folder must not be read as CIFAR-10-C
    with pytest.raises(COFTADInputError, match="CIFAR-100-C"):
        cifar_c.load(
            croot, shots=1, seed=0, variant="cifar10c", task="cat", clean_root=tmp_path / "clean"
        )


def test_cifar_c_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        cifar_c.load(tmp_path / "missing", shots=10, seed=0)
    assert "missing" in str(e.value) and "zenodo" in str(e.value)
    croot, clean_root, *_ = _official_cifar10(tmp_path)
    with pytest.raises(COFTADInputError, match="zebra"):
        cifar_c.load(croot, shots=1, seed=0, task="zebra", clean_root=clean_root)
    with pytest.raises(COFTADInputError, match="only 6"):
        cifar_c.load(croot, shots=7, seed=0, task="cat", clean_root=clean_root, shots_from="test")
    # truncated .npy
    raw = croot / "fog_like.npy"
    raw.write_bytes((croot / "contrast.npy").read_bytes()[:500])
    with pytest.raises(COFTADInputError, match="fog_like.npy"):
        cifar_c.load(
            croot, shots=1, seed=0, task="cat", clean_root=clean_root, corruptions=["fog_like"]
        )
    # truncated pickle batch
    tb = clean_root / "cifar-10-batches-py" / "test_batch"
    tb.write_bytes(tb.read_bytes()[:1000])
    with pytest.raises(COFTADInputError, match="test_batch"):
        cifar_c.load(croot, shots=1, seed=0, task="cat", clean_root=clean_root)


def test_cifar_batch_reader_refuses_foreign_objects(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": os.getcwd}, f)
    with pytest.raises(COFTADInputError, match="refusing"):
        cifar_c.read_clean(tmp_path, "cifar10c")


def _class_folder(root: Path, n_per_class: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for cls in cifar_c.CIFAR10_CLASSES:
        (root / cls).mkdir(parents=True)
        for i in range(n_per_class):
            img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / cls / f"{i:04d}.png")
            out[f"{cls}/{i:04d}.png"] = img
    return out


def test_cifar_clean_folder_with_official_files_warns_when_shots_from_test(tmp_path):
    croot, *_ = _official_cifar10(tmp_path)
    _class_folder(tmp_path / "folder" / "test", 4)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        task = cifar_c.load(croot, shots=2, seed=0, task="cat", clean_root=tmp_path / "folder")
    assert not task.info["aligned_with_clean"] and task.info["shots_from"] == "test"
    assert any("cannot be matched" in str(x.message) for x in w)
    assert (task.test_labels == 0).sum() == 2


def test_cifar_real_clean_folder_reads():
    root = SHARED_DATA / "cifar10" / "test"
    if not root.is_dir():
        pytest.skip("../shared/data/cifar10 not present")
    assert cifar_c.infer_variant(root) == "cifar10c"
    s = cifar_c.read_clean(root, "cifar10c", labels=[0, 9], limit_per_class=5)
    assert s.images.shape == (10, 32, 32, 3) and s.labels.tolist() == [0] * 5 + [9] * 5
    assert s.ids[0].startswith("airplane/") and s.ids[-1].startswith("truck/")


# ----------------------------------------------------------------------------- folder


def _img(path: Path, value: int = 128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (value, value, value)).save(path)


@pytest.fixture()
def own_root(tmp_path) -> Path:
    root = tmp_path / "widgets"
    for i in range(4):
        _img(root / "train" / f"n{i}.png")
    _img(root / "test" / "good" / "g0.png")
    _img(root / "test" / "good" / "g1.jpg")
    _img(root / "test" / "scratch" / "s0.png", 10)
    _img(root / "test" / "crack" / "c0.png", 20)
    return root


def test_folder_layout(own_root):
    task = folder.load(own_root, shots=2, seed=0)
    assert task.shots == 2 and task.name == "widgets"
    assert all(i.startswith("train/") for i in task.train_ids)
    labels = dict(zip(task.test_ids, task.test_labels.tolist(), strict=True))
    assert labels == {
        "test/crack/c0.png": 1,
        "test/good/g0.png": 0,
        "test/good/g1.jpg": 0,
        "test/scratch/s0.png": 1,
    }
    assert sorted(set(task.test_kinds)) == ["crack", "good", "scratch"]
    assert folder.load(own_root, shots=None, seed=0).shots == 4
    assert folder.load(own_root, shots=0, seed=0).shots == 4
    assert load_task("folder", own_root, shots=3, seed=1).shots == 3
    assert folder.TASKS == []


def test_folder_csv(own_root):
    csv_path = own_root / "labels.csv"
    csv_path.write_text("path,label\ntest/good/g0.png,0\ntest/scratch/s0.png,1\n")
    task = folder.load(own_root, shots=1, seed=0, labels_csv="labels.csv")
    assert task.test_labels.tolist() == [0, 1] and task.test_kinds == ["normal", "anomaly"]
    csv_path.write_text("path,label\ntest/good/g0.png,0\ntest/scratch/s0.png,2\n")
    with pytest.raises(COFTADInputError, match="line 3"):
        folder.load(own_root, shots=1, seed=0, labels_csv=csv_path)
    csv_path.write_text("path,label\ntest/good/nope.png,0\n")
    with pytest.raises(COFTADInputError, match="nope.png"):
        folder.load(own_root, shots=1, seed=0, labels_csv=csv_path)


def test_folder_errors(own_root, tmp_path):
    with pytest.raises(COFTADInputError, match=r"only 4"):
        folder.load(own_root, shots=5, seed=0)
    with pytest.raises(DatasetNotFoundError, match="elsewhere"):
        folder.load(tmp_path / "elsewhere", shots=1, seed=0)
    (own_root / "test" / "dent").mkdir()
    with pytest.raises(COFTADInputError, match="dent"):
        folder.load(own_root, shots=1, seed=0)
    (own_root / "test" / "dent").rmdir()
    for p in (own_root / "test" / "crack").iterdir():
        p.unlink()
    (own_root / "test" / "crack").rmdir()
    for p in (own_root / "test" / "scratch").iterdir():
        p.unlink()
    (own_root / "test" / "scratch").rmdir()
    with pytest.raises(COFTADInputError, match="no anomalous"):
        folder.load(own_root, shots=1, seed=0)


# ----------------------------------------------------------------------------- protocols


def _array_task(n_normal=30, n_anom=20) -> FewShotTask:
    m = n_normal + n_anom
    test = np.arange(m, dtype=np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3)
    labels = np.r_[np.zeros(n_normal), np.ones(n_anom)].astype(int)
    return FewShotTask(
        dataset="toy", name="t", train=test[:2], test=test, test_labels=labels,
        test_kinds=["n" if lab == 0 else "a" for lab in labels], train_ids=["x", "y"],
        test_ids=[str(i) for i in range(m)],
    )  # fmt: skip


def test_imbalanced_fixed_normals_nested_anomalies():
    task = _array_task()
    five = imbalanced(task, n_normal=25, n_anomalies=5, seed=0)
    ten = imbalanced(task, n_normal=25, n_anomalies=10, seed=0)
    assert (five.test_labels == 0).sum() == 25 and (five.test_labels == 1).sum() == 5
    n5 = [i for i, lab in zip(five.test_ids, five.test_labels, strict=True) if lab == 0]
    n10 = [i for i, lab in zip(ten.test_ids, ten.test_labels, strict=True) if lab == 0]
    assert n5 == n10
    a5 = {i for i, lab in zip(five.test_ids, five.test_labels, strict=True) if lab == 1}
    a10 = {i for i, lab in zip(ten.test_ids, ten.test_labels, strict=True) if lab == 1}
    assert a5 < a10
    # array content follows the ids
    assert [int(x[0, 0, 0]) for x in five.test] == [int(i) for i in five.test_ids]
    assert imbalanced(task, 25, 5, seed=0).test_ids == five.test_ids
    assert imbalanced(task, 25, 5, seed=1).test_ids != five.test_ids
    assert five.info["imbalanced"]["n_anomalies"] == 5
    with pytest.raises(COFTADInputError, match="20 anomalous"):
        imbalanced(task, n_normal=10, n_anomalies=21)
    with pytest.raises(COFTADInputError, match="30 normal"):
        imbalanced(task, n_normal=500, n_anomalies=10)


def test_subsample_test_lists_arrays_tensors(own_root):
    task = folder.load(own_root, shots=1, seed=0)
    same = subsample_test(task, None, None, seed=0)
    assert same.test == task.test
    sub = subsample_test(task, max_normal=1, max_anomalies=1, seed=0)
    assert (
        isinstance(sub.test, list)
        and len(sub.test) == 2
        and sorted(sub.test_labels.tolist()) == [0, 1]
    )
    arr = _array_task()
    t = FewShotTask(**{**arr.__dict__, "test": torch.from_numpy(arr.test).permute(0, 3, 1, 2)})
    sub_t = subsample_test(t, max_normal=4, max_anomalies=3, seed=2)
    assert isinstance(sub_t.test, torch.Tensor) and sub_t.test.shape == (7, 3, 2, 2)
    assert [int(x[0, 0, 0]) for x in sub_t.test] == [int(i) for i in sub_t.test_ids]
    with pytest.raises(COFTADInputError, match="max_normal"):
        subsample_test(task, max_normal=0)
