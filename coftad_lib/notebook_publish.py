"""Committable copies of the executed notebooks, so REPORT.md's links resolve on a fresh clone.

The runner writes executed notebooks to ``results/executed/`` (git-ignored: they change on every
run). :func:`publish_executed` copies those of a headline run to a committed folder (by default
``results/notebooks/``) with their outputs, within a size budget:

* volatile metadata is dropped (papermill's timestamps and absolute input/output paths, cell
  execution times, the random id of the injected-parameters cell), so an unchanged rerun gives an unchanged file and no machine paths leak;
* an embedded image over ``max_image_bytes`` is replaced by a one-line note (the figure itself is
  in ``results/figures/``);
* when the copies together still exceed ``budget_bytes``, the largest are republished text-only
  until they fit.

GitHub renders ``.ipynb`` files and JupyterLab opens them, so no HTML conversion (and no nbconvert
dependency) is needed.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import COFTADInputError

#: the committed folder, relative to the results folder (REPORT.md links ``notebooks/<name>.ipynb``)
PUBLISHED_DIR = "notebooks"
#: all published notebooks together (the smoke series' images are a few tens of KiB each)
DEFAULT_BUDGET_BYTES = 8 << 20
#: an embedded image above this is left out of the published copy
DEFAULT_MAX_IMAGE_BYTES = 512 << 10

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


def _image_bytes(value: object) -> int:
    text = "".join(value) if isinstance(value, list) else str(value)
    try:
        return len(base64.b64decode(text, validate=False))
    except ValueError:
        return len(text)


def _strip_outputs(cell, max_image_bytes: int) -> int:
    """Replace images over ``max_image_bytes`` in ``cell``'s outputs by a note; returns how many."""
    dropped = 0
    for out in cell.get("outputs", []):
        data = out.get("data")
        if not data:
            continue
        for mime in [m for m in _IMAGE_TYPES if m in data]:
            size = _image_bytes(data[mime])
            if size > max_image_bytes:
                del data[mime]
                data["text/plain"] = (f"[{mime} of {size // 1024} KiB left out of the published copy; "
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


def _publish_one(src: Path, dest: Path, max_image_bytes: int) -> int:
    import nbformat

    nb = nbformat.read(src, as_version=4)
    dropped = _clean(nb, max_image_bytes)
    tmp = dest.with_name(f".{dest.name}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, dest)  # a reader never sees a half-written notebook
    return dropped


def publish_executed(executed_dir: str | os.PathLike, dest_dir: str | os.PathLike, *,
                     names: Sequence[str] | None = None, budget_bytes: int = DEFAULT_BUDGET_BYTES,
                     max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> PublishResult:
    """Copy executed notebooks to a committed folder with outputs, cleaned and within a budget.

    Args:
        executed_dir: where the runner wrote them (``results/executed``).
        dest_dir: the committed folder (``results/notebooks``); created if needed.
        names: notebook stems to publish (``"04_table_I_flowers17"``); None = every ``*.ipynb``.
        budget_bytes: the most all published copies may take together.
        max_image_bytes: embedded images above this are replaced by a note.

    Raises:
        COFTADInputError: a named notebook is not in ``executed_dir``, or even text-only the
            copies exceed the budget (the message says by how much).
    """
    src_dir, out_dir = Path(executed_dir), Path(dest_dir)
    stems = sorted(p.stem for p in src_dir.glob("*.ipynb")) if names is None else list(names)
    missing = [s for s in stems if not (src_dir / f"{s}.ipynb").is_file()]
    if missing:
        raise COFTADInputError(f"{src_dir}: no executed notebook {', '.join(missing)}; run them first")
    out_dir.mkdir(parents=True, exist_ok=True)
    result = PublishResult()
    for stem in stems:
        result.images_left_out += _publish_one(src_dir / f"{stem}.ipynb", out_dir / f"{stem}.ipynb", max_image_bytes)
        result.files.append(out_dir / f"{stem}.ipynb")
    sizes = {p.stem: p.stat().st_size for p in result.files}
    # Over the budget: the largest copies lose their images first, one at a time, until it fits.
    for stem in sorted(sizes, key=sizes.get, reverse=True):
        if sum(sizes.values()) <= budget_bytes:
            break
        result.images_left_out += _publish_one(src_dir / f"{stem}.ipynb", out_dir / f"{stem}.ipynb", -1)
        sizes[stem] = (out_dir / f"{stem}.ipynb").stat().st_size
        result.text_only.append(stem)
    result.total_bytes = sum(sizes.values())
    if result.total_bytes > budget_bytes:
        raise COFTADInputError(
            f"{out_dir}: the published notebooks take {result.total_bytes} bytes even without images, over the "
            f"budget of {budget_bytes}; raise budget_bytes or publish fewer notebooks"
        )
    return result
