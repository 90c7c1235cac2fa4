"""A local HTTP server for download tests: serves archives built in the test, honours Range requests.

Also the fixtures the download tests share (``test_download.py``, ``test_ensure_datasets.py``). A test
module takes them by binding them as its own names (``server = archive_server.server``, ...), so they
apply to that module only (the autouse one included), never to the whole session as a plugin would.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from coftad_lib.datasets.download import Source


class ArchiveServer:
    """Serves ``files`` (path -> bytes); honours ``Range: bytes=N-`` unless ``ignore_range``."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.log: list[tuple[str, str | None, int, int]] = []  # path, Range, status, bytes sent
        self.ignore_range = False
        self.truncate_to: int | None = None  # send only this many body bytes, then close
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                data = server.files.get(self.path)
                rng = self.headers.get("Range")
                # Each request is logged before its response goes out: the client may assert on the
                # log as soon as it has the response, while this thread would still be writing.
                if data is None:
                    server.log.append((self.path, rng, 404, 0))
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, body = 200, data
                m = re.fullmatch(r"bytes=(\d+)-", rng or "")
                if m and not server.ignore_range:
                    start = int(m.group(1))
                    if start >= len(data):
                        server.log.append((self.path, rng, 416, 0))
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status, body = 206, data[start:]
                server.log.append((self.path, rng, status, len(body)))
                self.send_response(status)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                self.wfile.write(body if server.truncate_to is None else body[: server.truncate_to])

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def serve(monkeypatch):
    """Generator for a ``server`` fixture: proxies and mirror settings off, server up, then down."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                "COFTAD_DATA_MIRROR", "COFTAD_NO_DOWNLOAD"):  # a developer's settings must not steer the tests
        monkeypatch.delenv(var, raising=False)
    s = ArchiveServer()
    yield s
    s.close()


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A ``.tar.gz`` archive holding ``members`` (member name -> bytes), built in memory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


PAYLOAD = {
    "toy/readme.txt": b"toy dataset\n",
    # incompressible, so the archive is big enough for a partial download to be meaningful
    "toy/sub/data.bin": np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes(),
}


def toy_source(server: ArchiveServer) -> tuple[dict[str, Source], bytes]:
    """Serve the toy archive at ``/toy.tar.gz``; ({"toy": its Source}, the archive's bytes)."""
    archive = tar_gz(PAYLOAD)
    server.files["/toy.tar.gz"] = archive
    src = Source(url=server.url + "/toy.tar.gz", filename="toy.tar.gz", sha256=hashlib.sha256(archive).hexdigest())
    return {"toy": src}, archive


def check_payload(target: Path) -> None:
    """``target`` holds every file of :data:`PAYLOAD` with its exact bytes (the unpack lost nothing)."""
    for name, data in PAYLOAD.items():
        assert (target / name).read_bytes() == data


@pytest.fixture(autouse=True)
def downloads_allowed(monkeypatch):
    """These tests fetch from a local server: undo conftest's COFTAD_NO_DOWNLOAD for them."""
    monkeypatch.delenv("COFTAD_NO_DOWNLOAD", raising=False)


@pytest.fixture
def server(monkeypatch):
    """A running :class:`ArchiveServer`, proxies and mirror settings off (see :func:`serve`)."""
    yield from serve(monkeypatch)


@pytest.fixture
def toy(server):
    """The toy archive served by ``server``: ({"toy": its Source}, the archive's bytes)."""
    return toy_source(server)
