"""ensure_datasets end to end against a local HTTP server: plan, fetch, mirrors, and each bad input
(wrong checksum, truncated transfer, unreachable mirror, full disk) giving one line and no folder
that looks complete."""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path

import archive_server
from archive_server import check_payload

from coftad_lib.datasets import download as dl
from coftad_lib.datasets import ensure as ensure_mod
from coftad_lib.datasets import fetch as fetch_mod
from coftad_lib.datasets.ensure import ENV_MIRROR, ensure_datasets, plan_datasets
from coftad_lib.datasets.sources import MARKER, Source

# the shared server fixtures (the autouse one included), for this module only
downloads_allowed, server, toy = archive_server.downloads_allowed, archive_server.server, archive_server.toy


def _ok_tree(target: Path) -> None:
    check_payload(target)
    assert (target / MARKER).is_file()


def _one_line_failure(report, name: str) -> str:
    (state,) = report.unavailable
    assert (state.name, state.status) == (name, "failed")
    assert "\n" not in state.message
    return state.message


def _nothing_looks_complete(root: Path) -> None:
    assert not (root / "toy").exists()
    assert not list(root.rglob(MARKER))
    assert not list(root.glob(".toy-unpack-*"))


def test_fetches_once_then_finds_it(toy, server, tmp_path: Path):
    sources, _ = toy
    lines: list[str] = []
    report = ensure_datasets(["toy"], tmp_path, sources=sources, progress=True, log=lines.append)
    assert report.ok and report.fetched == ["toy"] and report.items[0].path == tmp_path / "toy"
    _ok_tree(tmp_path / "toy")
    assert json.loads((tmp_path / "toy" / MARKER).read_text())["sha256"] == sources["toy"].sha256
    assert any("downloading 1 public dataset" in line for line in lines)  # the plan, before the fetch
    n = len(server.log)
    again = ensure_datasets(["toy", "toy"], tmp_path, sources=sources, progress=False)
    assert again.present == ["toy"] and again.fetched == [] and len(server.log) == n


def test_http_mirror_and_env_variable(toy, server, tmp_path: Path, monkeypatch):
    sources, archive = toy
    server.files["/mirror/toy.tar.gz"] = archive
    offline = {"toy": Source(url="http://127.0.0.1:9/official/toy.tar.gz", filename="toy.tar.gz",
                             sha256=sources["toy"].sha256)}
    report = ensure_datasets(["toy"], tmp_path / "a", sources=offline, mirror=server.url + "/mirror/", progress=False)
    assert report.fetched == ["toy"] and server.log[-1][0] == "/mirror/toy.tar.gz"
    monkeypatch.setenv(ENV_MIRROR, server.url + "/mirror")
    assert ensure_datasets(["toy"], tmp_path / "b", sources=offline, progress=False).fetched == ["toy"]
    _ok_tree(tmp_path / "b" / "toy")


def test_folder_mirror_is_read_in_place_and_never_deleted(toy, server, tmp_path: Path):
    sources, archive = toy
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "toy.tar.gz").write_bytes(archive)
    n = len(server.log)
    report = ensure_datasets(["toy"], tmp_path / "data", sources=sources, mirror=str(mirror), progress=False)
    assert report.fetched == ["toy"] and len(server.log) == n  # no HTTP request at all
    _ok_tree(tmp_path / "data" / "toy")
    assert (mirror / "toy.tar.gz").read_bytes() == archive
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["toy"]
    # file:// URLs name a folder too; a bad copy there is reported and kept
    (mirror / "toy.tar.gz").write_bytes(archive[:-10])
    report = ensure_datasets(["toy"], tmp_path / "d2", sources=sources, mirror=mirror.as_uri(), progress=False)
    msg = _one_line_failure(report, "toy")
    assert "toy.tar.gz" in msg and "replace it with a good copy" in msg
    assert (mirror / "toy.tar.gz").exists()
    _nothing_looks_complete(tmp_path / "d2")


def test_wrong_checksum_is_one_line_and_unpacks_nothing(toy, server, tmp_path: Path):
    sources, _ = toy
    wrong = {"toy": Source(url=sources["toy"].url, filename="toy.tar.gz", sha256="0" * 64)}
    msg = _one_line_failure(ensure_datasets(["toy"], tmp_path, sources=wrong, progress=False), "toy")
    assert "toy.tar.gz" in msg and "SHA-256" in msg and "run again" in msg
    _nothing_looks_complete(tmp_path)
    assert not list(tmp_path.iterdir())  # the bad download was deleted


def test_truncated_transfer_is_reported_then_resumed(toy, server, tmp_path: Path):
    sources, archive = toy
    server.truncate_to = len(archive) // 3
    msg = _one_line_failure(ensure_datasets(["toy"], tmp_path, sources=sources, progress=False), "toy")
    assert "toy.tar.gz" in msg and "truncated" in msg and "resume" in msg
    _nothing_looks_complete(tmp_path)
    assert (tmp_path / "toy.tar.gz.part").stat().st_size == len(archive) // 3
    server.truncate_to = None
    assert ensure_datasets(["toy"], tmp_path, sources=sources, progress=False).fetched == ["toy"]
    assert server.log[-1][1:3] == (f"bytes={len(archive) // 3}-", 206)  # resumed, not restarted
    _ok_tree(tmp_path / "toy")


def test_truncated_without_length_fails_the_size_check(toy, server, tmp_path: Path):
    sources, archive = toy
    sized = {"toy": Source(url=sources["toy"].url, filename="toy.tar.gz", sha256=sources["toy"].sha256,
                           size=len(archive) + 5)}
    msg = _one_line_failure(ensure_datasets(["toy"], tmp_path, sources=sized, progress=False), "toy")
    assert f"expected {len(archive) + 5}" in msg
    _nothing_looks_complete(tmp_path)


def test_unreachable_mirror_names_it_and_the_way_out(toy, server, tmp_path: Path):
    sources, _ = toy
    msg = _one_line_failure(
        ensure_datasets(["toy"], tmp_path, sources=sources, mirror="http://127.0.0.1:9/archive", progress=False,
                        timeout=5), "toy")
    assert "127.0.0.1:9/archive" in msg and "toy.tar.gz" in msg and ENV_MIRROR in msg and "unset it" in msg
    msg = _one_line_failure(
        ensure_datasets(["toy"], tmp_path, sources=sources, mirror=str(tmp_path / "no-such-folder"), progress=False),
        "toy")
    assert "no-such-folder/toy.tar.gz" in msg and "not in the mirror folder" in msg
    _nothing_looks_complete(tmp_path)


class _FullDisk:
    """A file whose writes fail with ENOSPC once ``room`` bytes are written."""

    def __init__(self, path, mode, room):
        self.fh, self.room = open(path, mode), room  # noqa: SIM115

    def write(self, data):
        if self.room < len(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.fh.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


def test_full_disk_while_downloading_and_unpacking(toy, server, tmp_path: Path, monkeypatch):
    sources, archive = toy
    monkeypatch.setattr(fetch_mod, "open", lambda p, m: _FullDisk(p, m, 0), raising=False)
    msg = _one_line_failure(ensure_datasets(["toy"], tmp_path, sources=sources, progress=False), "toy")
    assert "toy.tar.gz.part" in msg and "no space left" in msg and "free some space" in msg
    monkeypatch.undo()
    monkeypatch.delenv("COFTAD_NO_DOWNLOAD", raising=False)  # undo() brought back conftest's setting

    def no_room(archive_path, into):
        (into / "toy").mkdir()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ensure_mod, "safe_extract", no_room)
    msg = _one_line_failure(ensure_datasets(["toy"], tmp_path, sources=sources, progress=False), "toy")
    assert "unpacking toy.tar.gz" in msg and "no space left" in msg
    _nothing_looks_complete(tmp_path)


def test_too_little_free_space_is_caught_before_downloading(toy, server, tmp_path: Path):
    sources, archive = toy
    huge = {"toy": Source(url=sources["toy"].url, filename="toy.tar.gz", sha256=sources["toy"].sha256, size=1 << 60)}
    n = len(server.log)
    msg = _one_line_failure(ensure_datasets(["toy"], tmp_path, sources=huge, progress=False), "toy")
    assert "needs about" in msg and "free" in msg and len(server.log) == n


def test_no_download_lists_the_command_and_fetches_nothing(toy, server, tmp_path: Path):
    sources, _ = toy
    report = ensure_datasets(["toy", "mvtec", "semicon"], tmp_path, sources=sources, download=False, progress=False)
    assert [s.status for s in report.items] == ["not_fetched", "manual", "local"] and not report.ok
    assert not server.log and not list(tmp_path.iterdir())
    msg = report.items[0].message
    assert f"python -m coftad_lib.datasets.download toy --dest {tmp_path}" in msg and "--data-mirror" in msg
    assert f"{tmp_path}/mvtec_ad" in report.items[1].message


def test_no_download_from_the_environment(toy, server, tmp_path: Path, monkeypatch):
    sources, _ = toy
    monkeypatch.setenv(ensure_mod.ENV_NO_DOWNLOAD, "1")
    assert ensure_datasets(["toy"], tmp_path, sources=sources, progress=False).items[0].status == "not_fetched"
    assert not server.log
    monkeypatch.setenv(ensure_mod.ENV_NO_DOWNLOAD, "0")
    assert ensure_datasets(["toy"], tmp_path, sources=sources, progress=False).fetched == ["toy"]


def test_copies_made_by_hand_count_as_present(tmp_path: Path, monkeypatch):
    """The shared data layouts (no marker) are found, in any of several roots; nothing is fetched."""
    monkeypatch.delenv(ENV_MIRROR, raising=False)
    first, second = tmp_path / "data", tmp_path / "other"
    (second / "flowers17" / "jpg").mkdir(parents=True)
    (second / "flowers17" / "jpg" / "image_0001.jpg").write_bytes(b"x")
    (first / "cifar10" / "test" / "airplane").mkdir(parents=True)
    (first / "cifar10" / "test" / "airplane" / "0000.jpg").write_bytes(b"x")
    (first / "magnetic_tile" / "MT_Free").mkdir(parents=True)
    (first / "mvtec_ad" / "bottle" / "train").mkdir(parents=True)
    report = plan_datasets(["flowers17", "cifar10c", "magnetic_tile", "mvtec"], [first, second])
    assert [s.status for s in report.items] == ["present"] * 4 and report.ok
    assert report.items[0].path == second / "flowers17" and report.items[1].path == first / "cifar10"


def test_cifar_needs_fetch_the_right_archives(tmp_path: Path):
    report = plan_datasets(["cifar10c", "cifar100c"], tmp_path)
    c10, c100 = report.items
    assert c10.status == "to_fetch" and "cifar-10-python.tar.gz" in c10.message and "CIFAR-10-C" not in c10.message
    assert c100.download_bytes == dl.SOURCES["cifar100c"].size + dl.SOURCES["cifar100"].size


def test_cli_mirror_and_no_download(toy, server, tmp_path: Path, monkeypatch, capsys):
    sources, archive = toy
    monkeypatch.setitem(dl.SOURCES, "toy", sources["toy"])
    assert dl.main(["toy", "--dest", str(tmp_path / "a"), "--no-download"]) == 2
    assert "--no-download" in capsys.readouterr().err and not server.log
    server.files["/m/toy.tar.gz"] = archive
    assert dl.main(["toy", "--dest", str(tmp_path / "a"), "--mirror", server.url + "/m", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "a" / "toy")
    assert server.log[-1][0] == "/m/toy.tar.gz"
    assert hashlib.sha256(archive).hexdigest() == sources["toy"].sha256


def test_cifar_c_loader_finds_the_clean_set_where_the_download_puts_it(tmp_path: Path):
    from coftad_lib.datasets import cifar_c

    (tmp_path / "cifar100" / "cifar-100-python").mkdir(parents=True)
    (tmp_path / "cifar100" / "cifar-100-python" / "test").write_bytes(b"")
    (tmp_path / "cifar100c").mkdir()
    assert cifar_c._find_clean_root(tmp_path / "cifar100c", None, "cifar100c", None) == tmp_path / "cifar100"


def test_mvtec_categories_the_run_needs(tmp_path: Path):
    (tmp_path / "mvtec_ad" / "bottle" / "train").mkdir(parents=True)
    assert plan_datasets(["mvtec"], tmp_path, tasks={"mvtec": ["bottle"]}).ok
    (state,) = plan_datasets(["mvtec"], tmp_path, tasks={"mvtec": ["bottle", "carpet", "grid", "carpet"]}).unavailable
    assert state.status == "manual" and state.message.startswith(f"carpet, grid missing under {tmp_path / 'mvtec_ad'}; ")
    assert "tar -xJf" in state.message
