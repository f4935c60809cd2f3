"""The explorer's server over real HTTP on 127.0.0.1: every endpoint, the limits, bad input,
`attnlab serve` itself and the load test's machinery."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from attnlab.bench.serve_load import percentile, run_load
from attnlab.serve.app import Limits, create_app
from attnlab.serve.server import ServerThread
from attnlab.viz.model import load_explainable, tokenize

from tiny_models import HEADS, LAYERS, tiny_tagger_dir

LIMITS = Limits(max_body_bytes=2048, max_tokens=20, max_token_chars=30)


@pytest.fixture(scope="module")
def model():
    return load_explainable(tiny_tagger_dir())


@pytest.fixture(scope="module")
def app(model):
    return create_app(model, limits=LIMITS)


@pytest.fixture(scope="module")
def server(app):
    with ServerThread(app) as url:
        yield url


def call(url, method, path, body=None, *, headers=None, raw=None, chunks=None):
    """(status, headers, parsed JSON or text) of one request on a fresh connection."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        h = {"Content-Type": "application/json", **(headers or {})}
        if chunks is not None:  # a chunked body: no Content-Length to check up front
            conn.putrequest(method, path)
            for k, v in {**h, "Transfer-Encoding": "chunked"}.items():
                conn.putheader(k, v)
            conn.endheaders()
            for c in chunks:
                conn.send(f"{len(c):x}\r\n".encode() + c + b"\r\n")
            conn.send(b"0\r\n\r\n")
        else:
            data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
            conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        payload = resp.read()
        kind = resp.getheader("content-type", "")
        parsed = json.loads(payload) if kind.startswith("application/json") else payload.decode("utf-8", "replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, parsed
    finally:
        conn.close()


# -- the endpoints -----------------------------------------------------------------------

def test_health(server, model):
    status, headers, body = call(server, "GET", "/api/health")
    assert status == 200 and headers["content-type"] == "application/json"
    assert body["status"] == "ok"
    assert body["model"]["layers"] == LAYERS and body["model"]["heads"] == HEADS
    assert body["model"]["normalize"] == "softmax" and "NOUN" in body["model"]["tags"]
    assert body["limits"] == {"max_body_bytes": 2048, "max_tokens": 20, "max_token_chars": 30}


def test_tag_text_and_tokens(server, model):
    text = "They watch the old watch ."
    tokens = tokenize(text)
    [(tags, probs)] = model.tag([tokens])
    for request in ({"text": text}, {"tokens": tokens}):
        status, _, body = call(server, "POST", "/api/tag", request)
        assert status == 200, body
        assert body["tokens"] == tokens and body["tags"] == tags
        np.testing.assert_allclose(body["probabilities"], probs, atol=1e-6)
    # tokens are taken as given, not split again
    status, _, body = call(server, "POST", "/api/tag", {"tokens": ["New York", "is", "big"]})
    assert status == 200 and body["tokens"] == ["New York", "is", "big"] and len(body["tags"]) == 3


def test_attention_returns_every_layer_and_head(server, model):
    tokens = tokenize("I saw a saw .")
    tags, probs, w = model.attention(tokens)
    status, _, body = call(server, "POST", "/api/attention", {"text": "I saw a saw ."})
    assert status == 200, body
    assert body["tokens"] == tokens and body["tags"] == tags
    assert (body["layers"], body["heads"], body["normalize"]) == (LAYERS, HEADS, "softmax")
    got = np.array(body["weights"])
    assert got.shape == (LAYERS, HEADS, len(tokens), len(tokens))
    np.testing.assert_allclose(got, w.numpy(), atol=1e-6)


def test_page_and_assets_are_served_from_the_package(server):
    status, headers, html = call(server, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    for element in ('id="sentence"', 'id="submit"', 'id="tagged"', 'id="layer"', 'id="head"', 'id="heatmap"', 'id="lines"'):
        assert element in html
    assert "default-src 'self'" in headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert set(assets) == {"data:,", "/static/style.css", "/static/app.js"}  # nothing from another host
    for path, kind in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        status, headers, text = call(server, "GET", path)
        assert status == 200 and kind in headers["content-type"]
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/(?!2000/svg)", text), f"{path} refers to another host"
        assert "@import" not in text and "import(" not in text


def _hammer(url, sentences, expected, clients=6, requests=6):
    failures = []

    def client(k):
        for r in range(requests):
            i = (k + r) % len(sentences)
            status, _, body = call(url, "POST", "/api/tag", {"tokens": sentences[i]})
            if status != 200 or body["tags"] != expected[i][0]:
                failures.append((status, body))
            else:
                np.testing.assert_allclose(body["probabilities"], expected[i][1], atol=1e-5)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


SENTENCES = ("I saw a saw .", "We can book the table .", "every dog will fly", "They watch the old watch")


class Slowed:
    """The real model, 20 ms slower per forward pass, so that concurrent requests surely overlap."""

    def __init__(self, model):
        self.model, self.normalize, self.describe = model, model.normalize, model.describe
        self.sizes = []

    def tag(self, sentences):
        self.sizes.append(len(sentences))
        time.sleep(0.02)
        return self.model.tag(sentences)


def test_concurrent_requests_share_passes_and_get_the_serial_answers(model):
    sentences = [tokenize(s) for s in SENTENCES]
    expected = model.tag(sentences)
    for max_batch in (4, 1):
        slowed = Slowed(model)
        app = create_app(slowed, max_batch=max_batch)
        with ServerThread(app) as url:
            assert _hammer(url, sentences, expected) == []
        assert sum(slowed.sizes) == 36 and app.state.batcher.passes == len(slowed.sizes)
        assert max(slowed.sizes) == max_batch  # 6 clients: while one pass runs, the others queue up
        if max_batch > 1:
            assert len(slowed.sizes) <= 18


# -- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, status, message", [
    (b"{not json", 400, "request body is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
    (b"", 400, "request body is empty"),
    (b"   ", 400, "request body is empty"),
    (b'{"text": "caf\xe9"}', 400, "request body is not UTF-8 text"),
    (b"[" * 1020 + b"]" * 1020, 400, "request body is nested too deeply"),
    (b"[1, 2]", 422, 'expected a JSON object with "text" or "tokens", got a JSON array'),
    (b'"I saw a saw"', 422, "got a JSON string"),
    (b'{"text": 5}', 422, '"text" must be a string, got a JSON number'),
    (b'{"text": "a", "tokens": ["a"]}', 422, 'send exactly one of "text"'),
    (b"{}", 422, 'send exactly one of "text"'),
    (b'{"txt": "a"}', 422, "unknown field 'txt'"),
    (b'{"tokens": "I saw"}', 422, '"tokens" must be a list of strings, got a JSON string'),
    (b'{"tokens": ["I", ""]}', 422, '"tokens"[1] must be a non-empty string'),
    (b'{"tokens": ["I", null]}', 422, '"tokens"[1] must be a non-empty string, got null'),
    (b'{"tokens": []}', 422, "the sentence has no words"),
    (b'{"text": "   "}', 422, "the sentence has no words"),
    (json.dumps({"tokens": ["w"] * 21}).encode(), 413, "the sentence has 21 tokens; this server tags at most 20"),
    (json.dumps({"text": "w " * 21}).encode(), 413, "the sentence has 21 tokens"),
    (json.dumps({"tokens": ["x" * 31]}).encode(), 413, "token 0 is 31 characters long; at most 30"),
    (json.dumps({"text": "x" * 2100}).encode(), 413, "request body is 2112 bytes; this server accepts at most 2048"),
])
@pytest.mark.parametrize("path", ["/api/tag", "/api/attention"])
def test_bad_requests_get_a_clear_message(server, path, raw, status, message):
    got, headers, body = call(server, "POST", path, raw=raw)
    assert got == status, body
    assert headers["content-type"] == "application/json"
    assert list(body) == ["error"] and message in body["error"]
    assert "Traceback" not in body["error"] and "\n" not in body["error"]


def test_a_chunked_body_over_the_cap_is_refused_while_reading(server):
    status, _, body = call(server, "POST", "/api/tag", chunks=[b'{"text": "' + b"a " * 600, b"a " * 600 + b'"}'])
    assert status == 413 and body["error"] == "request body is over 2048 bytes, the most this server accepts"
    status, _, body = call(server, "POST", "/api/tag", chunks=[b'{"text": ', b'"I saw a saw"}'])
    assert status == 200 and body["tokens"] == ["I", "saw", "a", "saw"]


def test_wrong_paths_methods_and_hosts(server):
    status, _, body = call(server, "GET", "/api/tag")
    assert status == 405 and body == {"error": "GET is not allowed on /api/tag"}
    status, _, body = call(server, "GET", "/api/nothing")
    assert status == 404 and body == {"error": "no such page: /api/nothing"}
    status, _, body = call(server, "POST", "/api/tag", {"text": "I saw"}, headers={"Host": "attacker.example:80"})
    assert status == 400 and "host" in str(body).lower()
    # no body after the bad header: the server answers and closes, and unread bytes would
    # make the kernel reset the connection before the client reads that answer
    status, _, body = call(server, "POST", "/api/tag", headers={"Content-Length": "abc"})
    assert status == 400


def test_an_internal_failure_is_a_500_without_a_traceback(model):
    class Broken:
        normalize, describe = model.normalize, model.describe

        def tag(self, sentences):
            raise RuntimeError("secret internal detail")

        def attention(self, tokens):
            raise KeyError("secret")

    with ServerThread(create_app(Broken())) as url:
        for path in ("/api/tag", "/api/attention"):
            status, headers, body = call(url, "POST", path, {"text": "I saw"})
            assert status == 500 and headers["content-type"] == "application/json"
            assert body == {"error": "internal error while answering the request (details are in the server's log)"}


# -- the command and the load test ----------------------------------------------------------

def test_attnlab_serve_listens_on_loopback_and_answers():
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnlab", "serve", "--model", str(tiny_tagger_dir()), "--port", "0", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        m = re.search(r" at (http://127\.0\.0\.1:\d+)/", line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        status, _, body = call(m.group(1), "POST", "/api/tag", {"text": "I saw a saw"})
        assert status == 200 and len(body["tags"]) == 4
        assert f"({LAYERS} layers x {HEADS} heads)" in line
    finally:
        proc.terminate()
        proc.wait(10)


def test_attnlab_serve_with_a_bad_model_directory(tmp_path):
    r = subprocess.run([sys.executable, "-m", "attnlab", "serve", "--model", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("attnlab serve: error: ") and r.stderr.count("\n") == 1


def test_percentile_matches_numpy():
    rng = np.random.default_rng(0)
    values = sorted(rng.exponential(size=101).tolist())
    for q in (0, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-12)


def test_load_run_counts_requests_and_latencies(server):
    result = run_load(server, clients=3, requests=4)
    assert result["requests"] == 12 and result["errors"] == 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    with pytest.raises(ValueError, match="only targets http://127.0.0.1:PORT"):
        run_load("http://example.com:80", clients=1, requests=1)
    with pytest.raises(ValueError, match="clients must be in 1..64"):
        run_load(server, clients=100, requests=1)


def test_load_run_counts_errors(model):
    """A server that refuses every request: every request is an error."""
    with ServerThread(create_app(model, limits=Limits(max_tokens=1))) as url:
        result = run_load(url, clients=2, requests=3)
    assert result["errors"] == 6 and "413" in result["error_examples"][0]


def test_the_listening_socket_turns_nagle_off():
    """Responses go out as headers + body: with Nagle's algorithm on, the body would wait for the
    client's delayed ACK (~40 ms per request on loopback)."""
    import socket

    from attnlab.serve.server import bind_socket, url_of

    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP  # asyncio sets TCP_NODELAY on accepted connections
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url_of(sock))
    finally:
        sock.close()
    with pytest.raises(ValueError, match="port must be in 0..65535"):
        bind_socket("127.0.0.1", 70000)
