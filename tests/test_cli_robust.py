"""Issue 22 through ``python -m coftad_lib``: nothing half-written, nothing mixed, nothing misreported.

Signals are sent at chosen points (a patched step kills its own process), a full disk is stood in
for by ``RLIMIT_FSIZE``, and two processes race on one ``--out``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_helpers import FAST, fit_patchcore, run_cli, write_parts
from PIL import Image

from coftad_lib.atomic_files import lock_path
from coftad_lib.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK
from coftad_lib.model_folder import ModelFileError


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """train/ (5 normal), test/good/ (4), test/red_square/ (4): stripe textures, 40 px."""
    return write_parts(tmp_path_factory.mktemp("robust") / "parts")


@pytest.fixture(scope="module")
def model(data, tmp_path_factory) -> Path:
    """A PatchCore model fitted on ``data`` through the CLI."""
    return fit_patchcore(data, tmp_path_factory.mktemp("model") / "pc")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _copy_model(model: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "models" / "m"
    shutil.copytree(model, dst)
    return dst


def test_score_refuses_an_input_image_as_csv(model, data, capsys):
    """Item 3: ``score M in/ --csv in/000.png`` overwrote the image."""
    victim = data / "test" / "good" / "t0.png"
    before = victim.read_bytes()
    code, _, err = run_cli(["score", model, data / "test", "--csv", victim, "--quiet"], capsys)
    assert code == EXIT_BAD_INPUT and "is one of the inputs" in err and str(victim) in err
    assert victim.read_bytes() == before
    config = (model / "config.json").read_bytes()
    code, _, err = run_cli(["score", model, data / "test", "--csv", model / "config.json", "--quiet"], capsys)
    assert code == EXIT_BAD_INPUT and "is one of the inputs" in err and (model / "config.json").read_bytes() == config


@pytest.mark.parametrize("extra, message", [
    (["--fpr", "0"], "--fpr 0: the false-positive rate must lie strictly between 0 and 1"),
    (["--fpr", "1.5"], "--fpr 1.5"),
    (["--seed", "-1"], "--seed -1: choose a whole number from 0 to 4294967295"),
    (["--seed", str(2**32)], "--seed 4294967296"),
])
def test_bad_options_refused_before_any_fit(data, tmp_path, capsys, monkeypatch, extra, message):
    import coftad_lib.user_report as ur

    monkeypatch.setattr(ur, "build", lambda *a, **k: pytest.fail("fitted before checking the options"))
    code, _, err = run_cli(["fit", data / "train", "--out", tmp_path / "m", *FAST, *extra], capsys)
    assert code == EXIT_BAD_INPUT and message in err and not (tmp_path / "m").exists()


def test_unusable_out_refused_before_any_fit(data, tmp_path, capsys, monkeypatch):
    import coftad_lib.user_report as ur

    monkeypatch.setattr(ur, "build", lambda *a, **k: pytest.fail("fitted before checking --out"))
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine")
    for out, message in [(a_file, "is a file, not a model folder"),
                         (a_file / "m", "is a file, so --out cannot be created under it"),
                         (data / "train", "is (or holds) the input"), (data, "is (or holds) the input"),
                         (other, "holds other files than a model")]:
        code, _, err = run_cli(["fit", data / "train", "--out", out, *FAST], capsys)
        assert code == EXIT_BAD_INPUT and message in err, err
    assert (other / "todo.txt").read_text() == "mine"
    code, _, err = run_cli(["evaluate", data, "--out", data / "test", *FAST], capsys)
    assert code == EXIT_BAD_INPUT and "lies in, or holds, the input" in err


def test_interrupt_while_loading_is_reported_as_an_interrupt(model, data, capsys, monkeypatch):
    """Item 6: a Ctrl-C that made the weights read fail was reported as 'corrupt ... save the model again'."""
    import coftad_lib.persistence as persistence

    def cut_short(w_file):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:  # what a library may turn an interrupt into
            raise ModelFileError(f"{w_file}: corrupt or not a safetensors file; fit the model again") from None

    monkeypatch.setattr(persistence, "read_weights", cut_short)
    code, _, err = run_cli(["score", model, data / "test", "--quiet"], capsys)
    assert code == EXIT_INTERRUPTED and "interrupted (SIGINT)" in err and "corrupt" not in err


def test_sigterm_while_saving_keeps_the_old_model(model, data, tmp_path, capsys, monkeypatch):
    """Items 1 and 5: a kill while the new fit is written leaves the old model whole (exit 130)."""
    import coftad_lib.model_folder as mf

    out = _copy_model(model, tmp_path)
    before = _snapshot(out)

    def killed(path, text):
        Path(path).write_text(text[:10])
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(mf, "write_text_atomic", killed)
    code, _, err = run_cli(["fit", data / "train", "--out", out, "--method", "pretrained", *FAST], capsys)
    assert code == EXIT_INTERRUPTED and "interrupted (SIGTERM)" in err
    assert _snapshot(out) == before and sorted(p.name for p in out.parent.iterdir()) == ["m"]


_HOLD_IN_FIT = """
import sys, time
import coftad_lib.threshold as threshold
def held(*a, **k):
    print("fitting", flush=True)
    time.sleep(120)
threshold.fit_threshold = held
from coftad_lib.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_two_fits_on_one_out_the_second_fails_at_once(model, data, tmp_path, capsys):
    """Item 2: two ``fit --out SAME`` both said "saved"; now the second fails naming the first, and
    SIGTERM ends the first with exit 130 and the old model untouched."""
    out = _copy_model(model, tmp_path)
    before = _snapshot(out)
    first = subprocess.Popen([sys.executable, "-c", _HOLD_IN_FIT, "fit", str(data / "train"), "--out", str(out),
                              "--method", "pretrained", *FAST], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        assert first.stdout.readline().strip() == "fitting"
        code, _, err = run_cli(["fit", data / "train", "--out", out, *FAST], capsys)
        assert code == EXIT_BAD_INPUT and f"pid {first.pid}" in err and "lock file" in err
        first.send_signal(signal.SIGTERM)
        _, first_err = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == EXIT_INTERRUPTED and "interrupted (SIGTERM)" in first_err
    assert _snapshot(out) == before and not lock_path(out).exists()


def _limited(args: list[str], limit: int) -> subprocess.CompletedProcess:
    """Run the CLI with files limited to ``limit`` bytes (a full disk, for the writes that pass it)."""
    code = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        from coftad_lib.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_full_disk_is_bad_input_naming_the_path_and_leaves_nothing_half_written(model, data, tmp_path):
    csv_path = tmp_path / "out" / "scores.csv"
    csv_path.parent.mkdir()
    proc = _limited(["score", str(model), str(data / "test"), "--csv", str(csv_path), "--quiet"], 200)
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr
    assert "scores.csv" in proc.stderr and "write elsewhere" in proc.stderr and "Traceback" not in proc.stderr
    assert list(csv_path.parent.iterdir()) == []
    out = _copy_model(model, tmp_path)
    before = _snapshot(out)
    proc = _limited(["fit", str(data / "train"), "--out", str(out), "--method", "patchcore", *FAST], 4096)
    assert proc.returncode == EXIT_BAD_INPUT and "weights.safetensors" in proc.stderr, proc.stderr
    assert _snapshot(out) == before and sorted(p.name for p in out.parent.iterdir()) == ["m"]


def test_oversized_image_named_and_skippable(data, tmp_path, capsys, monkeypatch):
    """Item 7: PIL's decompression-bomb error stopped fit with no file name, even with --skip-bad."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 100 x 100 is then a "bomb"; 40 x 40 is not
    folder = tmp_path / "normal"
    shutil.copytree(data / "train", folder)
    big = folder / "huge.png"
    Image.new("RGB", (100, 100)).save(big)
    code, _, err = run_cli(["fit", folder, "--out", tmp_path / "m", "--method", "pretrained", *FAST], capsys)
    assert code == EXIT_BAD_INPUT and str(big) in err and "too large" in err and "--skip-bad" in err
    code, _, err = run_cli(["fit", folder, "--out", tmp_path / "m", "--method", "pretrained", "--skip-bad", *FAST],
                           capsys)
    assert code == EXIT_OK and "skipped 1" in err


def test_folder_that_cannot_be_listed_says_so(data, tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.scandir

    def scandir(path="."):
        if Path(path) == locked:  # what mode 000 does for anyone but root
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    code, _, err = run_cli(["fit", locked, "--out", tmp_path / "m", *FAST], capsys)
    assert code == EXIT_BAD_INPUT and "cannot list this folder of normal images (permission denied)" in err


def test_labels_csv_refuses_a_training_image_listed_again_as_test(data, tmp_path, capsys):
    """Item 4: the CSV path scored a training shot as a test image and inflated AUROC."""
    csv_path = tmp_path / "labels.csv"
    rel = os.path.relpath(data, tmp_path)
    rows = [f"{rel}/train/n{i}.png,0,good,train" for i in range(3)]
    rows += [f"{rel}/train/n0.png,0,good,test", f"{rel}/test/red_square/t4.png,1,red,test"]
    csv_path.write_text("path,label,kind,split\n" + "\n".join(rows) + "\n")
    code, _, err = run_cli(["evaluate", csv_path, "--methods", "pretrained", "--out", tmp_path / "r", *FAST], capsys)
    assert code == EXIT_BAD_INPUT and "also training shots" in err and "n0.png" in err


_KILLED_IN_SAVE = """
import os, signal, sys
import coftad_lib.model_folder as mf
def killed(path, text):
    os.kill(os.getpid(), signal.SIGKILL)  # after the new weights are written, before the config
mf.write_text_atomic = killed
from coftad_lib.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_while_saving_then_a_new_fit_cleans_up(model, data, tmp_path, capsys):
    """Item 1: SIGKILL while a new fit's weights were written left them beside the old config; now the
    old model stays whole, and the next fit takes over the dead writer's lock and removes its leftovers."""
    from coftad_lib.persistence import load_detector

    out = _copy_model(model, tmp_path)
    before = _snapshot(out)
    proc = subprocess.run([sys.executable, "-c", _KILLED_IN_SAVE, "fit", str(data / "train"), "--out", str(out),
                           "--method", "pretrained", *FAST], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert _snapshot(out) == before and lock_path(out).exists()  # the dead writer's lock and staged folder stay
    assert load_detector(out, device="cpu").method == "patchcore"
    code, _, err = run_cli(["fit", data / "train", "--out", out, "--method", "pretrained", *FAST], capsys)
    assert code == EXIT_OK, err
    assert sorted(p.name for p in out.parent.iterdir()) == ["m"]
    assert load_detector(out, device="cpu").method == "pretrained"
