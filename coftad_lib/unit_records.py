"""Reading the paper-compute runs' unit records (issue 19) without importing torch.

Each unit of ``benchmarks/paper_compute.py`` is one JSON file ``<runs>/<label>/<unit>.json``
(written atomically by :func:`coftad_lib.experiments.paper_compute.run_units`). Two readers need
them: the verdict (:mod:`coftad_lib.experiments.paper_compute`, which fits and so imports torch)
and the results tables that show the runs beside the protocol (:mod:`coftad_lib.paper.paper_compute_rows`,
rendered by notebooks that need no torch to read a cache). Both read through :func:`read_units`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_units(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Every finished unit record under ``folder`` (any depth), sorted by path, without its loss curves.

    A finished unit has ``auroc_target``; files whose name starts with ``.`` are writes in progress
    and are skipped. ``history`` (the per-step losses) is dropped: no reader of a table needs it.
    """
    out = []
    for path in sorted(Path(folder).rglob("*.json")):
        if path.name.startswith("."):
            continue
        rec = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(rec, dict) and "auroc_target" in rec:
            out.append({k: v for k, v in rec.items() if k != "history"})
    return out
