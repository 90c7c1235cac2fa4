"""SemiCon (3D X-ray scans of solder interconnects, [44]) as 2D slices: the paper's Sec. IV-A.

The paper slices 53 private 3D XRM volumes into 2D images; a slice is a defect when its voids are
large relative to the solder. ``data_prep.semicon_slices`` does the slicing (and
``data_prep.semicon_synth`` makes synthetic stand-in volumes); this loader reads the slices folder.
Protocol: 500 normal + 110 defect slices for testing, k = 5 / 10 / 50 shots from the other normals.
"""

from __future__ import annotations

import os

from .crops import load_crops
from .task import FewShotTask

TASKS: list[str] = ["semicon"]

HOW_TO_GET = """\
SemiCon is private (3D X-ray microscopy scans of memory-die interconnects, [44]); it cannot be
downloaded. A synthetic stand-in with the same structure (solder bumps in a grid, voids inside some
bumps, X-ray blur and noise, 16-bit volumes with solder and void masks) is generated locally:
    python -m data_prep.semicon_synth --out data/semicon_volumes --n-volumes 53 --seed 0
    python -m data_prep.semicon_slices --volumes data/semicon_volumes --out data/semicon_slices
Owners of the real volumes put them in one folder as <name>.tif / .npy / .nii(.gz) with
<name>_solder.* and <name>_void.* masks of the same shape (or pass --labels labels.csv with
columns volume,slice,label) and run the second command on it. Pass root="data/semicon_slices"."""


def load(
    root: str | os.PathLike,
    shots: int,
    seed: int = 0,
    *,
    n_test_normal: int = 500,
    n_test_defect: int = 110,
    check_files: bool = True,
) -> FewShotTask:
    """Few-shot SemiCon task from a slices folder made by ``data_prep.semicon_slices`` (Sec. IV-A).

    Args:
        root: the slices folder (``normal/``, ``defect/``, ``manifest.csv``).
        shots: normal training slices k (the paper uses 5, 10 and 50).
        seed: sampling seed.
        n_test_normal: normal test slices (paper: 500); lower it for small (smoke / synthetic) sets.
        n_test_defect: defect test slices (paper: 110); lower it likewise.
        check_files: check each slice's header and end marker now.

    Returns:
        FewShotTask: ``test`` = n_test_normal normal + n_test_defect defect slices, drawn at random.
    """
    return load_crops(
        root, shots, seed, dataset="semicon", n_test_normal=n_test_normal, n_test_defect=n_test_defect,
        how_to_get=HOW_TO_GET, check_files=check_files,
        protocol="test = n_test_normal normal + n_test_defect defect slices; shots from the other normals",
    )  # fmt: skip
