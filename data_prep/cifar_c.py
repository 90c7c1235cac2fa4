"""Generate CIFAR-10-C / CIFAR-100-C corruptions from clean CIFAR test images (paper Sec. IV-A-1).

The official files (Hendrycks & Dietterich, ref. [41]) are 150 MB per corruption; this writes the
corruptions the protocol needs in the same layout, so one loader
(:func:`coftad_lib.datasets.cifar_c.load`) reads both:

* ``<out>/<corruption>.npy``: uint8 (S * N, 32, 32, 3), the chosen severities stacked in
  increasing order, N clean images each (official files: S = 5, N = 10,000).
* ``<out>/labels.npy``: (S * N,) uint8 class ids (fine ids for CIFAR-100), repeated per severity.
* ``<out>/coftad_generated.json``: which severities are stacked, the clean image behind each row
  (its id), the seed and where the clean images came from. Writing only the severities asked for
  (default: 4, the paper's) avoids 5x the work and disk; the sidecar tells the loader which row
  block holds which severity.

Usage::

    python -m data_prep.cifar_c --clean <clean images> --out <dir> [--severity 4]
        [--corruptions gaussian_noise ...] [--limit-per-class N] [--variant cifar10c] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from coftad_lib.atomic_files import atomic_path, write_text_atomic
from coftad_lib.datasets.cifar_c import (
    DEFAULT_CORRUPTIONS,
    GENERATED_META,
    CleanSet,
    infer_variant,
    read_clean,
)
from coftad_lib.datasets.corruptions import CIFAR_C_SEVERITY_CONSTANTS, CORRUPTIONS, corrupt
from coftad_lib.datasets.sampling import rng_for
from coftad_lib.errors import COFTADInputError

#: images corrupted per call; fixed so that a given seed always gives the same pixels
CHUNK = 1000


def _check_args(
    severities: Sequence[int], corruptions: Sequence[str] | None
) -> tuple[list[int], list[str]]:
    """Validate the severities and corruptions; return them sorted / as a list of names."""
    sev = sorted({int(s) for s in severities})
    if not sev or any(s not in (1, 2, 3, 4, 5) for s in sev):
        raise COFTADInputError(f"severities={list(severities)}: expected one or more of 1..5")
    names = list(DEFAULT_CORRUPTIONS if corruptions is None else corruptions)
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown or not names:
        raise COFTADInputError(
            f"corruptions={names}: unknown {unknown}; choose from {', '.join(CORRUPTIONS)}"
        )
    return sev, names


def _check_out(out: Path, names: list[str], overwrite: bool) -> None:
    """Refuse to replace files in ``out`` unless asked, and never write into official files."""
    targets = [out / f"{n}.npy" for n in names] + [out / "labels.npy", out / GENERATED_META]
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        raise COFTADInputError(
            f"{out}: {existing[0].name} already exists; pass overwrite=True (--overwrite) to replace it"
        )
    if (out / "labels.npy").exists() and not (out / GENERATED_META).exists() and overwrite:
        # An official CIFAR-C folder has no sidecar; never mix generated files into it.
        raise COFTADInputError(f"{out}: looks like an official CIFAR-C folder; write elsewhere")


def _write_corruptions(
    data: CleanSet, out: Path, names: list[str], sev: list[int], seed: int, progress: bool
) -> None:
    """Write ``<name>.npy``: the (N, 32, 32, 3) images corrupted per severity, (S * N, 32, 32, 3)."""
    n = len(data.ids)
    total = len(names) * len(sev) * ((n + CHUNK - 1) // CHUNK)
    bar = tqdm(total=total, desc="CIFAR-C", unit="chunk", disable=not progress)
    for name in names:
        stacked = np.empty((len(sev) * n, *data.images.shape[1:]), dtype=np.uint8)
        for b, s in enumerate(sev):
            rng = rng_for(seed, "cifar-c", name, s)
            for start in range(0, n, CHUNK):
                chunk = data.images[start : start + CHUNK]
                stacked[b * n + start : b * n + start + len(chunk)] = corrupt(chunk, name, s, rng)
                bar.update(1)
        with atomic_path(out / f"{name}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, stacked)
    bar.close()


def generate(
    clean: str | os.PathLike,
    out: str | os.PathLike,
    severities: Sequence[int] = (4,),
    corruptions: Sequence[str] | None = None,
    limit_per_class: int | None = None,
    variant: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Corrupt the clean CIFAR test images and write them in the CIFAR-C layout.

    Args:
        clean: clean images: official python batches or ``[test/]<class>/`` folders.
        out: output folder (created).
        severities: levels 1..5 to write, stacked in increasing order.
        corruptions: names from :data:`coftad_lib.datasets.corruptions.CORRUPTIONS`; default
            the protocol's 9 (:data:`coftad_lib.datasets.cifar_c.DEFAULT_CORRUPTIONS`).
        limit_per_class: corrupt only the first N test images of each class (quick runs).
        variant: ``"cifar10c"`` / ``"cifar100c"``; None infers it from the clean layout.
        seed: seeds the random corruptions (each corruption and severity independently).
        overwrite: replace existing files in ``out``.

    Returns:
        ``out`` as a Path.
    """
    out = Path(out)
    sev, names = _check_args(severities, corruptions)
    variant = variant or infer_variant(clean)
    _check_out(out, names, overwrite)
    data = read_clean(clean, variant, "test", limit_per_class=limit_per_class)
    out.mkdir(parents=True, exist_ok=True)
    _write_corruptions(data, out, names, sev, seed, progress)
    with atomic_path(out / "labels.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.tile(data.labels, len(sev)).astype(np.uint8))
    meta = {
        "format": "coftad CIFAR-C generated files, v1",
        "variant": variant,
        "severities": sev,
        "corruptions": names,
        "seed": seed,
        "n_per_severity": len(data.ids),
        "limit_per_class": limit_per_class,
        "clean_source": str(Path(data.source).resolve()),
        "constants": "hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py",
        "severity_constants": {k: CIFAR_C_SEVERITY_CONSTANTS[k] for k in names},
        "source_ids": data.ids,
    }
    write_text_atomic(out / GENERATED_META, json.dumps(meta, indent=1))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    p = argparse.ArgumentParser(
        prog="python -m data_prep.cifar_c", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--clean",
        required=True,
        help="clean CIFAR test images (python batches or <class>/ folders)",
    )
    p.add_argument("--out", required=True, help="output folder for <corruption>.npy and labels.npy")
    p.add_argument(
        "--severity", type=int, nargs="+", default=[4], help="severities 1..5 (default 4)"
    )
    p.add_argument(
        "--corruptions", nargs="+", default=None, help=f"default: {' '.join(DEFAULT_CORRUPTIONS)}"
    )
    p.add_argument(
        "--limit-per-class", type=int, default=None, help="only the first N images per class"
    )
    p.add_argument("--variant", choices=["cifar10c", "cifar100c"], default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    try:
        out = generate(
            a.clean,
            a.out,
            a.severity,
            a.corruptions,
            a.limit_per_class,
            a.variant,
            a.seed,
            a.overwrite,
        )
    except (COFTADInputError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
