"""The joint tagger: UPOS, XPOS, FEATS and LEMMA heads on one encoder, on small made-up data."""

from __future__ import annotations

import random

import pytest
import torch

from attnlab.data.conllu import parse_conllu
from attnlab.tasks.lemma_edits import apply_edit, edit_script
from attnlab.tasks.tagging import (
    Emissions, Tagger, TaggerConfig, TaggerVocabs, TaggingTask, encode_gold, feats_allowed, gold_labels,
    layer_probabilities, lemma_table, load_tagger, predict_tags, save_tagger, tagging_loss,
)
from attnlab.encoders import EncoderConfig
from attnlab.features import PAD, FeatureConfig


# -- edit scripts ------------------------------------------------------------------------

@pytest.mark.parametrize("form, lemma, script", [
    ("studies", "study", "lower|0||3|y"),       # cut "ies", add "y"
    ("Studies", "study", "lower|0||3|y"),       # the same edit: casing is apart
    ("walked", "walk", "lower|0||2|"),
    ("I", "I", "form|0||0|"),                   # the form's capitals kept
    ("McDonald", "McDonald", "form|0||0|"),
    ("THE", "the", "lower|0||0|"),
    ("better", "good", "lower|=good"),          # nothing in common: the whole lemma
    ("bắt chuyện", "bắt chuyện", "lower|0||0|"),  # a word with a space
    ("ئاسماننى", "ئاسمان", "lower|0||2|"),        # Arabic script: cut two letters at the end
    ("İnanmıyorsanız", "inan", "lower|0||10|"),  # Turkish dotted capital I lowercases to one letter
])
def test_edit_scripts_worked_by_hand(form, lemma, script):
    assert edit_script(form, lemma) == script
    assert apply_edit(form, script) == lemma


def test_a_script_generalises_and_refuses_forms_it_cannot_fit():
    assert apply_edit("Carries", edit_script("studies", "study")) == "carry"
    assert apply_edit("talked", edit_script("walked", "walk")) == "talk"
    assert apply_edit("ab", "lower|0||3|y") is None  # cuts 3 from a 2-letter form
    assert apply_edit("abc", "lower|0||3|") is None  # would leave nothing


def test_every_pair_round_trips():
    rng = random.Random(0)
    letters = "abcdeéİıIXyz ş"
    for _ in range(500):
        form = "".join(rng.choice(letters) for _ in range(rng.randint(1, 8)))
        lemma = "".join(rng.choice(letters) for _ in range(rng.randint(1, 8)))
        assert apply_edit(form, edit_script(form, lemma)) == lemma, (form, lemma)


# -- a small language with features and lemmas -----------------------------------------

NOUNS = ["cat", "dog", "bird", "tree", "book", "lamp", "cup", "road", "ship", "coat", "fox", "box"]
VERBS = ["walk", "jump", "talk", "look", "play", "call"]


def _word(i, form, lemma, upos, xpos, feats):
    return f"{i}\t{form}\t{lemma}\t{upos}\t{xpos}\t{feats}\t_\t_\t_\t_"


def make_corpus(n: int, seed: int) -> list:
    """"the cats walked ." style sentences: noun number and verb tense in FEATS, lemmas by
    suffix (cats -> cat, foxes -> fox, walked -> walk), "the" and "." without features."""
    rng = random.Random(seed)
    blocks = []
    for _ in range(n):
        noun, verb = rng.choice(NOUNS), rng.choice(VERBS)
        plural, past = rng.random() < 0.5, rng.random() < 0.5
        es = "es" if noun.endswith("x") else "s"
        words = [
            ("The", "the", "DET", "DT", "_"),
            (noun + es if plural else noun, noun, "NOUN", "NNS" if plural else "NN",
             "Number=Plur" if plural else "Number=Sing"),
            (verb + "ed" if past else verb + ("" if plural else "s"), verb, "VERB", "VBD" if past else "VBZ",
             "Tense=Past" if past else "Tense=Pres"),
            (".", ".", "PUNCT", ".", "_"),
        ]
        blocks.append("\n".join(_word(i, *w) for i, w in enumerate(words, 1)))
    return parse_conllu("\n\n".join(blocks) + "\n\n", "made-up.conllu")


def small_config(**heads) -> TaggerConfig:
    return TaggerConfig(
        encoder="attention",
        features=FeatureConfig(word_dim=16, shape_dim=4, char_dim=8, char_filters=8, char_widths=(2, 3),
                               max_chars=12, word_dropout=0.25, dropout=0.0),
        encoder_config=EncoderConfig(hidden=32, layers=1, heads=2, d_ff=64, dropout=0.0),
        **heads,
    )


def test_vocabs_leave_out_layers_the_data_does_not_have():
    corpus = make_corpus(20, seed=1)
    vocabs = TaggerVocabs.build(corpus)
    assert "Number=Plur" in vocabs.feats and "_" in vocabs.feats  # no features is a class of its own
    assert vocabs.feats_by_upos["DET"] == ["_"] and vocabs.feats_by_upos["NOUN"] == ["Number=Plur", "Number=Sing"]
    assert "lower|0||1|" in vocabs.lemma  # cats -> cat
    bare = parse_conllu("1\tdogs\t_\tNOUN\t_\t_\t_\t_\t_\t_\n\n", "bare.conllu")
    nothing = TaggerVocabs.build(bare)
    assert len(nothing.xpos) == len(nothing.lemma) == len(nothing.feats) == 2  # only PAD and UNK
    assert Tagger(small_config(), nothing).layers == ("upos",)
    assert Tagger(small_config(), vocabs).layers == ("upos", "xpos", "feats", "lemma")
    assert Tagger(small_config(feats_weight=0.0, lemma_weight=0.0), vocabs).layers == ("upos", "xpos")


def test_words_without_a_gold_value_do_not_count_in_the_loss():
    corpus = parse_conllu("1\tdogs\t_\tNOUN\tNNS\t_\t_\t_\t_\t_\n2\tran\trun\tVERB\tVBD\t_\t_\t_\t_\t_\n\n", "x.conllu")
    vocabs = TaggerVocabs.build(corpus)
    assert gold_labels(corpus, "lemma") == [["_", edit_script("ran", "run")]]
    ids = encode_gold(vocabs.lemma, gold_labels(corpus, "lemma")[0])
    assert ids[0] == PAD and ids[1] == vocabs.lemma.stoi[edit_script("ran", "run")]
    scores = torch.tensor([[[0.0, 0.0, 2.0], [0.0, 0.0, 2.0]]])  # (B=1, N=2, C=3)
    only_second = tagging_loss(scores, torch.tensor([[PAD, 2]]), torch.tensor([2]))
    assert only_second.item() == pytest.approx(torch.nn.functional.cross_entropy(scores[0, 1:], torch.tensor([2])).item())
    assert tagging_loss(scores, torch.tensor([[PAD, PAD]]), torch.tensor([2])).item() == 0.0


def test_feature_strings_are_only_those_seen_with_the_best_upos():
    vocabs = TaggerVocabs.build(make_corpus(20, seed=1))
    allowed = feats_allowed(vocabs)
    det, noun = vocabs.upos.stoi["DET"], vocabs.upos.stoi["NOUN"]
    assert allowed[det].tolist().count(True) == 1 and allowed[det, vocabs.feats.stoi["_"]]
    upos = torch.full((1, 1, len(vocabs.upos)), -5.0)
    upos[0, 0, det] = 5.0  # the word is surely a DET ...
    feats = torch.zeros(1, 1, len(vocabs.feats))
    feats[0, 0, vocabs.feats.stoi["Number=Plur"]] = 9.0  # ... whose feats head prefers a noun's features
    probs = layer_probabilities(Emissions(upos=upos, feats=feats), allowed)
    assert probs["feats"][0, 0].argmax().item() == vocabs.feats.stoi["_"]
    assert probs["feats"][0, 0, vocabs.feats.stoi["Number=Plur"]].item() == 0.0
    assert not torch.isnan(probs["feats"]).any() and probs["upos"][0, 0, noun] < 1e-3


def test_the_lemma_table_keeps_the_most_frequent_lemma_and_its_share():
    corpus = parse_conllu("".join(f"1\tleaves\t{lemma}\t{upos}\t_\t_\t_\t_\t_\t_\n\n" for lemma, upos in
                                  [("leaf", "NOUN"), ("leaf", "NOUN"), ("leave", "NOUN"), ("leave", "VERB")]), "t.conllu")
    assert lemma_table(corpus) == {"leaves\tNOUN": ["leaf", 0.667], "leaves\tVERB": ["leave", 1.0]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.manual_seed(0)
    train, test = make_corpus(300, seed=1), make_corpus(60, seed=2)
    vocabs = TaggerVocabs.build(train)
    model = Tagger(small_config(), vocabs)
    task = TaggingTask(model, vocabs, train, train[:20])
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for step in range(150):
        batch = task.make_batch([(16 * step + i) % len(train) for i in range(16)])
        optimizer.zero_grad()
        task.loss(model, batch).backward()
        optimizer.step()
    directory = tmp_path_factory.mktemp("joint") / "model"
    save_tagger(directory, model, vocabs)
    return directory, test


def test_a_trained_joint_tagger_predicts_every_layer(trained):
    directory, test = trained
    loaded = load_tagger(directory)
    assert loaded.model.layers == ("upos", "xpos", "feats", "lemma")
    found = predict_tags(loaded.model, loaded.encoder(), loaded.vocabs, [s.forms for s in test], probabilities=True)
    for layer, gold in (("upos", [s.upos for s in test]), ("xpos", [s.xpos for s in test]),
                        ("feats", [s.feats for s in test]), ("lemma", [s.lemmas for s in test])):
        pairs = [(p, g) for ps, gs in zip(found.tags[layer], gold) for p, g in zip(ps, gs)]
        accuracy = sum(p == g for p, g in pairs) / len(pairs)
        assert accuracy > 0.95, (layer, accuracy)
    for upos_row, feats_row in zip(found.tags["upos"], found.tags["feats"]):
        for upos, feats in zip(upos_row, feats_row):
            assert feats in loaded.vocabs.feats_by_upos[upos]  # valid for its UPOS
    assert all(0.0 < p <= 1.0 for row in found.probs["lemma"] for p in row)


def test_unseen_forms_get_lemmas_from_the_edit_scripts(trained):
    directory, _ = trained
    loaded = load_tagger(directory)
    sentence = ["The", "mixes", "kicked", "."]  # "mixes" and "kicked" never occur in training
    assert not any(k.split("\t")[0] in sentence[1:3] for k in loaded.vocabs.lemma_table)
    assert not loaded.vocabs.features.is_known("mixes") and not loaded.vocabs.features.is_known("kicked")
    found = predict_tags(loaded.model, loaded.encoder(), loaded.vocabs, [sentence], top_k=3)
    assert found.tags["lemma"][0] == ["the", "mix", "kick", "."]
    assert found.tags["feats"][0][1:3] == ["Number=Plur", "Tense=Past"]
    assert [lemma for lemma, _ in found.top["lemma"][0][0]] == ["the"]  # from the training table: one answer


def test_vocabs_round_trip_through_json(trained):
    directory, _ = trained
    loaded = load_tagger(directory)
    again = TaggerVocabs.from_json(loaded.vocabs.to_json())
    assert again.lemma_table == loaded.vocabs.lemma_table and again.feats_by_upos == loaded.vocabs.feats_by_upos
    assert again.feats == loaded.vocabs.feats and again.lemma == loaded.vocabs.lemma
