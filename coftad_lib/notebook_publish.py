"""Committable copies of the executed notebooks, so REPORT.md's links resolve on a fresh clone.

The runner writes executed notebooks to ``results/executed/`` (git-ignored: they change on every
run). :func:`publish_executed` copies them to ``results/notebooks/`` with their outputs, within a
size budget; that folder is git-ignored too (house rule: no notebook with outputs in git), and
:mod:`coftad_lib.reproduce.notebook_html` renders these copies to the committed HTML pages:

* volatile metadata is dropped (papermill's timestamps and absolute input/output paths, cell
  execution times, the random id of the injected-parameters cell), so an unchanged rerun gives an unchanged file and no machine paths leak;
* an embedded PNG over ``max_image_bytes`` is re-encoded as JPEG (quality 85, downscaled if need
  be); one that still does not fit, or another image type, is replaced by a one-line note (the
  figure files are in ``results/figures/``);
* absolute paths given in ``redact`` (the repository, the data folder) are replaced, so no machine
  paths leak into committed files;
* when the copies together still exceed ``budget_bytes``, the largest are republished text-only
  until they fit.

The cleaning is what makes the HTML pages stable between unchanged reruns and free of machine paths.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import COFTADInputError

#: the published folder, relative to the results folder (git-ignored; rendered to ``html/``)
PUBLISHED_DIR = "notebooks"
#: all published notebooks together (the smoke series' images are a few tens of KiB each)
DEFAULT_BUDGET_BYTES = 8 << 20
#: an embedded PNG above this is re-encoded as a JPEG that fits (other images: left out)
DEFAULT_MAX_IMAGE_BYTES = 256 << 10

_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
_VOLATILE_NB_KEYS = ("start_time", "end_time", "duration", "input_path", "output_path", "exception", "environment_variables")


@dataclass
class PublishResult:
    """What :func:`publish_executed` wrote.

    Attributes:
        files: published notebooks, in order.
        total_bytes: their size together.
        images_left_out: images replaced by a note (over ``max_image_bytes``, or to fit the budget).
        text_only: notebooks republished without any image to fit the budget.
    """

    files: list[Path] = field(default_factory=list)
    total_bytes: int = 0
    images_left_out: int = 0
    text_only: list[str] = field(default_factory=list)


def _as_jpeg(png: bytes, max_bytes: int) -> bytes | None:
    """``png`` re-encoded as JPEG (quality 85, halved in size until it fits), or None if it cannot be."""
    try:
        from PIL import Image

        im = Image.open(io.BytesIO(png)).convert("RGB")
        while True:
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=85, optimize=True)
            if buf.tell() <= max_bytes:
                return buf.getvalue()
            if min(im.size) < 64:
                return None
            im = im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS)
    except (OSError, ValueError):  # not a raster image PIL can read: leave it to the caller
        return None


def _strip_outputs(cell, max_image_bytes: int) -> int:
    """Shrink (PNG -> JPEG) or replace by a note the images over ``max_image_bytes``; returns how many were noted."""
    dropped = 0
    for out in cell.get("outputs", []):
        data = out.get("data")
        if not data:
            continue
        for mime in [m for m in _IMAGE_TYPES if m in data]:
            raw = "".join(data[mime]) if isinstance(data[mime], list) else str(data[mime])
            payload = raw.encode() if mime == "image/svg+xml" else base64.b64decode(raw)
            if len(payload) <= max_image_bytes:
                continue
            del data[mime]
            jpeg = _as_jpeg(payload, max_image_bytes) if mime == "image/png" and max_image_bytes > 0 else None
            if jpeg is not None:
                data["image/jpeg"] = base64.b64encode(jpeg).decode()
                continue
            data["text/plain"] = (f"[{mime} of {len(payload) // 1024} KiB left out of the published copy; "
                                  f"the figure files are in results/figures/]")
            dropped += 1
    return dropped


def _clean(nb, max_image_bytes: int) -> int:
    """Drop volatile metadata and oversized images from ``nb`` in place; returns images dropped."""
    pm = nb.metadata.get("papermill")
    if pm is not None:
        for key in _VOLATILE_NB_KEYS:
            pm.pop(key, None)
    dropped = 0
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell["id"] = "injected-parameters"  # papermill gives it a random id on every run
        cell.metadata.pop("execution", None)
        cell_pm = cell.metadata.get("papermill")
        if cell_pm is not None:
            for key in ("start_time", "end_time", "duration", "exception"):
                cell_pm.pop(key, None)
        dropped += _strip_outputs(cell, max_image_bytes)
    return dropped


def _publish_one(src: Path, dest: Path, max_image_bytes: int, redact: Mapping[str, str]) -> int:
    import nbformat

    nb = nbformat.read(src, as_version=4)
    dropped = _clean(nb, max_image_bytes)
    text = nbformat.writes(nb)
    # longest first, so a folder inside another (data inside the repository) keeps its own name
    for old in sorted(redact, key=len, reverse=True):
        text = text.replace(json.dumps(old)[1:-1], json.dumps(redact[old])[1:-1])
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, dest)  # a reader never sees a half-written notebook
    return dropped


def notebook_stems(src_dir: Path, names: Sequence[str] | None, what: str) -> list[str]:
    """``names``, or every ``*.ipynb`` stem in ``src_dir``; raises naming those that are not there."""
    stems = sorted(p.stem for p in src_dir.glob("*.ipynb")) if names is None else list(names)
    missing = [s for s in stems if not (src_dir / f"{s}.ipynb").is_file()]
    if missing:
        raise COFTADInputError(f"{src_dir}: no {what} notebook {', '.join(missing)}; run them first")
    return stems


def publish_executed(executed_dir: str | os.PathLike, dest_dir: str | os.PathLike, *,
                     names: Sequence[str] | None = None, budget_bytes: int = DEFAULT_BUDGET_BYTES,
                     max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                     redact: Mapping[str, str] | None = None) -> PublishResult:
    """Copy executed notebooks to a committed folder with outputs, cleaned and within a budget.

    Args:
        executed_dir: where the runner wrote them (``results/executed``).
        dest_dir: the published folder (``results/notebooks``); created if needed.
        names: notebook stems to publish (``"04_table_I_flowers17"``); None = every ``*.ipynb``.
        budget_bytes: the most all published copies may take together.
        max_image_bytes: embedded PNGs above this become JPEGs that fit, other images a note.
        redact: absolute path -> what to write instead, e.g. ``{str(repo): ".", str(data_root):
            "<DATA_ROOT>"}`` (applied to sources, outputs and metadata alike).

    Raises:
        COFTADInputError: a named notebook is not in ``executed_dir``, or even text-only the
            copies exceed the budget (the message says by how much).
    """
    src_dir, out_dir = Path(executed_dir), Path(dest_dir)
    stems = notebook_stems(src_dir, names, "executed")
    out_dir.mkdir(parents=True, exist_ok=True)
    redact = dict(redact or {})
    result = PublishResult()
    for stem in stems:
        result.images_left_out += _publish_one(src_dir / f"{stem}.ipynb", out_dir / f"{stem}.ipynb", max_image_bytes, redact)
        result.files.append(out_dir / f"{stem}.ipynb")
    sizes = {p.stem: p.stat().st_size for p in result.files}
    # Over the budget: the largest copies lose their images first, one at a time, until it fits.
    for stem in sorted(sizes, key=sizes.get, reverse=True):
        if sum(sizes.values()) <= budget_bytes:
            break
        result.images_left_out += _publish_one(src_dir / f"{stem}.ipynb", out_dir / f"{stem}.ipynb", -1, redact)
        sizes[stem] = (out_dir / f"{stem}.ipynb").stat().st_size
        result.text_only.append(stem)
    result.total_bytes = sum(sizes.values())
    if result.total_bytes > budget_bytes:
        raise COFTADInputError(
            f"{out_dir}: the published notebooks take {result.total_bytes} bytes even without images, over the "
            f"budget of {budget_bytes}; raise budget_bytes or publish fewer notebooks"
        )
    return result
