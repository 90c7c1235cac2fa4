"""CIFAR-10 / CIFAR-100 class tables and the tasks of Tables II and III (one normal class or super-class)."""

from __future__ import annotations

import numpy as np

from ..errors import COFTADInputError

CIFAR10_CLASSES: list[str] = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip

#: CIFAR-100 fine class names, index = fine label (alphabetical, as in the official ``meta`` file)
CIFAR100_FINE_CLASSES: list[str] = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup",
    "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house",
    "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man",
    "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid",
    "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
    "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
    "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
    "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
]  # fmt: skip

#: The 20 CIFAR-100 super-classes (coarse labels, index = coarse id) and their 5 fine classes.
CIFAR100_SUPERCLASSES: dict[str, list[str]] = {
    "aquatic_mammals": ["beaver", "dolphin", "otter", "seal", "whale"],
    "fish": ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
    "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
    "food_containers": ["bottle", "bowl", "can", "cup", "plate"],
    "fruit_and_vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
    "household_electrical_devices": ["clock", "keyboard", "lamp", "telephone", "television"],
    "household_furniture": ["bed", "chair", "couch", "table", "wardrobe"],
    "insects": ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
    "large_carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
    "large_man-made_outdoor_things": ["bridge", "castle", "house", "road", "skyscraper"],
    "large_natural_outdoor_scenes": ["cloud", "forest", "mountain", "plain", "sea"],
    "large_omnivores_and_herbivores": ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
    "medium_mammals": ["fox", "porcupine", "possum", "raccoon", "skunk"],
    "non-insect_invertebrates": ["crab", "lobster", "snail", "spider", "worm"],
    "people": ["baby", "boy", "girl", "man", "woman"],
    "reptiles": ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
    "small_mammals": ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
    "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
    "vehicles_1": ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
    "vehicles_2": ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
}

#: (100,) coarse label of each fine label, derived from :data:`CIFAR100_SUPERCLASSES`.
CIFAR100_COARSE_OF_FINE: np.ndarray = np.empty(100, dtype=np.int64)
for _coarse, _members in enumerate(CIFAR100_SUPERCLASSES.values()):
    for _fine in _members:
        CIFAR100_COARSE_OF_FINE[CIFAR100_FINE_CLASSES.index(_fine)] = _coarse

TASKS_BY_VARIANT: dict[str, list[str]] = {
    "cifar10c": list(CIFAR10_CLASSES),
    # Table III heads its columns "Sup.Cls. 0" .. "Sup.Cls. 19" (coarse label ids).
    "cifar100c": [f"superclass_{k}" for k in range(20)],
}
#: task names of the default variant (CIFAR-10-C, Table II); see TASKS_BY_VARIANT for CIFAR-100-C
TASKS: list[str] = TASKS_BY_VARIANT["cifar10c"]

#: The 9 corruptions used at severity 4. The paper (Sec. IV-A, Fig. 4) chooses "9 types of
#: level 4 corruptions" without listing them. We take every official type that can be
#: regenerated with numpy/scipy/PIL alone, so official files and our generated ones hold the same
#: types: all 3 noises, defocus blur, brightness, and the 4 digital ones (contrast, elastic,
#: pixelate, JPEG). Left out: glass/motion/zoom blur, snow, frost, fog (ImageMagick, frost photos,
#: or slow per-pixel loops in the official generator).
DEFAULT_CORRUPTIONS: list[str] = [
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
]  # fmt: skip

#: the paper's severity level for the anomalies
DEFAULT_SEVERITY = 4

#: sidecar written by ``python -m data_prep.cifar_c`` next to generated ``<corruption>.npy``
GENERATED_META = "coftad_generated.json"

HOW_TO_GET = """\
CIFAR-10-C / CIFAR-100-C (Hendrycks & Dietterich 2019):
  corrupted files: https://zenodo.org/record/2535967 (CIFAR-10-C.tar) and
  https://zenodo.org/record/3555552 (CIFAR-100-C.tar); extract so that <root>/gaussian_noise.npy
  and <root>/labels.npy exist.
  clean images: torchvision.datasets.CIFAR10(<clean_root>, download=True) (resp. CIFAR100), which
  creates <clean_root>/cifar-10-batches-py/ (resp. cifar-100-python/); or a folder per class
  <clean_root>/test/<class>/*.png (optionally <clean_root>/train/<class>/).
  Without the official corrupted files, generate level-4 corruptions from the clean test images:
  python -m data_prep.cifar_c --clean <clean_root> --out <root> --severity 4"""

_VARIANTS = ("cifar10c", "cifar100c")


def _check_variant(variant: str) -> str:
    if variant not in _VARIANTS:
        raise COFTADInputError(f"variant={variant!r}: expected one of {', '.join(_VARIANTS)}")
    return variant


def class_names(variant: str) -> list[str]:
    """Class names indexed by the labels stored in the files (fine names for CIFAR-100)."""
    return CIFAR10_CLASSES if _check_variant(variant) == "cifar10c" else CIFAR100_FINE_CLASSES


def task_labels(variant: str, task: str) -> tuple[str, list[int]]:
    """Canonical task name and the stored class ids that are normal for it.

    CIFAR-10 tasks are class names (``"airplane"``); CIFAR-100 tasks are ``"superclass_<k>"``
    (k = coarse label 0..19) or the super-class name (``"flowers"``).
    """
    _check_variant(variant)
    name = str(task).strip().lower()
    if variant == "cifar10c":
        if name not in CIFAR10_CLASSES:
            raise COFTADInputError(
                f"task={task!r} is not a CIFAR-10 class; choose one of {', '.join(CIFAR10_CLASSES)}"
            )
        return name, [CIFAR10_CLASSES.index(name)]
    supers = list(CIFAR100_SUPERCLASSES)
    if name in supers:
        k = supers.index(name)
    elif name.startswith("superclass_") and name[len("superclass_") :].isdigit():
        k = int(name[len("superclass_") :])
        if not 0 <= k < 20:
            raise COFTADInputError(f"task={task!r}: CIFAR-100 super-classes are numbered 0..19")
    else:
        raise COFTADInputError(
            f"task={task!r}: expected 'superclass_0'..'superclass_19' or a super-class name "
            f"({', '.join(supers)})"
        )
    return f"superclass_{k}", np.flatnonzero(CIFAR100_COARSE_OF_FINE == k).tolist()
