"""The explorer's server over real HTTP on 127.0.0.1: every endpoint, the limits, bad input,
`attnlab serve` itself and the load test's machinery."""

from __future__ import annotations

import http.client
import json
import logging
import re
import select
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from attnlab.bench.serve_load import percentile, run_load
from attnlab.serve.app import LOOPBACK, Limits, create_app, host_name
from attnlab.serve.server import ServerThread, Timeouts
from attnlab.viz.model import load_explainable, tokenize

from tiny_models import HEADS, LAYERS, tiny_pipeline_dir, tiny_tagger_dir

LIMITS = Limits(max_body_bytes=2048, max_tokens=20, max_token_chars=30, max_text_chars=300, max_sentences=4,
                max_words=30)


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
        h = {k: v for k, v in {"Content-Type": "application/json", **(headers or {})}.items() if v is not None}
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


def assert_secured(headers):
    """The headers every response carries (SecurityHeaders)."""
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"


# -- the endpoints -----------------------------------------------------------------------

def test_health(server, model):
    status, headers, body = call(server, "GET", "/api/health")
    assert status == 200 and headers["content-type"] == "application/json"
    assert body["status"] == "ok"
    assert body["model"]["layers"] == LAYERS and body["model"]["heads"] == HEADS
    assert body["model"]["normalize"] == "softmax" and "NOUN" in body["model"]["tags"]
    assert body["limits"] == {"max_body_bytes": 2048, "max_tokens": 20, "max_token_chars": 30, "max_text_chars": 300,
                              "max_sentences": 4, "max_words": 30}
    assert body["model"]["segmenter"] is False


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


DOCUMENT = "I don't see the dog. We saw a cat.\n\nThey run."
EVERY_LAYER = ["upos", "xpos", "feats", "lemma"]


@pytest.fixture(scope="module")
def pipeline():
    """(url, the same model through ``attnlab.load``) of a served tagger that predicts every
    layer and has a segmenter, so that it reads raw text."""
    import attnlab

    directory = tiny_pipeline_dir(xpos_weight=0.5, full=True)
    with ServerThread(create_app(load_explainable(directory), limits=LIMITS)) as url:
        yield url, attnlab.load(directory, precision="fp32")  # as the server loads it


def assert_words(got, expected):
    """``/api/tag``'s words of one sentence are the tagger's: every layer, and a probability for each."""
    assert len(got) == len(expected) > 0
    for w, e in zip(got, expected):
        assert (w["id"], w["form"], w["upos"], w["xpos"], w["feats"], w["lemma"]) == (
            e.id, e.form, e.upos, e.xpos, e.column("feats"), e.lemma)
        assert all(isinstance(w[k], str) and w[k] for k in ("upos", "xpos", "feats", "lemma"))
        assert list(w["probs"]) == EVERY_LAYER and all(0 < p <= 1 for p in w["probs"].values())
        assert w["probs"] == pytest.approx(e.probs, abs=2e-6)


def test_a_raw_document_is_cut_into_sentences_and_tagged_with_every_layer(pipeline):
    url, tagger = pipeline
    expected = tagger(DOCUMENT)
    status, _, body = call(url, "POST", "/api/tag", {"text": DOCUMENT})
    assert status == 200, body
    assert body["predicted"] == EVERY_LAYER
    assert [s["text"] for s in body["sentences"]] == ["I don't see the dog.", "We saw a cat.", "They run."]
    assert [len(s["words"]) for s in body["sentences"]] == [7, 5, 3]
    for got, sentence in zip(body["sentences"], expected, strict=True):
        assert_words(got["words"], sentence.words)
        assert [(t["form"], t["start"], t["end"]) for t in got["tokens"]] == [(t.form, t.start, t.end) for t in sentence.tokens]
        # each word belongs to one token, in order
        assert [i for t in got["tokens"] for i in t["words"]] == list(range(len(got["words"])))
    # the multiword token: one token, two words
    first = body["sentences"][0]
    assert first["tokens"][1] == {"form": "don't", "start": 2, "end": 7, "words": [1, 2]}
    assert [first["words"][i]["form"] for i in (1, 2)] == ["do", "n't"]
    # offsets index the text
    tokens = [t for s in body["sentences"] for t in s["tokens"]]
    assert len(tokens) == 14 and all(DOCUMENT[t["start"]:t["end"]] == t["form"] for t in tokens)
    assert [(t["start"], t["end"]) for t in body["sentences"][2]["tokens"]] == [(36, 40), (41, 44), (44, 45)]
    # the document's words in one row, UPOS and its probability, as the page and older clients read them
    assert body["tokens"] == [w.form for w in expected.words] and len(body["tokens"]) == 15
    assert body["tags"] == [w.upos for w in expected.words]
    assert body["probabilities"] == pytest.approx([w.probs["upos"] for w in expected.words], abs=2e-6)
    assert body["conllu"] == str(expected)
    assert body["conllu"].count("# sent_id = ") == 3 and "\n2-3\tdon't\t" in body["conllu"]
    assert "TokenRange=36:40" in body["conllu"]


def test_pre_tokenized_sentences_are_tagged_with_every_layer(pipeline):
    url, tagger = pipeline
    sentences = [["I", "saw", "a", "saw", "."], ["It", "ran"]]
    expected = tagger.tag(sentences)
    status, _, body = call(url, "POST", "/api/tag", {"sentences": sentences})
    assert status == 200, body
    assert body["predicted"] == EVERY_LAYER and [s["text"] for s in body["sentences"]] == [None, None]
    for got, sentence in zip(body["sentences"], expected, strict=True):
        assert_words(got["words"], sentence.words)
    assert body["sentences"][1]["tokens"] == [{"form": "It", "start": None, "end": None, "words": [0]},
                                              {"form": "ran", "start": None, "end": None, "words": [1]}]
    assert body["tokens"] == sentences[0] + sentences[1] and len(body["tags"]) == len(body["probabilities"]) == 7
    assert body["conllu"] == "".join(str(s) for s in expected) and body["conllu"].count("\n\n") == 2
    # "tokens": one sentence, the same answer as the first of "sentences"
    status, _, one = call(url, "POST", "/api/tag", {"tokens": sentences[0]})
    assert status == 200 and len(one["sentences"]) == 1 and one["tokens"] == sentences[0]
    assert_words(one["sentences"][0]["words"], expected[0].words)
    status, _, health = call(url, "GET", "/api/health")
    assert health["model"]["segmenter"] is True


def test_raw_text_without_a_segmenter_is_one_sentence_with_offsets(server, model):
    text = "I don't see.  It's big"
    status, _, body = call(server, "POST", "/api/tag", {"text": text})
    assert status == 200, body
    assert body["tokens"] == tokenize(text) == ["I", "do", "n't", "see", ".", "It", "'s", "big"]
    [sentence] = body["sentences"]
    assert sentence["text"] == text and body["predicted"] == ["upos"]
    assert [(t["start"], t["end"]) for t in sentence["tokens"]] == [
        (0, 1), (2, 4), (4, 7), (8, 11), (11, 12), (14, 16), (16, 18), (19, 22)]
    assert all(text[t["start"]:t["end"]] == t["form"] for t in sentence["tokens"])
    assert [t["words"] for t in sentence["tokens"]] == [[i] for i in range(8)]
    [(tags, probs)] = model.tag([body["tokens"]])
    assert [w["upos"] for w in sentence["words"]] == tags == body["tags"]
    assert [w["probs"]["upos"] for w in sentence["words"]] == pytest.approx(probs, abs=2e-6)
    assert {w["xpos"] for w in sentence["words"]} == {None} and {w["feats"] for w in sentence["words"]} == {"_"}
    assert body["conllu"].count("TokenRange=") == 8 and "SpacesAfter=\\s\\s|TokenRange=11:12" in body["conllu"]


@pytest.mark.parametrize("request_body, message", [
    ({"text": "a " * 151}, '"text" is 302 characters long; this server tags at most 300 characters of text per request'),
    ({"sentences": [["w"]] * 5}, '"sentences" holds 5 sentences; this server tags at most 4 sentences per request'),
    ({"sentences": [["w"], ["w"] * 21]}, '"sentences"[1] has 21 words; this server tags at most 20 words per sentence'),
    ({"sentences": [["w"] * 20, ["w"] * 11]}, "the request has 31 words; this server tags at most 30 words per request"),
    ({"sentences": [["w", "x" * 31]]}, '"sentences"[0][1] is 31 characters long; at most 30 are accepted'),
    ({"tokens": ["w"] * 21}, '"tokens" has 21 words; this server tags at most 20 words per sentence'),
    ({"text": "w " * 21}, "sentence 0 of the text (from 0) has 21 words; this server tags at most 20 words per sentence"),
    ({"text": "I saw " + "x" * 31},
     "word 2 of sentence 0 of the text (both from 0) is 31 characters long; at most 30 are accepted"),
])
def test_tag_limits_are_413_naming_the_limit(server, request_body, message):
    status, headers, body = call(server, "POST", "/api/tag", request_body)
    assert (status, body) == (413, {"error": message})
    assert_secured(headers)


def test_the_limits_on_a_segmented_text(pipeline):
    url, _ = pipeline
    status, _, body = call(url, "POST", "/api/tag", {"text": "We saw a cat. " * 5})
    assert (status, body) == (413, {"error": "the text has 5 sentences; this server tags at most 4 sentences per request"})
    status, _, body = call(url, "POST", "/api/tag", {"text": "We saw a cat. " * 4})
    assert status == 200 and len(body["sentences"]) == 4 and len(body["tokens"]) == 20
    small = Limits(max_words=12, max_sentences=3)
    with ServerThread(create_app(load_explainable(tiny_pipeline_dir(xpos_weight=0.5, full=True)), limits=small)) as url:
        status, _, body = call(url, "POST", "/api/tag", {"text": "We saw a cat. We saw a dog. They run."})
        assert (status, body) == (413, {"error": "the text has 13 words; this server tags at most 12 words per request"})
        status, _, body = call(url, "POST", "/api/tag", {"text": "We saw a cat. They run."})
        assert status == 200 and [len(s["words"]) for s in body["sentences"]] == [5, 3]
        status, _, health = call(url, "GET", "/api/health")
        assert health["limits"] == {"max_body_bytes": 65536, "max_tokens": 128, "max_token_chars": 100,
                                    "max_text_chars": 10000, "max_sentences": 3, "max_words": 12}


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="max_sentences must be >= 1, got 0"):
        Limits(max_sentences=0)


def test_every_layer_the_tagger_predicts_is_in_the_answers():
    import attnlab

    directory = tiny_tagger_dir(xpos_weight=0.5, full=True)
    [expected] = attnlab.load(directory, precision="fp32").tag([["I", "saw", "a", "saw", "."]])
    with ServerThread(create_app(load_explainable(directory), limits=LIMITS)) as url:
        status, _, body = call(url, "POST", "/api/attention", {"text": "I saw a saw."})
        assert status == 200, body
        assert [a["name"] for a in body["annotations"]] == ["UPOS", "XPOS", "FEATS", "LEMMA"]
        for a in body["annotations"]:
            layer = a["name"].lower()
            assert a["tags"] == expected.column(layer)
            assert a["probabilities"] == [round(t.probs[layer], 6) for t in expected]
        status, _, health = call(url, "GET", "/api/health")
        assert health["model"]["annotations"] == ["UPOS", "XPOS", "FEATS", "LEMMA"]
        status, _, body = call(url, "POST", "/api/tag", {"tokens": ["a", "b\tc"]})
        assert status == 422 and body["error"] == '"tokens"[1] holds a tab or line break, which no word may hold'


def test_attention_returns_every_layer_and_head(server, model):
    tokens = tokenize("I saw a saw .")
    tags, probs, w = model.attention(tokens)
    status, _, body = call(server, "POST", "/api/attention", {"text": "I saw a saw ."})
    assert status == 200, body
    assert body["tokens"] == tokens and body["tags"] == tags
    assert (body["layers"], body["heads"], body["normalize"]) == (LAYERS, HEADS, "softmax")
    assert body["annotations"] == [{"name": "UPOS", "tags": tags, "probabilities": body["probabilities"]}]
    got = np.array(body["weights"])
    assert got.shape == (LAYERS, HEADS, len(tokens), len(tokens))
    np.testing.assert_allclose(got, w.numpy(), atol=1e-6)


def head_outputs(model, tokens, layer):
    """b^i of every head of ``layer`` from the model's own forward pass: what the layer hands to
    W^O (``_merge``), (n, H, d)."""
    import torch

    attn, seen = model.transformer.layers[layer].attn, []
    merge = attn._merge

    def spy(heads, *args, **kwargs):
        seen.append(heads.detach().clone())
        return merge(heads, *args, **kwargs)

    attn._merge = spy
    try:
        with torch.inference_mode():
            model.model(model.features.encode([tokens]))
    finally:
        del attn._merge
    [x] = seen
    return x.reshape(len(tokens), model.heads, -1).double().numpy()


@pytest.mark.parametrize("layer, head", [(0, 0), (LAYERS - 1, HEADS - 1)])
def test_steps_equal_the_models_own_forward_pass(server, model, layer, head):
    tokens = tokenize("I saw a saw with my saw .")
    n = len(tokens)
    status, _, body = call(server, "POST", "/api/steps", {"tokens": tokens, "layer": layer, "head": head})
    assert status == 200, body
    assert body["tokens"] == tokens and (body["layer"], body["head"]) == (layer, head)
    q, k, v, b = (np.array(body[name]) for name in ("q", "k", "v", "b"))
    alpha, alpha_prime = np.array(body["alpha"]), np.array(body["alpha_prime"])
    d = body["d"]
    assert q.shape == k.shape == v.shape == b.shape == (n, d) and alpha.shape == (n, n)
    # the numbers are the model's: its attention weights and its heads' outputs (the input of W^O)
    _, _, weights = model.attention(tokens)
    np.testing.assert_allclose(alpha_prime, weights[layer, head].numpy(), atol=2e-6)
    np.testing.assert_allclose(b, head_outputs(model, tokens, layer)[:, head], atol=2e-5)
    # and they follow from one another as the seed says
    np.testing.assert_allclose(alpha, q @ k.T / np.sqrt(d), atol=1e-5)
    log_z = np.array(body["normalizer"])
    np.testing.assert_allclose(log_z, np.log(np.exp(alpha).sum(axis=1)), atol=1e-5)
    np.testing.assert_allclose(alpha_prime, np.exp(alpha - log_z[:, None]), atol=1e-5)
    np.testing.assert_allclose(b, alpha_prime @ v, atol=1e-5)
    assert "log Z_i" in body["normalizer_formula"]


@pytest.mark.parametrize("extra, message", [
    ({"layer": LAYERS, "head": 0}, f'"layer" {LAYERS} does not exist: the model has {LAYERS}'),
    ({"layer": 0, "head": -1}, '"head" -1 does not exist'),
    ({"layer": "1", "head": 0}, '"layer" must be a whole number from 0 to 1, got "1"'),
    ({"layer": 0}, '"head" must be a whole number from 0 to 1, got null'),
    ({"layer": 0, "head": True}, '"head" must be a whole number'),
    ({"layer": 0, "head": 0, "query": 1}, "unknown field 'query'"),
])
def test_steps_of_a_head_that_does_not_exist(server, extra, message):
    status, _, body = call(server, "POST", "/api/steps", {"text": "I saw", **extra})
    assert status == 422 and message in body["error"], body


def test_a_model_without_attention_gives_its_tags_and_the_reason():
    model = load_explainable(tiny_tagger_dir(steps=0, encoder="none"))
    [(tags, probs)] = model.tag([["I", "saw"]])
    with ServerThread(create_app(model)) as url:
        status, _, body = call(url, "POST", "/api/attention", {"text": "I saw"})
        assert status == 200, body
        assert body["tags"] == tags and np.allclose(body["probabilities"], probs, atol=1e-6)
        assert (body["layers"], body["heads"], body["weights"]) == (0, 0, [])
        assert "'none' encoder, which has no attention" in body["no_attention"]
        assert [a["name"] for a in body["annotations"]] == ["UPOS"]
        status, _, body = call(url, "POST", "/api/steps", {"text": "I saw", "layer": 0, "head": 0})
        assert status == 422 and "'none' encoder, which has no attention" in body["error"]
        status, _, body = call(url, "GET", "/api/health")
        assert "'none' encoder" in body["model"]["no_attention"]


def test_page_and_assets_are_served_from_the_package(server):
    status, headers, html = call(server, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    for element in ('id="sentence"', 'id="submit"', 'id="tagged"', 'id="layer"', 'id="head"', 'id="heatmap"', 'id="lines"'):
        assert element in html
    assert "default-src 'self'" in headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    local = {a for a in assets if a.startswith("/static/")}
    assert set(assets) - local == {"data:,", "#"}  # nothing from another host ("#": the export links)
    assert {"/static/style.css", "/static/app.js"} <= local
    for path in sorted(local):
        kind = "text/css" if path.endswith(".css") else "javascript"
        status, headers, text = call(server, "GET", path)
        assert status == 200 and kind in headers["content-type"]
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/(?!2000/svg)", text), f"{path} refers to another host"
        assert "@import" not in text and "import(" not in text


def _wrong(answer, expected) -> bool:
    """Whether ``answer`` (from ``call``) is not the 200 with ``expected`` (tags, probabilities)."""
    status, _, body = answer
    return (status != 200 or body["tags"] != expected[0]
            or not np.allclose(body["probabilities"], expected[1], atol=1e-5))


def _hammer(url, sentences, expected, clients=6, requests=6):
    """Each of ``clients`` threads sends ``requests`` requests; the answers that were wrong (or
    the exceptions raised), for the test's own thread to assert on."""
    failures = []

    def client(k):
        for r in range(requests):
            i = (k + r) % len(sentences)
            try:
                answer = call(url, "POST", "/api/tag", {"tokens": sentences[i]})
                if _wrong(answer, expected[i]):
                    failures.append(answer)
            except Exception as exc:  # noqa: BLE001  (reported by the test, not lost in the thread)
                failures.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a client thread is still waiting"
    return failures


SENTENCES = ("I saw a saw .", "We can book the table .", "every dog will fly", "They watch the old watch")


class Slowed:
    """The real model, 20 ms slower per forward pass, so that concurrent requests surely overlap."""

    def __init__(self, model):
        self.model, self.normalize, self.describe = model, model.normalize, model.describe
        self.sizes = []

    def tag_sentences(self, sentences):
        self.sizes.append(len(sentences))
        time.sleep(0.02)
        return self.model.tag_sentences(sentences)


def test_concurrent_requests_get_the_serial_answers(model):
    sentences = [tokenize(s) for s in SENTENCES]
    expected = model.tag(sentences)
    for max_batch in (4, 1):
        slowed = Slowed(model)
        app = create_app(slowed, max_batch=max_batch)
        with ServerThread(app) as url:
            assert _hammer(url, sentences, expected) == []
        assert sum(slowed.sizes) == 36 and app.state.batcher.passes == len(slowed.sizes)
        assert 1 <= max(slowed.sizes) <= max_batch


class Gated:
    """The real model, whose first forward pass waits for ``release``: the requests that arrive
    meanwhile queue up, so the passes that follow are known in advance."""

    def __init__(self, model):
        self.model, self.normalize, self.describe = model, model.normalize, model.describe
        self.sizes, self.entered, self.release = [], threading.Event(), threading.Event()
        self.segment = model.segment

    def tag_sentences(self, sentences):
        self.sizes.append(len(sentences))
        self.entered.set()
        if not self.release.wait(30):
            raise RuntimeError("the first forward pass was never released")
        return self.model.tag_sentences(sentences)


def _held_first(app, gated, bodies: list) -> tuple[list, int]:
    """POST ``bodies`` to /api/tag from one thread each, the first request's pass held by ``gated``
    until the others have queued; (answers, how many were queued)."""
    batcher, answers = app.state.batcher, [None] * len(bodies)

    def client(k):
        try:
            answers[k] = call(url, "POST", "/api/tag", bodies[k])
        except Exception as exc:  # noqa: BLE001  (asserted by the caller, in the test's thread)
            answers[k] = exc

    threads = [threading.Thread(target=client, args=(k,)) for k in range(len(bodies))]
    with ServerThread(app) as url:
        try:
            threads[0].start()
            assert gated.entered.wait(30)  # the first request's pass runs alone, and is held
            for t in threads[1:]:
                t.start()
            deadline = time.monotonic() + 30
            while len(batcher.pending) < len(bodies) - 1 and time.monotonic() < deadline:
                time.sleep(0.005)
            queued = len(batcher.pending)
        finally:
            gated.release.set()
            for t in threads:
                t.join(30)
    return answers, queued


@pytest.mark.parametrize("max_batch, sizes", [(4, [1, 4, 1]), (1, [1] * 6), (32, [1, 5])])
def test_requests_that_queue_during_a_pass_share_the_next_ones(model, max_batch, sizes):
    sentences = [tokenize(s) for s in SENTENCES]
    expected = model.tag(sentences)
    gated = Gated(model)
    app = create_app(gated, max_batch=max_batch)
    answers, queued = _held_first(app, gated, [{"tokens": sentences[k % len(sentences)]} for k in range(6)])
    batcher = app.state.batcher
    assert queued == 5
    assert gated.sizes == sizes and batcher.passes == len(sizes)
    for k, answer in enumerate(answers):
        assert not isinstance(answer, Exception) and not _wrong(answer, expected[k % len(sentences)]), answer


def test_queued_documents_share_a_pass_and_each_gets_its_own_sentences(model):
    requests = [{"tokens": ["I", "saw"]}, {"sentences": [["We", "can", "book"], ["every", "dog"]]},
                {"text": "They watch the old watch"}, {"sentences": [["a"], ["big", "man"], ["fly"]]}]
    words = [[["I", "saw"]], [["We", "can", "book"], ["every", "dog"]], [["They", "watch", "the", "old", "watch"]],
             [["a"], ["big", "man"], ["fly"]]]
    expected = [model.tag(w) for w in words]
    gated = Gated(model)
    app = create_app(gated, max_batch=32)
    answers, queued = _held_first(app, gated, requests)
    assert queued == 3 and gated.sizes == [1, 6]  # the three queued requests' 2 + 1 + 3 sentences in one pass
    for answer, w, e in zip(answers, words, expected, strict=True):
        assert not isinstance(answer, Exception) and answer[0] == 200, answer
        body = answer[2]
        assert [[x["form"] for x in s["words"]] for s in body["sentences"]] == w
        assert [[x["upos"] for x in s["words"]] for s in body["sentences"]] == [tags for tags, _ in e]
        assert body["probabilities"] == pytest.approx([p for _, probs in e for p in probs], abs=1e-5)


# -- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, status, message", [
    (b"{not json", 400, "request body is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
    (b"", 400, "request body is empty"),
    (b"   ", 400, "request body is empty"),
    (b'{"text": "caf\xe9"}', 400, "request body is not UTF-8 text"),
    (b"[" * 1020 + b"]" * 1020, 400, "request body is nested too deeply"),
    (b'"I saw a saw"', 422, "got a JSON string"),
    (b'{"text": 5}', 422, '"text" must be a string, got a JSON number'),
    (b'{"text": "a", "tokens": ["a"]}', 422, 'send exactly one of "text"'),
    (b"{}", 422, 'send exactly one of "text"'),
    (b'{"txt": "a"}', 422, "unknown field 'txt'"),
    (b'{"tokens": "I saw"}', 422, '"tokens" must be a list of strings, got a JSON string'),
    (b'{"tokens": ["I", ""]}', 422, '"tokens"[1] must be a non-empty string'),
    (b'{"tokens": ["I", null]}', 422, '"tokens"[1] must be a non-empty string, got null'),
    (b'{"tokens": []}', 422, '"tokens" has no words'),
    (b'{"text": "I \\ud800 saw"}', 400, '"text" holds \'\\ud800\', a lone surrogate, which is not a character'),
    (b'{"tokens": ["I", "\\udfffx"]}', 400, '"tokens"[1] holds \'\\udfff\', a lone surrogate'),
    (json.dumps({"tokens": ["w"] * 21}).encode(), 413, '"tokens" has 21 words; this server tags at most 20 words per sentence'),
    (json.dumps({"tokens": ["x" * 31]}).encode(), 413, '"tokens"[0] is 31 characters long; at most 30 are accepted'),
    (json.dumps({"text": "x" * 2100}).encode(), 413, "request body is 2112 bytes; this server accepts at most 2048"),
])
@pytest.mark.parametrize("path", ["/api/tag", "/api/attention"])
def test_bad_requests_get_a_clear_message(server, path, raw, status, message):
    got, headers, body = call(server, "POST", path, raw=raw)
    assert got == status, body
    assert headers["content-type"] == "application/json"
    assert list(body) == ["error"] and message in body["error"]
    assert "Traceback" not in body["error"] and "\n" not in body["error"]
    assert_secured(headers)


@pytest.mark.parametrize("path, raw, status, message", [
    ("/api/attention", b"[1, 2]", 422, 'expected a JSON object with "text" or "tokens", got a JSON array'),
    ("/api/attention", b'{"text": "   "}', 422, "the sentence has no words"),
    ("/api/attention", json.dumps({"text": "w " * 21}).encode(), 413,
     "the sentence has 21 tokens; this server tags at most 20 per request"),
    ("/api/tag", b"[1, 2]", 422, 'expected a JSON object with "text", "sentences" or "tokens", got a JSON array'),
    ("/api/tag", b'{"text": "   "}', 422, "the text has no words"),
    ("/api/tag", b'{"text": "a", "sentences": [["a"]]}', 422, 'send exactly one of "text" (a string), "sentences" '
     '(a list of lists of strings) or "tokens" (a list of strings)'),
    ("/api/tag", b'{"sentence": []}', 422, "unknown field 'sentence'; send \"text\" (a string), \"sentences\" "
     '(a list of lists of strings) or "tokens" (a list of strings)'),
    ("/api/tag", b'{"sentences": "I saw"}', 422, '"sentences" must be a list of sentences (lists of strings), got a JSON string'),
    ("/api/tag", b'{"sentences": {"0": ["I"]}}', 422, '"sentences" must be a list of sentences (lists of strings), got a JSON object'),
    ("/api/tag", b'{"sentences": []}', 422, '"sentences" is empty; send at least one sentence (a list of strings)'),
    ("/api/tag", b'{"sentences": [["I"], "saw"]}', 422, '"sentences"[1] must be a list of strings, got a JSON string'),
    ("/api/tag", b'{"sentences": [["I"], []]}', 422, '"sentences"[1] has no words'),
    ("/api/tag", b'{"sentences": [["I", 5]]}', 422, '"sentences"[0][1] must be a non-empty string, got 5'),
    ("/api/tag", b'{"sentences": [["I"], ["a", " "]]}', 422, '"sentences"[1][1] must be a non-empty string, got " "'),
    ("/api/tag", b'{"sentences": [["I"], ["a", ["b"]]]}', 422, '"sentences"[1][1] must be a non-empty string, got ["b"]'),
    ("/api/tag", b'{"sentences": [["a\\tb"]]}', 422, '"sentences"[0][0] holds a tab or line break, which no word may hold'),
    ("/api/tag", b'{"sentences": [["I"], ["\\ud800"]]}', 400,
     '"sentences"[1][0] holds \'\\ud800\', a lone surrogate, which is not a character'),
])
def test_bad_requests_of_one_endpoint(server, path, raw, status, message):
    got, headers, body = call(server, "POST", path, raw=raw)
    assert (got, body) == (status, {"error": message})
    assert_secured(headers)


@pytest.mark.parametrize("raw, message", [
    (b'{"text": ' + b"9" * 5000 + b"}", "request body holds a number with too many digits to read"),
    (b'{"tokens": [' + b"1" * 4301 + b"]}", "request body holds a number with too many digits to read"),
])
def test_numbers_python_cannot_read_are_bad_requests(model, raw, message):
    with ServerThread(create_app(model)) as url:  # the default cap (64 KiB) lets the number through
        for path in ("/api/tag", "/api/attention"):
            status, headers, body = call(url, "POST", path, raw=raw)
            assert (status, body) == (400, {"error": message})
            assert_secured(headers)


def test_a_surrogate_pair_is_one_character(server):
    status, _, body = call(server, "POST", "/api/tag", raw=b'{"tokens": ["I", "\\ud83d\\ude00"]}')
    assert status == 200 and body["tokens"] == ["I", "\U0001F600"]


@pytest.mark.parametrize("content_type, status", [
    ("text/plain", 415), ("application/x-www-form-urlencoded", 415), ("multipart/form-data; boundary=x", 415),
    ("text/json", 415), (None, 415), ("application/json; charset=utf-8", 200), ("Application/JSON", 200),
])
def test_a_post_must_say_it_is_json(server, content_type, status):
    """A page on another site can send text/plain, form and multipart bodies without asking
    (a "simple" request): those never reach the model."""
    for path in ("/api/tag", "/api/attention"):
        got, headers, body = call(server, "POST", path, {"text": "I saw"}, headers={"Content-Type": content_type})
        assert got == status, body
        if status == 415:
            shown = repr(content_type) if content_type else "none"
            assert body == {"error": f"send the body with Content-Type: application/json (got {shown})"}
            assert_secured(headers)


def test_a_chunked_body_over_the_cap_is_refused_while_reading(server):
    status, _, body = call(server, "POST", "/api/tag", chunks=[b'{"text": "' + b"a " * 600, b"a " * 600 + b'"}'])
    assert status == 413 and body["error"] == "request body is over 2048 bytes, the most this server accepts"
    status, _, body = call(server, "POST", "/api/tag", chunks=[b'{"text": ', b'"I saw a saw"}'])
    assert status == 200 and body["tokens"] == ["I", "saw", "a", "saw"]


def test_wrong_paths_methods_and_hosts(server):
    status, headers, body = call(server, "GET", "/api/tag")
    assert status == 405 and body == {"error": "GET is not allowed on /api/tag"}
    assert_secured(headers)
    status, headers, body = call(server, "GET", "/api/nothing")
    assert status == 404 and body == {"error": "no such page: /api/nothing"}
    assert_secured(headers)
    status, headers, body = call(server, "POST", "/api/tag", {"text": "I saw"}, headers={"Host": "attacker.example:80"})
    assert status == 400 and body["error"].startswith("this server does not answer Host 'attacker.example:80'")
    assert_secured(headers)
    # no body after the bad header: the server answers and closes, and unread bytes would
    # make the kernel reset the connection before the client reads that answer
    status, headers, body = call(server, "POST", "/api/tag", headers={"Content-Length": "abc"})
    assert status == 400 and body == {"error": "the request is not valid HTTP/1.1"}
    assert_secured(headers)


@pytest.mark.parametrize("path", ["/static", "/static/"])
def test_the_assets_folder_is_no_page(server, path):
    status, headers, body = call(server, "GET", path)
    assert (status, body) == (404, {"error": f"no such page: {path}"}) and "location" not in headers
    assert_secured(headers)


def test_the_host_check_answers_only_the_names_it_was_given(model):
    app = create_app(model, allowed_hosts=[*LOOPBACK, "0.0.0.0", "Lab.Example"])
    with ServerThread(app) as url:
        port = url.rsplit(":", 1)[1]
        for host, status in [(f"lab.example:{port}", 200), ("LAB.EXAMPLE", 200), (f"[::1]:{port}", 200),
                             ("localhost", 200), (f"0.0.0.0:{port}", 200), ("lab.example.evil", 400),
                             ("evil.example", 400), ("", 400)]:
            got, headers, body = call(url, "POST", "/api/tag", {"text": "I saw"}, headers={"Host": host})
            assert got == status, (host, body)
            assert_secured(headers)
    assert "lab.example" in body["error"] and "a request without a Host header" in body["error"]


@pytest.mark.parametrize("name", ["*", "*.example", "lab.example:8000", "http://lab.example", "", "a b"])
def test_allowed_hosts_are_names_not_patterns(model, name):
    with pytest.raises(ValueError, match="is not a host name or an IP address"):
        create_app(model, allowed_hosts=[*LOOPBACK, name])


def test_host_names_are_compared_in_lower_case_and_without_brackets():
    assert [host_name(n) for n in ("Lab.Example", "[::1]", "0.0.0.0", "::", "my_box")] == [
        "lab.example", "::1", "0.0.0.0", "::", "my_box"]


def test_an_internal_failure_is_a_500_without_a_traceback(model):
    class Broken:
        normalize, describe, layers, heads, no_attention = model.normalize, model.describe, 1, 1, None
        segment = model.segment

        def tag_sentences(self, sentences):
            raise RuntimeError("secret internal detail")

        def attention(self, tokens):
            raise KeyError("secret")

        annotate = steps = attention

    with ServerThread(create_app(Broken())) as url:
        for path in ("/api/tag", "/api/attention", "/api/steps"):
            status, headers, body = call(url, "POST", path, {"text": "I saw", **({"layer": 0, "head": 0} if "steps" in path else {})})
            assert status == 500 and headers["content-type"] == "application/json"
            assert body == {"error": "internal error while answering the request (details are in the server's log)"}
            assert_secured(headers)


# -- slow clients and clients that go away --------------------------------------------------

SHORT = Timeouts(headers=0.5, body=0.9, idle=0.3)  # a trickle every 0.2 s misses each deadline by 0.1 s
REQUEST_HEAD = b"POST /api/tag HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def short_server(model):
    with ServerThread(create_app(model), timeouts=SHORT) as url:
        yield url


def exchange(url, chunks=(), every=0.0):
    """Send ``chunks`` over one raw connection, ``every`` seconds apart (stopping once the server
    answers or closes), then read until the server closes: (seconds from the connect to the
    close, bytes received, whether the connection was reset). At most ~10 s."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        start = time.monotonic()
        for chunk in chunks:
            if select.select([sock], [], [], every)[0]:
                break
            try:
                sock.sendall(chunk)
            except OSError:
                break
        received, reset = b"", False
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                reset = True
                break
            if not data:
                break
            received += data
        return time.monotonic() - start, received, reset


def assert_timed_out(received, what, seconds):
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), received
    assert json.loads(body) == {"error": f"the request {what} did not arrive within {seconds:g} s"}
    headers = dict(line.split(": ", 1) for line in head.decode().lower().split("\r\n")[1:])
    assert headers["connection"] == "close"
    assert_secured(headers)


def test_an_idle_connection_is_closed(short_server):
    elapsed, received, _ = exchange(short_server)
    assert SHORT.idle - 0.05 <= elapsed < SHORT.idle + 3 and received == b""


def test_an_idle_keep_alive_connection_is_closed_after_its_answer(short_server):
    elapsed, received, _ = exchange(short_server, [b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"])
    assert received.startswith(b"HTTP/1.1 200 ") and received.count(b"HTTP/1.1") == 1
    assert SHORT.idle - 0.05 <= elapsed < SHORT.idle + 3


def test_headers_that_stop_coming_time_out(short_server):
    elapsed, received, _ = exchange(short_server, [REQUEST_HEAD])
    assert SHORT.headers - 0.05 <= elapsed < SHORT.headers + 3
    assert_timed_out(received, "headers", SHORT.headers)


def test_headers_that_trickle_time_out(short_server):
    trickle = [bytes([b]) for b in REQUEST_HEAD + b"X-Padding: " + b"p" * 100]  # ~30 s at 0.2 s a byte
    elapsed, received, reset = exchange(short_server, trickle, every=0.2)
    assert SHORT.headers - 0.05 <= elapsed < SHORT.headers + 3  # not reset by each byte, nor the idle deadline
    if not reset:  # a byte sent just as the server closed makes the kernel drop its answer
        assert_timed_out(received, "headers", SHORT.headers)


def test_a_short_body_times_out(short_server):
    elapsed, received, _ = exchange(short_server, [REQUEST_HEAD + b"Content-Length: 50\r\n\r\n" + b'{"text": "I'])
    assert SHORT.body - 0.05 <= elapsed < SHORT.body + 3
    assert_timed_out(received, "body", SHORT.body)


def test_a_body_that_trickles_times_out(short_server):
    body = b'{"text": "' + b"a " * 100 + b'"}'
    chunks = [REQUEST_HEAD + b"Content-Length: %d\r\n\r\n" % len(body), *(bytes([b]) for b in body)]
    elapsed, received, reset = exchange(short_server, chunks, every=0.2)
    assert SHORT.body - 0.05 <= elapsed < SHORT.body + 3  # the body's deadline, not the headers'
    if not reset:
        assert_timed_out(received, "body", SHORT.body)


def test_requests_within_the_deadlines_are_answered(short_server):
    body = b'{"text": "I saw a saw"}'
    chunks = [REQUEST_HEAD, b"Content-Length: %d\r\n\r\n" % len(body), body[:10], body[10:]]
    elapsed, received, _ = exchange(short_server, chunks, every=0.2)
    assert received.startswith(b"HTTP/1.1 200 ") and b'"tags"' in received


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


class Ended:
    """ASGI wrapper: ``ended`` is set once the app has finished a request, however it ended."""

    def __init__(self, app):
        self.app, self.ended = app, threading.Event()

    async def __call__(self, scope, receive, send):
        try:
            await self.app(scope, receive, send)
        finally:
            self.ended.set()


@pytest.mark.parametrize("hang_up", [True, False])
def test_a_client_that_goes_away_is_not_an_error(model, hang_up):
    """The client hangs up in the middle of its body, or its body's deadline runs out while the
    app reads it: either way the request ends without an error in the server's log."""
    app = Ended(create_app(model))
    thread = ServerThread(app, timeouts=SHORT)
    log, records = logging.getLogger("uvicorn.error"), Records()
    url = thread.start()
    log.addHandler(records)
    try:
        partial = REQUEST_HEAD + b"Content-Length: 100\r\n\r\n" + b'{"text": '
        if hang_up:
            host, port = url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(partial)
        else:
            assert_timed_out(exchange(url, [partial])[1], "body", SHORT.body)
        assert app.ended.wait(10)
        state, deadline = thread.server.server_state, time.monotonic() + 10
        while state.tasks and time.monotonic() < deadline:  # uvicorn logs before it lets go of the task
            time.sleep(0.01)
        assert not state.tasks
    finally:
        log.removeHandler(records)
        thread.stop()
    assert [r.getMessage() for r in records.records if r.levelno >= logging.WARNING] == []


def test_timeouts_must_be_positive():
    with pytest.raises(ValueError, match="the body timeout must be > 0 seconds, got 0"):
        Timeouts(body=0)


# -- the command and the load test ----------------------------------------------------------

def test_attnlab_serve_listens_on_loopback_and_answers():
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnlab", "serve", "--model", str(tiny_tagger_dir()), "--port", "0", "--quiet",
         "--allow-host", "lab.example", "--allow-host", "10.1.2.3", "--max-text", "500", "--max-sentences", "3",
         "--max-words", "40"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        m = re.search(r" at (http://127\.0\.0\.1:\d+)/", line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        status, _, body = call(m.group(1), "POST", "/api/tag", {"text": "I saw a saw"})
        assert status == 200 and len(body["tags"]) == 4
        assert f"({LAYERS} layers x {HEADS} heads)" in line
        status, _, body = call(m.group(1), "GET", "/api/health")
        assert body["limits"] == {"max_body_bytes": 65536, "max_tokens": 128, "max_token_chars": 100,
                                  "max_text_chars": 500, "max_sentences": 3, "max_words": 40}
        status, _, body = call(m.group(1), "POST", "/api/tag", {"sentences": [["w"]] * 4})
        assert (status, body["error"]) == (413, '"sentences" holds 4 sentences; this server tags at most 3 sentences per request')
        for host, status in (("lab.example", 200), ("10.1.2.3:8000", 200), ("lab.example.evil", 400)):
            assert call(m.group(1), "POST", "/api/tag", {"text": "I saw"}, headers={"Host": host})[0] == status, host
    finally:
        proc.terminate()
        proc.wait(10)


def test_attnlab_serve_shows_a_model_without_attention():
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnlab", "serve", "--model", str(tiny_tagger_dir(steps=0, encoder="cnn")), "--port", "0", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        m = re.search(r" at (http://127\.0\.0\.1:\d+)/", line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        assert "(tags only: no attention)" in line
        status, _, body = call(m.group(1), "POST", "/api/attention", {"text": "I saw a saw"})
        assert status == 200 and len(body["tags"]) == 4 and "'cnn' encoder, which has no attention" in body["no_attention"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_hosts_attnlab_serve_answers():
    """Listening on every address does not turn the Host check off: the loopback names, the bound
    address and the --allow-host names, nothing else."""
    import argparse

    from attnlab.cli.serve import _allowed_hosts

    args = argparse.Namespace(host="0.0.0.0", allow_host=["Lab.Example", "[fe80::1]", "lab.example"])
    assert _allowed_hosts(args) == ["127.0.0.1", "localhost", "::1", "0.0.0.0", "lab.example", "fe80::1"]


@pytest.mark.parametrize("option", [["--allow-host", "*"], ["--allow-host", "lab.example:80"], ["--host", "*"]])
def test_attnlab_serve_refuses_host_patterns_before_loading(tmp_path, capsys, option):
    from attnlab.cli import main

    assert main(["serve", "--model", str(tmp_path / "no-such-model"), *option]) == 2
    err = capsys.readouterr().err
    assert err == (f"attnlab serve: error: {option[0]} {option[1]!r} is not a host name or an IP address "
                   "(patterns such as '*' and ports are not accepted)\n")


@pytest.mark.parametrize("missing", ["uvicorn", "starlette"])
def test_attnlab_serve_names_the_extra_it_needs_before_any_work(tmp_path, capsys, monkeypatch, missing):
    from attnlab.cli import main

    monkeypatch.setitem(sys.modules, missing, None)  # import fails as if it were not installed
    assert main(["serve", "--model", str(tmp_path)]) == 2  # an empty directory: no model is loaded
    assert capsys.readouterr().err == "attnlab serve: needs the 'serve' extra: pip install 'attnlab[serve]'\n"


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
