"""A user's labelled images, as they arrive: a folder of images plus a label file, or the MVTec layout.

Two forms of labelled data (what ``python -m coftad_lib evaluate DATA`` reads):

- a **folder** ``DATA/train/`` (normal images), ``DATA/test/good/`` (normal test images) and
  ``DATA/test/<defect>/`` (anomalies, one folder per kind): :mod:`.folder`'s layout, MVTec's too;
- a **CSV file** with a header ``path,label[,kind][,split]``: label 0 = normal, 1 = anomaly; paths
  relative to the CSV's folder. Rows with ``split`` = ``train`` are the normal shots; without a
  split column, ``shots`` normal rows (default :data:`DEFAULT_CSV_SHOTS`) are drawn with the seed
  as shots and every other row is a test image.

Also here: listing the images of a folder (hidden files and folders left out) and checking that
every file decodes, so that a folder with unreadable images is reported in one message.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import COFTADInputError, DatasetNotFoundError, ImageReadError
from .files import USER_IMAGE_SUFFIXES, relative_id
from .sampling import choose, rng_for
from .task import FewShotTask

#: normal shots drawn from a CSV that has no ``split`` column
DEFAULT_CSV_SHOTS = 5
#: folders archivers and notebooks leave behind, never images of the user's
_JUNK_DIRS = {"__MACOSX", ".ipynb_checkpoints"}
_MAX_LISTED = 20


class UnreadableImagesError(ImageReadError):
    """Some image files do not decode; ``paths`` lists them, the message names up to 20."""

    def __init__(self, message: str, paths: Sequence[Path]) -> None:
        super().__init__(message)
        self.paths = list(paths)


@dataclass
class LabelRows:
    """The rows of a labels CSV: image paths with (M,) labels, kinds and splits ("" = not given)."""

    paths: list[Path]
    labels: list[int]
    kinds: list[str]
    splits: list[str]


def find_user_images(root: Path, recursive: bool = True) -> list[Path]:
    """Image files under ``root`` (or directly in it), sorted; no hidden file or folder, no ``__MACOSX``.

    macOS archives carry "._name.png" resource forks and ``__MACOSX/`` copies that are no images.
    """
    entries = root.rglob("*") if recursive else root.iterdir()
    return sorted(
        p for p in entries
        if p.is_file() and p.suffix.lower() in USER_IMAGE_SUFFIXES
        and not any(part.startswith(".") or part in _JUNK_DIRS for part in p.relative_to(root).parts)
    )


def user_images(folder: str | os.PathLike, what: str = "folder") -> list[Path]:
    """Image files anywhere under ``folder``, sorted; hidden files/folders and ``__MACOSX`` left out.

    Raises:
        DatasetNotFoundError: ``folder`` is not a folder.
        COFTADInputError: it holds no image file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root}: {what} not found")
    files = find_user_images(root)
    if not files:
        raise COFTADInputError(f"{root}: no images in this {what}; expected {', '.join(USER_IMAGE_SUFFIXES)} files")
    return files


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Image files named on a command line: files as given, folders expanded with :func:`user_images`."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += user_images(p)
        elif p.is_file():
            out.append(p)
        else:
            raise DatasetNotFoundError(f"{p}: no such image file or folder")
    if not out:
        raise COFTADInputError("no images given")
    return out


def _check_one(path: Path) -> str | None:
    from ..images import load_image

    try:
        load_image(path)
    except ImageReadError as exc:
        return str(exc)
    return None


def check_readable(paths: Sequence[Path], *, skip_bad: bool = False, what: str = "images",
                   progress: bool = True) -> tuple[list[Path], list[Path]]:
    """Decode every file once; return (readable, unreadable) paths.

    Raises:
        UnreadableImagesError: some files do not decode and ``skip_bad`` is False; the message
            lists them (up to 20) with the reason and says how to skip them.
    """
    paths = list(paths)
    with ThreadPoolExecutor(4) as pool:
        errors = list(tqdm(pool.map(_check_one, paths), total=len(paths), desc=f"checking {what}",
                           disable=not progress or len(paths) < 50, leave=False))
    bad = [p for p, e in zip(paths, errors, strict=True) if e is not None]
    if bad and not skip_bad:
        shown = "\n  ".join([e for e in errors if e is not None][:_MAX_LISTED])
        more = f"\n  ... and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
        raise UnreadableImagesError(
            f"{len(bad)} of {len(paths)} {what} cannot be read:\n  {shown}{more}\n"
            "Fix or remove them, or pass --skip-bad (skip_bad=True) to leave them out.", bad)
    return [p for p, e in zip(paths, errors, strict=True) if e is None], bad


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
    from . import folder

    path = Path(data)
    if path.is_dir():
        task = folder.load(path, shots=shots, seed=seed)
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


__all__ = ["DEFAULT_CSV_SHOTS", "LabelRows", "UnreadableImagesError", "check_readable", "demo_user_data", "expand_inputs", "find_user_images",
           "load_labelled", "read_labels_csv", "user_images"]
