"""Cells computed alone or packed: several COFT-AD cells fitted in one batched step (issue 9, item 2b).

An executor hands a worker a *pack*, a tuple of cells, and gets back one outcome
``(record, features)`` per cell (:func:`compute_pack`). A pack of one is today's lone cell
(:func:`compute_outcome`). A larger pack is formed by :func:`pack_groups` only from cells whose
COFT-AD configurations may share a step (:func:`coftad_lib.packed.check_packable`: same backbone,
image size, steps, batch size and loss switches, ``bn_mode="eval"``; they differ in task, shots or
seed). Those are fitted together by :func:`coftad_lib.packed.fit_packed`, then each is scored and
recorded alone, exactly as a lone cell.

What a packed record means: the same work (same key, same seeds, same draws), fitted within float
rounding of fitting it alone (``coftad_lib/packed.py``'s docstring: equal to 1e-9 in float64; in
float32 a few-step Adam fit moves scores by up to ~4e-3 relative under any rounding change). Its
``pack_size`` field says how many cells shared the step, and ``fit_seconds`` is its share of
the pack's fit time (pack time / pack size). The cache does not tell packed from lone records,
since they answer the same question.

Why packing is off by default (``pack=1``): on a CPU a packed step is slower than the same fits one
after another (``benchmarks/results/packing_cpu.txt``: 0.6-0.8x), because a CPU is already busy
with one fit. Its point is a GPU that one small fit leaves mostly idle; turn it on there with
``python -m coftad_lib.reproduce --pack 8`` (or ``EXECUTOR_OPTIONS = {"pack": 8}`` in a notebook) after measuring with
``benchmarks/packing.py`` on that GPU.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import COFTADInputError, DatasetNotFoundError, WeightsUnavailableError
from ..methods.traits import methods_with
from . import cells as cells_mod
from .cache import canonical_json
from .cells import (
    Cell,
    base_record,
    compute_record,
    failed_record,
    finish_record,
    load_cell_task,
    missing_record,
)

#: registry names whose detector is a fine-tuned :class:`coftad_lib.coftad.COFTAD`
PACKABLE_METHODS: frozenset[str] = methods_with(packable=True)
#: lines of a failed cell's traceback kept in its record
TRACEBACK_LINES = 12

Outcome = tuple[dict[str, Any], Any]


def error_text(exc: BaseException) -> tuple[str, str]:
    """(``"Type: message"`` on one line, the traceback's last lines)."""
    first = f"{type(exc).__name__}: {exc}".strip().replace("\n", " ")
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).splitlines()
    return first[:500], "\n".join(tb[-TRACEBACK_LINES:])


def compute_outcome(cell: Cell, data_root: Any, profile: str, strict: bool) -> Outcome:
    """:func:`~coftad_lib.engine.cells.compute_record` of one cell, an exception turned into a failed record.

    Missing data is re-raised only with ``strict``; the executor then re-raises on the driver.
    """
    try:
        return compute_record(cell, data_root, profile, strict=strict)
    except Exception as exc:
        if strict:
            raise
        return failed_record(cell, profile, *error_text(exc)), None


def pack_signature(cell: Cell) -> str | None:
    """What cells packed with this one must share (canonical JSON), or None when it cannot be packed.

    None for methods other than :data:`PACKABLE_METHODS`, configurations that train nothing
    (``steps=0`` or every loss off), ``bn_mode="train"`` and invalid arguments (the cell then runs
    alone and reports its own error).
    """
    from ..coftad import COFTADConfig
    from ..methods.registry import FIXED_KWARGS
    from ..packed import PER_FIT_FIELDS

    if cell.method not in PACKABLE_METHODS:
        return None
    try:
        config = COFTADConfig(**{**cell.method_kwargs, **FIXED_KWARGS.get(cell.method, {}), "seed": cell.seed})
    except (COFTADInputError, TypeError, ValueError):
        return None
    if config.bn_mode != "eval" or not config.fine_tunes:
        return None
    shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in PER_FIT_FIELDS}
    return canonical_json(shared, "pack signature")


def check_pack(pack: Any, what: str = "pack") -> int:
    """``pack`` if it is an int >= 1, else a :class:`COFTADInputError` naming ``what`` (``--pack``)."""
    if isinstance(pack, bool) or not isinstance(pack, int) or pack < 1:
        raise COFTADInputError(f"{what}={pack!r}: expected an int >= 1 (cells fitted in one batched step)")
    return pack


def pack_groups(work: Mapping[str, Cell], pack: int) -> list[list[str]]:
    """Group the keys of ``work`` into packs of at most ``pack`` cells with one :func:`pack_signature`.

    Cells that cannot be packed (or all cells when ``pack == 1``) form packs of one. Packs come in
    the order of their first cell; within a pack, the cells keep their order.
    """
    check_pack(pack)
    groups: list[list[str]] = []
    filling: dict[str, list[str]] = {}
    for key, cell in work.items():
        sig = pack_signature(cell) if pack > 1 else None
        if sig is None:
            groups.append([key])
            continue
        group = filling.get(sig)
        if group is None or len(group) >= pack:
            group = filling[sig] = []
            groups.append(group)
        group.append(key)
    return groups


def _prepare(cells: Sequence[Cell], data_root: Any, profile: str, strict: bool,
             outcomes: list[Outcome | None]) -> list[tuple[int, Any, Any]]:
    """(index, task, unfitted detector) of each cell whose data loads; the others' outcomes filled in."""
    ready = []
    for i, cell in enumerate(cells):
        try:
            task = load_cell_task(cell, data_root)
            ready.append((i, task, cells_mod.make_detector(cell.method, seed=cell.seed, **cell.method_kwargs)))
        except (DatasetNotFoundError, WeightsUnavailableError) as exc:
            if strict:
                raise
            outcomes[i] = (missing_record(cell, base_record(cell, profile), exc), None)
        except Exception as exc:
            if strict:
                raise
            outcomes[i] = (failed_record(cell, profile, *error_text(exc)), None)
    return ready


def compute_pack(cells: Sequence[Cell], data_root: Any, profile: str,
                 strict: bool) -> list[Outcome]:
    """One outcome per cell of the pack, in order; cells of a pack of two or more are fitted together.

    A cell whose data is missing gets its ``"missing"`` record and the rest are packed without it.
    An error in the packed fit fails every cell of the pack (the message names the error); with
    ``strict`` it is raised.
    """
    from ..packed import fit_packed

    cells = list(cells)
    if len(cells) == 1:
        return [compute_outcome(cells[0], data_root, profile, strict)]
    outcomes: list[Outcome | None] = [None] * len(cells)
    ready = _prepare(cells, data_root, profile, strict, outcomes)
    try:
        t0 = time.perf_counter()
        if ready:
            fit_packed([det for _, _, det in ready], [task.train for _, task, _ in ready])
        fit_s = (time.perf_counter() - t0) / max(len(ready), 1)
    except Exception as exc:
        if strict:
            raise
        for i, _, _ in ready:
            outcomes[i] = (failed_record(cells[i], profile, *error_text(exc)), None)
        return [o for o in outcomes if o is not None]
    for i, task, det in ready:
        try:
            record, feats = finish_record(cells[i], base_record(cells[i], profile), task, det, fit_s, data_root)
            outcomes[i] = ({**record, "pack_size": len(ready)}, feats)
        except Exception as exc:
            if strict:
                raise
            outcomes[i] = (failed_record(cells[i], profile, *error_text(exc)), None)
    return [o for o in outcomes if o is not None]
