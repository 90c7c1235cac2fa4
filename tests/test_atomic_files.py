"""coftad_lib.atomic_files: complete-or-absent files and folders, umask modes, the writer lock."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from lock_holder import lock_held_by_child

from coftad_lib import atomic_files as af


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_is_atomic_and_leaves_no_temporary_on_error(tmp_path):
    target = tmp_path / "scores.csv"
    af.write_text_atomic(target, "old\n")
    with pytest.raises(RuntimeError), af.atomic_open(target) as fh:
        fh.write("half a new fi")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n" and _names(tmp_path) == ["scores.csv"]
    af.write_bytes_atomic(target, b"new\n")
    assert target.read_bytes() == b"new\n" and _names(tmp_path) == ["scores.csv"]


def test_files_get_the_umask_mode_whatever_the_writer_chose(tmp_path):
    old = os.umask(0o027)
    try:
        with af.atomic_path(tmp_path / "w.bin") as tmp:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)  # what safetensors did
            os.close(fd)
        af.write_text_atomic(tmp_path / "c.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "w.bin").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "c.json").stat().st_mode & 0o777 == 0o640


def test_staged_folder_replaces_only_when_complete(tmp_path):
    final = tmp_path / "model"
    with af.staged_folder(final) as d:
        (d / "a").write_text("1")
    assert _names(final) == ["a"]
    with pytest.raises(KeyboardInterrupt), af.staged_folder(final) as d:
        (d / "b").write_text("half")
        raise KeyboardInterrupt
    assert _names(final) == ["a"] and _names(tmp_path) == ["model"]
    with af.staged_folder(final) as d:
        (d / "b").write_text("2")
    assert _names(final) == ["b"] and _names(tmp_path) == ["model"]


def test_full_disk_leaves_the_old_file(tmp_path):
    """RLIMIT_FSIZE stands in for a full disk: the write fails, the old content stays, no temporary."""
    target = tmp_path / "big.bin"
    target.write_bytes(b"old")
    code = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
        from coftad_lib.atomic_files import write_bytes_atomic
        try:
            write_bytes_atomic({str(target)!r}, b"x" * 100000)
        except OSError as exc:
            print(exc.filename)
            sys.exit(7)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout.strip() == str(target)  # the user's path, not the temporary's
    assert target.read_bytes() == b"old" and _names(tmp_path) == ["big.bin"]


def test_lock_fails_at_once_naming_the_holder_and_is_free_once_it_is_killed(tmp_path):
    target = tmp_path / "out"
    with lock_held_by_child(target) as holder:  # SIGKILLed on leaving: the lock file stays, dead pid in it
        with pytest.raises(af.OutputLockedError, match=f"pid {holder.pid}.*lock file"):
            with af.exclusive_lock(target):
                pass
    assert af.lock_path(target).read_text().split()[0] == str(holder.pid)
    with af.exclusive_lock(target) as lock:  # the kernel released the dead holder's lock
        assert lock.read_text().split()[0] == str(os.getpid())
        with af.exclusive_lock(target):  # reentered by the same process
            pass
        assert lock.exists()
    assert not af.lock_path(target).exists()


def test_remove_leftovers_clears_a_killed_writers_temporaries(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    stale = af.temporary_sibling(final)
    stale.mkdir()
    (tmp_path / ".other.123-abc.tmp").write_text("not ours")
    busy = af.temporary_sibling(tmp_path / "model.v2-x")  # another model's writer, busy
    busy.mkdir()
    assert af.remove_leftovers(final) == [stale]
    assert _names(tmp_path) == sorted([".other.123-abc.tmp", busy.name, "model"])


def test_racing_writers_exactly_one_wins(tmp_path):
    """Six processes try the same lock at the same moment: one holds it, five fail at once."""
    target, go = tmp_path / "out", tmp_path / "go"
    code = textwrap.dedent(f"""
        import os, time
        from coftad_lib.atomic_files import OutputLockedError, exclusive_lock
        print("ready", flush=True)
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        try:
            with exclusive_lock({str(target)!r}):
                print("won", flush=True)
                time.sleep(3)
        except OutputLockedError:
            print("refused", flush=True)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(6)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    go.write_text("")
    results = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert results == ["refused"] * 5 + ["won"]
    assert not af.lock_path(target).exists()
