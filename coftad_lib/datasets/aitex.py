"""AITEX fabric defects (Silvestre-Blanes et al. 2019) as 256 x 256 patches: the paper's Sec. IV-A.

The paper crops the 4096 x 256 scans into 256 x 256 patches (``data_prep.aitex_crops`` writes them
with a manifest); this loader reads that crops folder. Protocol: the test set is 600 normal patches
plus all defect patches; the k = 5 / 10 / 50 shots are drawn from the remaining normal patches.

The official release gives 141 defect-free scans (705 normal patches; the paper says 140) and 106
defect scans, of which 0100_025_08 has no mask and 0106_010_03 an all-black one: both are left
out, so the test set holds 104 defect patches (the paper: 105). ``task.info["left_out"]`` lists
them and ``task.info["notes"]`` the scans needing other care (split masks, the 3796 px wide scan,
grey + alpha PNGs); see ``data_prep.aitex_crops``.

The crops-folder protocol itself, shared with the SemiCon slices, is :func:`.crops.load_crops`.
"""

from __future__ import annotations

import os

from .crops import load_crops
from .task import FewShotTask

TASKS: list[str] = ["aitex"]

HOW_TO_GET = """\
AITEX Fabric Image Database (AFID): download the three archives from
    https://www.aitex.es/afid/
(Defect_images.7z, NODefect_images.7z, Mask_images.7z; read and accept its terms of use there) and
extract them into one folder, e.g. data/aitex, giving
    data/aitex/Defect_images/nnnn_ddd_ff.png
    data/aitex/NODefect_images/<fabric>/*.png
    data/aitex/Mask_images/nnnn_ddd_ff_mask.png
Then cut the 256 x 256 patches the paper uses:
    python -m data_prep.aitex_crops --root data/aitex --out data/aitex_crops --seed 0
and pass root="data/aitex_crops" to the loader."""


def load(
    root: str | os.PathLike, shots: int, seed: int = 0, *, n_test_normal: int = 600, check_files: bool = True
) -> FewShotTask:
    """Few-shot AITEX task from a crops folder made by ``data_prep.aitex_crops`` (paper Sec. IV-A).

    Args:
        root: the crops folder (``normal/``, ``defect/``, ``manifest.csv``).
        shots: normal training patches k (the paper uses 5, 10 and 50).
        seed: sampling seed.
        n_test_normal: normal test patches (paper: 600 of the 700 cut from 140 images); lower it
            for a smaller or partial crops folder.
        check_files: check each patch's header and end marker now.

    Returns:
        FewShotTask: ``test`` = n_test_normal normal + all defect patches (kind = AITEX defect code);
        256 x 256 8-bit grey PNG paths. ``info`` adds ``left_out`` and ``notes`` from the crops
        folder when the preparation recorded any (:func:`.crops.preparation_notes`).
    """
    return load_crops(
        root, shots, seed, dataset="aitex", n_test_normal=n_test_normal, n_test_defect=None,
        how_to_get=HOW_TO_GET, check_files=check_files,
        protocol="test = n_test_normal normal + all defect patches; shots from the other normals",
    )  # fmt: skip
