"""The five context encoders: shapes, padding, receptive fields, and the seed's "I saw a saw"."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from attnlab.encoders import ENCODERS, EncoderConfig, build_encoder

D_IN = 12
SMALL = EncoderConfig(hidden=16, layers=2, heads=2, d_ff=32, window=1, kernel=3, dropout=0.0)


pytestmark = pytest.mark.usefixtures("one_thread")


def make(name: str, config: EncoderConfig = SMALL, seed: int = 0):
    torch.manual_seed(seed)
    return build_encoder(name, D_IN, config).eval()


@pytest.mark.parametrize("name", ENCODERS)
def test_shape_and_zero_padding(name):
    enc = make(name)
    x = torch.randn(3, 7, D_IN)
    lengths = torch.tensor([7, 4, 1])
    y = enc(x, lengths)
    assert y.shape == (3, 7, enc.out_dim)
    expected_width = 2 * SMALL.hidden if name == "bilstm" else SMALL.hidden
    assert enc.out_dim == expected_width
    assert torch.all(y[1, 4:] == 0) and torch.all(y[2, 1:] == 0)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", ENCODERS)
def test_padding_never_leaks_and_batching_changes_nothing(name):
    enc = make(name)
    x = torch.randn(2, 6, D_IN)
    lengths = torch.tensor([6, 3])
    y = enc(x, lengths)
    noisy = x.clone()
    noisy[1, 3:] = 1e3 * torch.randn(3, D_IN)  # garbage in the padding
    assert torch.allclose(enc(noisy, lengths), y, atol=1e-5)
    alone = enc(x[1:, :3], torch.tensor([3]))  # the short sentence on its own, unpadded
    assert torch.allclose(alone[0], y[1, :3], atol=1e-5)


@pytest.mark.parametrize("name", ENCODERS)
def test_gradients_reach_every_real_input(name):
    enc = make(name)
    x = torch.randn(2, 5, D_IN, requires_grad=True)
    y = enc(x, torch.tensor([5, 2]))
    (y * torch.randn_like(y)).sum().backward()  # a random readout (a plain sum is constant after LayerNorm)
    grad_norm = x.grad.norm(dim=-1)  # (B, N)
    assert torch.all(grad_norm[0] > 0) and torch.all(grad_norm[1, :2] > 0)
    assert torch.all(grad_norm[1, 2:] == 0)


def _influence(enc, n: int = 9, i: int = 4) -> list[bool]:
    """Which input positions change the output at position i."""
    torch.manual_seed(1)
    x = torch.randn(1, n, D_IN)
    lengths = torch.tensor([n])
    base = enc(x, lengths)[0, i]
    changed = []
    for j in range(n):
        x2 = x.clone()
        x2[0, j] += 1.0
        changed.append(not torch.allclose(enc(x2, lengths)[0, i], base, atol=1e-6))
    return changed


def test_receptive_fields():
    # none: only the token itself
    assert _influence(make("none")) == [j == 4 for j in range(9)]
    # window k=1: i-1 .. i+1
    assert _influence(make("window")) == [abs(j - 4) <= 1 for j in range(9)]
    # cnn, 2 layers of width 3: i-2 .. i+2
    assert _influence(make("cnn")) == [abs(j - 4) <= 2 for j in range(9)]
    # bilstm and attention: the whole sentence
    assert all(_influence(make("bilstm")))
    assert all(_influence(make("attention")))


def test_none_maps_equal_vectors_to_equal_outputs_whatever_the_context():
    enc = make("none")
    v = torch.randn(D_IN)
    x = torch.randn(2, 4, D_IN)
    x[0, 1] = v
    x[1, 3] = v
    y = enc(x, torch.tensor([4, 4]))
    assert torch.equal(y[0, 1], y[1, 3])


def test_bad_inputs_raise_clear_errors():
    enc = make("cnn")
    with pytest.raises(ValueError, match=r"x must have shape \(B, N, 12\)"):
        enc(torch.randn(2, 3, 5), torch.tensor([3, 3]))
    with pytest.raises(ValueError, match="lengths must have shape"):
        enc(torch.randn(2, 3, D_IN), torch.tensor([3]))
    with pytest.raises(ValueError, match="lengths must lie in"):
        enc(torch.randn(2, 3, D_IN), torch.tensor([3, 4]))
    with pytest.raises(ValueError, match="unknown encoder 'rnn'"):
        build_encoder("rnn", D_IN)
    with pytest.raises(ValueError, match="kernel must be odd"):
        EncoderConfig(kernel=4)


def test_config_json_round_trip():
    cfg = EncoderConfig(hidden=64, layers=3, positions="sinusoidal")
    assert EncoderConfig.from_json(cfg.to_json()) == cfg


# -- the seed's example: only encoders with context tell the two "saw" apart -----------

def _train_toy_tagger(name: str):
    from attnlab.features import FeatureConfig
    from attnlab.tasks.tagging import Tagger, TaggerConfig, TaggerVocabs, TaggingTask
    from attnlab.tasks.tagging_demo import toy_corpus
    from attnlab.train import TrainConfig, train

    from attnlab.tasks.tagging_demo import AMBIGUOUS, ToySentence

    train_set = toy_corpus(300, seed=0)
    # dev: "I saw a saw ." for every ambiguous word: the same word as VERB and as NOUN
    dev_set = [
        ToySentence([subj, w, det, w, "."], ["PRON", "VERB", "DET", "NOUN", "PUNCT"], ["PRP", "VBP", "DT", "NN", "."])
        for subj in ("I", "we") for w in AMBIGUOUS for det in ("a", "the")
    ]
    vocabs = TaggerVocabs.build(train_set)
    config = TaggerConfig(
        encoder=name,
        features=FeatureConfig(word_dim=16, shape_dim=4, char_dim=8, char_filters=8, char_widths=(3,),
                               word_dropout=0.0, dropout=0.0),
        encoder_config=EncoderConfig(hidden=32, layers=2 if name == "attention" else 1, heads=2, d_ff=64,
                                     window=1, dropout=0.0),
        xpos_weight=0.0,
    )
    torch.manual_seed(0)
    model = Tagger(config, vocabs)
    task = TaggingTask(model, vocabs, train_set, dev_set)
    return model, task, TrainConfig(epochs=15, batch_tokens=300, lr=1e-2, warmup=5, patience=0, checkpoint_every=0), vocabs


@pytest.mark.parametrize("name", ENCODERS)
def test_only_context_tells_the_two_saws_apart(name, tmp_path):
    from attnlab.tasks.tagging import predict
    from attnlab.train import train

    model, task, cfg, vocabs = _train_toy_tagger(name)
    # the best dev accuracy any context-free tagger can reach: each word always gets its
    # most frequent dev tag
    counts: dict[str, Counter] = {}
    for s in task.dev:
        for w, t in zip(s.forms, s.upos):
            counts.setdefault(w, Counter())[t] += 1
    ceiling = sum(c.most_common(1)[0][1] for c in counts.values()) / sum(sum(c.values()) for c in counts.values())
    assert ceiling == pytest.approx(0.8)  # 4 of 5 tokens: one of the two ambiguous words is always wrong
    result = train(model, task, cfg, tmp_path, progress=False, log=lambda m: None)
    tags, _ = predict(model, task.encoder, vocabs, [["I", "saw", "a", "saw", "."], ["the", "book", "saw", "a", "book", "."]])
    if name == "none":
        # the same word gets the same vector, so the same tag, in both places
        assert tags[0][1] == tags[0][3] and tags[1][1] == tags[1][4]
        assert result.best_score <= ceiling + 1e-9
    else:
        assert tags[0] == ["PRON", "VERB", "DET", "NOUN", "PUNCT"]
        assert tags[1] == ["DET", "NOUN", "VERB", "DET", "NOUN", "PUNCT"]
        assert result.best_score > ceiling + 0.15
