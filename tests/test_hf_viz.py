"""A Hugging Face checkpoint in the explorer and in `attnlab explain`: word pieces on the axes,
every layer x head map from attnlab's engine (equal to ``attnlab.hf.load_encoder``'s), the steps
of one head, no tags."""

from __future__ import annotations

import http.client
import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed: tiny checkpoints are built with it")
pytest.importorskip("tokenizers", reason="the hf extra (tokenizers) is not installed")

from attnlab.cli import main  # noqa: E402
from attnlab.errors import MissingExtra  # noqa: E402
from attnlab.hf import load_encoder, load_tokenizer  # noqa: E402
from attnlab.viz.model import load_explainable  # noqa: E402
from test_hf import write_wordpiece_tokenizer  # noqa: E402
from tiny_hf import HEADS, LAYERS, hf_model, save_checkpoint  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
SENTENCE = "The cat sat on the unbelievable mat."
PIECES = ["[CLS]", "the", "cat", "sat", "on", "the", "un", "##believ", "##able", "mat", ".", "[SEP]"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random BERT checkpoint with a WordPiece tokenizer.json, written locally."""
    directory = save_checkpoint(hf_model("bert"), tmp_path_factory.mktemp("bert"))
    write_wordpiece_tokenizer(directory)
    return directory


@pytest.fixture(scope="module")
def expected(checkpoint):
    """(L, H, n, n) attention maps of SENTENCE straight from ``attnlab.hf.load_encoder``."""
    ids, cu = load_tokenizer(checkpoint).pack([SENTENCE])
    with torch.inference_mode():
        out = load_encoder(checkpoint).forward_packed(ids, cu, return_weights=True)
    return torch.stack([w[0] for w in out.attentions]).numpy()


@pytest.fixture(scope="module")
def model(checkpoint):
    return load_explainable(checkpoint)


def test_a_checkpoint_is_explained_in_word_pieces_without_tags(model, expected):
    assert (model.layers, model.heads, model.normalize) == (LAYERS, HEADS, "softmax")
    assert model.split(SENTENCE) == PIECES
    tags, probs, weights = model.attention(PIECES)
    assert tags == [] and probs == [] and model.annotate(PIECES) == []
    assert weights.shape == (LAYERS, HEADS, len(PIECES), len(PIECES))
    np.testing.assert_allclose(weights.numpy(), expected, atol=1e-6)
    assert weights.std(dim=-1).mean() > 0.05  # far from uniform: the comparison means something
    assert "without a tagging head" in model.no_tags and model.describe()["model_type"] == "bert"
    with pytest.raises(ValueError, match="without a tagging head"):
        model.tag([PIECES])


@pytest.mark.parametrize("layer, head", [(0, 0), (LAYERS - 1, HEADS - 1), (1, 2)])
def test_steps_of_a_head_give_the_encoders_map(model, expected, layer, head):
    s = model.steps(PIECES, layer, head)
    assert s.q.shape == (len(PIECES), 32 // HEADS)
    np.testing.assert_allclose(s.alpha_prime, expected[layer, head], atol=1e-5)
    np.testing.assert_allclose(s.alpha, s.q @ s.k.T / np.sqrt(s.q.shape[1]), atol=1e-10)
    formula, log_z = model.normalizers(s.alpha)
    np.testing.assert_allclose(np.exp(s.alpha - log_z[:, None]), s.alpha_prime, atol=1e-10)


def test_pieces_outside_the_vocabulary_or_too_many_are_refused(model):
    with pytest.raises(ValueError, match="'zebra' is not a word piece"):
        model.attention(["[CLS]", "zebra", "[SEP]"])
    with pytest.raises(ValueError, match="takes at most 40"):
        model.attention(["the"] * 41)


def test_a_missing_hf_extra_is_named_before_loading(checkpoint, monkeypatch):
    import attnlab.errors

    real = attnlab.errors._importable
    monkeypatch.setattr(attnlab.errors, "_importable", lambda m: m != "tokenizers" and real(m))
    with pytest.raises(MissingExtra, match="needs the 'hf' extra"):
        load_explainable(checkpoint)


def test_explain_draws_every_head_with_word_pieces_on_the_axes(checkpoint, expected, tmp_path, capsys, monkeypatch):
    import attnlab.viz.heatmap as heatmap

    panels = []
    real = heatmap._heatmap

    def spy(ax, weights, labels, vmax, **options):
        panels.append((weights, list(labels)))
        return real(ax, weights, labels, vmax, **options)

    monkeypatch.setattr(heatmap, "_heatmap", spy)
    out = tmp_path / "x.png"
    assert main(["explain", "--model", str(checkpoint), SENTENCE, "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == " ".join(PIECES) and "without a tagging head" in printed[1]
    assert f"(layers x heads = {LAYERS} x {HEADS};" in printed[-1]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(panels) == LAYERS * HEADS and all(labels == PIECES for _, labels in panels)
    np.testing.assert_allclose(np.stack([w for w, _ in panels]), expected.reshape(-1, *expected.shape[2:]), atol=1e-6)


def test_explain_steps_of_a_checkpoint_head(checkpoint, expected, capsys):
    assert main(["explain", "--model", str(checkpoint), SENTENCE, "--steps", "--layer", "2", "--head", "3"]) == 0
    printed = capsys.readouterr().out
    assert "Layer 2, head 3" in printed and "##believ" in printed
    n = len(PIECES)
    rows = printed[printed.index("Step 3."):].splitlines()[2:2 + n]
    table = np.array([[float(x) for x in r.split()[-n:]] for r in rows])
    np.testing.assert_allclose(table, expected[1, 2], atol=1e-4)


def test_show_embeds_a_checkpoints_pieces_and_steps(checkpoint, expected):
    from attnlab.viz.notebook import _answers

    answers = _answers(load_explainable(checkpoint), SENTENCE, (2, 3))
    assert answers["attention"]["tokens"] == PIECES and answers["attention"]["no_tags"]
    assert len(answers["steps"]) == LAYERS * HEADS
    assert [k for k, s in answers["steps"].items() if s["W"] is not None] == ["2,3"]  # the head shown first
    np.testing.assert_allclose(np.array(answers["steps"]["2,3"]["alpha_prime"]), expected[2, 3], atol=1e-6)


# -- the explorer's API ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(model):
    pytest.importorskip("starlette", reason="the serve extra is not installed")
    from attnlab.serve.app import create_app
    from attnlab.serve.server import ServerThread

    with ServerThread(create_app(model)) as url:
        yield url


def post(url: str, path: str, body: dict) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_api_attention_gives_word_pieces_and_the_encoders_maps(server, expected):
    status, body = post(server, "/api/attention", {"text": SENTENCE})
    assert status == 200
    assert body["tokens"] == PIECES and body["tags"] == [] and body["annotations"] == []
    assert (body["layers"], body["heads"]) == (LAYERS, HEADS) and "without a tagging head" in body["no_tags"]
    np.testing.assert_allclose(np.array(body["weights"]), expected, atol=1e-6)


def test_api_steps_and_refusals_of_a_checkpoint(server, expected):
    status, body = post(server, "/api/steps", {"text": SENTENCE, "layer": 2, "head": 1})
    assert status == 200 and body["tokens"] == PIECES
    np.testing.assert_allclose(np.array(body["alpha_prime"]), expected[2, 1], atol=1e-6)
    status, body = post(server, "/api/tag", {"text": SENTENCE})
    assert status == 422 and "without a tagging head" in body["error"]
    status, body = post(server, "/api/attention", {"tokens": ["[CLS]", "zebra"]})
    assert status == 422 and "'zebra' is not a word piece" in body["error"]


def write_wordlevel_tokenizer(directory, words):
    """A RoBERTa-style tokenizer.json: whole words, <s> ... </s> around the sentence."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {w: i for i, w in enumerate(["<s>", "<pad>", "</s>", "<unk>", *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>"])
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer.save(str(directory / "tokenizer.json"))


def test_a_roberta_checkpoint_shows_its_own_special_pieces(tmp_path):
    """RoBERTa: <s> ... </s> as its tokenizer gives them, positions from pad_token_id + 1; the
    maps and one head's steps equal the encoder's."""
    directory = save_checkpoint(hf_model("roberta", seed=3), tmp_path)
    write_wordlevel_tokenizer(directory, ["I", "saw", "a", "with", "my", "old"])
    model = load_explainable(directory)
    pieces = model.split("I saw a saw with my old saw")
    assert pieces == ["<s>", "I", "saw", "a", "saw", "with", "my", "old", "saw", "</s>"]
    ids, cu = load_tokenizer(directory).pack(["I saw a saw with my old saw"])
    with torch.inference_mode():
        out = load_encoder(directory).forward_packed(ids, cu, return_weights=True)
    expected = torch.stack([w[0] for w in out.attentions]).numpy()
    np.testing.assert_allclose(model.attention(pieces)[2].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(model.steps(pieces, 2, 3).alpha_prime, expected[2, 3], atol=1e-5)
    assert "roberta checkpoint" in model.no_tags


def test_explain_names_an_unsupported_checkpoint_in_one_line(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    assert main(["explain", "--model", str(tmp_path), SENTENCE]) == 2
    err = capsys.readouterr().err
    assert err.startswith("attnlab explain: error: ") and "model_type 'gpt2' is not supported" in err
    assert err.count("\n") == 1
