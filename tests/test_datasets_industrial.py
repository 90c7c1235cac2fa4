"""Industrial dataset loaders (paper Sec. IV-A): MVTec AD, Magnetic Tile, AITEX and SemiCon crops.

Fixtures are generated under tmp_path in each dataset's documented layout; the real MVTec
``bottle`` subset in ../shared/data is used when present.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coftad_lib.datasets import aitex, load_task, magnetic_tile, mvtec, semicon
from coftad_lib.errors import COFTADInputError, DatasetNotFoundError, ImageReadError
from coftad_lib.images import images_to_tensor

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _img(path: Path, size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> Path:
    """Random image of ``size`` (W, H) written at ``path`` (format from the ending)."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], len(mode))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)
    return path


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ------------------------------------------------------------------ MVTec AD


@pytest.fixture
def mvtec_root(tmp_path: Path) -> Path:
    root = tmp_path / "mvtec_ad"
    cat = root / "bottle"
    for i in range(8):
        _img(cat / "train" / "good" / f"{i:03d}.png", (40, 40), seed=i)
    for i in range(3):
        _img(cat / "test" / "good" / f"{i:03d}.png", (40, 40), seed=10 + i)
    for kind in ("broken_large", "contamination"):
        for i in range(2):
            _img(cat / "test" / kind / f"{i:03d}.png", (40, 40), seed=20 + i)
            _img(cat / "ground_truth" / kind / f"{i:03d}_mask.png", (40, 40), mode="L", seed=30 + i)
    return root


def test_mvtec_tasks_are_table_iv_columns():
    assert mvtec.TASKS[:10] == ["bottle", "cable", "capsule", "hazelnut", "metal_nut", "pill", "screw",
                                "toothbrush", "transistor", "zipper"]  # fmt: skip
    assert mvtec.TASKS[10:] == ["carpet", "grid", "leather", "tile", "wood"]


def test_mvtec_protocol(mvtec_root: Path):
    task = mvtec.load(mvtec_root, shots=5, seed=0, task="bottle")
    assert task.shots == 5 and task.name == "bottle" and task.dataset == "mvtec"
    assert all("/train/good/" in p for p in task.train)
    assert len(set(task.train)) == 5
    assert len(task.test) == 7
    assert task.test_labels.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert task.test_kinds == ["good"] * 3 + ["broken_large"] * 2 + ["contamination"] * 2
    assert task.test_ids[3] == "bottle/test/broken_large/000.png"
    assert all(Path(p).is_file() for p in task.test)
    # deterministic per seed; other seeds draw other shots
    assert mvtec.load(mvtec_root, 5, 0, task="bottle").train == task.train
    assert any(mvtec.load(mvtec_root, 5, s, task="bottle").train != task.train for s in range(1, 6))
    # the dispatcher reaches the same loader; the category folder itself is accepted as root
    assert load_task("mvtec", mvtec_root, shots=5, seed=0, task="bottle").train == task.train
    assert mvtec.load(mvtec_root / "bottle", 5, 0, task="bottle").train == task.train
    assert mvtec.mask_for(task.test[3]) == mvtec_root / "bottle/ground_truth/broken_large/000_mask.png"
    assert mvtec.mask_for(task.test[0]) is None


def test_mvtec_skips_hidden_resource_forks(mvtec_root: Path):
    (mvtec_root / "bottle" / "test" / "good" / "._000.png").write_bytes(b"\0\5\x16\x07")
    task = mvtec.load(mvtec_root, 2, 0)
    assert task.test_kinds.count("good") == 3


def test_mvtec_missing_folders(tmp_path: Path, mvtec_root: Path):
    with pytest.raises(DatasetNotFoundError, match="mvtec.com") as info:
        mvtec.load(tmp_path / "nowhere", 5, 0)
    assert str(tmp_path / "nowhere") in str(info.value)
    with pytest.raises(DatasetNotFoundError, match="'cable' not found.*bottle"):
        mvtec.load(mvtec_root, 5, 0, task="cable")


def test_mvtec_empty_defect_folder(mvtec_root: Path):
    empty = mvtec_root / "bottle" / "test" / "scratch"
    empty.mkdir()
    with pytest.raises(COFTADInputError, match="scratch"):
        mvtec.load(mvtec_root, 5, 0)


def test_mvtec_truncated_image(mvtec_root: Path):
    bad = mvtec_root / "bottle" / "test" / "contamination" / "001.png"
    _truncate(bad)
    with pytest.raises(ImageReadError, match="truncated") as info:
        mvtec.load(mvtec_root, 5, 0)
    assert str(bad) in str(info.value)


def test_mvtec_mask_of_wrong_size(mvtec_root: Path):
    mask = _img(mvtec_root / "bottle" / "ground_truth" / "broken_large" / "001_mask.png", (40, 30), mode="L")
    with pytest.raises(COFTADInputError, match="40x30.*40x40") as info:
        mvtec.load(mvtec_root, 5, 0)
    assert str(mask) in str(info.value)


def test_mvtec_too_few_normals(mvtec_root: Path):
    with pytest.raises(COFTADInputError, match="asked for 10 items but only 8"):
        mvtec.load(mvtec_root, 10, 0)


@pytest.mark.realdata
def test_mvtec_real_bottle_subset():
    root = SHARED_DATA / "mvtec_ad"
    if not (root / "bottle").is_dir():
        pytest.skip("../shared/data/mvtec_ad/bottle is not present")
    task = mvtec.load(root, shots=5, seed=0, task="bottle")
    assert task.shots == 5
    assert int((task.test_labels == 0).sum()) == 20 and int(task.test_labels.sum()) == 63
    assert set(task.test_kinds) == {"good", "broken_large", "broken_small", "contamination"}
    assert images_to_tensor(task.train[:2], 32).shape == (2, 3, 32, 32)


# ------------------------------------------------------------------ Magnetic Tile


def _mt_tree(base: Path, n_free: int = 8, n_defect: int = 2) -> Path:
    sizes = [(30, 44), (52, 36), (40, 40)]
    k = 0
    for folder, n in [("MT_Free", n_free)] + [(f, n_defect) for f in magnetic_tile.DEFECT_FOLDERS]:
        for _i in range(n):
            size = sizes[k % 3]
            k += 1
            jpg = _img(base / folder / "Imgs" / f"exp1_num_{k}.jpg", size, mode="L", seed=k)
            _img(jpg.with_suffix(".png"), size, mode="L", seed=100 + k)
    return base


def test_magnetic_tile_protocol(tmp_path: Path):
    root = _mt_tree(tmp_path / "mt")
    task = magnetic_tile.load(root, shots=3, seed=0)
    assert magnetic_tile.TASKS == ["magnetic_tile"]
    assert task.shots == 3 and all("/MT_Free/Imgs/" in p for p in task.train)
    assert len(task.test) == 5 + 5 * 2
    assert task.test_kinds[:5] == ["Free"] * 5
    assert sorted(set(task.test_kinds[5:])) == ["Blowhole", "Break", "Crack", "Fray", "Uneven"]
    assert task.test_labels.tolist() == [0] * 5 + [1] * 10
    assert not set(task.train) & set(task.test)
    assert load_task("magnetic_tile", root, shots=3, seed=0).test == task.test
    # grayscale JPEGs of varying size become 3-channel tensors
    assert images_to_tensor(task.test[:3], 24).shape == (3, 3, 24, 24)


def test_magnetic_tile_accepts_unzipped_archive_folder(tmp_path: Path):
    _mt_tree(tmp_path / "dl" / "Magnetic-tile-defect-datasets.-master")
    task = magnetic_tile.load(tmp_path / "dl", shots=2, seed=1)
    assert len(task.test) == 6 + 10


def test_magnetic_tile_errors(tmp_path: Path):
    root = _mt_tree(tmp_path / "mt")
    with pytest.raises(DatasetNotFoundError, match="abin24"):
        magnetic_tile.load(tmp_path / "absent", 2, 0)
    with pytest.raises(COFTADInputError, match="only 8"):
        magnetic_tile.load(root, 9, 0)
    jpg = next((root / "MT_Crack" / "Imgs").glob("*.jpg"))
    _img(jpg.with_suffix(".png"), (10, 10), mode="L")
    with pytest.raises(COFTADInputError, match="10x10") as info:
        magnetic_tile.load(root, 2, 0)
    assert str(jpg.with_suffix(".png")) in str(info.value)
    jpg.with_suffix(".png").unlink()  # masks are optional for image-level scores
    magnetic_tile.load(root, 2, 0)
    _truncate(jpg)
    with pytest.raises(ImageReadError, match="truncated"):
        magnetic_tile.load(root, 2, 0)
    for f in (root / "MT_Fray" / "Imgs").iterdir():
        f.unlink()
    with pytest.raises(COFTADInputError, match="MT_Fray"):
        magnetic_tile.load(root, 2, 0, check_files=False)
    (root / "MT_Fray" / "Imgs").rmdir()
    with pytest.raises(DatasetNotFoundError, match="MT_Fray"):
        magnetic_tile.load(root, 2, 0, check_files=False)


# ------------------------------------------------------------------ AITEX / SemiCon crops folders


def _crops_dir(root: Path, n_normal: int, n_defect: int) -> Path:
    rows = []
    for label, n in ((0, n_normal), (1, n_defect)):
        for i in range(n):
            name = f"{'defect' if label else 'normal'}/c{i:03d}.png"
            _img(root / name, (16, 16), mode="L", seed=i + 1000 * label)
            rows.append({"file": name, "label": label, "kind": "defect_002" if label else "normal"})
    with open(root / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["file", "label", "kind"])
        w.writeheader()
        w.writerows(rows)
    return root


def test_aitex_loader_protocol(tmp_path: Path):
    root = _crops_dir(tmp_path / "crops", n_normal=20, n_defect=6)
    t5 = aitex.load(root, shots=5, seed=0, n_test_normal=10)
    assert t5.shots == 5 and len(t5.test) == 16
    assert t5.test_labels.tolist() == [0] * 10 + [1] * 6
    assert set(t5.test_kinds) == {"normal", "defect_002"}
    assert not set(t5.train) & set(t5.test)
    assert all(Path(p).is_file() for p in t5.train + t5.test)
    # the test set does not depend on k, so rows of a table share it
    t10 = aitex.load(root, shots=10, seed=0, n_test_normal=10)
    assert t10.test == t5.test and len(t10.train) == 10
    assert any(aitex.load(root, 5, s, n_test_normal=10).test != t5.test for s in range(1, 6))
    assert load_task("aitex", root, shots=5, seed=0, n_test_normal=10).train == t5.train


def test_aitex_loader_errors(tmp_path: Path):
    root = _crops_dir(tmp_path / "crops", n_normal=20, n_defect=3)
    with pytest.raises(COFTADInputError, match=r"20 normal.*n_test_normal=600.*smaller n_test_normal"):
        aitex.load(root, shots=5, seed=0)
    (root / "normal" / "c003.png").unlink()
    with pytest.raises(DatasetNotFoundError, match="c003.png"):
        aitex.load(root, 5, 0, n_test_normal=10)
    (root / "manifest.csv").unlink()
    with pytest.raises(DatasetNotFoundError, match="(?s)manifest.csv.*aitex_crops"):
        aitex.load(root, 5, 0, n_test_normal=10)
    with pytest.raises(DatasetNotFoundError, match="aitex.es"):
        aitex.load(tmp_path / "absent", 5, 0)


def test_aitex_loader_reports_preparation_notes(tmp_path: Path):
    """Notes of the manifest and the left-out scans reach task.info; a folder without them adds nothing."""
    root = _crops_dir(tmp_path / "crops", n_normal=12, n_defect=2)
    assert not {"notes", "left_out"} & set(aitex.load(root, 2, 0, n_test_normal=5).info)
    with open(root / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["source"] = "Defect_images/0044_019_04.png" if r["label"] == "1" else f"NODefect_images/f/{r['file'][-8:]}"
        r["note"] = "defect = union of 2 masks" if r["label"] == "1" else ""
    with open(root / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["file", "label", "kind", "source", "note"])
        w.writeheader()
        w.writerows(rows)
    (root / "left_out.csv").write_text("source,reason\nDefect_images/0100_025_08.png,no mask\n")
    info = aitex.load(root, 2, 0, n_test_normal=5).info
    assert info["notes"] == {"Defect_images/0044_019_04.png": "defect = union of 2 masks"}
    assert info["left_out"] == ["Defect_images/0100_025_08.png: no mask"]


def test_semicon_loader_counts(tmp_path: Path):
    root = _crops_dir(tmp_path / "slices", n_normal=15, n_defect=6)
    task = semicon.load(root, shots=3, seed=0, n_test_normal=8, n_test_defect=4)
    assert task.test_labels.tolist() == [0] * 8 + [1] * 4
    assert semicon.TASKS == ["semicon"] and "private" in semicon.HOW_TO_GET
    with pytest.raises(COFTADInputError, match=r"6 defect.*n_test_defect=7"):
        semicon.load(root, 3, 0, n_test_normal=8, n_test_defect=7)
    with pytest.raises(COFTADInputError, match=r"15 normal.*n_test_normal=500"):
        semicon.load(root, 3, 0)
