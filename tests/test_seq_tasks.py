"""Sequence classification (N -> 1) and seq2seq lemmatization (N -> M): cross-attention,
cached decoding, beam search, training on tiny generated data, baselines, the CLI."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from tiny_tasks import genre_corpus, genre_text, lemma_corpus, lemma_text, random_stems  # noqa: E402

from attnlab.cli import main  # noqa: E402
from attnlab.encoders import EncoderConfig  # noqa: E402
from attnlab.features import FeatureConfig  # noqa: E402
from attnlab.modules import MultiHeadSelfAttention  # noqa: E402
from attnlab.tasks.classification import (  # noqa: E402
    BowBaseline, ClassificationTask, Classifier, ClassifierConfig, ClassifierVocabs, genre, score_labels,
)
import attnlab.tasks.seq2seq as s2s  # noqa: E402
from attnlab.checkpoint import CheckpointError  # noqa: E402
from attnlab.tasks.seq2seq import (  # noqa: E402
    BOS, EOS, LOOKUP, LemmaBaseline, LemmaTable, LemmaVocab, Lemmatizer, Seq2seqConfig, Seq2seqTask, add_lookup_table,
    beam_decode, greedy_decode, lemma_triples, load_lemmatizer, predict_lemmas, save_lemmatizer, score_lemmas,
)
from attnlab.train import TrainConfig, train  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")


def quiet(**kw):
    return dict(progress=False, log=lambda m: None, **kw)


# -- attention pieces --------------------------------------------------------------------

def test_cross_attention_uses_the_same_weights():
    torch.manual_seed(0)
    mha = MultiHeadSelfAttention(8, 2).eval()
    x, c = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    lengths = torch.tensor([5, 2])
    y = mha.attend(x, c, key_lengths=lengths)
    # by hand: q from x, k and v from c, through the stacked W^q, W^k, W^v and W^O
    b = mha.qkv.bias
    q = (x @ mha.Wq.T + b[:8]).view(2, 3, 2, 4).transpose(1, 2)
    k = (c @ mha.Wk.T + b[8:16]).view(2, 5, 2, 4).transpose(1, 2)
    v = (c @ mha.Wv.T + b[16:]).view(2, 5, 2, 4).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / 2.0
    scores[1, :, :, 2:] = float("-inf")  # the second context has 2 real tokens
    ref = mha.out((scores.softmax(-1) @ v).transpose(1, 2).flatten(2))
    torch.testing.assert_close(y, ref, atol=1e-6, rtol=0)
    # with the sequence as its own context it is self-attention
    torch.testing.assert_close(mha.attend(x, x), mha(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(mha(x, context=c, lengths=lengths), y)


def tiny_lemmatizer(vocab_size=30, seed=0):
    torch.manual_seed(seed)
    return Lemmatizer(Seq2seqConfig(d_model=16, heads=2, encoder_layers=2, decoder_layers=2, d_ff=32, dropout=0.0),
                      vocab_size).eval()


def test_cached_decoding_equals_uncached():
    model = tiny_lemmatizer()
    src = torch.randint(4, 30, (3, 7))
    src_lengths = torch.tensor([7, 4, 1])
    tgt = torch.randint(4, 30, (3, 6))
    tgt[:, 0] = BOS
    whole = model(src, src_lengths, tgt)  # (B, N, V), all steps at once
    memory = model.encode(src, src_lengths)
    cache = model.decoder.new_cache()
    # one step, then two, then three: the cache grows by what each call adds
    parts = [model.decode(tgt[:, a:b], memory, src_lengths, cache) for a, b in ((0, 1), (1, 3), (3, 6))]
    assert cache.steps == 6 and cache.layers[0]["self"]["k"].shape == (3, 2, 6, 8)
    torch.testing.assert_close(torch.cat(parts, dim=1), whole, atol=1e-5, rtol=0)
    assert float(whole.detach().std()) > 0.1  # the comparison is not between near-zero numbers


def sequence_logp(model, src, src_lengths, row: int, ids: list[int], finished: bool) -> float:
    """Log-probability of one output (plus EOS when finished) under teacher forcing, over
    the symbols decoding may choose (EOS and the characters)."""
    tgt = torch.tensor([[BOS, *ids]])
    scores = model(src[row:row + 1], src_lengths[row:row + 1], tgt)[0]  # (N, V)
    logp = torch.log_softmax(scores[:, EOS:], dim=-1)  # specials before EOS are never chosen
    nxt = [*ids, EOS] if finished else ids
    return sum(float(logp[t, s - EOS]) for t, s in enumerate(nxt))


def test_greedy_equals_beam_of_one_and_a_full_beam_is_exact():
    steps = 3
    model = tiny_lemmatizer(vocab_size=7, seed=3)  # 3 characters besides the specials
    torch.manual_seed(1)
    src = torch.randint(4, 7, (4, 5))
    src_lengths = torch.tensor([5, 4, 2, 1])
    greedy = greedy_decode(model, src, src_lengths, max_steps=steps)
    assert greedy == beam_decode(model, src, src_lengths, beam=1, max_steps=steps)
    # every output of at most 3 characters (ended by EOS) or exactly 3 (cut off): 1+3+9+27 + 27
    candidates = [(list(c), True) for n in range(steps + 1) for c in itertools.product((4, 5, 6), repeat=n)]
    candidates += [(list(c), False) for c in itertools.product((4, 5, 6), repeat=steps)]
    full = beam_decode(model, src, src_lengths, beam=len(candidates), max_steps=steps)
    with torch.no_grad():
        for row in range(4):
            scored = [(sequence_logp(model, src, src_lengths, row, ids, done), ids) for ids, done in candidates]
            best_score, best = max(scored, key=lambda t: t[0])
            assert full[row] == best
            g = sequence_logp(model, src, src_lengths, row, greedy[row], len(greedy[row]) < steps)
            assert best_score >= g - 1e-5


# -- seq2seq: lemmatization ------------------------------------------------------------

def test_lemma_vocab_and_baseline():
    triples = [("Walks", "VERB", "walk"), ("walks", "VERB", "walk"), ("walks", "NOUN", "walk"), ("saw", "VERB", "see"),
               ("saw", "NOUN", "saw"), ("saw", "VERB", "see")]
    vocab = LemmaVocab.build(triples)
    src = vocab.source("saw", "VERB", 40)
    assert vocab.vocab.itos[src[0]] == "<VERB>" and vocab.text([*vocab.target("see"), EOS, 7]) == "see"
    base = LemmaBaseline(triples)
    pairs = [("saw", "NOUN"), ("Walks", "VERB"), ("runs", "VERB")]
    assert base.predict(pairs) == ["see", "walk", "runs"]  # most frequent lemma of the form; else the form
    score = score_lemmas(["saw", "walk", "run"], base.predict(pairs), [False, False, True])
    assert score == {"tokens": 3, "accuracy": pytest.approx(1 / 3), "known_tokens": 2, "known_accuracy": 0.5,
                     "unknown_tokens": 1, "unknown_accuracy": 0.0}


TABLE_TRIPLES = [("saw", "VERB", "see"), ("saw", "NOUN", "saw"), ("saw", "VERB", "see"), ("saw", "VERB", "saw"),
                 ("Walks", "VERB", "walk"), ("left", "VERB", "leave"), ("left", "ADJ", "left"), ("left", "ADJ", "left")]


def test_lemma_table_lookup_and_round_trip(tmp_path):
    table = LemmaTable.build(TABLE_TRIPLES)
    # the pair's most frequent lemma; an unseen pair: None (a question for the model)
    assert [table.lookup(*p) for p in [("saw", "VERB"), ("saw", "NOUN"), ("left", "VERB"), ("left", "ADJ"),
                                       ("saw", "ADJ"), ("walks", "VERB")]] == ["see", "saw", "leave", "left", None, None]
    assert table.forms["saw"] == "see" and table.forms["left"] == "left"  # the form's, under any UPOS
    assert "Walks" in table and "walks" not in table
    back = LemmaTable.from_json(json.loads(json.dumps(table.to_json())))
    assert back.pairs == table.pairs and back.forms == table.forms and len(back.pairs) == 5
    with pytest.raises(ValueError, match="not a lemma table"):
        LemmaTable.from_json({"pairs": {}, "forms": {}})
    with pytest.raises(ValueError, match="a lemma table holds"):
        LemmaTable.from_json({**table.to_json(), "forms": {"saw": 3}})

    # through a model directory: stored in lookup.json, its checksum in config.json
    vocab = LemmaVocab.build(TABLE_TRIPLES)
    model = tiny_lemmatizer(len(vocab))
    save_lemmatizer(tmp_path / "m", model, vocab, {"data": {}}, table)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert set(config["files"]) == {"model.safetensors", "vocab.json", LOOKUP}
    loaded = load_lemmatizer(tmp_path / "m")
    assert loaded.table.pairs == table.pairs and loaded.table.forms == table.forms
    (tmp_path / "m" / LOOKUP).write_text((tmp_path / "m" / LOOKUP).read_text().replace('"see"', '"sea"'))
    with pytest.raises(CheckpointError, match=r"lookup.json: checksum mismatch"):
        load_lemmatizer(tmp_path / "m")


def test_hybrid_uses_the_table_for_seen_pairs_and_the_model_for_the_rest(monkeypatch):
    table = LemmaTable.build(TABLE_TRIPLES)
    vocab = LemmaVocab.build([*TABLE_TRIPLES, ("runs", "VERB", "run"), ("Saw", "VERB", "z")])  # every character
    torch.manual_seed(0)
    model = Lemmatizer(Seq2seqConfig(d_model=16, heads=2, encoder_layers=1, decoder_layers=1, d_ff=32, dropout=0.0,
                                     max_chars=4), len(vocab)).eval()  # reads forms of up to 4 characters
    decoded = []

    def fake_decode(model, src, lengths, **kw):
        # the "model" answers z for every word it is asked about
        decoded.extend(vocab.text(row[1:n]) for row, n in zip(src.tolist(), lengths.tolist()))
        return [vocab.target("z")] * src.shape[0]

    monkeypatch.setattr(s2s, "greedy_decode", fake_decode)
    pairs = [("saw", "VERB"), ("runs", "VERB"), ("saw", "NOUN"), ("left", "NOUN"), ("runs", "VERB"), ("Saw", "VERB"),
             ("Walks", "NOUN"), ("leaves", "VERB")]
    # the model alone: its answer, the form itself for forms longer than it reads
    assert predict_lemmas(model, vocab, pairs) == ["z"] * 6 + ["Walks", "leaves"]
    decoded.clear()
    # seen pairs: the table (the model would say z); unseen pairs, a seen form with another UPOS included: the model;
    # too long for the model: the form's lemma in the table, else the form
    hybrid = ["see", "z", "saw", "z", "z", "z", "walk", "leaves"]
    assert predict_lemmas(model, vocab, pairs, table=table) == hybrid
    assert sorted(decoded) == ["Saw", "left", "runs"]  # only unseen pairs are decoded, each distinct pair once
    loaded = s2s.LoadedLemmatizer(model, vocab, {}, table)
    assert loaded.lemmatize(pairs) == hybrid
    assert loaded.lemmatize(pairs, lookup=False) == ["z"] * 6 + ["Walks", "leaves"]
    with pytest.raises(CheckpointError, match="no lookup table"):
        s2s.LoadedLemmatizer(model, vocab, {}, None).lemmatize(pairs)


def test_seq2seq_learns_to_lemmatize(tmp_path):
    stems = random_stems(40, 1)
    train_s, dev_s = lemma_corpus(120, 1, stems), lemma_corpus(20, 2, stems)
    vocab = LemmaVocab.build(lemma_triples(train_s))
    torch.manual_seed(0)
    model = Lemmatizer(Seq2seqConfig(d_model=32, heads=2, encoder_layers=1, decoder_layers=1, d_ff=64, dropout=0.0),
                       len(vocab))
    task = Seq2seqTask(model, vocab, train_s, dev_s)
    assert len(task.src) == len(set(lemma_triples(train_s)))  # distinct triples
    config = TrainConfig(epochs=12, batch_tokens=150, lr=1e-2, warmup=5, schedule="constant", patience=0,
                         checkpoint_every=0)
    result = train(model, task, config, tmp_path / "lemma", **quiet())
    dev = lemma_triples(dev_s)
    identity = sum(f == l for f, _, l in dev) / len(dev)  # "the lemma is the form"
    assert identity < 0.4
    assert result.best_score >= 0.5, result.history  # measured 0.58 (one thread, seed 0)


# -- classification --------------------------------------------------------------------

def test_genre_from_sent_id_and_scores():
    s = genre_corpus(2, 0)
    assert [genre(x) for x in s] == ["news", "chat"]
    bad = lemma_corpus(1, 0)[0]
    bad.comments["sent_id"] = "nohyphen"
    with pytest.raises(ValueError, match=r"<lemma 0>:1: sentence has no sent_id"):
        genre(bad)
    score = score_labels(["a", "a", "a", "b"], ["a", "a", "b", "b"])
    # a: P 1, R 2/3, F1 0.8; b: P 1/2, R 1, F1 2/3
    assert score["accuracy"] == 0.75 and score["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)


def test_bow_baseline_separates_genres():
    train_s, dev_s = genre_corpus(80, 1), genre_corpus(40, 2)
    bow = BowBaseline().fit([s.forms for s in train_s], [genre(s) for s in train_s],
                            dev=([s.forms for s in dev_s], [genre(s) for s in dev_s]))
    score = score_labels([genre(s) for s in dev_s], bow.predict([s.forms for s in dev_s]))
    assert score["accuracy"] >= 0.9 and bow.l2 in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    assert bow.predict([["lol", "dude"], ["minister", "election"]]) == ["chat", "news"]


@pytest.mark.parametrize("pooling", ["mean", "first", "attention"])
def test_classifier_learns_genres(tmp_path, pooling):
    train_s, dev_s = genre_corpus(80, 1), genre_corpus(40, 2)
    labels, dev_labels = [genre(s) for s in train_s], [genre(s) for s in dev_s]
    vocabs = ClassifierVocabs.build(train_s, labels)
    torch.manual_seed(0)
    config = ClassifierConfig(
        encoder="attention", pooling=pooling,
        features=FeatureConfig(word_dim=16, shape_dim=4, char_dim=6, char_filters=6, char_widths=(3,),
                               word_dropout=0.0, dropout=0.0),
        encoder_config=EncoderConfig(hidden=16, layers=1, heads=2, d_ff=32, dropout=0.0),
    )
    model = Classifier(config, vocabs)
    task = ClassificationTask(model, vocabs, train_s, labels, dev_s, dev_labels)
    batch = task.make_batch([0, 1, 2])
    assert batch.units == 3 and model(batch.features).shape == (3, len(vocabs.labels))
    result = train(model, task, TrainConfig(epochs=6, batch_tokens=120, lr=5e-3, warmup=5, patience=0,
                                            checkpoint_every=0), tmp_path / pooling, **quiet())
    assert result.history[0]["dev"] < 0.9 <= result.best_score, result.history


# -- command line ----------------------------------------------------------------------

def test_cli_trains_and_evaluates_both_tasks(tmp_path, capsys):
    (tmp_path / "g-train.conllu").write_text(genre_text(80, 1))
    (tmp_path / "g-dev.conllu").write_text(genre_text(30, 2))
    stems = random_stems(30, 1)
    (tmp_path / "l-train.conllu").write_text(lemma_text(60, 1, stems))
    (tmp_path / "l-dev.conllu").write_text(lemma_text(10, 2, stems))
    common = ["--epochs", "2", "--batch-tokens", "150", "--warmup", "2", "--hidden", "16", "--layers", "1",
              "--heads", "2", "--d-ff", "16", "--no-progress", "--threads", "1"]
    assert main(["train", "--task", "classify", "--pooling", "mean", "--train", str(tmp_path / "g-train.conllu"),
                 "--dev", str(tmp_path / "g-dev.conllu"), "--out", str(tmp_path / "genre"), "--word-dim", "8",
                 "--char-filters", "4", *common]) == 0
    assert main(["train", "--task", "seq2seq", "--train", str(tmp_path / "l-train.conllu"),
                 "--dev", str(tmp_path / "l-dev.conllu"), "--out", str(tmp_path / "lemma"), *common]) == 0
    config = json.loads((tmp_path / "genre" / "config.json").read_text())
    assert config["task"] == "classification" and config["model"]["pooling"] == "mean"
    capsys.readouterr()

    assert main(["eval", "--model", str(tmp_path / "genre"), str(tmp_path / "g-dev.conllu"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["score"]["sentences"] == 30 and 0.0 <= out["score"]["macro_f1"] <= 1.0
    assert out["baseline"]["score"]["accuracy"] >= 0.9
    assert main(["eval", "--model", str(tmp_path / "lemma"), str(tmp_path / "l-dev.conllu"), "--json", "--beam", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["beam"] == 2 and out["score"]["tokens"] == out["baseline"]["score"]["tokens"] > 0
    assert out["baseline"]["score"]["accuracy"] > 0.9  # 49 of the 54 dev forms were seen in training
    # the main score: the table for the seen pairs, the model for the others; the model alone is scored too
    table = LemmaTable.build(lemma_triples(lemma_corpus(60, 1, stems)))
    dev = lemma_triples(lemma_corpus(10, 2, stems))
    answered = [(f, u, l) for f, u, l in dev if table.lookup(f, u) is not None]
    assert out["lookup"] and out["table"]["tokens_answered"] == len(answered) == 48
    assert out["score"]["known_tokens"] == sum(f in table for f, _, _ in dev) == 49
    right = sum(table.lookup(f, u) == l for f, u, l in answered)
    assert right == 48 and out["score"]["known_accuracy"] >= right / 49 > 0.9
    assert out["score"]["unknown_accuracy"] == out["model_only"]["unknown_accuracy"]  # unseen forms: the model
    assert out["model_only"]["known_accuracy"] < out["score"]["known_accuracy"]  # 2 epochs of training
    assert main(["eval", "--model", str(tmp_path / "lemma"), str(tmp_path / "l-dev.conllu"), "--json", "--no-lookup"]) == 0
    pure = json.loads(capsys.readouterr().out)
    assert "model_only" not in pure and "table" not in pure and pure["score"] == out["model_only"]
    assert main(["eval", "--model", str(tmp_path / "lemma"), str(tmp_path / "l-dev.conllu")]) == 0
    text = capsys.readouterr().out
    assert "exact match" in text and "alone" in text and "lookup table for seen (form, UPOS) pairs" in text

    # a model saved before tables were stored: built from the recorded training file, or added with --store-lookup
    old = tmp_path / "old-lemma"
    loaded = load_lemmatizer(tmp_path / "lemma")
    save_lemmatizer(old, loaded.model, loaded.vocab, {"data": loaded.record["data"]})
    assert load_lemmatizer(old).table is None
    assert main(["eval", "--model", str(old), str(tmp_path / "l-dev.conllu"), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["score"] == out["score"] and "no lookup table stored" in captured.err
    assert not (old / LOOKUP).exists()
    assert main(["eval", "--model", str(old), str(tmp_path / "l-dev.conllu"), "--json", "--store-lookup"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == out["score"]
    assert load_lemmatizer(old).table.pairs == table.pairs
    (tmp_path / "l-train.conllu").rename(tmp_path / "moved.conllu")
    save_lemmatizer(old, loaded.model, loaded.vocab, {"data": loaded.record["data"]})  # without a table again
    with pytest.raises(FileNotFoundError, match="l-train.conllu: training file"):
        add_lookup_table(old)
    (tmp_path / "moved.conllu").rename(tmp_path / "l-train.conllu")

    # resume of a finished run goes to the same task; a sentence without a genre is a one-line error
    assert main(["train", "--resume", "--out", str(tmp_path / "lemma"), "--no-progress"]) == 0
    (tmp_path / "bad.conllu").write_text("# sent_id = x\n1\ta\ta\tX\t_\t_\t0\tdep\t_\t_\n\n")
    capsys.readouterr()
    assert main(["train", "--task", "classify", "--train", str(tmp_path / "bad.conllu"), "--dev",
                 str(tmp_path / "bad.conllu"), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.conllu:1: sentence has no sent_id" in err
