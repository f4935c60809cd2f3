"""One head's steps as the model computes them (``AttentionModel.steps``): the layer's normalized
input a^i, the projections with their biases, the rotary turn of q and k, and b^i, checked against
the model's own forward pass (captured where the heads' outputs meet W^O), for a tagger and a
Hugging Face checkpoint; the text of `attnlab explain --steps` and the API carry the same numbers."""

from __future__ import annotations

import re
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from attnlab import reference as R
from attnlab.cli import main
from attnlab.viz.model import load_explainable, tokenize
from attnlab.viz.payload import steps_body

from tiny_models import HEADS, LAYERS, tiny_tagger_dir

SENTENCE = "I saw a saw with my old saw ."
FLOAT = r"-?\d+\.\d+"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return load_explainable(tiny_tagger_dir())


@contextmanager
def heads_before_W_O(transformer):
    """Record, per layer, what each attention layer's W^O multiplies in the model's own forward
    pass: the heads' outputs (T, H, d)."""
    seen: dict[int, torch.Tensor] = {}
    layers = [block.attn for block in transformer.layers]
    for number, attn in enumerate(layers):
        def merge(heads, *args, _number=number, _merge=attn._merge, **kwargs):
            seen[_number] = heads.detach().clone()
            return _merge(heads, *args, **kwargs)
        attn._merge = merge
    try:
        yield seen
    finally:
        for attn in layers:
            del attn._merge  # the class's method again


def check_against_forward(model, tokens, forward) -> None:
    """b^i of every layer and head equals the head's slice of the forward pass's heads (1e-5)."""
    with heads_before_W_O(model.transformer) as seen:
        forward()
    assert sorted(seen) == list(range(model.layers))
    for layer in range(model.layers):
        for head in range(model.heads):
            s = model.steps(tokens, layer, head)
            np.testing.assert_allclose(s.b, seen[layer][:, head].double().numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("positions", ["rotary", "sinusoidal", "none"])
def test_b_is_the_heads_slice_of_what_W_O_multiplies_in_the_taggers_forward_pass(positions):
    model = load_explainable(tiny_tagger_dir(steps=40 if positions == "rotary" else 0, positions=positions))
    tokens = tokenize(SENTENCE)
    s = model.steps(tokens, 1, 1)
    assert s.bq is not None and np.abs(s.bq).max() > 1e-3  # the layer has biases, and they count
    assert (s.theta is not None) == (positions == "rotary")
    check_against_forward(model, tokens, lambda: model.tag([tokens]))  # the tagger's forward, as it tags
    check_against_forward(model, tokens, lambda: model.attention(tokens))  # ... and as it draws the maps


def test_each_step_is_the_formula_it_is_named_by(model):
    """a^i is the layer's norm of its input; q^i = W^q a^i + b^q; the turn is the model's rotary
    positions; alpha = q.k / sqrt(d), and q o k summed entry by entry is q . k."""
    tokens = tokenize(SENTENCE)
    t = model.transformer
    s = model.steps(tokens, 1, 0)
    n, d = s.q.shape
    assert s.a.shape == (n, t.layers[0].attn.d_model) and s.Wq.shape == (d, s.a.shape[1])
    with torch.inference_mode():
        hidden = list(t.layer_outputs(model.encoder_input(tokens), torch.tensor([0, n])))
        x = hidden[0][0]  # the output of layer 1: layer 2's input
        np.testing.assert_allclose(s.a, t.layers[1].norm1(x).double().numpy(), atol=1e-6)
    np.testing.assert_allclose(s.q_projected, s.a @ s.Wq.T + s.bq, atol=1e-12)
    np.testing.assert_allclose(s.v, s.a @ s.Wv.T + s.bv, atol=1e-12)
    turned = t.rotary.rotate(torch.tensor(s.k_projected)[:, None], torch.arange(n))[:, 0].numpy()
    np.testing.assert_allclose(s.k, turned, atol=1e-12)  # the reference's turn is the model's
    np.testing.assert_allclose(s.q[0], s.q_projected[0], atol=1e-12)  # position 0 is not turned
    assert np.abs(s.q[1:] - s.q_projected[1:]).max() > 1e-3
    # the turn keeps lengths and makes q^i . k^j depend on i - j only (shift both by one: same score)
    np.testing.assert_allclose(np.linalg.norm(s.q, axis=1), np.linalg.norm(s.q_projected, axis=1), atol=1e-12)
    shifted = R.rotate_pairs(s.q_projected[[2]], [3], s.theta) @ R.rotate_pairs(s.k_projected[[4]], [5], s.theta).T
    np.testing.assert_allclose(shifted[0, 0], s.q[2] @ s.k[4], atol=1e-10)
    for i in range(n):
        for j in range(n):
            product = s.q[i] * s.k[j]  # q^i o k^j, one number per entry
            assert product.sum() == pytest.approx(float(np.dot(s.q[i], s.k[j])), abs=1e-12)
            assert product.sum() / np.sqrt(d) == pytest.approx(s.alpha[i, j], abs=1e-12)


def test_two_equal_words_have_one_v_and_two_ks(model):
    """In layer 1 both "saw" have the same a, so the same v and the same k before the turn; the
    rotary turn by their positions (2 and 4, from 1) is what gives them different k."""
    tokens = tokenize(SENTENCE)
    first, second = 1, 3
    assert tokens[first] == tokens[second] == "saw"
    s = model.steps(tokens, 0, 0)
    np.testing.assert_array_equal(s.a[first], s.a[second])
    np.testing.assert_allclose(s.v[first], s.v[second], atol=1e-12)
    np.testing.assert_allclose(s.k_projected[first], s.k_projected[second], atol=1e-12)
    assert np.abs(s.k[first] - s.k[second]).max() > 0.05


def test_the_additions_name_what_the_model_does(model):
    adds = model.additions(1, 1)
    assert [a["name"] for a in adds] == ["layer norm", "biases", "rotary positions", "output"]
    assert "a^i = LayerNorm(x^i)" in adds[0]["formula"] and "pre-norm" in adds[0]["text"]
    assert adds[1]["formula"].startswith("q^i = W^(q,2) a^i + b^(q,2)") and "rows 9..16" in adds[1]["text"]
    sinusoidal = load_explainable(tiny_tagger_dir(steps=0, positions="sinusoidal")).additions(0, 0)
    assert sinusoidal[2]["name"] == "absolute positions" and "no rotary" in sinusoidal[2]["text"]


def test_the_api_carries_the_models_numbers(model):
    tokens = tokenize(SENTENCE)
    s = model.steps(tokens, 1, 1)
    body = steps_body(model, tokens, 1, 1)
    assert (body["d"], body["D"]) == s.Wq.shape
    for key, value in (("a", s.a), ("q_projected", s.q_projected), ("k_projected", s.k_projected), ("theta", s.theta)):
        np.testing.assert_allclose(body[key], value, atol=5e-7)
    for part in "qkv":
        np.testing.assert_allclose(body["W"][part], getattr(s, "W" + part), atol=5e-7)
        np.testing.assert_allclose(body["bias"][part], getattr(s, "b" + part), atol=5e-7)
    assert [a["name"] for a in body["additions"]] == [a["name"] for a in model.additions(1, 1)]
    none = load_explainable(tiny_tagger_dir(steps=0, positions="none"))
    plain = steps_body(none, tokens, 0, 0)
    assert plain["theta"] is plain["q_projected"] is plain["k_projected"] is None


def test_explain_steps_prints_the_seed_then_what_the_model_adds(model, capsys):
    tokens = tokenize(SENTENCE)
    assert main(["explain", "--model", str(tiny_tagger_dir()), SENTENCE, "--steps", "--layer", "1", "--head", "2"]) == 0
    printed = capsys.readouterr().out
    seed, adds = printed.index("The seed's formula:"), printed.index("What this model adds")
    assert seed < adds < printed.index("Step 0.")
    names = [m.group(1) for m in re.finditer(r"^  \d\. ([a-z ]+):", printed, re.M)]
    assert names == [a["name"] for a in model.additions(0, 1)]
    s = model.steps(tokens, 0, 1)
    n = len(tokens)

    def vector(pattern):
        return [float(x) for x in re.findall(FLOAT, re.search(pattern, printed).group(1))]

    for i in range(n):
        a = re.search(rf"a\^{i + 1} = [^\n]*:\n((?:     *{FLOAT}[^\n]*\n)+)", printed).group(1)
        np.testing.assert_allclose([float(x) for x in re.findall(FLOAT, a)], s.a[i], atol=1e-4)
        np.testing.assert_allclose(vector(rf"W\^\(q,2\) a\^{i + 1} \+ b\^\(q,2\) = \[([^\]]*)\]"), s.q_projected[i], atol=1e-4)
        np.testing.assert_allclose(vector(rf"\n    q\^{i + 1} = \[([^\]]*)\]"), s.q[i], atol=1e-4)
        np.testing.assert_allclose(vector(rf"\n    k\^{i + 1} = \[([^\]]*)\]"), s.k[i], atol=1e-4)
    np.testing.assert_allclose(vector(r"b\^\(k,2\) = \[([^\]]*)\]"), s.bk, atol=1e-4)
    # q o k of each query and its strongest key: the entries, their sum and alpha
    for i in range(n):
        j = int(np.argmax(s.alpha_prime[i]))
        found = re.search(rf"i={i + 1} j={j + 1}: sum = ({FLOAT}),  / {FLOAT} = ({FLOAT})\n((?:     *{FLOAT}[^\n]*\n)+)", printed)
        entries = [float(x) for x in re.findall(FLOAT, found.group(3))]
        np.testing.assert_allclose(entries, s.q[i] * s.k[j], atol=1e-4)
        assert float(found.group(1)) == pytest.approx(s.q[i] @ s.k[j], abs=1e-4)
        assert float(found.group(2)) == pytest.approx(s.alpha[i, j], abs=1e-4)


def test_a_bert_checkpoints_steps_are_its_forward_pass(tmp_path, capsys):
    """BERT: biases, learned absolute positions in the embeddings, post-norm, no rotary."""
    pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
    from test_hf import write_wordpiece_tokenizer
    from tiny_hf import hf_model, save_checkpoint

    directory = save_checkpoint(hf_model("bert"), tmp_path / "bert")
    write_wordpiece_tokenizer(directory)
    bert = load_explainable(directory)
    pieces = bert.split("The cat sat on the unbelievable mat.")
    ids = bert.ids(pieces)
    check_against_forward(bert, pieces, lambda: bert.encoder.forward_packed(ids, torch.tensor([0, len(ids)])))
    s = bert.steps(pieces, 2, 1)
    assert s.theta is None and s.q_projected is s.q and s.bq is not None
    with torch.inference_mode():
        out = bert.encoder.forward_packed(ids, torch.tensor([0, len(ids)]), return_hidden=True)
    np.testing.assert_allclose(s.a, out.hidden_states[2].double().numpy(), atol=1e-6)  # post-norm: a^i = x^i
    adds = {a["name"]: a for a in bert.additions(2, 1)}
    assert list(adds) == ["layer norm", "biases", "absolute positions", "output"]
    assert "post-norm" in adds["layer norm"]["text"] and "no rotary" in adds["absolute positions"]["text"]
    assert "P^(i - 1)" in adds["absolute positions"]["formula"]
    body = steps_body(bert, pieces, 2, 1)
    assert body["theta"] is None and body["bias"] is not None
    assert main(["explain", "--model", str(directory), "The cat sat on the unbelievable mat.", "--steps",
                 "--layer", "3", "--head", "2"]) == 0
    printed = capsys.readouterr().out
    assert "3. absolute positions:" in printed and "before the turn" not in printed
