"""The prepared crops protocol shared by AITEX patches and SemiCon slices (paper Sec. IV-A).

``data_prep.aitex_crops`` and ``data_prep.semicon_slices`` both write a folder of ``normal/`` and
``defect/`` PNGs listed in ``manifest.csv`` (columns ``file``, ``label`` and optionally ``kind``,
``source`` and ``note``). :func:`load_crops` turns such a folder into a few-shot task: a fixed test
set of normal and defect images, and k shots drawn from the normals left over. What the preparation
had to do about its inputs travels into ``task.info``: the manifest's non-empty ``note`` per source
image, and the source images it left out (optional ``left_out.csv``, columns ``source``, ``reason``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ..errors import COFTADInputError, DatasetNotFoundError
from .files import check_image_file, require_dir
from .sampling import choose, rng_for
from .task import FewShotTask

#: name of the manifest a prepared crops / slices folder must hold; written last, so its presence
#: means the preparation finished
MANIFEST = "manifest.csv"

#: optional list of the source images a preparation left out (columns source, reason), e.g. the
#: AITEX defect scans without a usable mask
LEFT_OUT = "left_out.csv"


def read_manifest(root: Path, how_to_get: str) -> list[dict[str, str]]:
    """Rows of ``<root>/manifest.csv``; each has at least ``file`` (relative path) and ``label``."""
    require_dir(root, "folder", how_to_get)
    path = root / MANIFEST
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{path}: not found, so {root} is not a finished crops folder (the preparation writes "
            f"the manifest last; an interrupted run leaves none). Run the preparation again:\n{how_to_get}"
        )
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise COFTADInputError(
            f"{path}: expected a CSV with at least the columns file,label and one row per image"
        )
    for row in rows:
        if row["label"] not in ("0", "1"):
            raise COFTADInputError(
                f"{path}: label {row['label']!r} for {row['file']}; expected 0 (normal) or 1 (defect)"
            )
    return rows


def _listed_paths(root: Path, rows: list[dict[str, str]], check_files: bool) -> list[Path]:
    """The files ``rows`` list under ``root``, each checked to exist (and, if asked, to be whole)."""
    paths = [root / row["file"] for row in rows]
    for path in paths:
        if not path.is_file():
            raise DatasetNotFoundError(
                f"{path}: listed in {root / MANIFEST} but missing; prepare the folder again"
            )
        if check_files:
            check_image_file(path)
    return paths


def preparation_notes(root: Path, rows: list[dict[str, str]]) -> dict[str, object]:
    """``info`` entries saying what the preparation did about its inputs; empty when it said nothing.

    Returns:
        ``notes``: {source (or file): note} for manifest rows with a non-empty ``note`` (one entry
        per source image, as its patches share the note); ``left_out``: ["source: reason", ...]
        from ``left_out.csv``.
    """
    info: dict[str, object] = {}
    notes = {r.get("source") or r["file"]: r["note"] for r in rows if r.get("note")}
    if notes:
        info["notes"] = dict(sorted(notes.items()))
    path = root / LEFT_OUT
    if path.is_file():
        with open(path, newline="") as fh:
            left = [f"{r.get('source', '?')}: {r.get('reason', '')}" for r in csv.DictReader(fh)]
        if left:
            info["left_out"] = left
    return info


def _check_counts(
    root: Path,
    normal: list[tuple[Path, dict[str, str]]],
    defect: list[tuple[Path, dict[str, str]]],
    shots: int,
    n_test_normal: int,
) -> None:
    """Raise unless there are defect images and enough normals for the test set plus the shots."""
    if not defect:
        raise COFTADInputError(
            f"{root / MANIFEST}: no defect images listed; expected some under {root / 'defect'}"
        )
    if len(normal) < n_test_normal + shots:
        raise COFTADInputError(
            f"{root}: {len(normal)} normal images, but n_test_normal={n_test_normal} test + shots={shots} "
            f"training = {n_test_normal + shots} are needed; pass a smaller n_test_normal "
            f"(at most {max(len(normal) - shots, 0)}) or prepare more images"
        )


def _draw_test_defect(
    root: Path,
    defect: list[tuple[Path, dict[str, str]]],
    n_test_defect: int | None,
    seed: int,
    dataset: str,
) -> list[tuple[Path, dict[str, str]]]:
    """The defect (path, manifest row) pairs of the test set; None takes all of them."""
    if n_test_defect is None:
        return defect
    if len(defect) < n_test_defect:
        raise COFTADInputError(
            f"{root}: {len(defect)} defect images, but n_test_defect={n_test_defect} are needed; "
            f"pass n_test_defect={len(defect)} or less, or prepare more images"
        )
    test_defect, _ = choose(
        defect, n_test_defect, rng_for(seed, dataset, "test_defect"), f"{root} defect"
    )
    return test_defect


def load_crops(
    root: str | os.PathLike,
    shots: int,
    seed: int,
    *,
    dataset: str,
    n_test_normal: int,
    n_test_defect: int | None,
    how_to_get: str,
    protocol: str,
    check_files: bool = True,
) -> FewShotTask:
    """Few-shot task from a prepared folder of normal/defect images listed in ``manifest.csv``.

    The test normals are drawn first, from a generator keyed on (seed, dataset) only, so the test
    set is the same for every k; the shots come from the normals left over.

    Args:
        root: the prepared folder (``normal/``, ``defect/``, ``manifest.csv``).
        shots: normal training images k.
        seed: sampling seed.
        dataset: the dataset's name; keys the sampling and names the task.
        n_test_normal: normal images in the test set.
        n_test_defect: defect images in the test set; None takes all of them.
        how_to_get: the dataset's instructions, shown when the folder or manifest is missing.
        protocol: one line describing the test split, recorded in ``info["protocol"]``.
        check_files: check each image's header and end marker now.

    Raises:
        DatasetNotFoundError: folder or manifest missing, or a listed file missing.
        COFTADInputError: too few normal/defect images for the requested counts (the message names
            the counts and the parameter to lower).
    """
    root = Path(root)
    rows = read_manifest(root, how_to_get)
    paths = _listed_paths(root, rows, check_files)
    normal = [(p, r) for p, r in zip(paths, rows, strict=True) if r["label"] == "0"]
    defect = [(p, r) for p, r in zip(paths, rows, strict=True) if r["label"] == "1"]
    _check_counts(root, normal, defect, shots, n_test_normal)
    test_normal, pool = choose(
        normal, n_test_normal, rng_for(seed, dataset, "test_normal"), f"{root} normal"
    )
    test_defect = _draw_test_defect(root, defect, n_test_defect, seed, dataset)
    train, _ = choose(pool, shots, rng_for(seed, dataset, "train"), f"{root} normal (shots)")
    test = test_normal + test_defect
    return FewShotTask(
        dataset=dataset,
        name=dataset,
        train=[str(p) for p, _ in train],
        test=[str(p) for p, _ in test],
        test_labels=[int(r["label"]) for _, r in test],
        test_kinds=[
            r.get("kind") or ("normal" if r["label"] == "0" else "defect") for _, r in test
        ],
        train_ids=[r["file"] for _, r in train],
        test_ids=[r["file"] for _, r in test],
        info={
            "shots": shots,
            "seed": seed,
            "n_test_normal": len(test_normal),
            "n_test_defect": len(test_defect),
            "normal_available": len(normal),
            "defect_available": len(defect),
            "protocol": protocol,
            **preparation_notes(root, rows),
        },
    )
