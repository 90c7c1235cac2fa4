"""Atomic writes and resumable run bookkeeping of the data preparation (data_prep.atomic_io)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from data_prep import atomic_io


def _finish(out: Path) -> None:
    """Write one PNG and the manifest, as a prepare run does last."""
    atomic_io.save_png_atomic(Image.fromarray(np.zeros((4, 4), np.uint8)), out / "normal" / "a.png")
    atomic_io.write_csv_atomic(
        out / "manifest.csv", [{"file": "normal/a.png", "label": 0}], ["file", "label"]
    )


def test_start_run_resumes_skips_and_resets(tmp_path: Path):
    out = tmp_path / "out"
    params = {"job": "x", "window": (1, 2)}
    assert atomic_io.start_run(out, params) is False  # fresh folder
    assert atomic_io.read_json(out / atomic_io.PARAMS_FILE) == {"job": "x", "window": [1, 2]}
    (out / "normal" / ".b.png.tmp").write_bytes(b"half")
    assert atomic_io.start_run(out, params) is False  # no manifest yet: resume
    assert not (out / "normal" / ".b.png.tmp").exists()
    _finish(out)
    assert atomic_io.start_run(out, params) is True  # finished with the same parameters
    (out / "normal" / "a.png").unlink()
    assert atomic_io.start_run(out, params) is False  # a listed file is missing
    _finish(out)
    assert atomic_io.start_run(out, {"job": "y"}) is False  # other parameters: start afresh
    assert not (out / "manifest.csv").exists() and not (out / "normal" / "a.png").exists()


def test_read_json_tolerates_damage_and_write_is_atomic(tmp_path: Path):
    p = tmp_path / "p.json"
    assert atomic_io.read_json(p) is None
    p.write_text("{broken")
    assert atomic_io.read_json(p) is None
    atomic_io.write_json_atomic(p, {"b": 1, "a": [2]})
    assert atomic_io.read_json(p) == {"a": [2], "b": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["p.json"]


def test_fingerprint_follows_input_changes(tmp_path: Path):
    f = tmp_path / "in.bin"
    f.write_bytes(b"1")
    before = atomic_io.fingerprint([f], tmp_path)
    assert atomic_io.fingerprint([f], tmp_path) == before
    f.write_bytes(b"12")
    assert atomic_io.fingerprint([f], tmp_path) != before
