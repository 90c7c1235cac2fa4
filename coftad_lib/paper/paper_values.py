"""The numbers of the paper's Tables I-X, transcribed once into ``data/paper_tables.csv``.

Columns: ``table`` (roman numeral), ``setting`` (e.g. ``"5-shot"``, ``"ResNet18"``, ``"N_A=5"``,
``"5 anomalies"``, or the scorer of Table VIII), ``method`` (our registry name where one exists,
see :data:`DISPLAY_NAMES`), ``task`` (column of the table, ``"avg"`` for the average column),
``value`` (AUROC in %, empty where our copy of the paper is garbled) and ``note`` (any doubt
about the transcription, or an inconsistency inside the paper, e.g. an average that is not the
mean of its row); independent statements in one note are separated by ``" | "``.

Encodings where the paper's layout is not "method x task":
- Table VI (ablations on CIFAR10-C, 10-shot): ``method = "ablation:<row id>"`` with the row ids
  of :data:`ABLATION_ROWS`, ``setting`` = backbone (``"ResNet18"`` / ``"ResNet50"``), ``task = "avg"``.
- Table VIII (scoring functions on Daffodil/Tulip): ``method`` = feature extractor
  (``pretrained``, ``coftad``, ``coftad_np``), ``setting`` = scorer (:data:`SCORERS`).
- Table IX (imbalanced SemiCon): ``setting = "<n> anomalies"``, ``task = "semicon"``; two rows
  whose labels our copy does not show are ``unlabeled_a`` / ``unlabeled_b`` (see their notes).
- Table X: ``setting = "N_A=<n>"``, ``task = "Daffodil/Tulip"``.
- Quoted rows (DifferNet*, TDG* of Table IV, taken by the paper from [4]) carry a note starting
  with ``"quoted"``; they are never run.
"""

from __future__ import annotations

import functools
from importlib import resources

import pandas as pd

from ..errors import COFTADInputError

TABLES: tuple[str, ...] = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X")

TABLE_TITLES: dict[str, str] = {
    "I": "5-shot anomaly detection on Flowers17 (normal/anomaly class pairs)",
    "II": "10-shot anomaly detection on CIFAR10-C",
    "III": "10-shot anomaly detection on CIFAR100-C (20 super-classes)",
    "IV": "Few-shot anomaly detection on MVTec AD (2/5/10-shot)",
    "V": "Few-shot defect identification on SemiCon, AITEX and Magnetic Tile",
    "VI": "Ablation study on CIFAR10-C 10-shot (ResNet18 / ResNet50)",
    "VII": "Effect of the negative pair loss (CutPaste augmentation) on industrial datasets",
    "VIII": "Anomaly scoring functions on Flowers17 Daffodil/Tulip",
    "IX": "Imbalanced anomaly detection on SemiCon (number of test anomalies)",
    "X": "Number of augmentations N_A for the Gaussian fit, Flowers17 Daffodil/Tulip",
}

#: registry / table row name -> name printed in the paper
DISPLAY_NAMES: dict[str, str] = {
    "coftad": "COFT-AD (w/o np)",
    "coftad_np": "COFT-AD (w/ np)",
    "pretrained": "ImageNet Pretrained",
    "random": "Random Init.",
    "ae": "AE",
    "vae": "VAE",
    "deepsvdd": "DeepSVDD",
    "cutpaste": "CutPaste",
    "rotnet": "RotNet",
    "csi": "CSI",
    "cflow": "CFLOW-AD",
    "patchcore": "PatchCore",
    "differnet": "DifferNet*",
    "tdg": "TDG*",
    "unlabeled_a": "unlabeled row a (VAE?)",
    "unlabeled_b": "unlabeled row b",
}

#: Table VI row ids, in the paper's order, with what each row trains (Sec. IV-F)
ABLATION_ROWS: dict[str, str] = {
    "random_init": "no pretrained weights, no training: random-init backbone + Gaussian (L2 norm)",
    "pretrained_only": "ImageNet weights, no fine-tuning + Gaussian (L2 norm)",
    "contrastive": "ImageNet + contrastive (BYOL) fine-tuning",
    "contrastive+fc": "ImageNet + contrastive + fixed-center (DeepSVDD-style) pull instead of CIPP",
    "contrastive+cipp": "ImageNet + contrastive + cross-instance positive pairs (COFT-AD w/o np)",
    "contrastive+cipp+np": "ImageNet + contrastive + CIPP + negative pairs (COFT-AD w/ np)",
    "contrastive+cipp+np-l2": "as contrastive+cipp+np but without L2 normalisation at inference",
}
for _row in ABLATION_ROWS:
    DISPLAY_NAMES[f"ablation:{_row}"] = _row

#: Table VIII scorers (setting column), in the paper's order
SCORERS: dict[str, str] = {
    "gaussian": "Gaussian",
    "knn": "kNN [53]",
    "iforest": "Isolation Forest [54]",
    "patchcore": "PatchCore [8]",
}


def display_name(method: str) -> str:
    """The paper's name of a table row (``"coftad_np"`` -> ``"COFT-AD (w/ np)"``); unknown names unchanged.

    A row scored with the online network (``"coftad [online f]"``, the paper-compute runs) keeps
    the suffix after its base row's name.
    """
    base, sep, suffix = method.partition(" [")
    if sep and base in DISPLAY_NAMES:
        return f"{DISPLAY_NAMES[base]} [{suffix}"
    return DISPLAY_NAMES.get(method, method)


@functools.lru_cache(maxsize=1)
def _all() -> pd.DataFrame:
    with resources.files("coftad_lib").joinpath("data/paper_tables.csv").open("r", encoding="utf-8") as fh:
        df = pd.read_csv(fh, dtype={"table": str, "setting": str, "method": str, "task": str, "note": str},
                         keep_default_na=False)
    df["value"] = pd.to_numeric(df["value"].replace("", float("nan")))
    return df


def paper_values() -> pd.DataFrame:
    """All transcribed cells of Tables I-X (a copy), in the paper's row and column order."""
    return _all().copy()


def paper_table(table: str) -> pd.DataFrame:
    """The transcribed cells of one table (``"I"`` .. ``"X"``), in the paper's order, index reset.

    Raises:
        COFTADInputError: ``table`` is not one of :data:`TABLES`.
    """
    if table not in TABLES:
        raise COFTADInputError(f"table={table!r}: expected a roman numeral among {', '.join(TABLES)}")
    df = _all()
    return df[df["table"] == table].reset_index(drop=True).copy()


def paper_value(table: str, setting: str, method: str, task: str) -> float | None:
    """One cell of the paper in %, or None where the paper has no (legible) value."""
    df = paper_table(table)
    hit = df[(df["setting"] == setting) & (df["method"] == method) & (df["task"] == task)]
    if hit.empty or pd.isna(hit["value"].iloc[0]):
        return None
    return float(hit["value"].iloc[0])


def is_quoted(table: str, method: str) -> bool:
    """True for rows the paper quotes from other work (DifferNet*, TDG*): shown, never run."""
    df = paper_table(table)
    notes = df.loc[df["method"] == method, "note"]
    return bool(len(notes)) and all(n.startswith("quoted") for n in notes)
