"""What if: POST /api/whatif (one word replaced or masked) and a server with two models, over
real HTTP on 127.0.0.1, checked against the models' own forward passes."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.serve.app import Limits, create_app
from attnlab.serve.server import ServerThread
from attnlab.viz.model import load_explainable, tokenize
from attnlab.viz.whatif import MASK_TAGGER, probe, whatif_body

from test_serve import call
from tiny_models import HEADS, LAYERS, tiny_tagger_dir

SENTENCE = "I saw a saw with my old saw ."
LIMITS = Limits(max_tokens=20, max_token_chars=30)


@pytest.fixture(scope="module")
def model():
    return load_explainable(tiny_tagger_dir())


@pytest.fixture(scope="module")
def other():
    """Another architecture: sinusoidal positions instead of rotary, XPOS, FEATS and LEMMA too."""
    return load_explainable(tiny_tagger_dir(positions="sinusoidal", xpos_weight=1.0, full=True))


@pytest.fixture(scope="module")
def server(model, other):
    with ServerThread(create_app([model, other], limits=LIMITS)) as url:
        yield url


def whatif(url, **body):
    status, _, answer = call(url, "POST", "/api/whatif", {"text": SENTENCE, **body})
    assert status == 200, answer
    return answer


def test_replacing_a_word_by_itself_changes_nothing(server):
    tokens = tokenize(SENTENCE)
    for position in (1, 3, len(tokens) - 1):
        body = whatif(server, position=position, replacement=tokens[position], layer=1, head=1)
        assert body["changed"] == body["tokens"] == tokens and body["mask"] is False
        for layer in body["annotations"]:
            assert layer["change"] == [0.0] * len(tokens)
            assert layer["before"] == layer["after"]
            assert all(m["change"] == 0.0 for m in layer["largest"])
        assert all(row["change"] == 0.0 for row in body["changes"])
        assert body["difference"] == [[0.0] * len(tokens)] * len(tokens)
        assert body["before"] == body["after"]


def test_masking_changes_the_masked_words_probabilities(server, model):
    tokens = tokenize(SENTENCE)
    body = whatif(server, position=3, mask=True, layer=0, head=1)
    assert body["mask"] is True and body["mask_input"] == MASK_TAGGER
    assert body["changed"] == tokens[:3] + ["<unk>"] + tokens[4:] and body["tokens"] == tokens

    # the numbers are the model's two forward passes: as given, and with word 4's unknown-word input
    before, w_before = probe(model, tokens)
    after, w_after = probe(model, tokens, masked=3)
    p, q = before["upos"], after["upos"]
    assert np.abs(q[3] - p[3]).max() > 1e-3  # the masked word's distribution moved
    [upos] = [a for a in body["annotations"] if a["name"] == "UPOS"]
    best = p.argmax(axis=1)
    np.testing.assert_allclose(upos["change"], q[np.arange(len(tokens)), best] - p[np.arange(len(tokens)), best], atol=2e-6)
    np.testing.assert_allclose(upos["before"]["probabilities"], p.max(axis=1), atol=1e-6)
    np.testing.assert_allclose(upos["after"]["probabilities"], q.max(axis=1), atol=1e-6)
    assert upos["largest"][3]["change"] == pytest.approx(max(q[3] - p[3], key=abs), abs=1e-6)
    np.testing.assert_allclose(body["difference"], w_after[0, 1] - w_before[0, 1], atol=2e-6)
    assert np.abs(np.asarray(body["difference"])).max() > 1e-4  # the head sees the change

    # a masked word is not the same as a word it does not know: the form's characters are gone too
    unknown = whatif(server, position=3, replacement="zzyzx", layer=0, head=1)
    assert unknown["annotations"][0]["after_of_before"] != upos["after_of_before"]


def test_rows_are_sorted_by_the_largest_change(server, other):
    body = whatif(server, position=1, replacement="dog", model=other.name)
    tokens = tokenize(SENTENCE)
    assert [a["name"] for a in body["annotations"]] == ["UPOS", "XPOS", "FEATS", "LEMMA"]
    rows = body["changes"]
    assert len(rows) == 4 * len(tokens)
    sizes = [abs(r["largest"]["change"]) for r in rows]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > 0.01
    # the LEMMA of the replaced word is read from its new form
    [lemma] = [a for a in body["annotations"] if a["name"] == "LEMMA"]
    assert lemma["after"]["tags"][1] == "dog"


def test_every_request_names_its_model_and_each_answers_its_own(server, model, other):
    status, _, health = call(server, "GET", "/api/health")
    names = [m["name"] for m in health["models"]]
    assert names == [model.name, other.name] and health["model"]["name"] == names[0]
    assert [m["annotations"] for m in health["models"]] == [["UPOS"], ["UPOS", "XPOS", "FEATS", "LEMMA"]]

    tokens = tokenize(SENTENCE)
    answers = {}
    for name, m in zip(names, (model, other)):
        status, _, body = call(server, "POST", "/api/attention", {"text": SENTENCE, "model": name})
        assert status == 200
        np.testing.assert_allclose(body["weights"], m.attention(tokens)[2].numpy(), atol=2e-6)
        answers[name] = body
        status, _, steps = call(server, "POST", "/api/steps", {"text": SENTENCE, "layer": 1, "head": 0, "model": name})
        np.testing.assert_allclose(steps["alpha_prime"], m.attention(tokens)[2][1, 0].numpy(), atol=2e-6)
        status, _, tagged = call(server, "POST", "/api/tag", {"tokens": tokens, "model": name})
        assert status == 200 and tagged["predicted"] == [a.lower() for a in m.describe()["annotations"]]
    a, b = (np.asarray(answers[n]["weights"]) for n in names)
    assert np.abs(a - b).max() > 0.05  # two models, two answers
    # without "model": the first
    status, _, first = call(server, "POST", "/api/attention", {"text": SENTENCE})
    assert first["weights"] == answers[names[0]]["weights"]


@pytest.mark.parametrize("body, status, message", [
    ({"position": 9, "mask": True}, 422, '"position" 9 is not a word of the sentence: it has 9 (numbered from 0 to 8)'),
    ({"position": -1, "mask": True}, 422, '"position" -1 is not a word'),
    ({"position": "1", "mask": True}, 422, '"position" must be a whole number (the word, from 0), got "1"'),
    ({"position": True, "mask": True}, 422, '"position" must be a whole number'),
    ({"mask": True}, 422, '"position" must be a whole number (the word, from 0), got null'),
    ({"position": 1}, 422, 'send exactly one of "replacement" (a word) or "mask": true'),
    ({"position": 1, "mask": True, "replacement": "x"}, 422, 'send exactly one of "replacement"'),
    ({"position": 1, "mask": False}, 422, '"mask" must be true, got false'),
    ({"position": 1, "replacement": ""}, 422, '"replacement" must be a non-empty string, got ""'),
    ({"position": 1, "replacement": 5}, 422, '"replacement" must be a non-empty string, got 5'),
    ({"position": 1, "replacement": "two words"}, 422, '"replacement" must be one word'),
    ({"position": 1, "replacement": "x" * 31}, 413, '"replacement" is 31 characters long; at most 30 are accepted'),
    ({"position": 1, "mask": True, "layer": LAYERS}, 422, f'"layer" {LAYERS} does not exist: the model has {LAYERS}'),
    ({"position": 1, "mask": True, "head": -1}, 422, '"head" -1 does not exist'),
    ({"position": 1, "mask": True, "model": "nope"}, 422, '"model" "nope" is not a model of this server; it has "'),
    ({"position": 1, "mask": True, "colour": 1}, 422, "unknown field 'colour'"),
])
def test_bad_whatif_requests_get_a_clear_message(server, body, status, message):
    got, _, answer = call(server, "POST", "/api/whatif", {"text": SENTENCE, **body})
    assert (got, answer["error"][: len(message)]) == (status, message)
    assert "\n" not in answer["error"]


def test_a_model_name_must_be_one_the_server_has(server):
    for path in ("/api/tag", "/api/attention"):
        status, _, body = call(server, "POST", path, {"text": SENTENCE, "model": 3})
        assert status == 422 and body["error"].startswith('"model" 3 is not a model of this server')


def test_two_models_of_one_name_are_told_apart(model):
    app = create_app([model, model, model])
    with ServerThread(app) as url:
        _, _, health = call(url, "GET", "/api/health")
        assert [m["name"] for m in health["models"]] == [model.name, f"{model.name} (2)", f"{model.name} (3)"]
        status, _, body = call(url, "POST", "/api/attention", {"text": "I saw", "model": f"{model.name} (3)"})
        assert status == 200 and body["tokens"] == ["I", "saw"]


def test_whatif_of_a_model_without_attention_gives_the_tags_alone():
    none = load_explainable(tiny_tagger_dir(steps=0, encoder="none"))
    body = whatif_body(none, tokenize(SENTENCE), 2, None, 0, 0)
    assert body["difference"] is None and "no attention" in body["no_attention"]
    assert len(body["changes"]) == len(tokenize(SENTENCE))


def test_whatif_of_a_checkpoint_masks_with_its_mask_or_unknown_piece(tmp_path):
    pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
    from test_hf import write_wordpiece_tokenizer
    from tiny_hf import hf_model, save_checkpoint

    directory = save_checkpoint(hf_model("bert"), tmp_path / "bert")
    write_wordpiece_tokenizer(directory)
    bert = load_explainable(directory)
    pieces = bert.split("The cat sat on the mat.")
    body = whatif_body(bert, pieces, 2, None, 0, 1)
    assert body["changed"][2] == "[UNK]" and body["mask_input"] == "the checkpoint's unknown piece [UNK]"  # no [MASK] here
    assert body["annotations"] == [] and np.abs(np.asarray(body["difference"])).max() > 1e-4
    same = whatif_body(bert, pieces, 2, pieces[2], 0, 1)
    assert same["difference"] == [[0.0] * len(pieces)] * len(pieces)


def test_the_notebook_page_holds_every_word_masked(model):
    import json
    import re

    from attnlab.viz import show

    page = show(model, "I saw a saw", view="whatif", layer=2, head=1).html
    data = json.loads(re.search(r"window\.ATTNLAB_EMBED = (\{.*?\});</script>", page, re.S).group(1))
    held = data["sentences"]["I saw a saw"]["whatif"]
    tokens = tokenize("I saw a saw")
    assert set(held) == {"0", "1", "2", "3"}
    for i in range(4):
        assert held[str(i)] == json.loads(json.dumps(whatif_body(model, tokens, i, None, 1, 0), ensure_ascii=False))
    assert "view=whatif" in data["hash"]


def test_attnlab_serve_with_two_models():
    import re
    import subprocess
    import sys

    first, second = tiny_tagger_dir(), tiny_tagger_dir(positions="sinusoidal", xpos_weight=1.0, full=True)
    proc = subprocess.Popen([sys.executable, "-m", "attnlab", "serve", "--model", str(first), "--model", str(second),
                             "--port", "0", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r" at (http://127\.0\.0\.1:\d+)/", line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        assert f"{first} ({LAYERS} layers x {HEADS} heads) and {second} ({LAYERS} layers x {HEADS} heads)" in line
        _, _, health = call(m.group(1), "GET", "/api/health")
        assert [x["name"] for x in health["models"]] == [first.name, second.name]
        status, _, body = call(m.group(1), "POST", "/api/whatif", {"text": "I saw", "position": 0, "mask": True,
                                                                    "model": second.name})
        assert status == 200 and [a["name"] for a in body["annotations"]] == ["UPOS", "XPOS", "FEATS", "LEMMA"]
    finally:
        proc.terminate()
        proc.wait(10)
