"""The CoNLL 2018-style scorer (attnlab.evaluate.score_conllu) on small cases worked out by hand."""

import pytest

from attnlab.data.conllu import ConlluError, parse_conllu
from attnlab.evaluate import score_conllu, score_conllu_files, score_word_layers, universal_features
from conllu_rows import conllu


def score(gold_rows, pred_rows, known=None):
    return score_conllu(parse_conllu(conllu(*gold_rows), "gold.conllu"),
                        parse_conllu(conllu(*pred_rows), "pred.conllu"), known)


GOLD = ["1 She she PRON PRP Case=Nom|Number=Sing|Person=3",
        "2 reads read VERB VBZ Mood=Ind|Number=Sing|Tense=Pres",
        "3 books book NOUN NNS Number=Plur",
        "4 . . PUNCT . _"]


def test_feature_order_is_irrelevant_and_underscore_is_the_empty_set():
    pred = ["1 She she PRON PRP Person=3|Number=Sing|Case=Nom",   # same set, other order: right
            "2 reads read VERB VBZ Tense=Pres|Mood=Ind",          # Number=Sing missing: wrong
            "3 books book NOUN NNS Number=Plur",                  # right
            "4 . . PUNCT . _"]                                    # _ == _ (empty sets): right
    report = score(GOLD, pred)
    # UFeats: 3 of 4 words right = 0.75; every other layer 4 / 4.
    assert report["UFeats"].correct == 3 and report["UFeats"].accuracy == 0.75
    assert report["UPOS"].accuracy == report["XPOS"].accuracy == report["Lemmas"].accuracy == 1.0
    # AllTags = UPOS and XPOS and UFeats: word 2 fails on UFeats -> 3 / 4.
    assert report["AllTags"].accuracy == 0.75
    assert universal_features("_") == frozenset() == universal_features("Foo=Bar")  # not a universal feature


def test_predicted_underscore_feats_is_wrong_against_a_nonempty_gold_set():
    pred = [GOLD[0], "2 reads read VERB VBZ _", GOLD[2], "4 . . PUNCT . Number=Sing"]
    report = score(GOLD, pred)
    # word 2: {} vs {Mood,Number,Tense} wrong; word 4: {Number=Sing} vs {} wrong -> 2 / 4.
    assert report["UFeats"].correct == 2


def test_alltags_needs_upos_xpos_and_ufeats_all_right():
    pred = ["1 She she PRON PRP Case=Nom|Number=Sing|Person=3",  # all right
            "2 reads read NOUN VBZ Mood=Ind|Number=Sing|Tense=Pres",  # UPOS wrong
            "3 books book NOUN NN Number=Plur",                  # XPOS wrong
            "4 . . PUNCT . Number=Plur"]                          # UFeats wrong
    report = score(GOLD, pred)
    # UPOS 3/4, XPOS 3/4, UFeats 3/4, but only word 1 has all three right: AllTags 1/4.
    assert (report["UPOS"].correct, report["XPOS"].correct, report["UFeats"].correct) == (3, 3, 3)
    assert report["AllTags"].correct == 1 and report["AllTags"].accuracy == 0.25
    assert report["Lemmas"].accuracy == 1.0  # lemmas are not part of AllTags


def test_gold_lemma_underscore_matches_any_predicted_lemma():
    gold = ["1 She she PRON PRP _", "2 reads _ VERB VBZ _", "3 books book NOUN NNS _"]
    pred = ["1 She She PRON PRP _", "2 reads xyz VERB VBZ _", "3 books _ NOUN NNS _"]
    report = score(gold, pred)
    # word 1: "She" != "she" wrong (case counts); word 2: gold "_" right whatever is predicted;
    # word 3: predicted "_" != "book" wrong -> 1 / 3.
    assert report["Lemmas"].correct == 1 and report["Lemmas"].words == 3
    # gold feats are all "_": UFeats is absent, not 100%; AllTags joins UPOS and XPOS (3 / 3).
    assert report["UFeats"].status == "absent" and report["UFeats"].accuracy is None
    assert report["AllTags"].accuracy == 1.0


def test_multiword_token_lines_are_not_words():
    gold = ["1-2 don't _ _ _ _", "1 do do AUX VBP Mood=Ind", "2 n't not PART RB Polarity=Neg", "3 go go VERB VB _"]
    pred = ["1-2 don't don't NOUN NN Number=Sing",   # a range line: never scored
            "1 do do AUX VBP Mood=Ind", "2 n't n't PART RB Polarity=Neg", "3 go go NOUN NN _"]
    report = score(gold, pred)
    # 3 words (do, n't, go), not 4. UPOS: do, n't right, go wrong -> 2/3. Lemmas: n't wrong, go right -> 2/3.
    assert report.words == 3
    assert report["UPOS"].correct == 2 and report["Lemmas"].correct == 2 and report["AllTags"].correct == 2


def test_empty_nodes_are_not_scored():
    gold = ["1 She she PRON PRP _", "2 left leave VERB VBD _", "2.1 left leave VERB VBD _", "3 . . PUNCT . _"]
    pred = ["1 She she PRON PRP _", "2 left leave VERB VBD _", "2.1 gone go NOUN NN _", "3 . . PUNCT . _"]
    report = score(gold, pred)
    # the empty node 2.1 is neither a word nor an error: 3 words, all right.
    assert report.words == 3 and report["UPOS"].accuracy == 1.0 and report["Lemmas"].accuracy == 1.0


def test_a_gold_without_xpos_reports_it_absent():
    gold = ["1 She she PRON _ _", "2 sings sing VERB _ Tense=Pres"]
    pred = ["1 She she PRON PRP _", "2 sings sing NOUN NNS Tense=Pres"]
    report = score(gold, pred)
    assert report["XPOS"].status == "absent" and report["XPOS"].accuracy is None
    # AllTags = UPOS and UFeats: word 1 right, word 2 UPOS wrong -> 1/2.
    assert report["AllTags"].accuracy == 0.5
    assert report.format().splitlines()[2].split()[:3] == ["XPOS", "–", "–"]
    assert report.to_json()["XPOS"] == {"status": "absent", "accuracy": None, "correct": 0,
                                                  "unknown_accuracy": None, "unknown_correct": 0}


def test_unknown_word_accuracy_per_layer():
    pred = ["1 She she PRON PRP Case=Nom|Number=Sing|Person=3",
            "2 reads reads VERB VBZ Mood=Ind|Number=Sing|Tense=Pres",  # lemma wrong
            "3 books book VERB VBZ Number=Plur",                        # UPOS, XPOS wrong
            "4 . . PUNCT . _"]
    report = score(GOLD, pred, known={"She", "."})
    # unknown: reads, books (2 words). UPOS: reads right, books wrong -> 1/2; Lemmas: reads wrong,
    # books right -> 1/2; UFeats both right -> 2/2; AllTags: reads right, books wrong -> 1/2.
    assert report.unknown_words == 2
    assert report["UPOS"].unknown_accuracy == 0.5 and report["Lemmas"].unknown_accuracy == 0.5
    assert report["UFeats"].unknown_accuracy == 1.0 and report["AllTags"].unknown_accuracy == 0.5
    # overall: UPOS 3/4, Lemmas 3/4.
    assert report["UPOS"].accuracy == 0.75 and report["Lemmas"].accuracy == 0.75
    # a predicate works as well as a set: lowercased "she" known -> only "She" is unknown.
    by_rule = score(GOLD, pred, known=lambda form: form != "She")
    assert by_rule.unknown_words == 1 and by_rule["UPOS"].unknown_accuracy == 1.0


def test_layers_left_out_are_not_predicted():
    gold = parse_conllu(conllu(*GOLD), "gold.conllu")
    report = score_word_layers(gold, {"upos": [["PRON", "VERB", "VERB", "PUNCT"]]})
    assert report["UPOS"].accuracy == 0.75
    assert [report[layer].status for layer in ("XPOS", "UFeats", "AllTags", "Lemmas")] == ["not predicted"] * 4


def test_different_words_name_the_first_difference(tmp_path):
    gold, pred = tmp_path / "gold.conllu", tmp_path / "pred.conllu"
    gold.write_text(conllu(*GOLD), encoding="utf-8")
    pred.write_text(conllu(GOLD[0], "2 read read VERB VBZ _", GOLD[2], GOLD[3]), encoding="utf-8")
    with pytest.raises(ConlluError, match=r"^.*pred\.conllu:2: word 'read' differs from the gold word 'reads' "
                                          r"\(.*gold\.conllu:2\)"):
        score_conllu_files(gold, pred)
    pred.write_text(conllu(*GOLD[:3]), encoding="utf-8")  # one word short
    with pytest.raises(ConlluError, match=r"gold\.conllu:4: gold word '\.' is missing"):
        score_conllu_files(gold, pred)
    pred.write_text(conllu(*GOLD, "5 ! ! PUNCT . _"), encoding="utf-8")  # one word more
    with pytest.raises(ConlluError, match=r"pred\.conllu:5: word '!' is not in the gold"):
        score_conllu_files(gold, pred)


def test_sentence_boundaries_may_differ_but_gold_upos_must_be_valid():
    pred = [GOLD[0], GOLD[1], "", "1 books book NOUN NNS Number=Plur", "2 . . PUNCT . _"]
    assert score(GOLD, pred)["AllTags"].accuracy == 1.0
    with pytest.raises(ConlluError, match=r"gold\.conllu:3: unknown UPOS 'NOUNS'"):
        score([GOLD[0], GOLD[1], "3 books book NOUNS NNS _"], GOLD[:3])
    with pytest.raises(ConlluError, match=r"gold\.conllu:1: UPOS is '_'"):
        score(["1 She she _ PRP _"], GOLD[:1])


def test_tag_model_evaluation_reports_the_layers_it_predicts():
    from types import SimpleNamespace

    from attnlab.tasks.tag_task import Tag
    from attnlab.tasks.tagging import score_tagger

    gold = parse_conllu(conllu(*GOLD), "gold.conllu")
    vocabs = SimpleNamespace(features=SimpleNamespace(is_known=lambda form: form.lower() in {"she", "."}))
    # UPOS: books wrong -> 3/4 (unknown reads, books: 1/2); XPOS: all right -> 4/4.
    tag = lambda forms: {"upos": [["PRON", "VERB", "VERB", "PUNCT"]], "xpos": [["PRP", "VBZ", "NNS", "."]]}
    result = score_tagger(tag, vocabs, "model", gold, "gold.conllu")
    layers = result["layers"]
    assert layers["UPOS"].accuracy == result["report"].accuracy == 0.75
    assert layers["UPOS"].unknown_accuracy == result["report"].unknown_accuracy == 0.5
    assert layers["XPOS"].accuracy == 1.0
    assert [layers[n].status for n in ("UFeats", "AllTags", "Lemmas")] == ["not predicted"] * 3
    task = Tag()
    obj = task.report_json(result)
    assert obj["upos"]["accuracy"] == 0.75 and obj["xpos_accuracy"] == 1.0  # the fields that were there
    assert obj["layers"]["XPOS"]["accuracy"] == 1.0 and obj["layers"]["AllTags"]["accuracy"] is None
    text = task.report_text(result)
    assert "XPOS accuracy    100.00%" in text and "UPOS        75.00%    50.00%" in text
