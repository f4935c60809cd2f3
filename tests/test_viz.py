"""`attnlab explain` and what it stands on: the model's attention, one head step by step, the heatmaps."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from attnlab.cli import main
from attnlab.viz.heatmap import plot_attention_grid
from attnlab.viz.model import load_explainable, tokenize
from attnlab.viz.steps import render_steps

from tiny_models import HEADS, LAYERS, tiny_tagger_dir

SENTENCE = "I saw a saw ."
FLOAT = r"-?\d+\.\d+"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return load_explainable(tiny_tagger_dir())


def png_size(path) -> tuple[int, int]:
    """(width, height) from the PNG header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# -- the model's attention ---------------------------------------------------------------

def test_attention_has_one_map_per_layer_and_head(model):
    tokens = tokenize(SENTENCE)
    tags, probs, w = model.attention(tokens)
    n = len(tokens)
    assert (model.layers, model.heads, model.normalize) == (LAYERS, HEADS, "softmax")
    assert w.shape == (LAYERS, HEADS, n, n) and w.dtype == torch.float32
    assert torch.all(w >= 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(LAYERS, HEADS, n), atol=1e-5, rtol=0)
    assert len(tags) == len(probs) == n


def test_tags_agree_with_the_taggers_own_predict(model):
    from attnlab.tasks.tagging import load_tagger, predict

    loaded = load_tagger(tiny_tagger_dir())
    sentences = [tokenize(SENTENCE), ["the", "dog", "can", "walk"], ["watch", "this"], []]
    expected, _ = predict(loaded.model, loaded.encoder(), loaded.vocabs, sentences[:3])
    got = model.tag(sentences)
    assert [t for t, _ in got[:3]] == expected
    assert got[3] == ([], [])
    # a probability is the softmax of the tag scores at the chosen tag: above 1/C, at most 1
    classes = len(loaded.vocabs.upos) - 2
    for tags, probs in got[:3]:
        assert all(1.0 / classes <= p <= 1.0 for p in probs)
    # attention() tags the same way
    tags, probs, _ = model.attention(sentences[0])
    assert (tags, probs) == got[0]


def test_weights_do_not_depend_on_other_sentences_in_the_batch(model):
    """attention() runs one sentence; the encoder on a padded batch of two gives the same maps."""
    a, b = tokenize(SENTENCE), ["every", "old", "man", "will", "take", "the", "red", "car", "."]
    batch = model.features.encode([b, a])
    with torch.inference_mode():
        per_layer = model.model.encoder.attention_weights(model.model.features(batch), batch.lengths)
    _, _, w = model.attention(a)
    for layer in range(LAYERS):
        torch.testing.assert_close(per_layer[layer][1], w[layer], atol=1e-6, rtol=0)


@pytest.mark.parametrize("positions, steps", [("rotary", 40), ("sinusoidal", 0), ("none", 0)])
def test_steps_recompute_the_models_weights_and_outputs(positions, steps):
    """alpha' from q and k (the NumPy oracle) equals the model's weights for every layer and head,
    and the heads' b^i, concatenated and multiplied by W^O, equal the attention layer's output."""
    model = load_explainable(tiny_tagger_dir(steps=steps, positions=positions))
    tokens = tokenize("They watch the old watch .")
    _, _, w = model.attention(tokens)
    for layer in range(LAYERS):
        outs = []
        for head in range(HEADS):
            s = model.steps(tokens, layer, head)
            np.testing.assert_allclose(s.alpha_prime, w[layer, head].double().numpy(), atol=1e-5)
            d = s.q.shape[1]
            np.testing.assert_allclose(s.alpha, s.q @ s.k.T / np.sqrt(d), atol=1e-10)
            outs.append(s.b)
        attn = model.transformer.layers[layer].attn
        concat = torch.tensor(np.concatenate(outs, axis=1), dtype=torch.float32)  # (n, D)
        y = attn.out(concat)
        # the layer's own attention output on the same input
        x = _layer_input(model, tokens, layer)
        n = len(tokens)
        with torch.inference_mode():
            expected = attn.forward_packed(x, torch.tensor([0, n]), rotary=model.transformer.rotary,
                                           positions=torch.arange(n))
        torch.testing.assert_close(y, expected, atol=1e-4, rtol=1e-4)


def _layer_input(model, tokens, layer):
    """The normalized input of ``layer``'s attention, computed through the encoder's own forward_packed."""
    t = model.transformer
    n = len(tokens)
    with torch.inference_mode():
        batch = model.features.encode([tokens])
        x = model.model.encoder.proj(model.model.features(batch)[0])
        positions = torch.arange(n)
        if t.position_table is not None:
            x = t.position_table(x, positions)
        for block in t.layers[:layer]:
            x = block.forward_packed(x, torch.tensor([0, n]), rotary=t.rotary, positions=positions)
        block = t.layers[layer]
        return block.norm1(x) if block.norm_first else x


def test_steps_reject_a_layer_or_head_that_does_not_exist(model):
    with pytest.raises(ValueError, match=f"layer {LAYERS + 1} does not exist: the model has {LAYERS} layers"):
        model.steps(["I"], LAYERS, 0)
    with pytest.raises(ValueError, match=f"head 0 does not exist"):
        model.steps(["I"], 0, -1)
    with pytest.raises(ValueError, match="no tokens"):
        model.attention([])


def test_every_tag_layer_the_model_predicts_with_its_probabilities():
    from attnlab.tasks.tagging import load_tagger, predict_tags

    directory = tiny_tagger_dir(xpos_weight=1.0, full=True)
    model, loaded = load_explainable(directory), load_tagger(directory)
    tokens = tokenize(SENTENCE)
    expected = predict_tags(loaded.model, loaded.encoder(), loaded.vocabs, [tokens], probabilities=True)
    layers = model.annotate(tokens)
    assert [a["name"] for a in layers] == ["UPOS", "XPOS", "FEATS", "LEMMA"]
    for a in layers:
        assert a["tags"] == expected.tags[a["name"].lower()][0]
        np.testing.assert_allclose(a["probabilities"], expected.probs[a["name"].lower()][0], atol=1e-6)
    assert model.describe()["annotations"] == ["UPOS", "XPOS", "FEATS", "LEMMA"]
    assert model.tag([tokens, []]) == [(layers[0]["tags"], layers[0]["probabilities"]), ([], [])]


@pytest.mark.parametrize("encoder", ["none", "cnn", "bilstm", "window"])
def test_a_tagger_without_attention_gives_its_tags_and_says_why_there_is_no_attention(encoder):
    model = load_explainable(tiny_tagger_dir(steps=0, encoder=encoder))
    assert (model.layers, model.heads) == (0, 0)
    assert f"'{encoder}' encoder, which has no attention" in model.no_attention
    [(tags, probs)] = model.tag([["I", "saw"]])
    [upos] = model.annotate(["I", "saw"])  # the tiny models have no XPOS head
    assert upos["name"] == "UPOS" and upos["tags"] == tags and np.allclose(upos["probabilities"], probs)
    for call in (lambda: model.attention(["I"]), lambda: model.steps(["I"], 0, 0)):
        with pytest.raises(ValueError, match=f"'{encoder}' encoder, which has no attention"):
            call()


def test_explain_refuses_a_tagger_without_attention_in_one_line(capsys):
    assert main(["explain", "--model", str(tiny_tagger_dir(steps=0, encoder="none")), "I", "saw"]) == 2
    assert "'none' encoder, which has no attention" in capsys.readouterr().err


# -- the heatmaps --------------------------------------------------------------------------

def test_plot_draws_the_models_weights(model, tmp_path):
    tokens = tokenize(SENTENCE)
    tags, _, w = model.attention(tokens)
    path = tmp_path / "attn.png"
    drawn = plot_attention_grid(tokens, w, tags=tags, path=path)
    assert drawn.shape == (LAYERS, HEADS, len(tokens), len(tokens))
    np.testing.assert_allclose(drawn, w.double().numpy(), atol=1e-7)
    width, height = png_size(path)
    # one panel of at least 2.6 inches at 110 dpi per layer (rows) and head (columns), plus labels
    assert width >= HEADS * 2.6 * 110 and height >= LAYERS * 2.6 * 110
    assert path.stat().st_size > 20_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attn.png"]  # no temporary file left

    one = tmp_path / "one.png"
    drawn = plot_attention_grid(tokens, w, tags=tags, layer=1, head=0, path=one)
    assert drawn.shape == (1, 1, len(tokens), len(tokens))
    np.testing.assert_allclose(drawn[0, 0], w[1, 0].double().numpy(), atol=1e-7)
    w1, h1 = png_size(one)
    assert w1 < width and h1 < height


def test_plot_replaces_a_file_and_checks_its_inputs(tmp_path):
    w = torch.softmax(torch.randn(1, 2, 3, 3), -1)
    path = tmp_path / "a.png"
    path.write_bytes(b"old")
    plot_attention_grid(["a", "b", "c"], w, path=path)
    assert png_size(path)[0] > 100
    svg = tmp_path / "a.svg"
    plot_attention_grid(["a", "b", "c"], w, path=svg)
    assert svg.read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match="unknown image format '.jpg'"):
        plot_attention_grid(["a", "b", "c"], w, path=tmp_path / "a.jpg")
    with pytest.raises(ValueError, match=r"shape \(L, H, n, n\) with n = 2 tokens, got \(1, 2, 3, 3\)"):
        plot_attention_grid(["a", "b"], w, path=path)
    with pytest.raises(ValueError, match="head 3 does not exist: there are 2 heads"):
        plot_attention_grid(["a", "b", "c"], w, head=2, path=path)
    with pytest.raises(ValueError, match="got 2 tags for 3 tokens"):
        plot_attention_grid(["a", "b", "c"], w, tags=["X", "Y"], path=path)


# -- the command ---------------------------------------------------------------------------

def test_explain_writes_a_png_and_prints_the_tags(model, tmp_path, capsys):
    out = tmp_path / "attn.png"
    assert main(["explain", "--model", str(tiny_tagger_dir()), SENTENCE, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    tags, _, _ = model.attention(tokenize(SENTENCE))
    assert printed.splitlines()[0] == " ".join(f"{t}/{g}" for t, g in zip(tokenize(SENTENCE), tags))
    assert f"wrote {out} (layers x heads = {LAYERS} x {HEADS}" in printed
    width, height = png_size(out)
    assert width >= HEADS * 2.6 * 110 and height >= LAYERS * 2.6 * 110


def test_explain_steps_prints_the_models_numbers(model, capsys):
    tokens = tokenize(SENTENCE)
    assert main(["explain", "--model", str(tiny_tagger_dir()), SENTENCE, "--steps", "--layer", "2", "--head", "2"]) == 0
    printed = capsys.readouterr().out
    assert "Layer 2, head 2" in printed and "wrote" not in printed  # --steps alone draws nothing
    s = model.steps(tokens, 1, 1)
    n = len(tokens)
    for i in range(n):
        q = [float(x) for x in re.findall(FLOAT, re.search(rf"q\^{i + 1} = \[([^\]]*)\]", printed).group(1))]
        np.testing.assert_allclose(q, s.q[i], atol=1e-4)
    for header, expected in (("Step 2. alpha_(i,j)", s.alpha), ("Step 3. alpha'_(i,j)", s.alpha_prime)):
        rows = printed[printed.index(header):].splitlines()[2:2 + n]
        table = np.array([[float(x) for x in re.findall(FLOAT, r)[-n:]] for r in rows])
        np.testing.assert_allclose(table, expected, atol=1e-4)
    _, _, w = model.attention(tokens)
    rows = printed[printed.index("Step 3."):].splitlines()[2:2 + n]
    printed_weights = np.array([[float(x) for x in re.findall(FLOAT, r)[-n:]] for r in rows])
    np.testing.assert_allclose(printed_weights, w[1, 1].numpy(), atol=1e-4)


def test_render_steps_checks_the_sentence():
    from attnlab.reference import attend_steps

    q = np.eye(2)
    s = attend_steps(q, q, q, np.ones((2, 2), dtype=bool), "softmax")
    assert "alpha'_(i,j) = softmax_j" in render_steps(["a", "b"], s, layer=0, head=0)
    with pytest.raises(ValueError, match="steps cover 2 tokens, the sentence has 3"):
        render_steps(["a", "b", "c"], s, layer=0, head=0)


@pytest.mark.parametrize("args, message", [
    (["--layer", "3"], f"layer 3 does not exist: the model has {LAYERS} layers"),
    (["--head", "5", "--steps"], f"head 5 does not exist: the model has {HEADS} heads"),
    (["--out", "x.bmp"], "unknown image format '.bmp'"),
])
def test_explain_bad_choices_are_one_line_errors(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "--model", str(tiny_tagger_dir()), SENTENCE, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("attnlab explain: error: ") and message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("out, message", [
    ("x.jpg", "unknown image format '.jpg'"),
    ("a-file/x.png", "a-file is not a directory"),
    ("a-file/sub/x.png", "a-file is not a directory"),
    ("a-dir.png", "a-dir.png is a directory"),
])
def test_explain_checks_out_before_loading_the_model(out, message, tmp_path, capsys, monkeypatch):
    import attnlab.viz.model

    def must_not_load(path):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(attnlab.viz.model, "load_explainable", must_not_load)
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir.png").mkdir()
    assert main(["explain", "--model", str(tiny_tagger_dir()), SENTENCE, "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("attnlab explain: error: ") and message in err and err.count("\n") == 1


def test_image_format_accepts_directories_still_to_be_created(tmp_path):
    from attnlab.viz.heatmap import image_format

    assert image_format(tmp_path / "new" / "sub" / "x.PDF") == "pdf"
    w = torch.softmax(torch.randn(1, 1, 2, 2), -1)
    plot_attention_grid(["a", "b"], w, path=tmp_path / "new" / "x.png")
    assert png_size(tmp_path / "new" / "x.png")[0] > 100


def test_explain_without_a_model_directory(tmp_path, capsys):
    assert main(["explain", "--model", str(tmp_path / "missing"), SENTENCE]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and err.count("\n") == 1


# -- the explorer in a notebook ------------------------------------------------------------------

def _embedded(page: str) -> dict:
    """The data a page from ``show`` carries (window.ATTNLAB_EMBED = {...};)."""
    import json

    found = re.search(r"window\.ATTNLAB_EMBED = (\{.*?\});</script>", page, re.S)
    assert found, "no embedded data"
    return json.loads(found.group(1))


def test_show_returns_a_self_contained_page_with_the_models_numbers(model):
    import html
    from html.parser import HTMLParser

    from pathlib import Path

    import attnlab.viz.notebook
    from attnlab.viz import show
    from attnlab.viz.payload import attention_body, steps_body

    shown = show(model, "I saw a saw", compare="I saw the saw", view="model", layer=2, head=1)
    frame = shown._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and 'title="attnlab explorer"' in frame
    page = html.unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1))
    assert page == shown.html

    class Parts(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.links = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.links += [v for k, v in attrs if k in ("src", "href")]

    parts = Parts()
    parts.feed(page)
    assert set(parts.links) == {"data:,", "#"}  # no script, style or picture is fetched from anywhere ("#": the export links)
    from attnlab.viz.notebook import STATIC

    scripts = len(re.findall(r'<script src="/static/', (STATIC / "index.html").read_text(encoding="utf-8")))
    assert parts.tags.count("script") == 1 + scripts and parts.tags.count("style") == 1 and "link" in parts.tags
    assert "function drawHeatmap" in page and "function renderSteps" in page and "#steps-table" in page  # its own scripts and styles
    assert not re.search(r"https?://", page.replace("http://www.w3.org/2000/svg", ""))

    data = _embedded(page)
    tokens = tokenize("I saw a saw")
    assert data["hash"] == "text=I+saw+a+saw&view=model&layer=2&head=1&compare=I+saw+the+saw"
    assert set(data["sentences"]) == {"I saw a saw", "I saw the saw"}
    first = data["sentences"]["I saw a saw"]
    assert first["attention"] == attention_body(model, tokens)
    assert set(first["steps"]) == {f"{l},{h}" for l in range(LAYERS) for h in range(HEADS)}
    assert first["steps"]["1,0"] == steps_body(model, tokens, 1, 0)  # the head the page opens on, with its W
    # the other heads without their matrices W (they would make the page megabytes)
    assert first["steps"]["0,1"] == {**steps_body(model, tokens, 0, 1), "W": None}
    assert sum(s["W"] is not None for s in first["steps"].values()) == 1
    _, _, w = model.attention(tokens)
    np.testing.assert_allclose(first["attention"]["weights"], w.numpy(), atol=1e-6)
    assert data["health"]["model"]["layers"] == LAYERS


def test_show_takes_a_model_directory_and_refuses_what_it_cannot_show(tmp_path):
    from attnlab.viz import show

    shown = show(str(tiny_tagger_dir()), "They watch </script><b>it</b>")
    data = _embedded(shown.html)  # the sentence cannot end the script that carries it
    assert list(data["sentences"]) == ["They watch </script><b>it</b>"]
    assert shown.save(tmp_path / "page.html").read_text(encoding="utf-8") == shown.html
    with pytest.raises(ValueError, match="view 'grid' is unknown"):
        show(str(tiny_tagger_dir()), "I saw", view="grid")
    with pytest.raises(ValueError, match=f"layer {LAYERS + 1} does not exist"):
        show(str(tiny_tagger_dir()), "I saw", layer=LAYERS + 1)
    with pytest.raises(TypeError, match="loaded model .* or a model directory, got int"):
        show(3, "I saw")
    none = show(str(tiny_tagger_dir(steps=0, encoder="none")), "I saw")
    assert "which has no attention" in _embedded(none.html)["sentences"]["I saw"]["attention"]["no_attention"]


def test_the_pages_scripts_declare_each_top_level_name_once():
    """The explorer's scripts share one global scope (plain <script> elements, inlined in a saved
    page): a name two of them declare stops the later one with a SyntaxError."""
    from collections import Counter

    from attnlab.viz.notebook import STATIC

    declared = Counter()
    for script in sorted(STATIC.glob("*.js")):
        for name in re.findall(r"^(?:async\s+)?(?:const|let|var|function|class)\s+([A-Za-z_$][\w$]*)",
                               script.read_text(encoding="utf-8"), re.M):
            declared[name] += 1
    assert len(declared) > 50
    assert [name for name, count in declared.items() if count > 1] == []
