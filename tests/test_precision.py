"""Inference in bfloat16 (``attnlab.precision``): which format runs, and that bf16 computes
the fp32 model's function within bfloat16's rounding."""

from __future__ import annotations

import logging
import pickle

import pytest
import torch

import attnlab
from attnlab import precision
from attnlab.tasks.tagging import predict_tags
from tiny_models import full_corpus, tiny_pipeline_dir, tiny_tagger_dir

ZEN4 = "flags\t\t: fpu vme sse avx2 avx512f avx512_bf16 avx512_vnni\n"
XEON_AMX = "flags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8\n"
OLD = "flags\t\t: fpu sse avx2 fma\n"


@pytest.mark.parametrize("text, native, named", [(ZEN4, True, "AVX-512 BF16"), (XEON_AMX, True, "AMX-BF16"),
                                                 (OLD, False, "neither"), ("", False, "neither")])
def test_flags_tell_native_bf16(text, native, named):
    found, why = precision.bf16_from_cpuinfo(text)
    assert found is native and named in why


@pytest.mark.parametrize("native", [True, False])
def test_auto_takes_bf16_only_where_native(monkeypatch, caplog, native):
    monkeypatch.setattr(precision, "native_bf16", lambda: (native, "told by the test"))
    assert precision.resolve("auto") == ("bf16" if native else "fp32")
    assert precision.resolve("fp32") == "fp32"
    with caplog.at_level(logging.WARNING, logger="attnlab.precision"):
        assert precision.resolve("bf16") == "bf16"
    assert ("slower than fp32" in caplog.text) is (not native)


def test_unknown_precision_is_refused_before_loading():
    with pytest.raises(ValueError, match="precision 'fp16' is unknown; choose one of fp32, bf16, int8, auto"):
        attnlab.load("/no/such/model", precision="fp16")


def test_bf16_tags_as_fp32_within_rounding(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda: (True, "told by the test"))
    fp32 = attnlab.load(str(tiny_tagger_dir(full=True)), precision="fp32")
    bf16 = attnlab.load(str(tiny_tagger_dir(full=True)))  # "auto", and this CPU is said to have bf16
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    forms = [s.forms for s in full_corpus(60, seed=7)]
    loaded = fp32.loaded
    a = predict_tags(loaded.model, loaded.encoder(), loaded.vocabs, forms, probabilities=True)
    b = predict_tags(loaded.model, loaded.encoder(), loaded.vocabs, forms, probabilities=True, precision="bf16")
    words = sum(map(len, forms))
    for layer in a.tags:
        pa = torch.tensor([p for row in a.probs[layer] for p in row])
        pb = torch.tensor([p for row in b.probs[layer] for p in row])
        same = sum(x == y for ra, rb in zip(a.tags[layer], b.tags[layer]) for x, y in zip(ra, rb))
        assert same >= 0.97 * words, layer
        assert (pa - pb).abs().max() < 0.05, layer
        if layer == "upos":  # bf16 keeps 8 significant bits: the products did run in it
            assert (pa - pb).abs().max() > 1e-4
    # the Tagger passes its precision on: its probabilities are bf16's
    got = [w.probs["upos"] for s in bf16.tag(forms[:5]) for w in s]
    want = [p for row in b.probs["upos"][:5] for p in row]
    assert got == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("asked", ["fp32", "bf16"])
def test_precision_survives_pickling(monkeypatch, asked):
    monkeypatch.setattr(precision, "native_bf16", lambda: (True, "told by the test"))
    tagger = attnlab.load(str(tiny_tagger_dir()), precision=asked)
    again = pickle.loads(pickle.dumps(tagger))
    assert again.precision == asked


def test_segmenter_in_bf16_reads_as_fp32(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda: (True, "told by the test"))
    text = "I saw a saw. The saws cut wood.\n\nWe saw them."
    fp32 = attnlab.load(str(tiny_pipeline_dir()), precision="fp32")(text)
    bf16 = attnlab.load(str(tiny_pipeline_dir()), precision="bf16")(text)
    spans = [(t.start, t.end) for s in fp32.sentences for t in s.tokens]
    assert spans and [(t.start, t.end) for s in bf16.sentences for t in s.tokens] == spans


def test_training_in_bf16_learns_as_fp32_does(tmp_path, one_thread):
    from attnlab.train import TrainConfig, train
    from test_train_resume import build, quiet

    config = dict(epochs=3, batch_tokens=60, lr=5e-3, warmup=4, schedule="cosine", seed=7, checkpoint_every=0,
                  patience=0)
    results, weights = {}, {}
    for p in ("fp32", "bf16"):
        model, task = build()
        results[p] = train(model, task, TrainConfig(**config, precision=p), tmp_path / p, **quiet())
        weights[p] = {k: v.clone() for k, v in model.state_dict().items()}
    # the same run to within bfloat16's rounding: it trained (weights moved apart a little, not far)
    diff = max(float((weights["fp32"][k] - weights["bf16"][k]).abs().max()) for k in weights["fp32"])
    assert 0 < diff < 0.25
    assert abs(results["bf16"].best_score - results["fp32"].best_score) < 0.05
    with pytest.raises(ValueError, match="precision 'fp16': training runs in fp32 or bf16"):
        TrainConfig(precision="fp16")


def test_int8_is_asked_for_on_the_cpu_only():
    assert precision.resolve("int8") == "int8"
    with pytest.raises(ValueError, match="precision int8 runs on the CPU only, not on cuda"):
        precision.resolve("int8", "cuda")


def test_int8_linear_is_the_product_within_quantization_and_follows_weight_changes():
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 32)
    x = torch.randn(3, 7, 64)
    with torch.no_grad(), precision.autocast("int8"):
        got = layer(x)
    with torch.no_grad():
        want = layer(x)
    assert got.shape == want.shape == (3, 7, 32) and got.dtype == torch.float32
    error = float((got - want).abs().max() / want.abs().max())
    assert 0 < error < 0.02  # it did run in int8, and stayed close
    with torch.no_grad():
        layer.weight.mul_(2)  # a changed weight is quantized and packed again
    with torch.no_grad(), precision.autocast("int8"):
        again = layer(x)
    with torch.no_grad():
        assert float((again - layer(x)).abs().max() / layer(x).abs().max()) < 0.02


def test_int8_tags_as_fp32_within_quantization():
    fp32 = attnlab.load(str(tiny_tagger_dir(full=True)), precision="fp32")
    int8 = attnlab.load(str(tiny_tagger_dir(full=True)), precision="int8")
    forms = [s.forms for s in full_corpus(60, seed=7)]
    words = sum(map(len, forms))
    a = {w.form + str(i): w for i, s in enumerate(fp32.tag(forms)) for w in s}
    b = {w.form + str(i): w for i, s in enumerate(int8.tag(forms)) for w in s}
    assert sum(a[k].upos == b[k].upos for k in a) >= 0.97 * words
    gaps = [abs(a[k].probs["upos"] - b[k].probs["upos"]) for k in a]
    assert 1e-4 < max(gaps) < 0.15  # a model 8 wide; on the treebanks: RESULTS.md


def test_int8_gives_a_sentence_the_same_numbers_whatever_its_batch():
    tagger = attnlab.load(str(tiny_tagger_dir(full=True)), precision="int8")
    forms = [s.forms for s in full_corpus(40, seed=3)]
    alone = tagger.tag([forms[5]])[0]
    batched = tagger.tag(forms)[5]
    assert [w.probs for w in alone] == [w.probs for w in batched]
