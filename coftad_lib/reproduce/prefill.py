"""``--cells-only``: compute a run's cells into the cache without executing a notebook.

For a machine that has the method's packages but no Jupyter (a lent GPU, a cluster node): the
cells that the selected notebooks need (the list ``--plan`` prints) are fitted and scored into
``<out>/cache``, after preparing the derived datasets they read (CIFAR-10-C, AITEX patches,
SemiCon slices, as notebooks 01-03 do). Running the notebooks later, anywhere, with that cache
(copy ``<out>/cache`` into the results folder) finds every cell cached and only renders the
tables and figures. Cache keys hold no device or torch version, so a cache filled on a GPU is
read on a CPU; each record says where it ran (``device``, ``versions``).

Tables VIII and X score each fit once per column (scorer, N_A): those scorings are cached too
(:func:`rescore`), so their notebooks then only render.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..engine.cells import Cell
from ..errors import COFTADInputError
from ..paper import prep_runs
from ..paper.context import RunContext

#: dataset -> how to prepare it from the raw data, as its data_prep notebook does (seed 0)
PREPARE: dict[str, Callable[[Mapping[str, Any], Path, Path], prep_runs.PrepResult]] = {
    "cifar10c": lambda prof, root, prep: prep_runs.ensure_cifar_c(
        root, prep, prep_runs.cifar_c_limit_per_class(prof), progress=True),
    "aitex": lambda prof, root, prep: prep_runs.ensure_aitex(root, prep),
    "semicon": lambda prof, root, prep: prep_runs.ensure_semicon(
        root, prep, prep_runs.semicon_requirements(prof), n_volumes=prep_runs.semicon_volumes(prof)),
}


def cells_by_notebook(notebooks: Sequence[Path], prof: Mapping[str, Any],
                      seeds: Sequence[int]) -> list[tuple[Path, list[Cell]]]:
    """Each notebook with its cells that no earlier notebook of ``notebooks`` has (by cache key)."""
    from .plan import notebook_cells

    seen: set[str] = set()
    out = []
    for nb in notebooks:
        new = []
        for cell in notebook_cells(nb, prof, seeds) or []:
            key = cell.key()
            if key not in seen:
                seen.add(key)
                new.append(cell)
        out.append((nb, new))
    return out


def prepare_data(cells: Sequence[Cell], prof: Mapping[str, Any], root: Path, prep: Path) -> list[str]:
    """Build the derived datasets ``cells`` read; returns one line per dataset saying what happened."""
    lines = []
    for dataset in sorted({c.dataset for c in cells} & set(PREPARE)):
        print(f"[cells-only] preparing {dataset} ...", flush=True)
        res = PREPARE[dataset](prof, root, prep)
        lines.append(f"{dataset}: {res.status} - {res.message.splitlines()[0] if res.message else ''}")
        print(f"[cells-only] {lines[-1]}", flush=True)
    return lines


#: where ``--recompute-unpinned`` keeps the records it recomputes, under the cache folder
SUPERSEDED = "superseded"


def set_aside_unpinned(cells: Sequence[Cell], cache_dir: Path) -> int:
    """Move the cached records of ``cells`` computed before the AVX2 pin (no ``kernels == "avx2"``)
    to ``<cache>/superseded/``, so that the run computes them again on pinned kernels; returns how
    many. Kept, not deleted: a run stopped half way shows those cells as pending, and nothing is lost."""
    from ..engine.cells import cell_path

    moved = 0
    for cell in cells:
        path = cell_path(cache_dir, cell.key())
        if path.is_file() and json.loads(path.read_text()).get("kernels") != "avx2":
            (cache_dir / SUPERSEDED).mkdir(parents=True, exist_ok=True)
            os.replace(path, cache_dir / SUPERSEDED / path.name)
            moved += 1
    return moved


def prefill(ctx: RunContext, *, only: Sequence[str] | None = None, strict: bool = False,
            notebooks_dir: str | os.PathLike = "notebooks", recompute_unpinned: bool = False) -> int:
    """CLI ``--cells-only``: prepare data, compute every cell the selected notebooks' specs need into
    ``<out_dir>/cache`` of run ``ctx``; with ``recompute_unpinned`` also those cached from before the
    AVX2 kernel pin (:func:`set_aside_unpinned`).

    Returns 1 when any cell failed, else 3 when ``strict`` and a cell's data or weights were
    missing, else 0 (the missing cells counted in the printed summary). Every finished cell is in
    the cache either way.
    """
    from .series import discover, select

    prof = ctx.settings
    notebooks = select(discover(notebooks_dir), only)
    if not notebooks:
        raise COFTADInputError(f"no notebooks named NN_*.ipynb in {notebooks_dir}")
    work = [(nb, cells) for nb, cells in cells_by_notebook(notebooks, prof, ctx.seeds) if cells]
    if not work:
        raise COFTADInputError(f"--cells-only: the selected notebooks ({', '.join(nb.stem for nb in notebooks)}) "
                               "have no cells")
    root, prep = Path(ctx.data_root), Path(ctx.prep_dir)
    ex = ctx.make_executor()
    records: list[dict[str, Any]] = []
    # Notebook by notebook, each preparing its own data first: a run stopped by a time limit has
    # the first notebooks' cells cached, not a half-built CIFAR-10-C and nothing else.
    for nb, cells in work:
        prepare_data(cells, prof, root, prep)
        if recompute_unpinned:
            n = set_aside_unpinned(cells, Path(ctx.cache_dir))
            print(f"[cells-only] {nb.stem}: {n} records from before the kernel pin set aside to recompute", flush=True)
        records += ex.run(cells, ctx.data_roots, ctx.cache_dir, ctx.name, desc=nb.stem)
        rescore(nb, ctx, ex)
    print(format_counts(records, ctx.cache_dir))
    statuses = {r.get("status") for r in records}
    return 1 if "failed" in statuses else 3 if strict and "missing" in statuses else 0


def rescore(nb: Path, ctx: RunContext, executor: Any) -> None:
    """Tables VIII and X: score each fitted cell once per column (scorer, N_A) into the cache too,
    so a run that only reads the cache (``protocol-cpu``'s notebooks) finds those columns as well."""
    from ..paper.specs import spec_for_notebook

    spec = spec_for_notebook(nb.stem)
    if spec is not None and spec.kind in ("scorers", "n_aug"):
        print(f"[cells-only] {nb.stem}: scoring each fit per column ...", flush=True)
        spec.run(ctx.settings, ctx.seeds, ctx.data_roots, ctx.cache_dir, executor=executor)


def format_counts(records: Sequence[Mapping[str, Any]], cache: Path) -> str:
    """One summary line per status, the missing datasets, and the first failures."""
    counts = Counter(str(r.get("status")) for r in records)
    lines = [f"[cells-only] {len(records)} cells into {cache}: "
             + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))]
    missing = sorted({str(r.get("dataset")) for r in records if r.get("status") == "missing"})
    if missing:
        lines.append(f"[cells-only] missing data for: {', '.join(missing)} (those cells run once the data is there)")
    for r in [r for r in records if r.get("status") == "failed"][:5]:
        lines.append(f"[cells-only] failed: {r.get('method')} on {r.get('dataset')}/{r.get('task')} "
                     f"seed {r.get('seed')}: {r.get('message', '')}")
    return "\n".join(lines)
