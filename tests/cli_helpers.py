"""Setup shared by the ``python -m coftad_lib`` tests (``test_cli.py``, ``test_cli_robust.py``).

A small labelled folder of generated stripe textures, a PatchCore model fitted on it, and a way to call
the CLI in-process; each test module wraps these in its own module-scoped fixtures, so each keeps its
own copy of the data (tests there write into it).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from coftad_lib.cli import EXIT_OK, main
from coftad_lib.datasets.synthetic import make_texture_arrays

#: options that make a fit take seconds on a CPU
FAST = ["--image-size", "32", "--steps", "1", "--quiet", "--device", "cpu"]


def save_png(arr, path: Path) -> Path:
    """Write image array ``arr`` to ``path`` (parent folders made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def write_parts(root: Path) -> Path:
    """Fill ``root`` with train/ (5 normal), test/good/ (4), test/red_square/ (4): stripe textures, 40 px."""
    train, test, labels = make_texture_arrays(5, 4, 4, size=40)
    for i, a in enumerate(train):
        save_png(a, root / "train" / f"n{i}.png")
    for i, (a, y) in enumerate(zip(test, labels, strict=True)):
        save_png(a, root / "test" / ("red_square" if y else "good") / f"t{i}.png")
    return root


def fit_patchcore(data: Path, out: Path) -> Path:
    """Fit a PatchCore model on ``data/train`` through the CLI into ``out`` (asserting exit 0)."""
    assert main(["fit", str(data / "train"), "--out", str(out), "--method", "patchcore", *FAST]) == EXIT_OK
    return out


def run_cli(args, capsys) -> tuple[int, str, str]:
    """Run the CLI in-process on ``args`` (any objects, turned into strings): (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err
