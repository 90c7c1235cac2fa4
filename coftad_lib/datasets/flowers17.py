"""Oxford Flowers17 species pairs as anomaly detection tasks (paper Sec. IV-A-1, Table I).

One species of a visually similar pair is normal, the other is the anomaly. From the normal
species' 80 images, ``n_test_normal`` (70) go to the test set and ``shots`` (5) training images
are drawn from the remaining 10; ``n_test_abnormal`` (10) images of the other species complete
the test set.

Layout (official ``17flowers.tgz``): ``<root>/jpg/image_0001.jpg`` .. ``image_1360.jpg`` and
``jpg/files.txt``; ``root`` may be the folder containing ``jpg/`` or ``jpg/`` itself. Images are
grouped by class: class c (0-based, order of :data:`SPECIES`) is ``image_{80c+1}`` ..
``image_{80c+80}``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import COFTADInputError, DatasetNotFoundError
from .sampling import choose, rng_for
from .task import FewShotTask

#: class order of the official release (image ids 80c+1 .. 80c+80 belong to SPECIES[c])
SPECIES: list[str] = [
    "Daffodil", "Snowdrop", "LilyValley", "Bluebell", "Crocus", "Iris", "Tigerlily", "Tulip",
    "Fritillary", "Sunflower", "Daisy", "ColtsFoot", "Dandelion", "Cowslip", "Buttercup",
    "Windflower", "Pansy",
]  # fmt: skip

IMAGES_PER_CLASS = 80

#: "Normal/Abnormal" task names in the column order of Table I: each pair in both directions.
TASKS: list[str] = [
    "Crocus/Bluebell", "Bluebell/Crocus",
    "Daffodil/Tulip", "Tulip/Daffodil",
    "Pansy/Windflower", "Windflower/Pansy",
    "Buttercup/Cowslip", "Cowslip/Buttercup",
]  # fmt: skip

#: Table I's third pair has an illegible first species (only "Windflower" can be read). We use
#: Pansy: its class centroid is the nearest to Windflower's among the other 16 species in
#: ImageNet feature space (cosine similarity 0.87), matching the paper's criterion of visually
#: similar pairs.
ILLEGIBLE_PAIR_CHOICE: dict[str, str] = {
    "pair": "?/Windflower",
    "chosen": "Pansy",
    "reason": "Table I's first species of the third pair is illegible; Pansy's class centroid is "
    "nearest to Windflower's in ImageNet feature space (cosine 0.87)",
}

HOW_TO_GET = """\
Oxford Flowers17 (Nilsback & Zisserman): download
https://www.robots.ox.ac.uk/~vgg/data/flowers/17/17flowers.tgz and extract it so that
<root>/jpg/image_0001.jpg ... <root>/jpg/image_1360.jpg exist (pass root=<root> or <root>/jpg)."""


def species_image_names(species: str) -> list[str]:
    """The 80 file names of ``species`` in the official release (``image_XXXX.jpg``)."""
    if species not in SPECIES:
        raise COFTADInputError(
            f"species {species!r} is not a Flowers17 class; choose from {', '.join(SPECIES)}"
        )
    c = SPECIES.index(species)
    return [
        f"image_{i:04d}.jpg"
        for i in range(IMAGES_PER_CLASS * c + 1, IMAGES_PER_CLASS * (c + 1) + 1)
    ]


def _jpg_dir(root: Path) -> Path:
    for cand in (root / "jpg", root):
        if (cand / "image_0001.jpg").is_file() or (cand / "files.txt").is_file():
            return cand
    if (root / "jpg").is_dir():
        return root / "jpg"  # present but incomplete: load() names the missing files
    raise DatasetNotFoundError(
        f"{root}: Flowers17 not found; expected {root / 'jpg' / 'image_0001.jpg'}\n{HOW_TO_GET}"
    )


def parse_task(task: str) -> tuple[str, str]:
    """``"Normal/Abnormal"`` -> (normal species, abnormal species)."""
    parts = [p.strip() for p in str(task).split("/")]
    if len(parts) != 2 or parts[0] == parts[1]:
        raise COFTADInputError(
            f"task={task!r}: expected 'Normal/Abnormal' with two different species, e.g. 'Daffodil/Tulip'"
        )
    by_lower = {s.lower(): s for s in SPECIES}
    out = []
    for p in parts:
        if p.lower() not in by_lower:
            raise COFTADInputError(
                f"task={task!r}: {p!r} is not a Flowers17 species; choose from {', '.join(SPECIES)}"
            )
        out.append(by_lower[p.lower()])
    return out[0], out[1]


def _check_present(jpg: Path, normal: str, abnormal: str) -> None:
    """Raise if any image of the two species is missing from ``jpg``."""
    missing = [
        jpg / n
        for sp in (normal, abnormal)
        for n in species_image_names(sp)
        if not (jpg / n).is_file()
    ]
    if missing:
        raise DatasetNotFoundError(
            f"{jpg}: {len(missing)} images of {normal}/{abnormal} are missing (first: {missing[0]}); "
            f"the dataset is incomplete\n{HOW_TO_GET}"
        )


def _check_counts(
    jpg: Path, normal: str, shots: int, n_test_normal: int, n_test_abnormal: int
) -> None:
    """Raise unless the test and shot counts are >= 1 and fit into one species' images."""
    if n_test_normal < 1 or n_test_abnormal < 1:
        raise COFTADInputError(
            f"n_test_normal={n_test_normal}, n_test_abnormal={n_test_abnormal}: both must be >= 1"
        )
    if shots < 1:
        raise COFTADInputError(f"shots={shots}: at least one training image is needed")
    if n_test_normal + shots > IMAGES_PER_CLASS:
        raise COFTADInputError(
            f"{jpg}: {normal} has {IMAGES_PER_CLASS} images, fewer than n_test_normal={n_test_normal} + shots={shots}"
        )


def _draw(
    jpg: Path,
    name: str,
    normal: str,
    abnormal: str,
    shots: int,
    seed: int,
    n_test_normal: int,
    n_test_abnormal: int,
) -> tuple[list[str], list[str], list[str]]:
    """(normal test, training shots, abnormal test) file names; the shots avoid the test set."""
    normal_files = species_image_names(normal)
    test_n, rest = choose(
        normal_files,
        n_test_normal,
        rng_for(seed, "flowers17", name, "test_normal"),
        f"{jpg} ({normal})",
    )
    train, _ = choose(
        rest,
        shots,
        rng_for(seed, "flowers17", name, "shots"),
        f"{jpg} ({normal}, images not in the test set)",
    )
    test_a, _ = choose(
        species_image_names(abnormal),
        n_test_abnormal,
        rng_for(seed, "flowers17", name, "test_abnormal"),
        f"{jpg} ({abnormal})",
    )
    return test_n, train, test_a


def load(
    root: str | os.PathLike,
    shots: int = 5,
    seed: int = 0,
    *,
    task: str = "Daffodil/Tulip",
    n_test_normal: int = 70,
    n_test_abnormal: int = 10,
) -> FewShotTask:
    """Build the Flowers17 task ``"Normal/Abnormal"`` (Sec. IV-A-1).

    The normal test images depend only on (seed, task), not on ``shots``, so 5- and 10-shot runs
    share one test set. Sampling is deterministic given ``seed``.

    Returns:
        FewShotTask whose ``train`` / ``test`` are lists of image paths; ``test_kinds`` are the
        species names, ``test_ids`` the paths relative to the ``jpg`` folder's parent.
    """
    normal, abnormal = parse_task(task)
    jpg = _jpg_dir(Path(root))
    _check_present(jpg, normal, abnormal)
    _check_counts(jpg, normal, shots, n_test_normal, n_test_abnormal)
    name = f"{normal}/{abnormal}"
    test_n, train, test_a = _draw(
        jpg, name, normal, abnormal, shots, seed, n_test_normal, n_test_abnormal
    )
    test = test_n + test_a
    info = {
        "protocol": "Flowers17 species pair (Sec. IV-A-1)",
        "normal": normal,
        "abnormal": abnormal,
        "shots": shots,
        "seed": seed,
        "n_test_normal": n_test_normal,
        "n_test_abnormal": n_test_abnormal,
    }
    if "Pansy" in (normal, abnormal) and "Windflower" in (normal, abnormal):
        info["pair_choice"] = ILLEGIBLE_PAIR_CHOICE
    return FewShotTask(
        dataset="flowers17",
        name=name,
        train=[str(jpg / f) for f in train],
        test=[str(jpg / f) for f in test],
        test_labels=[0] * len(test_n) + [1] * len(test_a),
        test_kinds=[normal] * len(test_n) + [abnormal] * len(test_a),
        train_ids=[f"jpg/{f}" for f in train],
        test_ids=[f"jpg/{f}" for f in test],
        info=info,
    )
