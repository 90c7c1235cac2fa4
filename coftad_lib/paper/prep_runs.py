"""What the data-preparation notebooks (01-03) do: decide what to build, build it once, show it.

Each ``ensure_*`` function is idempotent: it first looks for the prepared dataset where the table
notebooks will look (``DATA_ROOT`` first, then ``PREP_DIR``, see
:func:`coftad_lib.engine.cells.dataset_root`), builds it under ``PREP_DIR`` only when it is not
there (or was built with other settings), and returns a :class:`PrepResult` saying what happened.
A raw dataset that is absent gives ``status="missing"`` with the dataset module's ``HOW_TO_GET``;
nothing raises for missing data, so a notebook records it and carries on.

Sizes come from the profile (:func:`cifar_c_limit_per_class`, :func:`semicon_requirements`), so the
smoke profile prepares just what its tables use and the paper profile everything.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import COFTADInputError, DatasetNotFoundError
from .profiles import base_name, get_profile, table_limits

#: tables and figures that read CIFAR-10-C
CIFAR10C_TABLES: tuple[str, ...] = ("II", "VI", "fig6", "fig7")
#: tables that read the SemiCon slices
SEMICON_TABLES: tuple[str, ...] = ("V", "VII", "IX")
#: the SemiCon loader's default test set (paper Sec. IV-A: 500 normal + 110 defect slices)
SEMICON_TEST = {"normal": 500, "defect": 110}
#: the paper's number of SemiCon scans (Sec. IV-A); we synthesise as many stand-ins
SEMICON_N_VOLUMES = 53


@dataclass
class PrepResult:
    """Outcome of one ``ensure_*`` call.

    Attributes:
        dataset: dataset name (``"cifar10c"``, ``"aitex"``, ``"semicon"``).
        status: ``"built"`` (made now), ``"present"`` (already there, nothing done) or
            ``"missing"`` (raw data absent; ``message`` says how to get it).
        path: where the prepared dataset is (None when missing).
        message: what happened, or how to get the missing data.
        details: counts and settings worth showing.
    """

    dataset: str
    status: str
    path: Path | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def missing_entry(self) -> list[dict[str, str]]:
        """``[{"dataset", "message"}]`` for :func:`record_status` when missing, else ``[]``."""
        return [{"dataset": self.dataset, "message": self.message}] if self.status == "missing" else []


# ------------------------------------------------------------------ CIFAR-10-C (notebook 01)

def cifar_c_limit_per_class(profile: str | Mapping[str, Any]) -> int | None:
    """Clean test images per class to corrupt: enough for every CIFAR-10-C table of ``profile``.

    Shots are drawn from the clean test images when no train split is there (``shots_from="auto"``),
    so a class needs ``shots + max_test_per_class`` of them; None (= all) when any table runs the
    full protocol.
    """
    need = 0
    for table in CIFAR10C_TABLES:
        lim = table_limits(profile, table)
        if lim["max_test_per_class"] is None:
            return None
        need = max(need, max(lim["shots"]) + lim["max_test_per_class"])
    return need


def ensure_cifar_c(data_root: str | os.PathLike, prep_dir: str | os.PathLike, limit_per_class: int | None,
                   seed: int = 0, severity: int = 4, progress: bool = False) -> PrepResult:
    """CIFAR-10-C at ``severity`` from ``DATA_ROOT/cifar10`` into ``PREP_DIR/cifar10c`` (Sec. IV-A-1).

    Nothing is done when official files are in ``DATA_ROOT/cifar10c``, or when ``PREP_DIR/cifar10c``
    was generated with the same severity, corruptions, seed and limit.
    """
    from data_prep.cifar_c import generate

    from ..datasets import cifar_c

    official = Path(data_root) / "cifar10c"
    if (official / "labels.npy").is_file():
        return PrepResult("cifar10c", "present", official, f"{official}: CIFAR-10-C files are already there")
    out = Path(prep_dir) / "cifar10c"
    clean = Path(data_root) / "cifar10"
    meta_file = out / cifar_c.GENERATED_META
    want = {"severities": [severity], "corruptions": list(cifar_c.DEFAULT_CORRUPTIONS), "seed": seed,
            "limit_per_class": limit_per_class, "variant": "cifar10c"}
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        if {k: meta.get(k) for k in want} == want and all((out / f"{c}.npy").is_file() for c in want["corruptions"]):
            return PrepResult("cifar10c", "present", out, f"{out}: already generated with these settings",
                              {"n_per_severity": meta.get("n_per_severity"), "limit_per_class": limit_per_class})
    if not cifar_c.has_clean(clean, "cifar10c", "test"):
        return PrepResult("cifar10c", "missing", None,
                          f"{clean}: clean CIFAR-10 test images not found, so CIFAR-10-C cannot be generated.\n{cifar_c.HOW_TO_GET}")
    generate(clean, out, severities=(severity,), limit_per_class=limit_per_class, variant="cifar10c", seed=seed,
             overwrite=True, progress=progress)
    meta = json.loads(meta_file.read_text())
    return PrepResult("cifar10c", "built", out, f"{out}: generated from {clean}",
                      {"n_per_severity": meta["n_per_severity"], "limit_per_class": limit_per_class})


def corruption_examples(root: str | os.PathLike, index: int = 0, severity: int = 4) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fig. 4: one clean test image and its corrupted versions from a generated CIFAR-C folder.

    Args:
        root: a folder written by ``data_prep.cifar_c`` (its sidecar names each row's clean image).
        index: row within the severity block.

    Returns:
        (clean (32, 32, 3) uint8, corruption name -> (32, 32, 3) uint8).
    """
    from ..datasets import cifar_c

    root = Path(root)
    meta_file = root / cifar_c.GENERATED_META
    if not meta_file.is_file():
        raise DatasetNotFoundError(f"{meta_file}: not found; Fig. 4 reads a folder generated by data_prep.cifar_c")
    meta = json.loads(meta_file.read_text())
    n = int(meta["n_per_severity"])
    if not 0 <= index < n:
        raise COFTADInputError(f"index={index}: {root} holds {n} images per severity")
    if severity not in meta["severities"]:
        raise COFTADInputError(f"severity={severity}: {root} holds severities {meta['severities']}")
    row = meta["severities"].index(severity) * n + index
    source_id = meta["source_ids"][index]
    as_file = Path(meta["clean_source"]) / source_id
    if as_file.is_file():
        # class-folder sources name each row "<class>/<file>": read that one image, not the class
        from ..images import load_image

        image = np.asarray(load_image(as_file))
    else:
        labels = np.load(root / "labels.npy")
        clean = cifar_c.read_clean(meta["clean_source"], meta["variant"], "test", labels=[int(labels[row])])
        if source_id not in clean.ids:
            raise COFTADInputError(f"{root}: clean image {source_id} is not in {meta['clean_source']} any more")
        image = clean.images[clean.ids.index(source_id)]
    corrupted = {c: np.array(np.load(root / f"{c}.npy", mmap_mode="r")[row]) for c in meta["corruptions"]}
    return image, corrupted


# ------------------------------------------------------------------ AITEX (notebook 02)

def ensure_aitex(data_root: str | os.PathLike, prep_dir: str | os.PathLike, seed: int = 0) -> PrepResult:
    """AITEX patches (Sec. IV-A): ``DATA_ROOT/aitex_crops`` as is, else crop ``DATA_ROOT/aitex`` into ``PREP_DIR``."""
    from ..datasets import aitex
    from ..datasets.crops import MANIFEST

    ready = Path(data_root) / "aitex_crops"
    if (ready / MANIFEST).is_file():
        return PrepResult("aitex", "present", ready, f"{ready}: prepared patches are already there", manifest_counts(ready))
    raw = Path(data_root) / "aitex"
    if not raw.is_dir():
        return PrepResult("aitex", "missing", None, f"{raw}: AITEX not found.\n{aitex.HOW_TO_GET}")
    from data_prep.aitex_crops import prepare_crops

    out = Path(prep_dir) / "aitex_crops"
    before = _manifest_mtime(out)
    try:
        prepare_crops(raw, out, seed, verbose=False)
    except DatasetNotFoundError as exc:
        return PrepResult("aitex", "missing", None, str(exc))
    status = "present" if before is not None and before == _manifest_mtime(out) else "built"
    return PrepResult("aitex", status, out, f"{out}: patches cut from {raw}", manifest_counts(out))


# ------------------------------------------------------------------ SemiCon (notebook 03)

def semicon_requirements(profile: str | Mapping[str, Any]) -> dict[str, int]:
    """Normal and defect slices the SemiCon tables of ``profile`` need.

    The loader's test set is 500 normal + 110 defect slices (paper) and the shots come from the
    other normals, so: normals = 500 + the largest k of Tables V, VII, IX; defects = 110.
    """
    prof = get_profile(profile)
    shots = max(max(table_limits(prof, t)["shots"]) for t in SEMICON_TABLES)
    return {"normal": SEMICON_TEST["normal"] + shots, "defect": SEMICON_TEST["defect"]}


def semicon_volumes(profile: str | Mapping[str, Any]) -> int:
    """Synthetic volumes to start from: the paper's 53 scans for the paper profile, else 28.

    With the default synthesis settings 53 volumes gave 1092 normal and 816 defect slices, so 28
    just cover the smoke need of 510 + 110 while taking half the time; :func:`ensure_semicon` adds
    volumes if a profile needs more.
    """
    return SEMICON_N_VOLUMES if base_name(profile) == "paper" else 28


def manifest_counts(root: str | os.PathLike) -> dict[str, int]:
    """Normal / defect images listed in ``<root>/manifest.csv``."""
    rows = read_manifest_rows(root)
    n_def = sum(r["label"] == "1" for r in rows)
    return {"normal": len(rows) - n_def, "defect": n_def}


def read_manifest_rows(root: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a prepared folder's ``manifest.csv`` (AITEX crops, SemiCon slices)."""
    path = Path(root) / "manifest.csv"
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: not found; prepare the folder first")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def ensure_semicon(data_root: str | os.PathLike, prep_dir: str | os.PathLike, need: Mapping[str, int],
                   seed: int = 0, n_volumes: int = SEMICON_N_VOLUMES, max_volumes: int = 400) -> PrepResult:
    """SemiCon slices with at least ``need`` normal / defect slices (Sec. IV-A).

    Order: prepared slices in ``DATA_ROOT/semicon_slices``; real volumes in ``DATA_ROOT/semicon``
    (private; sliced into ``PREP_DIR/semicon_slices``); else synthetic stand-in volumes in
    ``PREP_DIR/semicon_volumes`` (``data_prep.semicon_synth``), sliced likewise. Synthetic volumes
    are added until the counts suffice (volume i depends only on (seed, i), so the first ones stay).
    ``details["synthetic"]`` says whether the slices are stand-ins.
    """
    from data_prep.semicon_slices import slice_volumes
    from data_prep.semicon_synth import make_synthetic_volumes

    ready = Path(data_root) / "semicon_slices"
    if (ready / "manifest.csv").is_file():
        return PrepResult("semicon", "present", ready, f"{ready}: prepared slices are already there",
                          {**manifest_counts(ready), "synthetic": False})
    out = Path(prep_dir) / "semicon_slices"
    real = Path(data_root) / "semicon"
    if real.is_dir():
        before = _manifest_mtime(out)
        slice_volumes(real, out, verbose=False)
        status = "present" if before is not None and before == _manifest_mtime(out) else "built"
        return PrepResult("semicon", status, out, f"{out}: slices of the real volumes in {real}",
                          {**manifest_counts(out), "synthetic": False, "volumes": str(real)})
    vols = Path(prep_dir) / "semicon_volumes"
    before = _manifest_mtime(out)
    n = max(n_volumes, _made_volumes(vols, seed))
    while True:
        make_synthetic_volumes(vols, n_volumes=n, seed=seed, verbose=False)
        slice_volumes(vols, out, verbose=False)
        counts = manifest_counts(out)
        short = [k for k in ("normal", "defect") if counts[k] < need[k]]
        if not short:
            break
        if n >= max_volumes:
            raise COFTADInputError(f"{out}: {counts} slices from {n} synthetic volumes, need {dict(need)}; "
                                   f"raise max_volumes={max_volumes}")
        # volumes give similar counts, so scale up by the worst shortfall (+10 % margin)
        n = min(max_volumes, int(np.ceil(n * 1.1 * max(need[k] / max(counts[k], 1) for k in short))))
    status = "present" if before is not None and before == _manifest_mtime(out) else "built"
    return PrepResult("semicon", status, out,
                      f"{out}: slices of {n} SYNTHETIC stand-in volumes ({vols}); the real SemiCon scans are private",
                      {**counts, "synthetic": True, "n_volumes": n, "volumes": str(vols)})


def _made_volumes(vols: Path, seed: int) -> int:
    """How many synthetic volumes an earlier run made in ``vols`` with ``seed`` (0 if none):
    starting from there keeps a finished folder as it is instead of shrinking and regrowing it."""
    from data_prep.semicon_synth import PARAMS_FILE

    try:
        made = json.loads((vols / PARAMS_FILE).read_text())
    except (OSError, ValueError):
        return 0
    return int(made.get("n_volumes", 0)) if made.get("seed") == seed else 0


def _manifest_mtime(root: Path) -> int | None:
    m = root / "manifest.csv"
    return m.stat().st_mtime_ns if m.is_file() else None


def example_images(root: str | os.PathLike, n: int = 6, seed: int = 0) -> dict[str, list[Path]]:
    """Fig. 3b: ``n`` seeded random normal and ``n`` defect images of a prepared folder (by manifest)."""
    rows = read_manifest_rows(root)
    rng = np.random.default_rng([seed, 3])
    out: dict[str, list[Path]] = {}
    for label, name in (("0", "normal"), ("1", "defect")):
        files = [r["file"] for r in rows if r["label"] == label]
        pick = sorted(rng.choice(len(files), size=min(n, len(files)), replace=False)) if files else []
        out[name] = [Path(root) / files[i] for i in pick]
    return out


def slice_ratios(root: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Void-to-joint ratio (M,) and label (M,) of every slice in a SemiCon slices manifest."""
    rows = [r for r in read_manifest_rows(root) if r.get("ratio", "") != ""]
    if not rows:
        raise COFTADInputError(f"{root}/manifest.csv: no 'ratio' values (slices labelled from a CSV have none)")
    return (np.array([float(r["ratio"]) for r in rows]), np.array([int(r["label"]) for r in rows]))
