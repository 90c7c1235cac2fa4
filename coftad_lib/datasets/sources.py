"""Where each dataset of the paper comes from, and what a notebook needs of it under the data root.

Two tables:

* :data:`SOURCES`: the public archives (URL, file name, recorded digests, size), one per folder
  of the data root (``<root>/flowers17``, ``<root>/cifar10``, ...).
* :data:`NEEDS`: per loader dataset name (``"flowers17"``, ``"cifar10c"``, ``"mvtec"``, ...), how
  to tell it is there, which archives to fetch when it is not, or, for what cannot be fetched
  (licence, private), the exact folder and command. The folders follow the loaders
  (:data:`coftad_lib.engine.data_paths.DATASET_DIRS`): e.g. MVTec AD is read from
  ``<root>/mvtec_ad``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: file a completed unpack leaves in the dataset folder (written last, moved in with it)
MARKER = ".complete"


@dataclass(frozen=True)
class Source:
    """Where a dataset archive lives and how to check it.

    Attributes:
        url: the archive's official address.
        filename: name of the archive (also its name in a mirror folder or under a mirror URL).
        sha256 / md5: expected digests; SHA-256 is checked when given, else MD5, else nothing
            (the SHA-256 obtained is printed so it can be recorded).
        size: expected bytes, or None (unknown: no size check, no free-space check).
        strip_top: the archive holds one top-level folder whose contents become ``<dest>/<name>``.
        layout: what ``<dest>/<name>`` holds afterwards and what to pass to the loader.
        checksum_source: where the digest comes from.
    """

    url: str
    filename: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    strip_top: bool = False
    layout: str = ""
    checksum_source: str = ""


def _source(name: str, url: str, holds: str, *, arg: str = "root", filename: str = "",
            **checks) -> tuple[str, Source]:
    """One :data:`SOURCES` entry, stating only what differs between datasets.

    The archive's name defaults to the last part of ``url``; the layout always reads
    ``<dest>/<name>/<holds>; pass <arg>=<dest>/<name>``, so it is spelled once here rather than per
    entry. ``checks`` are the remaining :class:`Source` fields (digests, size, strip_top, ...).
    """
    layout = f"<dest>/{name}/{holds}; pass {arg}=<dest>/{name}"
    return name, Source(url=url, filename=filename or url.rsplit("/", 1)[-1], layout=layout, **checks)


_TORONTO = "https://www.cs.toronto.edu/~kriz"
_ZENODO = "https://zenodo.org/records"

#: public sources. Digests were looked up in public references (see ``checksum_source``).
SOURCES: dict[str, Source] = dict([
    _source(
        "flowers17", "https://www.robots.ox.ac.uk/~vgg/data/flowers/17/17flowers.tgz",
        "jpg/image_0001.jpg ... and jpg/files.txt",
        sha256="fe38a60f8b4a95e657551247d3e7d799a3fafcdbc595be504b12839967823d70",
        md5="b59a65d8d1a99cd66944d474e1289eab",
        checksum_source="SHA-256 from intel/dffml examples/flower17/dataset.sh; MD5 as used by torchvision-style Flowers17 loaders",
    ),
    _source(
        "cifar10", f"{_TORONTO}/cifar-10-python.tar.gz",
        "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}", arg="clean_root",
        sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
        md5="c58f30108f718f92721af3b95e74349a", size=170_498_071,
        checksum_source="MD5 as torchvision's CIFAR10; SHA-256 as Keras' cifar10.load_data",
    ),
    _source(
        "cifar100", f"{_TORONTO}/cifar-100-python.tar.gz", "cifar-100-python/{train,test,meta}", arg="clean_root",
        sha256="85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
        md5="eb9058c3a382ffc7106e4002c42a8d85", size=169_001_437,
        checksum_source="MD5 as torchvision's CIFAR100; SHA-256 as Keras' cifar100.load_data",
    ),
    _source(
        "cifar10c", f"{_ZENODO}/2535967/files/CIFAR-10-C.tar", "<corruption>.npy and labels.npy", strip_top=True,
        sha256="c72763e101c723b7c507b96205f7e938912a5d587376173b825850cf3cb876a7",
        md5="56bf5dcef84df0e2308c6dcbcbbd8499", size=2_918_471_680,
        checksum_source="MD5 from Zenodo record 2535967; SHA-256 from TensorFlow Datasets' url_checksums",
    ),
    # No SHA-256 for CIFAR-100-C: the one recorded before (30ee6543...) could not be confirmed in any
    # public reference, and a wrong SHA-256 would reject the good file; Zenodo's own MD5 and the size
    # are confirmed by several independent sources.
    _source(
        "cifar100c", f"{_ZENODO}/3555552/files/CIFAR-100-C.tar", "<corruption>.npy and labels.npy", strip_top=True,
        md5="11f0ed0f1191edbf9fa23466ae6021d3", size=2_918_473_216,
        checksum_source="MD5 and size from Zenodo record 3555552",
    ),
    # Pinned to a commit so the content cannot change under us. GitHub does not promise
    # byte-identical archives over time; if the digest stops matching, check the content and use
    # verify=False (--no-verify), which prints the SHA-256 obtained.
    _source(
        "magnetic_tile",
        "https://github.com/abin24/Magnetic-tile-defect-datasets./archive/cc4eb530b57b9cb7225bf76023873043ffd50655.zip",
        "MT_Blowhole ... MT_Free (each Imgs/*.jpg + *.png)", strip_top=True,
        filename="Magnetic-tile-defect-datasets-cc4eb53.zip",
        sha256="592b050953d1de4ffa538b93b6b91aee7268d8e59b73d4d9c92cfce187d7ce66",
        checksum_source="SHA-256 of the commit archive as recorded by a public preparation script "
        "(NVIDIA AnomalyGen prepare_magnetic_tile_defect.py); not published by the dataset authors",
    ),
])


# ------------------------------------------------------------------ is it there already?

def _flowers17(d: Path) -> bool:
    return (d / "jpg" / "image_0001.jpg").is_file() or (d / "image_0001.jpg").is_file()


def _clean(variant: str) -> Callable[[Path], bool]:
    def check(d: Path) -> bool:
        from .cifar_clean import has_clean

        return d.is_dir() and has_clean(d, variant, "test")

    return check


def _corrupted(d: Path) -> bool:
    return (d / "labels.npy").is_file()


def _magnetic_tile(d: Path) -> bool:
    # the loader also accepts one nested folder (a freshly unzipped repository archive)
    return (d / "MT_Free").is_dir() or (d.is_dir() and any((p / "MT_Free").is_dir() for p in d.iterdir()))


def _categories(d: Path) -> bool:
    return d.is_dir() and any((p / "train").is_dir() for p in d.iterdir())


def _nonempty(d: Path) -> bool:
    return d.is_dir() and any(d.iterdir())


#: archive name -> whether ``<root>/<archive name>`` already holds it in a layout the loader reads
#: (so a copy made by hand counts, not only one this module unpacked)
ARCHIVE_PRESENT: dict[str, Callable[[Path], bool]] = {
    "flowers17": _flowers17,
    "cifar10": _clean("cifar10c"),
    "cifar100": _clean("cifar100c"),
    "cifar10c": _corrupted,
    "cifar100c": _corrupted,
    "magnetic_tile": _magnetic_tile,
}


def archive_present(name: str, root: Path) -> bool:
    """Whether archive ``name`` is already unpacked (by us or by hand) under data root ``root``."""
    d = root / name
    check = ARCHIVE_PRESENT.get(name)
    return (d / MARKER).is_file() or (check is not None and check(d))


@dataclass(frozen=True)
class Need:
    """What a loader dataset needs under the data root.

    Attributes:
        name: loader dataset name (:data:`coftad_lib.datasets.DATASETS`).
        present: given a data root, whether the dataset is usable there.
        archives: :data:`SOURCES` keys to fetch when it is not (each only if itself absent).
        manual: for what cannot be fetched, the one-line instruction (``{root}`` = the data root).
        local: for what a notebook makes itself, why nothing has to be fetched.
        folder: sub-folder of the data root that holds it (default: ``name``).
        has_task: given a data root and a task name, whether that task's files are there (for
            datasets copied in parts, such as MVTec AD's categories); None: the whole or nothing.
    """

    name: str
    present: Callable[[Path], bool]
    archives: tuple[str, ...] = ()
    manual: str = ""
    local: str = ""
    folder: str = ""
    has_task: Callable[[Path, str], bool] | None = None

    def path(self, root: Path) -> Path:
        """Where the dataset is (or goes) under data root ``root``."""
        return root / (self.folder or self.name)


def _archive_need(name: str) -> Need:
    """The :class:`Need` of a dataset that is exactly one archive, unpacked into ``<root>/<name>``."""
    return Need(name, lambda r: archive_present(name, r), (name,))


NEEDS: dict[str, Need] = {
    "flowers17": _archive_need("flowers17"),
    # Notebook 01 generates the level-4 corruptions from the clean test set (Sec. IV-A-1), so the
    # 163 MiB clean CIFAR-10 is fetched, not the 2.7 GiB official CIFAR-10-C (also read when there).
    "cifar10c": Need("cifar10c", lambda r: _corrupted(r / "cifar10c") or archive_present("cifar10", r), ("cifar10",),
                     folder="cifar10"),
    # Table III reads the official CIFAR-100-C files plus the clean test set they were made from.
    "cifar100c": Need("cifar100c", lambda r: archive_present("cifar100c", r) and archive_present("cifar100", r),
                      ("cifar100c", "cifar100")),
    "magnetic_tile": _archive_need("magnetic_tile"),
    "mvtec": Need(
        "mvtec", lambda r: _categories(r / "mvtec_ad"), folder="mvtec_ad",
        has_task=lambda r, task: (r / "mvtec_ad" / task / "train").is_dir(),
        manual="licence (CC BY-NC-SA 4.0) to accept by hand: get mvtec_anomaly_detection.tar.xz from "
        "https://www.mvtec.com/company/research/datasets/mvtec-ad, then run: "
        "mkdir -p {root}/mvtec_ad && tar -xJf mvtec_anomaly_detection.tar.xz -C {root}/mvtec_ad",
    ),
    "aitex": Need(
        "aitex", lambda r: _nonempty(r / "aitex_crops") or _nonempty(r / "aitex"),
        manual="terms of use to accept by hand: get Defect_images.7z, NODefect_images.7z and Mask_images.7z "
        "from https://www.aitex.es/afid/ and extract all three into {root}/aitex "
        "(notebook 02 then cuts the 256 px patches)",
    ),
    "semicon": Need(
        "semicon", lambda r: True, folder="semicon_slices",
        local="private; notebook 03 synthesises a stand-in (owners of the real volumes put them in {root}/semicon)",
    ),
    "folder": Need("folder", lambda r: True, local="your own images; nothing to fetch", folder="."),
}


def need_for(name: str) -> Need:
    """The :class:`Need` of a loader dataset, or of a bare archive name (``"cifar10"``, or a test's)."""
    if name in NEEDS:
        return NEEDS[name]
    return _archive_need(name)

