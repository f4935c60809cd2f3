"""Why this tag (``attnlab.viz.why``): integrated gradients with their completeness check,
attention rollout, ``attnlab explain --why`` and ``POST /api/why``; and the heatmap image of a
long sentence (its size, its labels, its colour bar)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from attnlab.cli import main
from attnlab.viz import why as W
from attnlab.viz.model import load_explainable, tokenize

from tiny_models import LAYERS, tiny_tagger_dir

pytestmark = pytest.mark.usefixtures("one_thread")
SENTENCE = "I saw a saw with my old saw ."
ALL = ["UPOS", "XPOS", "FEATS", "LEMMA"]


@pytest.fixture(scope="module")
def model():
    return load_explainable(tiny_tagger_dir())


@pytest.fixture(scope="module")
def full():
    """The tiny tagger with every tag layer: UPOS, XPOS, FEATS, LEMMA."""
    return load_explainable(tiny_tagger_dir(full=True, xpos_weight=0.5))


# -- the methods on functions whose integrals are known --------------------------------------

@pytest.mark.parametrize("rule", W.RULES)
def test_integrated_gradients_of_a_linear_score_are_exact(rule):
    torch.manual_seed(0)
    x, base, w = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    attributions, at_x, at_base, used = W.integrated_gradients(lambda p: (p * w).sum((1, 2))[:, None], x, base,
                                                               steps=16, rule=rule)
    np.testing.assert_allclose(attributions[0], ((x - base) * w).sum(1).numpy(), rtol=1e-5, atol=1e-6)
    assert at_x[0] - at_base[0] == pytest.approx(attributions.sum(), rel=1e-5)
    assert used <= 16


def test_gauss_legendre_is_complete_on_a_smooth_function():
    """tanh of a quadratic form: nothing jumps, so 32 points make the gap vanish."""
    torch.manual_seed(1)
    x, a = torch.randn(4, 3, dtype=torch.float64), torch.randn(12, 12, dtype=torch.float64)

    def scores(p):
        flat = p.flatten(1)
        return torch.stack([torch.tanh(flat @ a @ flat.T).diagonal(), flat.sin().sum(1)], dim=-1)

    attributions, at_x, at_base, _ = W.integrated_gradients(scores, x, torch.zeros_like(x), targets=2, steps=32,
                                                            rule="gauss-legendre")
    np.testing.assert_allclose(attributions.sum(1), at_x - at_base, rtol=1e-10, atol=1e-12)


def test_quadrature_rules_and_their_errors():
    for rule in ("gauss-legendre", "riemann"):
        points, weights = W.quadrature(7, rule)
        assert weights.sum() == pytest.approx(1.0) and ((points > 0) & (points < 1)).all()
        assert (weights * points ** 3).sum() == pytest.approx(0.25, rel=1e-12 if rule == "gauss-legendre" else 2e-2)
    with pytest.raises(ValueError, match="unknown rule 'simpson'"):
        W.check_steps(64, "simpson")
    with pytest.raises(ValueError, match="steps must be a whole number from 4 to 1024, got 2"):
        W.check_steps(2)
    with pytest.raises(ValueError, match="from 1 to 1024, got 2000"):
        W.check_steps(2000, "riemann")


def test_rollout_multiplies_head_averaged_weights_with_the_residual():
    rng = np.random.default_rng(0)
    w = rng.random((3, 2, 5, 5))
    w /= w.sum(-1, keepdims=True)
    r = W.rollout(w)
    np.testing.assert_allclose(r.sum(1), 1.0, rtol=1e-12)
    hand = np.eye(5)
    for layer in w:  # (A + I) / 2 for softmax rows that sum to 1
        hand = (0.5 * layer.mean(0) + 0.5 * np.eye(5)) @ hand
    np.testing.assert_allclose(r, hand, rtol=1e-12)
    with pytest.raises(ValueError, match=r"\(L, H, n, n\), got \(2, 5, 5\)"):
        W.rollout(w[0])


# -- the tagger ----------------------------------------------------------------------------

def test_tag_probability_and_rollout_are_the_models(full):
    tokens = tokenize(SENTENCE)
    layers = {a["name"]: a for a in full.annotate(tokens)}
    assert list(layers) == ALL
    _, _, weights = full.attention(tokens)
    for t in (1, 3, 7):
        for w in W.explain_word(full, tokens, t, ALL, steps=16):
            assert w.tag == layers[w.layer]["tags"][t] and w.probability == pytest.approx(
                layers[w.layer]["probabilities"][t], abs=1e-5)
            np.testing.assert_allclose(w.rollout, W.rollout(weights)[t], rtol=1e-6)
            assert w.rollout.sum() == pytest.approx(1.0, abs=1e-9)
            assert w.share.__abs__().sum() == pytest.approx(1.0)


def test_completeness_with_the_default_steps(full):
    """Every word and tag layer of the tiny tagger, 256 gradient evaluations (adaptive panels).
    Its ReLUs make the gradient jump along the path, so the gap shrinks only about like 1/steps:
    measured, a median of 1.3e-3 and a largest of 1.4e-2 of the score difference."""
    gaps = []
    for sentence in (SENTENCE, "the dogs saw a cat ."):
        tokens = tokenize(sentence)
        for t in range(len(tokens)):
            for w in W.explain_word(full, tokens, t, ALL):
                assert w.steps <= W.DEFAULT_STEPS
                assert w.gap == pytest.approx(w.attributions.sum() - (w.score - w.baseline_score))
                gaps.append(w.relative_gap)
    assert np.median(gaps) < 3e-3 and max(gaps) < 3e-2


def test_completeness_below_1e_3_when_nothing_jumps(full, monkeypatch):
    """The same tagger with GELU in place of ReLU (a smooth function of its input): the default
    rule and steps make every gap < 1e-3 of the difference (in fact < 1e-5)."""
    for layer in full.transformer.layers:
        monkeypatch.setattr(layer, "activation", "gelu")
    tokens = tokenize(SENTENCE)
    gaps = [w.relative_gap for t in range(len(tokens)) for w in W.explain_word(full, tokens, t, ALL)]
    assert max(gaps) < 1e-3 and np.median(gaps) < 1e-5


def test_a_word_equal_to_the_baseline_gets_nothing(model):
    tokens = tokenize(SENTENCE)
    x = W.word_inputs(model, tokens)
    x[2] = 0.0  # the baseline's row
    w = W.explain_word(model, tokens, 3, "UPOS", inputs=x)
    assert w.attributions[2] == 0.0
    assert np.abs(np.delete(w.attributions, 2)).min() > 0
    assert w.relative_gap < 3e-2


def test_bad_word_or_layer_is_one_line(model):
    tokens = tokenize(SENTENCE)
    with pytest.raises(ValueError, match=r"^word 10 does not exist: the sentence has 9 words \(1..9\)$"):
        W.explain_word(model, tokens, 9)
    with pytest.raises(ValueError, match=r"^layer 'XPOS' is not predicted by .*; it has UPOS$"):
        W.explain_word(model, tokens, 0, "XPOS")


# -- the command line and the server -------------------------------------------------------

def _table(out: str) -> np.ndarray:
    """The rows of `explain --why`: (i, IG, share, rollout)."""
    rows = re.findall(r"^[* ]\s+(\d+)\s+\S+\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)$", out, re.M)
    return np.array(rows, dtype=float)


def test_explain_why_prints_the_librarys_numbers(full, capsys):
    directory = str(tiny_tagger_dir(full=True, xpos_weight=0.5))
    assert main(["explain", "--model", directory, SENTENCE, "--why", "4", "--layer-name", "feats"]) == 0
    out = capsys.readouterr().out
    w = W.explain_word(full, tokenize(SENTENCE), 3, "FEATS")
    rows = _table(out)
    assert rows[:, 0].tolist() == list(range(1, 10))
    np.testing.assert_allclose(rows[:, 1], np.round(w.attributions, 4), atol=1e-9)
    np.testing.assert_allclose(rows[:, 2], np.round(w.share, 3), atol=1e-9)
    np.testing.assert_allclose(rows[:, 3], np.round(w.rollout, 4), atol=1e-9)
    assert f'word 4 "saw" tagged FEATS {w.tag} (P = {w.probability:.4f})' in out
    assert f"= {w.difference:.4f}" in out and f"completeness gap {w.gap:.2e} ({w.relative_gap:.2e}" in out
    assert not list(__import__("pathlib").Path(".").glob("attn.png"))  # --why alone writes no image


@pytest.mark.parametrize("args, message", [
    (["--why", "10"], "word 10 does not exist: the sentence has 9 words (1..9)"),
    (["--why", "2", "--layer-name", "XPOS"], "layer 'XPOS' is not predicted by"),
    (["--why", "0"], "expected an integer >= 1, got '0'"),
    (["--why", "2", "--ig-steps", "2"], "steps must be a whole number from 4 to 1024, got 2"),
])
def test_explain_why_errors_are_one_line(args, message, capsys):
    assert main(["explain", "--model", str(tiny_tagger_dir()), SENTENCE, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("attnlab explain: error: ") and message in err and err.count("\n") == 1


def test_api_why_answers_the_librarys_numbers_and_refuses_bad_requests(full):
    from starlette.testclient import TestClient

    from attnlab.serve.app import create_app

    client = TestClient(create_app(full), base_url="http://127.0.0.1")
    body = client.post("/api/why", json={"text": SENTENCE, "word": 1, "layer": "xpos"}).json()
    w = W.explain_word(full, tokenize(SENTENCE), 1, "XPOS")
    assert (body["tag"], body["layer"], body["score_name"]) == (w.tag, "XPOS", "logit")
    np.testing.assert_allclose(body["attributions"], w.attributions, atol=1e-6)
    np.testing.assert_allclose(body["rollout"], w.rollout, atol=1e-6)
    assert body["gap"] == pytest.approx(w.gap, abs=1e-6) and body["sum"] == pytest.approx(w.attributions.sum(), abs=1e-6)
    for bad, status, message in [
        ({"text": SENTENCE, "word": 9}, 422, '"word" 9 does not exist: the sentence has 9 words'),
        ({"text": SENTENCE, "word": "1"}, 422, '"word" must be a whole number from 0 to 8, got "1"'),
        ({"text": SENTENCE, "word": 0, "layer": "DEPREL"}, 422, '"layer" must be one of UPOS, XPOS, FEATS, LEMMA'),
        ({"text": SENTENCE, "word": 0, "steps": 9}, 422, "unknown field 'steps'"),
        ({"word": 0}, 422, 'send exactly one of "text"'),
    ]:
        answer = client.post("/api/why", json=bad)
        assert answer.status_code == status and message in answer.json()["error"]
    assert client.post("/api/why", content=b'{"text": "a", "word": 0}').status_code == 415


def test_show_embeds_the_why_answers(model):
    from attnlab.viz.notebook import page

    import json

    html = page(model, "I saw a saw", view="why", why_steps=16)
    data = json.loads(re.search(r"window\.ATTNLAB_EMBED = (\{.*?\});</script>", html, re.S).group(1))
    saved = data["sentences"]["I saw a saw"]["why"]
    assert set(saved) == {f"{t},UPOS" for t in range(4)}
    assert saved["2,UPOS"] == W.why_body(model, ["I", "saw", "a", "saw"], 2, "UPOS", steps=16)
    assert "why" not in json.loads(re.search(r"window\.ATTNLAB_EMBED = (\{.*?\});</script>",
                                             page(model, "I saw", why_steps=0), re.S).group(1))["sentences"]["I saw"]


# -- the heatmap image of a long sentence ----------------------------------------------------

def test_the_image_of_40_words_is_sized_to_read_and_its_colour_bar_says_what_it_shows(tmp_path, monkeypatch):
    """2 layers x 8 heads at 40 words (the shipped model's grid): once an image of 7,978 x 2,060
    pixels whose labels were 8 px high and whose colour bar read alpha'_(i,j)."""
    import attnlab.viz.figure as figure
    from PIL import Image

    from attnlab.viz.heatmap import plot_attention_grid

    kept = {}
    save = figure.save_figure

    def keep(fig, path, *, fmt="png", dpi=100):
        kept["fig"], kept["dpi"] = fig, dpi
        kept["labels"] = [(t.get_text(), t.get_fontsize()) for ax in fig.axes for t in ax.get_yticklabels()]
        kept["bar"] = fig.axes[-1].get_ylabel()
        save(fig, path, fmt=fmt, dpi=dpi)

    monkeypatch.setattr(figure, "save_figure", keep)
    n = 40
    rng = np.random.default_rng(0)
    w = rng.random((2, 8, n, n))
    w /= w.sum(-1, keepdims=True)
    path = tmp_path / "attn.png"
    drawn = plot_attention_grid([f"w{i}" for i in range(n)], w, tags=["NOUN"] * n, path=path)
    np.testing.assert_allclose(drawn, w, atol=1e-12)
    width, height = Image.open(path).size
    assert max(width, height) <= 4000 and max(width, height) / min(width, height) < 1.5
    shown = [size * kept["dpi"] / 72 for text, size in kept["labels"] if text]
    assert len(shown) >= n and min(shown) >= 10  # word labels at least 10 px high
    assert kept["bar"].startswith("attention weight") and "_(" not in kept["bar"]
    assert r"$\alpha'_{ij}$" in kept["bar"]  # drawn as α′ with i j set below


def test_the_pages_answer_spends_fewer_points_on_a_long_sentence(model):
    from attnlab.viz.why import DEFAULT_STEPS, page_steps, why_body

    assert [page_steps(n) for n in (5, 32, 64, 128, 1000)] == [DEFAULT_STEPS, DEFAULT_STEPS, 128, 64, 32]
    tokens = ("I saw a saw with my old saw . " * 8).split()  # 72 words
    body = why_body(model, tokens, 3, "UPOS")
    assert body["steps"] <= page_steps(len(tokens)) == 112
    assert abs(body["sum"] - body["difference"]) == pytest.approx(abs(body["gap"]), abs=1e-5)
