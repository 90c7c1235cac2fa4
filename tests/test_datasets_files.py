"""Shared file helpers of the folder-layout loaders (coftad_lib.datasets.files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coftad_lib.datasets import files
from coftad_lib.errors import COFTADInputError, DatasetNotFoundError, ImageReadError


def _png(path: Path, size: tuple[int, int] = (12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size[1], size[0]), np.uint8)).save(path)
    return path


def test_image_files_suffix_hidden_and_depth(tmp_path: Path):
    _png(tmp_path / "b.png")
    _png(tmp_path / "A.PNG")
    (tmp_path / "._b.png").write_bytes(b"\0\5")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "dir.png").mkdir()
    _png(tmp_path / "sub" / "c.png")
    names = [p.name for p in files.image_files(tmp_path)]
    assert names == ["A.PNG", "b.png"]
    assert [p.name for p in files.image_files(tmp_path, hidden=True)] == [
        "._b.png",
        "A.PNG",
        "b.png",
    ]
    deep = files.image_files(tmp_path, recursive=True)
    assert [p.relative_to(tmp_path).as_posix() for p in deep] == ["A.PNG", "b.png", "sub/c.png"]
    assert files.image_files(tmp_path, (".jpg",)) == []


def test_list_images_errors_name_folder_and_hint(tmp_path: Path):
    with pytest.raises(
        DatasetNotFoundError,
        match=r"(?s)absent: folder not found; expected the shots there\.\nget it",
    ):
        files.list_images(tmp_path / "absent", "the shots", how_to_get="get it")
    (tmp_path / "empty").mkdir()
    with pytest.raises(COFTADInputError, match=r"empty: no images \(\.jpg\)"):
        files.list_images(tmp_path / "empty", "the shots", suffixes=(".jpg",))


def test_require_dir(tmp_path: Path):
    assert files.require_dir(tmp_path, "data folder", "how") == tmp_path
    with pytest.raises(DatasetNotFoundError, match=r"(?s)nope: data folder not found\.\nhow"):
        files.require_dir(tmp_path / "nope", "data folder", "how")


def test_check_images_reports_truncation_and_mask_size(tmp_path: Path):
    img = _png(tmp_path / "i.png", (12, 10))
    good_mask = _png(tmp_path / "i_mask.png", (12, 10))
    files.check_images([img], lambda p: good_mask)
    bad_mask = _png(tmp_path / "j_mask.png", (10, 10))
    with pytest.raises(COFTADInputError, match="10x10.*12x10"):
        files.check_images([img], lambda p: bad_mask)
    data = img.read_bytes()
    img.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        files.check_images([img])


def test_task_from_files_ids(tmp_path: Path):
    inside = [tmp_path / "train" / "a.png", tmp_path / "test" / "b.png"]
    outside = Path("/elsewhere/c.png")
    task = files.task_from_files(
        "folder", "t", inside[:1], [inside[1], outside], [0, 1], ["good", "bad"], tmp_path, {"k": 1}
    )
    assert task.train_ids == ["train/a.png"]
    assert task.test_ids == ["test/b.png", "/elsewhere/c.png"]
    assert task.test == [str(inside[1]), str(outside)] and task.test_labels.tolist() == [0, 1]
