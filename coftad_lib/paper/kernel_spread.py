"""How much the CPU kernels move a number, beside how much the seed does (issue "Any machine repeats any number").

Reads ``benchmarks/results/kernel_pin/kernel_pin.csv`` (``benchmarks/kernel_pin.py``: the same cell
recomputed on native AVX-512 and on pinned AVX2 kernels) and, for each of its cells, the std over
seeds of the same table row and task in the committed table summaries, so a reader sees the two
spreads side by side. Since 2026-12-07 every cell is computed on AVX2 kernels and says so; this
section is why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

#: the benchmark's output, relative to the repository
KERNEL_CSV = Path("benchmarks") / "results" / "kernel_pin" / "kernel_pin.csv"


def _seed_std(tables_dir: Path, what: str) -> float | None:
    """Std over seeds (%) of the table row and task a kernel_pin row names (``"coftad flowers17/A/B ..."``)."""
    method, rest = what.split(" ", 1)
    dataset_task = rest.split(" ")[0]
    task = dataset_task.split("/", 1)[1] if "/" in dataset_task else dataset_task
    for path in sorted(tables_dir.glob("table_*_summary.csv")):
        df = pd.read_csv(path)
        hit = df[(df["method"] == method) & (df["task"] == task) & ~df["setting"].astype(str).str.contains(" @ ")]
        if len(hit):
            return float(hit["std"].iloc[0])
    return None


def kernel_section(tables_dir: str | os.PathLike, repo: str | os.PathLike | None = None) -> list[str]:
    """Markdown lines: each measured cell's AUROC on AVX-512 and AVX2 kernels, their difference and the seed std."""
    repo = Path(repo) if repo is not None else Path(tables_dir).resolve().parents[1]
    path = repo / KERNEL_CSV
    if not path.is_file():
        return []
    df = pd.read_csv(path)
    same_inputs = bool((df["diff_pixels"] == 0).all() and (df["diff_pretrained"] == 0).all())
    lines = ["## How much the CPU kernels move a number", "",
             "The same cell recomputed in a fresh process on native AVX-512 kernels and on the AVX2 kernels every "
             "cell now runs on (`benchmarks/kernel_pin.py`); the seed std is that of the same row and task over "
             "the committed seeds. "
             + ("Decoded inputs and pretrained features were bit-identical in every measured cell. "
                if same_inputs else "")
             + "First difference: the stage named in the last column.", "",
             "| cell | AVX-512 | AVX2 | difference | seed std | first difference |", "|---|---:|---:|---:|---:|---|"]
    for r in df.itertuples():
        std = _seed_std(Path(tables_dir), r.what)
        diff = 100 * (r.avx2 - r.native)
        lines.append(f"| {r.what} | {100 * r.native:.2f} | {100 * r.avx2:.2f} | {diff:+.2f} | "
                     f"{'' if std is None else f'{std:.2f}'} | {r.first_difference} |")
    return lines + [""]
