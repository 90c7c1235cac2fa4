"""Saving the paper's figures reproducibly: PNG (150 dpi) and PDF, byte-identical across reruns.

Outside a Jupyter kernel the Agg backend is selected (no display needed). Saved files carry no
creation date, so rerunning a notebook changes a figure's bytes only when the figure changed.
Each save also writes ``<name>.json`` beside the images with the profile and notebook that
produced them, which :func:`coftad_lib.paper.report.write_report` reads.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import matplotlib

if "matplotlib.pyplot" not in sys.modules and "ipykernel" not in sys.modules:
    # Headless by default; inside a notebook keep the inline backend so figures still display.
    matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from .atomic_files import write_bytes_atomic, write_text_atomic  # noqa: E402
from .errors import COFTADInputError  # noqa: E402

DPI = 150
#: metadata entries that would otherwise embed the date or vary between runs
_PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None}
_PNG_METADATA = {"Software": None}


def _bytes(fig: Figure, fmt: str) -> bytes:
    buf = io.BytesIO()
    meta = _PDF_METADATA if fmt == "pdf" else _PNG_METADATA
    fig.savefig(buf, format=fmt, dpi=DPI, metadata=meta)
    return buf.getvalue()


def save_figure(fig: Figure, name: str, out_dir: str | os.PathLike = "results/figures", *,
                profile: str = "", notebook: str = "") -> list[Path]:
    """Write ``<out_dir>/<name>.png`` (150 dpi) and ``<name>.pdf`` atomically; return both paths.

    Args:
        fig: a matplotlib Figure (``plt.figure()`` or ``matplotlib.figure.Figure()``).
        name: file stem, e.g. ``"fig7_score_distributions"`` (letters, digits, ``_``, ``-``).
        out_dir: output folder.
        profile, notebook: the run's profile and the notebook that produced the figure, recorded
            in ``<name>.json`` (:meth:`coftad_lib.paper.context.RunContext.save_figure` fills both).

    The PDF has no creation/modification date and no producer string, the PNG no software tag.
    """
    if not isinstance(fig, Figure):
        raise COFTADInputError(f"save_figure: expected a matplotlib Figure, got {type(fig).__name__}")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise COFTADInputError(f"save_figure: name={name!r} must be letters, digits, '_' or '-'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    old_epoch = os.environ.get("SOURCE_DATE_EPOCH")
    # matplotlib's PDF backend reads SOURCE_DATE_EPOCH for dates it writes itself; pin it.
    os.environ["SOURCE_DATE_EPOCH"] = "0"
    try:
        paths = []
        for fmt in ("png", "pdf"):
            data = _bytes(fig, fmt)
            paths.append(write_bytes_atomic(out / f"{name}.{fmt}", data))
    finally:
        if old_epoch is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old_epoch
    meta = {"figure": name, "files": [p.name for p in paths], "profile": profile, "notebook": notebook}
    write_text_atomic(out / f"{name}.json", json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return paths
