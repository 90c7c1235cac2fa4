"""The one shape every dataset protocol returns: a few-shot anomaly detection task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # importing images.py pulls in torch; data_prep CLIs should start fast
    from ..images import Images


@dataclass
class FewShotTask:
    """k normal training shots and a labelled test set.

    Attributes:
        dataset: dataset name as given to :func:`load_task` (e.g. ``"flowers17"``).
        name: the task within the dataset, as a table column names it (e.g. ``"Daffodil/Tulip"``,
            ``"bottle"``, ``"airplane"``).
        train: the k normal shots; a list of file paths or a (k, H, W, C) uint8 array.
        test: the test items; a list of file paths or an (M, H, W, C) uint8 array.
        test_labels: (M,) int64, 1 = anomaly, 0 = normal.
        test_kinds: (M,) str, what each test item is (class name, defect type, corruption).
        train_ids / test_ids: stable identifiers (relative path or index) for figures and caches.
        info: protocol parameters (shots, seed, counts, choices) recorded next to every result.
    """

    dataset: str
    name: str
    train: Images  # noqa: F821
    test: Images  # noqa: F821
    test_labels: np.ndarray
    test_kinds: list[str]
    train_ids: list[str]
    test_ids: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.test_labels = np.asarray(self.test_labels, dtype=np.int64)
        n = len(self.test)
        if not (len(self.test_labels) == len(self.test_kinds) == len(self.test_ids) == n):
            raise ValueError(
                f"{self.dataset}/{self.name}: test, test_labels, test_kinds and test_ids differ in length "
                f"({n}, {len(self.test_labels)}, {len(self.test_kinds)}, {len(self.test_ids)})"
            )
        if len(self.train) != len(self.train_ids):
            raise ValueError(f"{self.dataset}/{self.name}: train and train_ids differ in length")

    @property
    def shots(self) -> int:
        """Number of normal training images k."""
        return len(self.train)

    def summary(self) -> str:
        """One line: dataset, task, shots and test counts."""
        n_anom = int(self.test_labels.sum())
        return (
            f"{self.dataset}/{self.name}: {self.shots} shots, "
            f"{len(self.test_labels) - n_anom} normal + {n_anom} anomalous test items"
        )
