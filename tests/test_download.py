"""`attnlab data get`: downloads from a local HTTP server (127.0.0.1, no network).

The server serves generated files, records every request's path and Range header,
and can ignore Range, corrupt a file, or cut a response short.
"""

from __future__ import annotations

import hashlib
import random
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from attnlab.cli import main
from attnlab.data import download as dl

SIZES = {"tiny-train.conllu": 200_000, "tiny-dev.conllu": 70_000, "tiny-test.conllu": 1_000}
LOCAL = {"tiny-train.conllu": "train.conllu", "tiny-dev.conllu": "dev.conllu", "tiny-test.conllu": "test.conllu"}
DATA = {name: random.Random(i).randbytes(n) for i, (name, n) in enumerate(SIZES.items())}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Server:
    """A small HTTP/1.0 file server in a thread, with switches for misbehaving."""

    def __init__(self, files: dict[str, bytes], honour_range: bool = True):
        self.files = dict(files)
        self.honour_range = honour_range
        self.cut_after: int | None = None  # send only this many body bytes, then close
        self.requests: list[tuple[str, str | None]] = []  # (file name, Range header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                server.requests.append((name, rng))
                data = server.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                if rng and server.honour_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                self.wfile.write(body if server.cut_after is None else body[:server.cut_after])

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    def requested(self, name: str) -> list[str | None]:
        return [r for n, r in self.requests if n == name]


@pytest.fixture
def server():
    s = Server(DATA)
    yield s
    s.close()


def tiny(url: str, checksums: bool = True) -> dl.Dataset:
    files = tuple(dl.RemoteFile(name, LOCAL[name], sha(DATA[name]) if checksums else None) for name in DATA)
    return dl.Dataset("tiny", "generated test files", url, files, license="none")


def get(server, dest, checksums=True, **kw):
    notes = []
    results = dl.get_dataset(tiny(server.url, checksums), dest, progress=False, log=notes.append, **kw)
    return results, notes


def assert_complete(dest):
    for name, data in DATA.items():
        assert (dest / LOCAL[name]).read_bytes() == data
    assert sorted(p.name for p in dest.iterdir()) == ["SHA256SUMS", "dev.conllu", "test.conllu", "train.conllu"]


def test_fresh_download_writes_the_files_and_their_manifest(server, tmp_path):
    dest = tmp_path / "new" / "dir"
    results, notes = get(server, dest)
    assert_complete(dest)  # no .part file left over
    assert [r.downloaded for r in results] == [True, True, True]
    assert [r.size for r in results] == list(SIZES.values())
    assert server.requests == [(name, None) for name in DATA]
    manifest = (dest / "SHA256SUMS").read_text().splitlines()
    assert manifest == [f"{sha(DATA[n])}  {LOCAL[n]}" for n in DATA]
    assert notes == []


@pytest.mark.parametrize("checksums", [True, False], ids=["registry-checksums", "manifest-only"])
def test_rerun_skips_complete_files_without_asking_the_server(server, tmp_path, checksums):
    get(server, tmp_path, checksums)
    server.requests.clear()
    results, _ = get(server, tmp_path, checksums)
    assert server.requests == []
    assert [r.downloaded for r in results] == [False, False, False]
    assert [r.sha256 for r in results] == [sha(d) for d in DATA.values()]
    assert_complete(tmp_path)


@pytest.mark.parametrize("checksums", [True, False], ids=["registry-checksums", "manifest-only"])
def test_a_damaged_file_is_downloaded_again_and_only_that_one(server, tmp_path, checksums):
    get(server, tmp_path, checksums)
    server.requests.clear()
    (tmp_path / "dev.conllu").write_bytes(b"damaged")
    _, notes = get(server, tmp_path, checksums)
    assert server.requests == [("tiny-dev.conllu", None)]
    assert len(notes) == 1 and "dev.conllu" in notes[0] and sha(b"damaged") in notes[0]
    assert_complete(tmp_path)


def test_force_downloads_everything_again(server, tmp_path):
    get(server, tmp_path)
    server.requests.clear()
    results, _ = get(server, tmp_path, force=True)
    assert [r.downloaded for r in results] == [True, True, True]
    assert server.requests == [(name, None) for name in DATA]


def test_partial_file_is_resumed_with_a_range_request(server, tmp_path):
    data = DATA["tiny-train.conllu"]
    (tmp_path / ".train.conllu.part").write_bytes(data[:123_457])
    _, notes = get(server, tmp_path)
    assert server.requested("tiny-train.conllu") == ["bytes=123457-"]
    assert notes == ["train.conllu: resuming at byte 123457"]
    assert_complete(tmp_path)


def test_server_that_ignores_range_restarts_the_file(tmp_path):
    s = Server(DATA, honour_range=False)
    try:
        (tmp_path / ".train.conllu.part").write_bytes(b"x" * 5000)  # wrong bytes: a restart overwrites them
        _, notes = get(s, tmp_path)
        assert s.requested("tiny-train.conllu") == ["bytes=5000-"]  # asked, got a 200 with the whole file
        assert "ignored the Range request" in notes[1]
        assert_complete(tmp_path)
    finally:
        s.close()


def test_part_file_that_is_already_whole_is_finished_after_a_416(server, tmp_path):
    (tmp_path / ".test.conllu.part").write_bytes(DATA["tiny-test.conllu"])
    get(server, tmp_path)
    assert server.requested("tiny-test.conllu") == ["bytes=1000-"]
    assert_complete(tmp_path)


def test_stale_part_file_fails_the_checksum_and_is_fetched_again_from_zero(server, tmp_path):
    (tmp_path / ".train.conllu.part").write_bytes(b"from another version" * 50)  # 1000 bytes
    _, notes = get(server, tmp_path)
    assert server.requested("tiny-train.conllu") == ["bytes=1000-", None]
    assert "mismatch after resuming" in notes[1]
    assert_complete(tmp_path)


def test_interrupted_transfer_keeps_the_part_file_and_the_next_run_resumes_it(server, tmp_path):
    server.cut_after = 50_000
    with pytest.raises(dl.DownloadError) as err:
        get(server, tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "tiny-train.conllu" in msg and "50000 of 200000 bytes" in msg and "run again" in msg
    assert not (tmp_path / "train.conllu").exists()
    assert (tmp_path / ".train.conllu.part").read_bytes() == DATA["tiny-train.conllu"][:50_000]
    server.cut_after = None
    server.requests.clear()
    get(server, tmp_path)
    assert server.requested("tiny-train.conllu") == ["bytes=50000-"]
    assert_complete(tmp_path)


def test_checksum_mismatch_is_an_error_and_leaves_no_file(server, tmp_path):
    bad = bytearray(DATA["tiny-dev.conllu"])
    bad[1000] ^= 1
    server.files["tiny-dev.conllu"] = bytes(bad)
    with pytest.raises(dl.DownloadError) as err:
        get(server, tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(tmp_path / "dev.conllu") in msg
    assert sha(DATA["tiny-dev.conllu"]) in msg and sha(bytes(bad)) in msg
    # train came before and is complete; dev left nothing behind; test was never asked for
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SHA256SUMS", "train.conllu"]
    assert server.requested("tiny-test.conllu") == []


def test_unreachable_server_and_silent_server_are_one_line_errors(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(dl.DownloadError, match=rf"^cannot reach http://127\.0\.0\.1:{port}/tiny-train\.conllu: "):
        dl.get_dataset(tiny(f"http://127.0.0.1:{port}"), tmp_path, progress=False)
    with socket.socket() as silent:  # accepts connections (kernel backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(dl.DownloadError, match="timed out"):
            dl.get_dataset(tiny(url), tmp_path, progress=False, timeout=0.2)
    assert list(tmp_path.iterdir()) == []


def test_progress_bar_goes_to_stderr_only_when_asked(server, tmp_path, capsys):
    dl.get_dataset(tiny(server.url), tmp_path / "a", progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "train.conllu" in err and "100%" in err
    dl.get_dataset(tiny(server.url), tmp_path / "b", progress=False)
    assert capsys.readouterr() == ("", "")


def test_bad_manifest_line_names_the_file_and_line(tmp_path):
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  train.conllu\nnot a checksum\n")
    with pytest.raises(dl.DownloadError, match=r"SHA256SUMS:2: expected '<sha256>  <file name>'"):
        dl.get_dataset(tiny("http://127.0.0.1:9"), tmp_path, progress=False)


def test_registry_pins_a_release_and_names_the_splits():
    ewt = dl.DATASETS["ud-english-ewt"]
    assert ewt.base_url == "https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/r2.16"
    assert [f.local for f in ewt.files] == ["train.conllu", "dev.conllu", "test.conllu"]
    assert [f.remote for f in ewt.files] == [f"en_ewt-ud-{s}.conllu" for s in ("train", "dev", "test")]
    assert all(re.fullmatch(r"[0-9a-f]{64}", f.sha256) for f in ewt.files)


# -- through the command line ------------------------------------------------------------

def test_cli_404_is_one_line_and_exit_code_2(server, tmp_path, capsys):
    code = main(["data", "get", "ud-english-ewt", "--dest", str(tmp_path), "--base-url", server.url + "/", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.splitlines() == [f"attnlab data: error: {server.url}/en_ewt-ud-train.conllu: HTTP 404 Not Found"]
    assert list(tmp_path.iterdir()) == []


def test_cli_downloads_then_skips(server, tmp_path, capsys, monkeypatch):
    files = tuple(dl.RemoteFile(f"en_ewt-ud-{s}.conllu", f"{s}.conllu", sha(DATA[f"tiny-{s}.conllu"]))
                  for s in ("train", "dev", "test"))
    monkeypatch.setitem(dl.DATASETS, "ud-english-ewt",
                        dl.Dataset("ud-english-ewt", "test copy", "http://127.0.0.1:9", files, license="none"))
    server.files = {f"en_ewt-ud-{s}.conllu": DATA[f"tiny-{s}.conllu"] for s in ("train", "dev", "test")}
    argv = ["data", "get", "ud-english-ewt", "--dest", str(tmp_path), "--base-url", server.url, "--no-progress"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[-1] == f"ud-english-ewt: 3 files in {tmp_path} (3 downloaded, 0 already complete)"
    assert f"{tmp_path / 'train.conllu'}  200000 bytes  sha256 {sha(DATA['tiny-train.conllu'])}  downloaded" in out
    assert_complete(tmp_path)
    server.requests.clear()
    assert main(argv) == 0
    assert "(0 downloaded, 3 already complete)" in capsys.readouterr().out
    assert server.requests == []
