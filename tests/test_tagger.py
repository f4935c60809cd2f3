"""Features (unknown-word path), the tagger's pieces, and the scores of `attnlab eval`."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from attnlab.encoders import EncoderConfig
from attnlab.evaluate import score_tags
from attnlab.features import PAD, UNK, FeatureConfig, FeatureEncoder, FeatureVocabs, TokenFeatures, word_shape
from attnlab.tasks.tagging import (
    Tagger, TaggerConfig, TaggerVocabs, decode, length_batches, load_tagger, predict, save_tagger, tagging_loss,
)
from attnlab.tasks.tagging_demo import toy_corpus

FEATS = FeatureConfig(word_dim=8, shape_dim=4, char_dim=6, char_filters=5, char_widths=(2, 3), max_chars=8,
                      word_dropout=0.0, dropout=0.0)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def vocabs():
    return FeatureVocabs.build([["I", "saw", "a", "saw", "."], ["The", "dog", "barked", "."]])


# -- features --------------------------------------------------------------------------

@pytest.mark.parametrize("form, shape", [
    ("saw", "x"), ("Saw", "Xx"), ("SAW", "X"), ("U.S.", "X.X."), ("1,000", "d,d"), ("McDonald's", "XxXx'x"),
    ("e-mail", "x-x"), ("3rd", "dx"), ("", ""), ("Zürich", "Xx"), (":-)", ":-)"),
])
def test_word_shape(form, shape):
    assert word_shape(form) == shape


def test_vocab_is_lowercased_and_knows_what_it_saw(vocabs):
    assert vocabs.is_known("saw") and vocabs.is_known("SAW") and vocabs.is_known("the")
    assert not vocabs.is_known("cat")
    again = FeatureVocabs.from_json(vocabs.to_json())
    assert again.words.encode(["saw", "dog", "cat"]) == vocabs.words.encode(["saw", "dog", "cat"])


def test_encode_batch_indices(vocabs):
    enc = FeatureEncoder(vocabs, max_chars=8)
    batch = enc.encode([["I", "saw", "a", "saw"], ["cat", "saw"]])
    assert batch.lengths.tolist() == [4, 2]
    assert batch.words.shape == (2, 4)
    assert batch.words[1, 0] == UNK  # unknown word
    assert batch.words[1, 2:].tolist() == [PAD, PAD]
    # four distinct forms (I, saw, a, cat) -> four rows of characters
    assert batch.chars.shape[0] == 4
    # both "saw" tokens of both sentences point at the same character row
    assert batch.char_index[0, 1] == batch.char_index[0, 3] == batch.char_index[1, 1]
    # char rows: <w> s a w </w>
    row = batch.chars[batch.char_index[0, 1]]
    assert vocabs.chars.decode(row[:5].tolist()) == ["<w>", "s", "a", "w", "</w>"]
    assert row[5:].tolist() == [PAD] * (row.shape[0] - 5)


def test_long_words_keep_their_beginning_and_end(vocabs):
    enc = FeatureEncoder(vocabs, max_chars=8)
    _, _, chars = enc.token("unbelievably")
    assert vocabs.chars.decode(chars)[0] == "<w>" and vocabs.chars.decode(chars)[-1] == "</w>"
    assert len(chars) == 8 + 2
    # 'unbe' + 'ably', unknown characters as <unk>
    decoded = vocabs.chars.decode(chars[1:-1])
    assert decoded[0] == "<unk>" and decoded[-1] == "<unk>" and decoded[2] == "b"


def test_unknown_words_get_distinct_vectors_from_their_characters(vocabs):
    torch.manual_seed(0)
    feats = TokenFeatures(FEATS, vocabs).eval()
    enc = FeatureEncoder(vocabs, max_chars=8)
    batch = enc.encode([["sawed", "dogs", "saw"]])
    assert batch.words[0, :2].tolist() == [UNK, UNK]
    x = feats(batch)[0]  # (3, out_dim)
    w = FEATS.word_dim
    # both unknown words share the UNK word embedding ...
    assert torch.equal(x[0, :w], x[1, :w])
    assert torch.equal(x[0, :w], feats.word_embed.weight[UNK])
    # ... but their character (and shape) parts differ
    assert not torch.allclose(x[0, w:], x[1, w:])
    # gradient of an unknown word's vector reaches the character embeddings
    x[0].sum().backward()
    assert feats.char_cnn.embed.weight.grad.abs().sum() > 0


def test_word_dropout_only_in_training(vocabs):
    torch.manual_seed(0)
    cfg = FeatureConfig(**{**FEATS.to_json(), "word_dropout": 0.5})
    feats = TokenFeatures(cfg, vocabs)
    batch = FeatureEncoder(vocabs, 8).encode([["saw"] * 200])
    seen_unk = feats.word_embed.weight[UNK]
    train_out = feats.train()(batch)[0, :, : cfg.word_dim]
    dropped = (train_out == seen_unk).all(dim=-1).float().mean().item()
    assert 0.35 < dropped < 0.65
    eval_out = feats.eval()(batch)[0, :, : cfg.word_dim]
    assert not (eval_out == seen_unk).all(dim=-1).any()


# -- the tagger's pieces ---------------------------------------------------------------

def test_tagging_loss_is_mean_cross_entropy_over_real_tokens():
    scores = torch.tensor([[[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 2.0]],
                           [[0.0, 0.0, 3.0, 1.0], [9.0, 9.0, 9.0, 9.0]]])  # (B=2, N=2, C=4)
    gold = torch.tensor([[2, 3], [3, PAD]])
    lengths = torch.tensor([2, 1])

    def nll(row, k):
        return -(row[k] - math.log(sum(math.exp(v) for v in row)))

    expected = (nll([0, 0, 1, 0], 2) + nll([0, 0, 0, 2], 3) + nll([0, 0, 3, 1], 3)) / 3
    assert tagging_loss(scores, gold, lengths).item() == pytest.approx(expected, rel=1e-6)


def test_decode_takes_argmax_never_pad_or_unk_and_cuts_padding():
    scores = torch.tensor([[[5.0, 4.0, 1.0, 2.0], [0.0, 0.0, 3.0, 1.0], [0.0, 0.0, 1.0, 3.0]],
                           [[0.0, 0.0, 1.0, 2.0], [0.0, 0.0, 9.0, 0.0], [0.0, 0.0, 9.0, 0.0]]])
    assert decode(scores, torch.tensor([3, 1])) == [[3, 2, 3], [3]]


def test_length_batches_cover_everything_within_budget():
    lengths = [5, 1, 9, 3, 3, 7, 2]
    batches = length_batches(lengths, batch_tokens=10)
    assert sorted(i for b in batches for i in b) == list(range(7))
    for b in batches:
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 10


def _toy_tagger(encoder="cnn", xpos_weight=0.5, seed=0):
    train = toy_corpus(40, seed=0)
    vocabs = TaggerVocabs.build(train)
    config = TaggerConfig(encoder=encoder, features=FEATS, xpos_weight=xpos_weight,
                          encoder_config=EncoderConfig(hidden=16, layers=1, heads=2, d_ff=16, dropout=0.0))
    torch.manual_seed(seed)
    return Tagger(config, vocabs), vocabs, train


def test_emissions_shapes_and_xpos_head():
    model, vocabs, train = _toy_tagger()
    batch = FeatureEncoder(vocabs.features, 8).encode([train[0].forms, train[1].forms])
    out = model(batch)
    n = max(len(train[0].forms), len(train[1].forms))
    assert out.upos.shape == (2, n, len(vocabs.upos))
    assert out.xpos.shape == (2, n, len(vocabs.xpos))
    model_no_xpos, _, _ = _toy_tagger(xpos_weight=0.0)
    assert model_no_xpos(batch).xpos is None


def test_a_shared_character_table_gives_the_per_batch_features():
    model, vocabs, train = _toy_tagger()
    model.eval()
    sentences = [s.forms for s in train[:6]] + [["Unseen", "wordsmithery", "."]]
    enc = FeatureEncoder(vocabs.features, 8)
    rows, table = enc.char_table(model.features, [w for s in sentences for w in s] + ["extra"])
    assert table.shape == (len(rows), model.features.char_cnn.out_dim) and len(rows) == len({w for s in sentences for w in s}) + 1
    plain = enc.encode(sentences)
    shared = enc.encode(sentences, rows=rows)
    shared.char_vectors = table
    real = plain.words != PAD  # padding rows may differ: nothing reads them
    with torch.no_grad():
        a, b = model.features(plain)[real], model.features(shared)[real]
    assert a.shape == (sum(len(s) for s in sentences), model.features.out_dim)
    assert torch.allclose(a, b, atol=1e-6) and a.abs().sum() > 0


def test_inference_reads_the_character_cnn_from_tables_and_a_form_gets_one_vector_whatever_its_batch(vocabs):
    torch.manual_seed(0)
    cnn = TokenFeatures(FEATS, vocabs).eval().char_cnn
    enc = FeatureEncoder(vocabs, max_chars=8)
    forms = ["I", "saw", "a", "dogs", "sawed", "wordsmithery", "."]
    chars = enc.char_ids(forms)
    with torch.enable_grad():
        convolved = cnn(chars)  # with gradients: the convolution
    with torch.no_grad():
        looked_up = cnn(chars)
        alone = torch.cat([cnn(enc.char_ids([f])) for f in forms])
        reversed_batch = cnn(enc.char_ids(forms[::-1])).flip(0)
    assert convolved.requires_grad and not looked_up.requires_grad
    assert (convolved - looked_up).abs().max() < 1e-5 and looked_up.abs().sum() > 0
    # bit for bit: the padding and the neighbours of a form do not change its vector
    assert torch.equal(alone, looked_up) and torch.equal(reversed_batch, looked_up)


def test_character_vectors_are_kept_across_calls_until_the_weights_change():
    model, vocabs, train = _toy_tagger()
    model.eval()
    enc = FeatureEncoder(vocabs.features, 8)
    fresh = FeatureEncoder(vocabs.features, 8)
    first = ["I", "saw", "a", "saw", "."]
    enc.char_table(model.features, first)
    assert set(enc.vectors.rows) == set(first)
    second = ["a", "dog", "barked", "."]
    rows, table = enc.char_table(model.features, second)
    assert set(enc.vectors.rows) == set(first) | set(second) and set(rows) == set(second)
    fresh_rows, fresh_table = fresh.char_table(model.features, second)
    assert all(torch.equal(table[rows[f]], fresh_table[fresh_rows[f]]) for f in second)
    # a step of training changes the weights: nothing computed before is reused
    with torch.no_grad():
        model.features.char_cnn.convs[0].bias += 1.0
    rows, changed = enc.char_table(model.features, second)
    assert set(enc.vectors.rows) == set(second)
    assert not torch.equal(changed[rows["dog"]], table[rows["dog"]])
    # weights made under inference mode keep no version count: a change is still seen
    with torch.inference_mode():
        frozen = copy.deepcopy(model.features)
        rows, before = enc.char_table(frozen, second)
        frozen.char_cnn.convs[0].bias += 1.0
        rows, after = enc.char_table(frozen, second)
    assert not torch.equal(before[rows["dog"]], after[rows["dog"]])
    # full: it starts again, and gives the same vectors
    small = FeatureEncoder(vocabs.features, 8)
    small.vectors.capacity = 5
    small.char_table(model.features, first)
    rows, again = small.char_table(model.features, second)
    assert set(small.vectors.rows) == set(second)
    fresh_rows, fresh_table = FeatureEncoder(vocabs.features, 8).char_table(model.features, second)
    assert all(torch.equal(again[rows[f]], fresh_table[fresh_rows[f]]) for f in second)


def test_predict_keeps_input_order_and_matches_single_sentences():
    model, vocabs, train = _toy_tagger()
    sentences = [s.forms for s in train[:12]] + [["unseen", "words", "here"]]
    enc = FeatureEncoder(vocabs.features, 8)
    together, together_x = predict(model, enc, vocabs, sentences, batch_tokens=16)
    for s, tags, xtags in zip(sentences, together, together_x):
        alone, alone_x = predict(model, enc, vocabs, [s])
        assert alone[0] == tags and alone_x[0] == xtags
        assert len(tags) == len(s)
        assert set(tags) <= set(vocabs.upos.decode(list(range(2, len(vocabs.upos)))))


def test_save_and_load_give_identical_predictions(tmp_path):
    model, vocabs, train = _toy_tagger(encoder="attention")
    save_tagger(tmp_path / "m", model, vocabs, {"note": "test"})
    loaded = load_tagger(tmp_path / "m")
    assert loaded.record["note"] == "test" and loaded.config == model.config
    sentences = [s.forms for s in train[:8]]
    enc = FeatureEncoder(vocabs.features, 8)
    model.eval()
    batch = enc.encode(sentences)
    assert torch.equal(model(batch).upos, loaded.model(loaded.encoder().encode(sentences)).upos)


# -- evaluation numbers ----------------------------------------------------------------

def test_scores_on_a_hand_made_example():
    gold = [["PRON", "VERB", "DET", "NOUN"], ["DET", "NOUN", "VERB"]]
    pred = [["PRON", "VERB", "DET", "VERB"], ["DET", "NOUN", "NOUN"]]
    unknown = [[False, False, False, True], [False, True, True]]
    r = score_tags(gold, pred, unknown)
    assert (r.tokens, r.correct) == (7, 5)
    assert r.accuracy == pytest.approx(5 / 7)
    assert (r.unknown_tokens, r.unknown_correct) == (3, 1)
    assert r.unknown_accuracy == pytest.approx(1 / 3)
    by_tag = {s.tag: s for s in r.per_tag}
    # NOUN: gold 2, predicted 2 (one right) -> P 1/2, R 1/2
    assert (by_tag["NOUN"].precision, by_tag["NOUN"].recall, by_tag["NOUN"].f1) == pytest.approx((0.5, 0.5, 0.5))
    # VERB: gold 2, predicted 2 (one right)
    assert (by_tag["VERB"].precision, by_tag["VERB"].recall) == pytest.approx((0.5, 0.5))
    # DET, PRON perfect
    assert by_tag["DET"].f1 == 1.0 and by_tag["PRON"].f1 == 1.0 and by_tag["DET"].support == 2
    assert r.macro_f1 == pytest.approx((0.5 + 0.5 + 1 + 1) / 4)
    assert [(c.gold, c.predicted, c.count) for c in r.confusions] == [("NOUN", "VERB", 1), ("VERB", "NOUN", 1)]
    # ordered by gold count, then name
    assert [s.tag for s in r.per_tag] == ["DET", "NOUN", "VERB", "PRON"]
    j = r.to_json()
    assert j["accuracy"] == pytest.approx(5 / 7) and j["per_tag"][1]["tag"] == "NOUN"
    table = r.format()
    assert "71.43%" in table and "33.33%" in table and "NOUN   -> VERB" in table


def test_scores_for_a_tag_never_predicted_or_never_gold():
    r = score_tags([["X", "X"]], [["Y", "X"]])
    by_tag = {s.tag: s for s in r.per_tag}
    assert (by_tag["X"].precision, by_tag["X"].recall) == pytest.approx((1.0, 0.5))
    assert (by_tag["Y"].precision, by_tag["Y"].recall, by_tag["Y"].f1, by_tag["Y"].support) == (0.0, 0.0, 0.0, 0)
    assert r.unknown_accuracy is None


def test_scores_reject_mismatched_lengths():
    with pytest.raises(ValueError, match="sentence 1: 2 gold tags but 1 predicted"):
        score_tags([["A", "B"]], [["A"]])
    with pytest.raises(ValueError, match="2 sentences but predictions have 1"):
        score_tags([["A"], ["B"]], [["A"]])


def test_no_forms_give_an_empty_character_table_of_the_right_width():
    model, vocabs, _ = _toy_tagger()
    model.eval()
    rows, table = FeatureEncoder(vocabs.features, 8).char_table(model.features, [])
    assert rows == {} and table.shape == (0, model.features.char_cnn.out_dim)
