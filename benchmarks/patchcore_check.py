"""PatchCore check: the project's PatchCoreDetector against a minimal reference PatchCore on
MVTec bottle (issue 10, item 3). Same shots, same test images, same Lite0 weights for all rows.

Rows: the reference (tests/test_patchcore_reference.py), the project as it is, and the project
with the earlier border pooling (``count_include_pad=False``). Besides AUROC it reports how often
a good test image's highest patch lies on the map's border ring, and the separation margin
(lowest anomalous score minus highest good score, over the spread of good scores).

``--threshold FPR`` instead checks :func:`coftad_lib.threshold.fit_threshold` on the same data:
the realised false-positive rate on the normal bottle images that are not shots (the rest of
train/good plus test/good) and the share of defects flagged, for PatchCore and the pretrained
Gaussian detector, against a threshold from the shots' own (in-sample) scores; ``--append``
adds that table to the file.

Usage:
    python benchmarks/patchcore_check.py --root ../shared/data/mvtec_ad --shots 5 10 --seeds 0 1 2 \\
        --out benchmarks/results/patchcore_check.md
    python benchmarks/patchcore_check.py --root ../shared/data/flowers17 --dataset flowers17 \\
        --task Daffodil/Tulip --shots 5 10 --seeds 0 1 2 --out benchmarks/results/patchcore_check.md --append
    python benchmarks/patchcore_check.py --threshold 0.1 --shots 5 10 --seeds 0 1 2 \\
        --out benchmarks/results/patchcore_check.md --append
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from coftad_lib.backbones import build_backbone
from coftad_lib.datasets import load_task
from coftad_lib.images import images_to_tensor
from coftad_lib.methods.patchcore import PatchCoreDetector
from coftad_lib.metrics import auroc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_patchcore_reference import reference_patchcore  # noqa: E402 - one reference, kept with its test


def _border_share(det: PatchCoreDetector, good: torch.Tensor) -> float:
    """Share of good images whose highest patch lies on the outermost ring of the patch grid."""
    grid = det.patch_maps(good)
    side = grid.shape[-1]
    rows, cols = np.unravel_index(grid.reshape(len(grid), -1).argmax(1), (side, side))
    return float(np.mean((rows == 0) | (cols == 0) | (rows == side - 1) | (cols == side - 1)))


def _margin(scores: np.ndarray, labels: np.ndarray) -> float:
    good, bad = scores[labels == 0], scores[labels == 1]
    return float((bad.min() - good.max()) / good.std())


def run(root: str, shots: list[int], seeds: list[int], size: int, dataset: str = "mvtec",
        task_name: str = "bottle") -> list[dict]:
    net = build_backbone("efficientnet_lite0")
    rows = []
    for k in shots:
        for seed in tqdm(seeds, desc=f"{k} shots"):
            task = load_task(dataset, root, shots=k, seed=seed, task=task_name)
            train, test = images_to_tensor(task.train, size), images_to_tensor(task.test, size)
            labels = np.asarray(task.test_labels)
            good = test[labels == 0]
            ref = reference_patchcore(net, train, test)
            rows.append(dict(shots=k, seed=seed, variant="reference", auroc=auroc(ref, labels),
                             margin=_margin(ref, labels), border=float("nan")))
            for variant, pad in (("project", True), ("project, count_include_pad=False (before)", False)):
                det = PatchCoreDetector(image_size=size, device="cpu", progress=False, seed=seed,
                                        count_include_pad=pad, chunk_elems=2**23).fit(train)  # small RAM peak
                s = det.score_samples(test)
                rows.append(dict(shots=k, seed=seed, variant=variant, auroc=auroc(s, labels),
                                 margin=_margin(s, labels), border=_border_share(det, good),
                                 max_rel_diff=float(np.max(np.abs(s - ref) / ref))))
    return rows


def to_markdown(rows: list[dict], command: str, seconds: float, title: str = "MVTec bottle") -> str:
    lines = [f"## PatchCore vs a minimal reference on {title}", "",
             f"Command: `{command}` ({seconds:.0f} s on the CPU).", "",
             "Mean +- std over seeds. border = share of good test images whose highest patch is on the",
             "patch grid's outer ring; margin = (lowest defect score - highest good score) / std of good",
             "scores; max rel. diff = largest |score - reference| / reference over the test images.", "",
             "| shots | variant | AUROC % | margin | border | max rel. diff |", "|---|---|---|---|---|---|"]
    for k in sorted({r["shots"] for r in rows}):
        for v in dict.fromkeys(r["variant"] for r in rows):
            rs = [r for r in rows if r["shots"] == k and r["variant"] == v]
            a, m, b = (np.array([r[key] for r in rs]) for key in ("auroc", "margin", "border"))
            d = max(r.get("max_rel_diff", 0.0) for r in rs)
            border = "-" if np.isnan(b).all() else f"{100 * b.mean():.0f} %"
            lines.append(f"| {k} | {v} | {100 * a.mean():.1f} +- {100 * a.std():.1f} | {m.mean():.2f} +- {m.std():.2f} "
                         f"| {border} | {'-' if v == 'reference' else f'{d:.1e}'} |")
    return "\n".join(lines) + "\n"


def threshold_rows(root: str, shots: list[int], seeds: list[int], size: int, fpr: float) -> list[dict]:
    """Realised FPR / defect recall of fit_threshold(fpr) against the in-sample quantile rule."""
    import warnings

    from coftad_lib.methods import make_detector
    from coftad_lib.threshold import fit_threshold

    pool = sorted((Path(root) / "bottle" / "train" / "good").glob("*.png"))
    rows = []
    for k in shots:
        for seed in tqdm(seeds, desc=f"threshold, {k} shots"):
            task = load_task("mvtec", root, shots=k, seed=seed, task="bottle")
            labels = np.asarray(task.test_labels)
            taken = {Path(p).resolve() for p in task.train}
            fresh = [p for p in pool if p.resolve() not in taken] + [p for p, y in zip(task.test, labels, strict=True) if y == 0]
            defects = [p for p, y in zip(task.test, labels, strict=True) if y == 1]
            for name in ("patchcore", "pretrained"):
                det = make_detector(name, image_size=size, device="cpu", progress=False, seed=seed).fit(task.train)
                s_fresh, s_def = det.score_samples(fresh), det.score_samples(defects)
                naive = float(np.quantile(det.score_samples(task.train), 1 - fpr))
                # PatchCore scores no copies by default (n_aug = 0); the Gaussian detector its N_A = 10.
                for n_copies in (None, 0) if name == "pretrained" else (None,):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        thr = fit_threshold(det, task.train, fpr=fpr, n_copies=n_copies)
                    info = det.threshold_info
                    rows.append(dict(shots=k, seed=seed, method=f"{name}, n_copies={info['n_copies']}", mode=info["mode"],
                                     n_scores=info["n_scores"], n_fresh=len(fresh),
                                     fpr=float((s_fresh > thr).mean()), recall=float((s_def > thr).mean()),
                                     naive_fpr=float((s_fresh > naive).mean()), naive_recall=float((s_def > naive).mean())))
    return rows


def threshold_markdown(rows: list[dict], fpr: float, command: str, seconds: float) -> str:
    lines = [f"## fit_threshold(fpr={fpr}) on MVTec bottle", "",
             f"Command: `{command}` ({seconds:.0f} s on the CPU).", "",
             "Realised FPR on the normal images that are not shots (rest of train/good + test/good) and the",
             "share of the 63 defects flagged; mean and range over seeds. In-sample: the (1 - fpr) quantile",
             "of the shots' own scores, what a threshold without leave-one-out gives.", "",
             "| shots | method | mode (scores) | FPR | defects flagged | in-sample FPR | in-sample flagged |",
             "|---|---|---|---|---|---|---|"]

    def cell(v: np.ndarray) -> str:
        return f"{100 * v.mean():.1f} % ({100 * v.min():.0f}-{100 * v.max():.0f})"

    for k in sorted({r["shots"] for r in rows}):
        for m in dict.fromkeys(r["method"] for r in rows):
            rs = [r for r in rows if r["shots"] == k and r["method"] == m]
            f, rec, nf, nr = (np.array([r[key] for r in rs]) for key in ("fpr", "recall", "naive_fpr", "naive_recall"))
            lines.append(f"| {k} | {m} | {rs[0]['mode']} ({rs[0]['n_scores']}) | {cell(f)} | {cell(rec)} | {cell(nf)} "
                         f"| {cell(nr)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/mvtec_ad")
    p.add_argument("--dataset", default="mvtec", help="a load_task dataset (reference comparison only)")
    p.add_argument("--task", default="bottle", help="its task, e.g. bottle or Daffodil/Tulip")
    p.add_argument("--shots", type=int, nargs="+", default=[5, 10])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--out", default=None, help="write the Markdown table here (default: print only)")
    p.add_argument("--threshold", type=float, default=None, help="check fit_threshold at this FPR instead")
    p.add_argument("--append", action="store_true", help="append to --out instead of overwriting it")
    a = p.parse_args()
    t0 = time.time()
    command = "python " + " ".join(sys.argv)
    if a.threshold is None:
        rows = run(a.root, a.shots, a.seeds, a.size, a.dataset, a.task)
        md = to_markdown(rows, command, time.time() - t0, f"{a.dataset} {a.task}")
    else:
        rows = threshold_rows(a.root, a.shots, a.seeds, a.size, a.threshold)
        md = threshold_markdown(rows, a.threshold, command, time.time() - t0)
    print(md)
    if a.out:
        old = Path(a.out).read_text() + "\n" if a.append and Path(a.out).is_file() else ""
        Path(a.out).write_text(old + md)


if __name__ == "__main__":
    main()
