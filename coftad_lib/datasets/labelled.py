"""The one loader of a user's labelled images: a folder in the MVTec layout, or a labels CSV.

Two forms of labelled data (what ``python -m coftad_lib evaluate DATA`` reads):

- a **folder** ``DATA/train/`` (normal images), ``DATA/test/good/`` (normal test images; a folder
  named good, normal or ok) and ``DATA/test/<defect>/`` (anomalies, one folder per kind), MVTec's
  layout (:func:`load_folder`; registered as the ``"folder"`` dataset by :mod:`.folder`); instead
  of the test folders a labels CSV may list the test images (``labels_csv=``);
- a **CSV file** with a header ``path,label[,kind][,split]``: label 0 = normal, 1 = anomaly. Rows
  with ``split`` = ``train`` are the normal shots; without a split column, ``shots`` normal rows
  (default :data:`DEFAULT_CSV_SHOTS`) are drawn with the seed as shots and every other row is a
  test image.

One path convention for every CSV: **relative paths are relative to the CSV file's folder**.
One rule for both forms: an image is never both a training shot and a test image.
Listing folders and checking that files decode: :mod:`.user_images` (re-exported here).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import COFTADInputError, DatasetNotFoundError
from .files import USER_IMAGE_SUFFIXES, relative_id, require_dir, task_from_files
from .sampling import choose, rng_for
from .task import FewShotTask
from .user_images import (
    UnreadableImagesError,
    check_readable,
    expand_inputs,
    find_user_images,
    user_images,
)

#: normal shots drawn from a CSV that has no ``split`` column
DEFAULT_CSV_SHOTS = 5


@dataclass
class LabelRows:
    """The rows of a labels CSV: image paths with (M,) labels, kinds and splits ("" = not given)."""

    paths: list[Path]
    labels: list[int]
    kinds: list[str]
    splits: list[str]


def read_labels_csv(csv_path: str | os.PathLike, base: str | os.PathLike | None = None) -> LabelRows:
    """Read ``path,label[,kind][,split]`` rows; relative paths resolve against ``base`` (default: the CSV's folder).

    Raises:
        DatasetNotFoundError: the CSV is missing.
        COFTADInputError: no header with path and label, no rows, or a row (named by its line
            number) whose image is missing, whose label is not 0 or 1, or whose split is not
            train/test.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetNotFoundError(f"{csv_path}: labels CSV not found")
    base = csv_path.parent if base is None else Path(base)
    rows = LabelRows([], [], [], [])
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            cols = [c.strip().lower() for c in (reader.fieldnames or []) if c is not None]
            if "path" not in cols or "label" not in cols:
                raise COFTADInputError(
                    f"{csv_path}: expected a header with columns path,label (optionally kind, split), "
                    f"got {reader.fieldnames}")
            for line_no, raw in enumerate(reader, start=2):
                _add_row(rows, raw, csv_path, line_no, base)
    except UnicodeDecodeError as exc:
        raise COFTADInputError(f"{csv_path}: not a UTF-8 text CSV ({exc})") from exc
    if not rows.paths:
        raise COFTADInputError(f"{csv_path}: no rows below the header; expected one row per image")
    return rows


def _add_row(rows: LabelRows, raw: dict, csv_path: Path, line_no: int, base: Path) -> None:
    row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
    if not row["path"]:
        raise COFTADInputError(f"{csv_path}, line {line_no}: empty path")
    p = Path(row["path"])
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise COFTADInputError(f"{csv_path}, line {line_no}: image {p} not found")
    if row["label"] not in ("0", "1"):
        raise COFTADInputError(f"{csv_path}, line {line_no}: label {row['label']!r}; expected 0 (normal) or 1 (anomaly)")
    split = row.get("split", "").lower()
    if split not in ("", "train", "test"):
        raise COFTADInputError(f"{csv_path}, line {line_no}: split {row['split']!r}; expected train or test")
    if split == "train" and row["label"] != "0":
        raise COFTADInputError(f"{csv_path}, line {line_no}: a train row must be normal (label 0)")
    label = int(row["label"])
    rows.paths.append(p)
    rows.labels.append(label)
    rows.kinds.append(row.get("kind") or ("normal" if label == 0 else "anomaly"))
    rows.splits.append(split)


#: test sub-folder names (case-insensitive) that hold normal images; any other folder is an anomaly type
NORMAL_FOLDER_NAMES: tuple[str, ...] = ("good", "normal", "ok")

HOW_TO_GET = """\
Your own data: put normal training images under <root>/train/ and test images under
<root>/test/good/ (normal) and <root>/test/<anomaly type>/ (anomalies); or list the test images in
a CSV with columns path,label (0 normal, 1 anomaly; paths relative to the CSV file) and pass
labels_csv=<file>."""

_EXPECTED_FILES = f"expected {', '.join(sorted(USER_IMAGE_SUFFIXES))} files"


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
        files = find_user_images(sub)
        if not files:
            raise COFTADInputError(f"{sub}: test label folder has no images; {_EXPECTED_FILES}")
        is_normal = sub.name.lower() in NORMAL_FOLDER_NAMES
        paths += files
        labels += [0 if is_normal else 1] * len(files)
        kinds += [sub.name] * len(files)
    return paths, labels, kinds


def _train_images(
    train_root: Path, shots: int | None, seed: int, name: str
) -> tuple[list[Path], list[Path]]:
    """(the drawn training shots, all training images); 0 or None ``shots`` uses all of them."""
    train_all = find_user_images(train_root)
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
        rows = read_labels_csv(csv_path)  # paths relative to the CSV, as every CSV's
        test, labels, kinds = rows.paths, rows.labels, rows.kinds
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


def load_folder(
    root: str | os.PathLike,
    shots: int | None = None,
    seed: int = 0,
    *,
    train_dir: str = "train",
    test_dir: str = "test",
    labels_csv: str | os.PathLike | None = None,
) -> FewShotTask:
    """Build a task from a folder of your own images in the MVTec layout (module docstring).

    Args:
        shots: number of normal training images to draw; 0 or None uses all of them.
        labels_csv: CSV with columns path,label[,kind] listing the test images; relative paths
            in it are relative to the CSV file's folder; a relative ``labels_csv`` is looked up in
            the working directory, then in ``root``.

    Returns:
        FewShotTask whose ``train`` / ``test`` are lists of image paths; ``test_kinds`` are the
        label folder names (or the CSV's kind / "normal" / "anomaly").
    """
    root = require_dir(Path(root), "folder", HOW_TO_GET)
    train_root = require_dir(root / train_dir, "training folder", HOW_TO_GET)
    name = root.name
    train, train_all = _train_images(train_root, shots, seed, name)
    test, labels, kinds, where = _test_images(root, test_dir, labels_csv)
    _refuse_overlap(train, test, where)

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


def _refuse_overlap(train: list[Path], test: list[Path], where: str) -> None:
    """An image both a training shot and a test image would inflate AUROC: refused (folders and CSVs alike)."""
    overlap = sorted({p.resolve() for p in train} & {p.resolve() for p in test})
    if overlap:
        raise COFTADInputError(
            f"{where}: {len(overlap)} test images are also training shots (e.g. {overlap[0]}); list each "
            "image once, as a training shot or as a test image")


def _task_from_csv(csv_path: Path, shots: int | None, seed: int) -> FewShotTask:
    rows = read_labels_csv(csv_path)
    idx = range(len(rows.paths))
    if any(rows.splits):
        train_idx = [i for i in idx if rows.splits[i] == "train"]
        if not train_idx:
            raise COFTADInputError(f"{csv_path}: a split column but no train rows; mark normal shots split=train")
        if shots:
            train_idx, _ = choose(train_idx, int(shots), rng_for(seed, "labelled", csv_path.stem, "shots"),
                                  f"{csv_path} (train rows)")
        test_idx = [i for i in idx if rows.splits[i] != "train"]
    else:
        normal = [i for i in idx if rows.labels[i] == 0]
        k = int(shots or DEFAULT_CSV_SHOTS)
        train_idx, _ = choose(normal, k, rng_for(seed, "labelled", csv_path.stem, "shots"),
                              f"{csv_path} (normal rows, label 0)")
        chosen = set(train_idx)
        test_idx = [i for i in idx if i not in chosen]
    _refuse_overlap([rows.paths[i] for i in train_idx], [rows.paths[i] for i in test_idx], str(csv_path))
    info = {"protocol": "labels CSV", "csv": str(csv_path), "shots": len(train_idx), "shots_requested": shots,
            "seed": seed, "split_column": any(rows.splits)}
    test = [rows.paths[i] for i in test_idx]
    return FewShotTask(
        dataset="labelled", name=csv_path.stem, train=[str(rows.paths[i]) for i in train_idx],
        test=[str(p) for p in test], test_labels=[rows.labels[i] for i in test_idx],
        test_kinds=[rows.kinds[i] for i in test_idx],
        train_ids=[relative_id(rows.paths[i], csv_path.parent) for i in train_idx],
        test_ids=[relative_id(p, csv_path.parent) for p in test], info=info)


def _drop_unreadable(task: FewShotTask, skip_bad: bool, progress: bool) -> FewShotTask:
    paths = [Path(p) for p in [*task.train, *task.test]]
    _, bad = check_readable(paths, skip_bad=skip_bad, what="images", progress=progress)
    if not bad:
        return task
    bad_set = {str(p) for p in bad}
    keep_tr = [i for i, p in enumerate(task.train) if p not in bad_set]
    keep_te = [i for i, p in enumerate(task.test) if p not in bad_set]
    if not keep_tr:
        raise COFTADInputError(f"{task.name}: every training image is unreadable")
    info = dict(task.info, skipped_unreadable=[str(p) for p in bad])
    return FewShotTask(
        dataset=task.dataset, name=task.name, train=[task.train[i] for i in keep_tr],
        test=[task.test[i] for i in keep_te], test_labels=task.test_labels[keep_te],
        test_kinds=[task.test_kinds[i] for i in keep_te], train_ids=[task.train_ids[i] for i in keep_tr],
        test_ids=[task.test_ids[i] for i in keep_te], info=info)


def load_labelled(data: str | os.PathLike, shots: int | None = None, seed: int = 0, *,
                  skip_bad: bool = False, progress: bool = True) -> FewShotTask:
    """A task from a labelled folder or a labels CSV (module docstring), every image checked.

    Args:
        data: the folder (``train/``, ``test/good/``, ``test/<defect>/``) or the CSV file.
        shots: normal shots to draw with ``seed``; None = all of ``train/`` (folder) or
            :data:`DEFAULT_CSV_SHOTS` normal rows (CSV without a split column).
        skip_bad: leave unreadable images out (listed in ``task.info["skipped_unreadable"]``)
            instead of raising :class:`UnreadableImagesError`.

    Raises:
        DatasetNotFoundError: ``data`` does not exist.
        COFTADInputError: a bad layout or CSV row (named), or no normal / no anomalous test image.
    """
    path = Path(data)
    if path.is_dir():
        task = load_folder(path, shots=shots, seed=seed)
    elif path.is_file():
        if path.suffix.lower() != ".csv":
            raise COFTADInputError(f"{path}: expected a folder (train/, test/good/, test/<defect>/) or a .csv file")
        task = _task_from_csv(path, shots, seed)
    else:
        raise DatasetNotFoundError(f"{path}: no such folder or CSV file")
    task = _drop_unreadable(task, skip_bad, progress)
    labels = set(task.test_labels.tolist())
    if labels != {0, 1}:
        missing = "normal (label 0)" if 0 not in labels else "anomalous (label 1)"
        raise COFTADInputError(f"{path}: no {missing} test images; AUROC needs both")
    return task


def demo_user_data(data_root: str | os.PathLike | None, dest: str | os.PathLike, *, n_train: int = 5,
                   max_normal: int | None = None, max_per_kind: int | None = None, seed: int = 0) -> Path:
    """Labelled data arranged the way a user's arrives, for notebook 17 and tests.

    With ``<data_root>/mvtec_ad/bottle`` present: ``<dest>/bottle.csv`` listing ``n_train`` normal
    shots (split=train), ``max_normal`` normal and ``max_per_kind`` images of each defect kind
    (drawn with ``seed``; None = all), paths relative to the CSV, the images left where they are. Otherwise a
    generated folder ``<dest>/generated/`` (train/, test/good/, test/red_square/) of stripe
    textures (:mod:`.synthetic`). Returns the CSV or the folder.
    """
    import numpy as np

    from .synthetic import write_texture_folder

    out = Path(dest)
    bottle = Path(data_root) / "mvtec_ad" / "bottle" if data_root else None
    if bottle is not None and (bottle / "train" / "good").is_dir() and (bottle / "test").is_dir():
        rng = np.random.default_rng(seed)
        rows = [(p, 0, "good", "train") for p in _draw(find_user_images(bottle / "train" / "good"), n_train, rng)]
        for kind_dir in sorted(d for d in (bottle / "test").iterdir() if d.is_dir()):
            normal = kind_dir.name == "good"
            picked = _draw(find_user_images(kind_dir), max_normal if normal else max_per_kind, rng)
            rows += [(p, 0 if normal else 1, kind_dir.name, "test") for p in picked]
        out.mkdir(parents=True, exist_ok=True)
        csv_path = out / f"{bottle.name}.csv"  # the task is named after the CSV
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label", "kind", "split"])
            w.writerows([os.path.relpath(p, out), y, k, s] for p, y, k, s in rows)
        return csv_path
    folder = write_texture_folder(out / "generated", n_train, max_normal or 20, 2 * (max_per_kind or 10),
                                  size=64, seed=seed, defect="red_square")
    return folder


def _draw(items: list[Path], n: int | None, rng) -> list[Path]:
    n = len(items) if n is None else min(n, len(items))
    idx = sorted(rng.choice(len(items), size=n, replace=False).tolist())
    return [items[i] for i in idx]


__all__ = ["DEFAULT_CSV_SHOTS", "HOW_TO_GET", "NORMAL_FOLDER_NAMES", "LabelRows", "load_folder", "UnreadableImagesError", "check_readable", "demo_user_data", "expand_inputs", "find_user_images",
           "load_labelled", "read_labels_csv", "user_images"]
