"""Your own images as a few-shot anomaly detection task.

Layout::

    <root>/train/            normal images (any depth, e.g. train/good/*.png)
    <root>/test/good/        normal test images   (a folder named good, normal or ok)
    <root>/test/<defect>/    anomalous test images, one folder per anomaly type

or, instead of the test folders, a CSV file with columns ``path,label`` (label 1 = anomaly,
0 = normal; an optional ``kind`` column names the anomaly type; paths relative to ``root``).
This mirrors the MVTec layout, so a category folder of MVTec AD also loads.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import COFTADInputError
from .files import USER_IMAGE_SUFFIXES, require_dir, task_from_files
from .labelled import find_user_images, read_labels_csv
from .sampling import choose, rng_for
from .task import FewShotTask

#: user-defined: no fixed task list
TASKS: list[str] = []

#: test sub-folder names (case-insensitive) that hold normal images; any other folder is an anomaly type
NORMAL_FOLDER_NAMES: tuple[str, ...] = ("good", "normal", "ok")

HOW_TO_GET = """\
Your own data: put normal training images under <root>/train/ and test images under
<root>/test/good/ (normal) and <root>/test/<anomaly type>/ (anomalies); or list the test images in
a CSV with columns path,label (0 normal, 1 anomaly; paths relative to <root>) and pass
labels_csv=<file>."""

_EXPECTED_FILES = f"expected {', '.join(sorted(USER_IMAGE_SUFFIXES))} files"


def _images_under(folder: Path) -> list[Path]:
    """Image files anywhere under ``folder``, sorted; hidden files and folders (``._x.png``) left out."""
    return find_user_images(folder)


def _test_from_folders(test_root: Path) -> tuple[list[Path], list[int], list[str]]:
    require_dir(test_root, "test folder", HOW_TO_GET)
    loose = find_user_images(test_root, recursive=False)
    if loose:
        raise COFTADInputError(
            f"{test_root}: {len(loose)} images lie directly in the test folder (e.g. {loose[0].name}); "
            f"put them in a label folder ({'/'.join(NORMAL_FOLDER_NAMES)} for normal, any other name for anomalies)"
        )
    paths: list[Path] = []
    labels: list[int] = []
    kinds: list[str] = []
    subs = sorted(p for p in test_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subs:
        raise COFTADInputError(
            f"{test_root}: the test folder is empty; put normal test images in {test_root}/good/ and "
            f"anomalies in {test_root}/<defect type>/ (or pass labels_csv=)"
        )
    for sub in subs:
        files = _images_under(sub)
        if not files:
            raise COFTADInputError(f"{sub}: test label folder has no images; {_EXPECTED_FILES}")
        is_normal = sub.name.lower() in NORMAL_FOLDER_NAMES
        paths += files
        labels += [0 if is_normal else 1] * len(files)
        kinds += [sub.name] * len(files)
    return paths, labels, kinds


def _test_from_csv(csv_path: Path, root: Path) -> tuple[list[Path], list[int], list[str]]:
    """Test rows of a labels CSV (checked row by row, see :func:`.labelled.read_labels_csv`), relative to ``root``."""
    rows = read_labels_csv(csv_path, base=root)
    return rows.paths, rows.labels, rows.kinds


def _train_images(
    train_root: Path, shots: int | None, seed: int, name: str
) -> tuple[list[Path], list[Path]]:
    """(the drawn training shots, all training images); 0 or None ``shots`` uses all of them."""
    train_all = _images_under(train_root)
    if not train_all:
        raise COFTADInputError(f"{train_root}: no training images; {_EXPECTED_FILES}")
    if shots is None or shots == 0:
        return train_all, train_all
    train, _ = choose(
        train_all,
        int(shots),
        rng_for(seed, "folder", name, "shots"),
        f"{train_root} (normal training images)",
    )
    return train, train_all


def _test_images(
    root: Path, test_dir: str, labels_csv: str | os.PathLike | None
) -> tuple[list[Path], list[int], list[str], str]:
    """(paths, labels, kinds, where they were listed) of the test set; both labels must occur."""
    if labels_csv is not None:
        csv_path = Path(labels_csv)
        csv_path = csv_path if csv_path.is_absolute() or csv_path.is_file() else root / csv_path
        test, labels, kinds = _test_from_csv(csv_path, root)
        where = str(csv_path)
    else:
        test, labels, kinds = _test_from_folders(root / test_dir)
        where = str(root / test_dir)
    if 0 not in labels or 1 not in labels:
        missing = "normal" if 0 not in labels else "anomalous"
        raise COFTADInputError(
            f"{where}: no {missing} test images; AUROC needs both normal and anomalous images"
        )
    return test, labels, kinds, where


def load(
    root: str | os.PathLike,
    shots: int | None = None,
    seed: int = 0,
    *,
    train_dir: str = "train",
    test_dir: str = "test",
    labels_csv: str | os.PathLike | None = None,
) -> FewShotTask:
    """Build a task from a folder of your own images (layout in the module docstring).

    Args:
        shots: number of normal training images to draw; 0 or None uses all of them.
        labels_csv: CSV with columns path,label[,kind] listing the test images; relative paths
            are resolved against ``root``; a relative ``labels_csv`` is looked up in the working
            directory, then in ``root``.

    Returns:
        FewShotTask whose ``train`` / ``test`` are lists of image paths; ``test_kinds`` are the
        label folder names (or the CSV's kind / "normal" / "anomaly").
    """
    root = require_dir(Path(root), "folder", HOW_TO_GET)
    train_root = require_dir(root / train_dir, "training folder", HOW_TO_GET)
    name = root.name
    train, train_all = _train_images(train_root, shots, seed, name)
    test, labels, kinds, where = _test_images(root, test_dir, labels_csv)
    overlap = {p.resolve() for p in train} & {p.resolve() for p in test}
    if overlap:
        raise COFTADInputError(
            f"{where}: {len(overlap)} test images are also training shots (e.g. {next(iter(overlap))})"
        )

    info = {
        "protocol": "folder",
        "shots": len(train),
        "shots_requested": shots,
        "seed": seed,
        "n_train_available": len(train_all),
        "test_source": "labels_csv" if labels_csv is not None else f"{test_dir}/<label folder>",
        "normal_folder_names": list(NORMAL_FOLDER_NAMES),
    }
    return task_from_files("folder", name, train, test, labels, kinds, root, info)
