"""download_file against a real HTTP server on 127.0.0.1 serving the real Omniglot fixture zip."""

from __future__ import annotations

import hashlib
import socket
import http.server
import threading
from pathlib import Path

import pytest

from umeta.data.download import download_file
from umeta.errors import UmetaError

FIXTURE = "omniglot/images_background_small1.zip"
# Published in tensorflow/datasets (url_checksums/omniglot.txt) for the official small1 zip.
FIXTURE_SHA256 = "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4"


class _Handler(http.server.BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/missing.zip":
            self.send_error(404, "Not Found")
            return
        body = self.payload
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path == "/truncated.zip":  # announce everything, send a third, hang up
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    """Base URL of a threaded HTTP server on an ephemeral port."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def payload(shared_data: Path) -> bytes:
    data = (shared_data / FIXTURE).read_bytes()
    _Handler.payload = data
    return data


@pytest.mark.realdata
def test_download_success_and_checksums(server, payload, tmp_path):
    assert hashlib.sha256(payload).hexdigest() == FIXTURE_SHA256
    dest = tmp_path / "sub" / "images_background.zip"
    md5 = hashlib.md5(payload).hexdigest()
    out = download_file(f"{server}/images_background.zip", dest, sha256=FIXTURE_SHA256.upper(),
                        md5=md5, progress=False)
    assert out == dest
    assert dest.read_bytes() == payload
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no temporary file left


@pytest.mark.realdata
def test_wrong_checksum_deletes_everything(server, payload, tmp_path):
    dest = tmp_path / "a.zip"
    with pytest.raises(UmetaError, match="checksum mismatch.*sha256"):
        download_file(f"{server}/a.zip", dest, sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UmetaError, match="checksum mismatch.*md5"):
        download_file(f"{server}/a.zip", dest, md5="0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.realdata
def test_http_404_is_a_clear_error(server, payload, tmp_path):
    with pytest.raises(UmetaError, match="HTTP 404") as info:
        download_file(f"{server}/missing.zip", tmp_path / "m.zip", progress=False)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.realdata
def test_interrupted_transfer_leaves_nothing(server, payload, tmp_path):
    with pytest.raises(UmetaError, match=f"stopped after {len(payload) // 3} of {len(payload)}"):
        download_file(f"{server}/truncated.zip", tmp_path / "t.zip", progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.realdata
def test_failed_download_keeps_the_previous_file(server, payload, tmp_path):
    dest = tmp_path / "keep.zip"
    dest.write_bytes(b"previous")
    with pytest.raises(UmetaError):
        download_file(f"{server}/truncated.zip", dest, progress=False)
    assert dest.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.zip"]


def test_unreachable_server(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UmetaError, match="failed: .*check the network"):
        download_file(f"http://127.0.0.1:{port}/x.zip", tmp_path / "x.zip", progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kw", [{"sha256": "abc"}, {"md5": "z" * 32}, {"sha256": "0" * 32}])
def test_malformed_checksum_is_rejected(kw, tmp_path):
    with pytest.raises(UmetaError, match="checksum; give"):
        download_file("http://127.0.0.1:9/x", tmp_path / "x", progress=False, **kw)
