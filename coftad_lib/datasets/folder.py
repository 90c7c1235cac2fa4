"""Your own images as a registry dataset (``load_task("folder", root, ...)``).

Layout::

    <root>/train/            normal images (any depth, e.g. train/good/*.png)
    <root>/test/good/        normal test images   (a folder named good, normal or ok)
    <root>/test/<defect>/    anomalous test images, one folder per anomaly type

or a labels CSV instead of the test folders (paths relative to the CSV file). The loader is the
one of every user's labelled data, :func:`coftad_lib.datasets.labelled.load_folder`.
"""

from __future__ import annotations

from .labelled import HOW_TO_GET, NORMAL_FOLDER_NAMES
from .labelled import load_folder as load

#: user-defined: no fixed task list
TASKS: list[str] = []

__all__ = ["HOW_TO_GET", "NORMAL_FOLDER_NAMES", "TASKS", "load"]
