"""fetch_speech_commands against a tiny GSC-layout archive served from 127.0.0.1 (no other network)."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from spotter.config import BACKGROUND_NOISE_DIR, SAMPLE_RATE
from spotter.data import download
from spotter.data.download import MARKER, DataError, default_data_dir, fetch_speech_commands
from spotter.data.speech_commands import build_index, list_clips

NAME = "speech_commands_v0.02.tar.gz"
FOLDER = "speech_commands_v0.02"


def _wav(freq: float, seconds: float = 1.0) -> bytes:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * freq * t), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", **fields) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


def make_archive(prefix: str = "", extra=()) -> bytes:
    """A tiny Speech Commands archive: 3 words x 2 speakers, background noise, split lists."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for w, word in enumerate(("yes", "no", "bed")):
            _add(tar, f"{prefix}{word}", type=tarfile.DIRTYPE, mode=0o755)
            for s, speaker in enumerate(("0a1b2c3d", "4e5f6a7b")):
                _add(tar, f"{prefix}{word}/{speaker}_nohash_0.wav", _wav(300 + 100 * w + 10 * s))
        _add(tar, f"{prefix}{BACKGROUND_NOISE_DIR}/white_noise.wav", _wav(50, seconds=3.0))
        _add(tar, f"{prefix}validation_list.txt", b"yes/4e5f6a7b_nohash_0.wav\n")
        _add(tar, f"{prefix}testing_list.txt", b"no/4e5f6a7b_nohash_0.wav\n")
        for name, data, fields in extra:
            _add(tar, name, data, **fields)
    return buf.getvalue()


ARCHIVE = make_archive()
SHA = hashlib.sha256(ARCHIVE).hexdigest()


class Server:
    """Serves ``files`` over HTTP on 127.0.0.1; records every request; can truncate or refuse ranges."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {NAME: ARCHIVE}
        self.mode = "ok"  # "ok" or "truncate" (Content-Length of the whole body, half of it sent)
        self.ranges = True
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server.requests.append(dict(self.headers))
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                if server.mode == "truncate":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                start = 0
                wanted = self.headers.get("Range")
                if wanted and server.ranges:
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, name: str = NAME) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def _dead_url() -> str:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{NAME}"


def _check_extracted(root: Path) -> None:
    assert (root / MARKER).is_file()
    assert (root / "validation_list.txt").is_file() and (root / "testing_list.txt").is_file()
    assert sorted(p.name for p in (root / "yes").iterdir()) == ["0a1b2c3d_nohash_0.wav", "4e5f6a7b_nohash_0.wav"]
    assert len(list_clips(root)) == 6
    assert {ex.path for ex in build_index(root, "val") if ex.path} == {"yes/4e5f6a7b_nohash_0.wav"}


def test_constants():
    assert download.GSC_URL == "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
    assert len(download.GSC_SHA256) == 64 and int(download.GSC_SHA256, 16) >= 0
    assert download.archive_name(download.GSC_URL) == NAME


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("SPOTTER_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_data_dir() == Path.home() / ".cache" / "spotter"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "spotter"
    monkeypatch.setenv("SPOTTER_DATA_DIR", str(tmp_path / "mine"))
    assert default_data_dir() == tmp_path / "mine"


def test_first_fetch_downloads_and_extracts_later_ones_touch_nothing(server, tmp_path, capsys):
    root = fetch_speech_commands(tmp_path, server.url(), sha256=SHA, progress=True)
    assert root == tmp_path / FOLDER
    _check_extracted(root)
    assert (tmp_path / NAME).read_bytes() == ARCHIVE and not (tmp_path / f"{NAME}.part").exists()
    assert len(server.requests) == 1
    assert fetch_speech_commands(tmp_path, server.url(), sha256=SHA, progress=False) == root
    (tmp_path / NAME).unlink()  # a finished extraction needs no archive either
    assert fetch_speech_commands(tmp_path, server.url(), sha256=SHA, progress=False) == root
    assert len(server.requests) == 1


def test_verified_archive_is_not_downloaded_again(server, tmp_path):
    fetch_speech_commands(tmp_path, server.url(), sha256=SHA, progress=False)
    (tmp_path / FOLDER / MARKER).unlink()  # as if extraction had been interrupted
    (tmp_path / FOLDER / "yes" / "0a1b2c3d_nohash_0.wav").unlink()
    root = fetch_speech_commands(tmp_path, server.url(), sha256=SHA, progress=False)
    _check_extracted(root)  # extraction redone from the archive already there
    assert len(server.requests) == 1


@pytest.mark.parametrize("ranges", [True, False], ids=["resumed", "restarted"])
def test_truncated_download_is_an_error_and_a_later_fetch_recovers(server, tmp_path, ranges):
    server.mode, server.ranges = "truncate", ranges
    with pytest.raises(DataError, match="truncated") as info:
        fetch_speech_commands(tmp_path, server.url(), sha256=SHA, progress=False)
    message = str(info.value)
    assert "re-run" in message and "\n" not in message
    assert not (tmp_path / FOLDER).exists() and not (tmp_path / NAME).exists()
    assert (tmp_path / f"{NAME}.part").stat().st_size == len(ARCHIVE) // 2
    server.mode = "ok"
    root = fetch_speech_commands(tmp_path, server.url(), sha256=SHA, progress=False)
    _check_extracted(root)
    assert (tmp_path / NAME).read_bytes() == ARCHIVE
    assert server.requests[-1].get("Range") == f"bytes={len(ARCHIVE) // 2}-"


def test_whole_part_file_is_finished_without_a_download(server, tmp_path):
    (tmp_path / f"{NAME}.part").write_bytes(ARCHIVE)  # downloaded, but not yet checked and renamed
    _check_extracted(fetch_speech_commands(tmp_path, server.url(), sha256=SHA, progress=False))
    assert server.requests[-1].get("Range") == f"bytes={len(ARCHIVE)}-"


def test_wrong_checksum_names_both_sums_and_removes_the_download(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(DataError, match="checksum") as info:
        fetch_speech_commands(tmp_path, server.url(), sha256=wrong, progress=False)
    assert wrong in str(info.value) and SHA in str(info.value) and "re-run" in str(info.value)
    assert not (tmp_path / NAME).exists() and not (tmp_path / f"{NAME}.part").exists()
    assert not (tmp_path / FOLDER).exists()
    _check_extracted(fetch_speech_commands(tmp_path, server.url(), sha256=SHA, progress=False))


def test_wrong_archive_placed_by_hand_is_refused_and_kept(tmp_path):
    (tmp_path / NAME).write_bytes(ARCHIVE[:-10])
    with pytest.raises(DataError, match="checksum") as info:
        fetch_speech_commands(tmp_path, _dead_url(), sha256=SHA, progress=False)
    assert SHA in str(info.value) and hashlib.sha256(ARCHIVE[:-10]).hexdigest() in str(info.value)
    assert (tmp_path / NAME).exists()  # the user's file: they decide


@pytest.mark.parametrize("member", ["../evil.txt", "yes/../../evil.txt", "ABSOLUTE", "link"])
def test_archive_escaping_its_folder_is_refused(server, tmp_path, member):
    data_dir = tmp_path / "data"
    extra = [("../evil.txt", b"gotcha", {})]
    if member == "yes/../../evil.txt":
        extra = [(member, b"gotcha", {})]
    elif member == "ABSOLUTE":
        extra = [(str(tmp_path / "evil.txt"), b"gotcha", {})]
    elif member == "link":
        extra = [("yes/evil_link", b"", {"type": tarfile.SYMTYPE, "linkname": str(tmp_path / "evil.txt")})]
    evil = make_archive(extra=extra)
    server.files[NAME] = evil
    with pytest.raises(DataError, match="refusing") as info:
        fetch_speech_commands(data_dir, server.url(), sha256=hashlib.sha256(evil).hexdigest(), progress=False)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "evil.txt").exists() and not (data_dir / FOLDER).exists()


def test_archive_placed_by_hand_is_used_without_network(tmp_path):
    (tmp_path / NAME).write_bytes(ARCHIVE)
    root = fetch_speech_commands(tmp_path, _dead_url(), sha256=SHA, progress=False)
    _check_extracted(root)


def test_no_network_says_to_download_by_hand(tmp_path):
    url = _dead_url()
    with pytest.raises(DataError, match="by hand") as info:
        fetch_speech_commands(tmp_path / "cache", url, sha256=SHA, progress=False)
    assert str(tmp_path / "cache") in str(info.value) and url in str(info.value)
    assert "\n" not in str(info.value)


def test_http_error_is_a_data_error(server, tmp_path):
    with pytest.raises(DataError, match="HTTP 404"):
        fetch_speech_commands(tmp_path, server.url("missing.tar.gz"), sha256=SHA, progress=False)


def test_archive_wrapped_in_one_folder_returns_the_inner_root(server, tmp_path):
    wrapped = make_archive(prefix="inner/")
    server.files["wrapped.tar.gz"] = wrapped
    root = fetch_speech_commands(tmp_path, server.url("wrapped.tar.gz"), sha256=None, progress=False)
    assert root == tmp_path / "wrapped" / "inner"
    assert len(list_clips(root)) == 6
    assert fetch_speech_commands(tmp_path, server.url("wrapped.tar.gz"), sha256=None, progress=False) == root
    assert len(server.requests) == 1


def test_damaged_archive_without_checksum_is_a_data_error(server, tmp_path):
    server.files["broken.tar.gz"] = ARCHIVE[: len(ARCHIVE) // 2]
    with pytest.raises(DataError, match="damaged"):
        fetch_speech_commands(tmp_path, server.url("broken.tar.gz"), sha256=None, progress=False)
    assert not (tmp_path / "broken" / MARKER).exists()


def test_concurrent_fetches_download_once(server, tmp_path):
    results, errors = [], []

    def fetch():
        try:
            results.append(fetch_speech_commands(tmp_path, server.url(), sha256=SHA, progress=False))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and results == [tmp_path / FOLDER] * 3
    assert len(server.requests) == 1
