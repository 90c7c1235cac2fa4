"""Dataset downloads against a local HTTP server with Range support (no internet needed)."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from pathlib import Path

import archive_server
import pytest
from archive_server import check_payload, tar_gz

from coftad_lib.datasets import download as dl
from coftad_lib.datasets import ensure as ensure_mod
from coftad_lib.datasets.download import ChecksumMismatchError, Source, download
from coftad_lib.errors import COFTADInputError, DatasetNotFoundError

# the shared server fixtures (the autouse one included), for this module only
downloads_allowed, server, toy = archive_server.downloads_allowed, archive_server.server, archive_server.toy


def test_download_verifies_and_unpacks(toy, server, tmp_path: Path):
    sources, _ = toy
    target = download("toy", tmp_path, sources=sources, quiet=True)
    assert target == tmp_path / "toy"
    check_payload(target)
    assert (target / dl.MARKER).is_file()
    # nothing else is left behind: no archive, no .part, no temporary folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]


def test_rerun_after_success_does_nothing(toy, server, tmp_path: Path):
    sources, _ = toy
    download("toy", tmp_path, sources=sources, quiet=True)
    n = len(server.log)
    assert download("toy", tmp_path, sources=sources, quiet=True) == tmp_path / "toy"
    assert len(server.log) == n


def test_checksum_mismatch_unpacks_nothing(toy, server, tmp_path: Path):
    sources, _ = toy
    wrong = {"toy": Source(url=sources["toy"].url, filename="toy.tar.gz", sha256="0" * 64)}
    with pytest.raises(ChecksumMismatchError, match="0000") as info:
        download("toy", tmp_path, sources=wrong, quiet=True)
    assert isinstance(info.value, DatasetNotFoundError)
    assert not (tmp_path / "toy").exists()
    assert not list(tmp_path.rglob(dl.MARKER)) and not list(tmp_path.iterdir())
    md5_wrong = {"toy": Source(url=sources["toy"].url, filename="toy.tar.gz", md5="f" * 32)}
    with pytest.raises(ChecksumMismatchError, match="MD5"):
        download("toy", tmp_path, sources=md5_wrong, quiet=True)


def test_md5_only_and_no_checksum(toy, server, tmp_path: Path, capsys):
    sources, archive = toy
    md5 = {"toy": Source(url=sources["toy"].url, filename="toy.tar.gz", md5=hashlib.md5(archive).hexdigest())}
    check_payload(download("toy", tmp_path / "a", sources=md5, quiet=True))
    bare = {"toy": Source(url=sources["toy"].url, filename="toy.tar.gz")}
    check_payload(download("toy", tmp_path / "b", sources=bare, quiet=True))
    assert hashlib.sha256(archive).hexdigest() in capsys.readouterr().err


def test_resume_from_partial_file(toy, server, tmp_path: Path):
    sources, archive = toy
    half = len(archive) // 2
    (tmp_path / "toy.tar.gz.part").write_bytes(archive[:half])
    check_payload(download("toy", tmp_path, sources=sources, quiet=True))
    path, rng, status, sent = server.log[-1]
    assert (rng, status, sent) == (f"bytes={half}-", 206, len(archive) - half)


def test_server_ignoring_range_restarts(toy, server, tmp_path: Path):
    sources, archive = toy
    (tmp_path / "toy.tar.gz.part").write_bytes(b"garbage" * 100)
    server.ignore_range = True
    check_payload(download("toy", tmp_path, sources=sources, quiet=True))
    assert server.log[-1][2:] == (200, len(archive))


def test_corrupt_partial_file_is_caught_then_recovered(toy, server, tmp_path: Path):
    sources, archive = toy
    (tmp_path / "toy.tar.gz.part").write_bytes(b"\0" * 1000)  # wrong bytes, resumed after
    with pytest.raises(ChecksumMismatchError):
        download("toy", tmp_path, sources=sources, quiet=True)
    check_payload(download("toy", tmp_path, sources=sources, quiet=True))


def test_complete_part_file_gets_416_and_is_used(toy, server, tmp_path: Path):
    sources, archive = toy
    (tmp_path / "toy.tar.gz.part").write_bytes(archive)
    check_payload(download("toy", tmp_path, sources=sources, quiet=True))
    assert server.log[-1][2] == 416


def test_interrupted_unpack_never_looks_complete(toy, server, tmp_path: Path, monkeypatch):
    sources, _ = toy
    real = ensure_mod.safe_extract

    def half_then_die(archive, into):
        (into / "toy").mkdir()
        (into / "toy" / "readme.txt").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ensure_mod, "safe_extract", half_then_die)
    with pytest.raises(KeyboardInterrupt):
        download("toy", tmp_path, sources=sources, keep_archive=True, quiet=True)
    assert not (tmp_path / "toy").exists() and not list(tmp_path.rglob(dl.MARKER))
    # a hard kill skips clean-up; the leftover temporary folder is removed by the next run
    (tmp_path / ".toy-unpack-killed" / "toy").mkdir(parents=True)
    monkeypatch.setattr(ensure_mod, "safe_extract", real)
    n = len(server.log)
    check_payload(download("toy", tmp_path, sources=sources, quiet=True))
    assert len(server.log) == n  # the kept, verified archive was reused
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]


def test_foreign_target_folder_is_not_overwritten(toy, server, tmp_path: Path):
    sources, _ = toy
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "mine.txt").write_text("user data")
    with pytest.raises(COFTADInputError, match="no .complete marker"):
        download("toy", tmp_path, sources=sources, quiet=True)
    assert (tmp_path / "toy" / "mine.txt").read_text() == "user data"


def test_unsafe_archive_member_is_refused(server, tmp_path: Path):
    archive = tar_gz({"../evil.txt": b"x"})
    server.files["/evil.tar.gz"] = archive
    src = {"evil": Source(url=server.url + "/evil.tar.gz", filename="evil.tar.gz", sha256=hashlib.sha256(archive).hexdigest())}
    with pytest.raises(COFTADInputError, match="evil"):
        download("evil", tmp_path / "d", sources=src, quiet=True)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "d" / "evil").exists()


def test_zip_with_top_folder_is_stripped(server, tmp_path: Path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("Magnetic-tile-defect-datasets.-master/MT_Free/Imgs/a.txt", b"free")
    server.files["/mt.zip"] = buf.getvalue()
    src = {"mt": Source(url=server.url + "/mt.zip", filename="mt.zip", sha256=hashlib.sha256(buf.getvalue()).hexdigest(), strip_top=True)}
    target = download("mt", tmp_path, sources=src, quiet=True)
    assert (target / "MT_Free" / "Imgs" / "a.txt").read_bytes() == b"free"


def test_http_error_and_unreachable_server(server, tmp_path: Path):
    src = {"gone": Source(url=server.url + "/missing.tar.gz", filename="missing.tar.gz")}
    with pytest.raises(DatasetNotFoundError, match="HTTP 404"):
        download("gone", tmp_path, sources=src, quiet=True)
    dead = {"dead": Source(url="http://127.0.0.1:9/x.tar.gz", filename="x.tar.gz")}
    with pytest.raises(DatasetNotFoundError, match="cannot reach"):
        download("dead", tmp_path, sources=dead, quiet=True, timeout=5)


@pytest.mark.parametrize("name, where", [("mvtec", "mvtec.com"), ("aitex", "aitex.es"), ("semicon", "private")])
def test_manual_datasets_say_where_to_get_them(name, where, tmp_path: Path, capsys):
    with pytest.raises(DatasetNotFoundError, match=where):
        download(name, tmp_path)
    # semicon is made locally by notebook 03, so nothing is missing; the others are
    assert dl.main([name, str(tmp_path)]) == (0 if name == "semicon" else 2)
    assert where in capsys.readouterr().err


def test_mvtec_hint_names_the_folder_the_loader_reads(tmp_path: Path):
    from coftad_lib.engine.data_paths import dataset_root

    report = dl.plan_datasets(["mvtec"], tmp_path)
    (state,) = report.unavailable
    assert state.status == "manual" and "\n" not in state.message
    assert f"-C {dataset_root(tmp_path, 'mvtec')}" in state.message  # data/mvtec_ad, not data/mvtec
    with pytest.raises(DatasetNotFoundError, match="mvtec_ad"):
        download("mvtec", tmp_path)


def test_cli_and_unknown_name(toy, server, tmp_path: Path, monkeypatch, capsys):
    sources, _ = toy
    monkeypatch.setitem(dl.SOURCES, "toy", sources["toy"])
    assert dl.main(["toy", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "toy")
    with pytest.raises(COFTADInputError, match="not known"):
        download("imagenet", tmp_path)


def test_registry_entries_are_well_formed():
    assert {"flowers17", "cifar10", "cifar100", "cifar10c", "cifar100c", "magnetic_tile"} <= set(dl.SOURCES)
    for name, src in dl.SOURCES.items():
        assert src.url.startswith("https://"), name
        assert src.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", src.sha256), name
        assert src.md5 is None or re.fullmatch(r"[0-9a-f]{32}", src.md5), name
        assert src.sha256 or src.md5, f"{name}: no checksum recorded"
    assert "2535967" in dl.SOURCES["cifar10c"].url and "3555552" in dl.SOURCES["cifar100c"].url
