"""Scoring a system whose tokenization differs from the gold's (attnlab.evaluate_text), on cases
worked out by hand by the CoNLL 2018 shared task's definitions."""

import json

import pytest

from attnlab.cli import main
from attnlab.data.conllu import ConlluError, parse_conllu
from attnlab.evaluate import score_conllu
from attnlab.evaluate_text import TEXT_METRICS, score_text, score_text_files
from conllu_rows import conllu


def score(gold_rows, system_rows):
    return score_text(parse_conllu(conllu(*gold_rows), "gold.conllu"),
                      parse_conllu(conllu(*system_rows), "sys.conllu", require_sentences=False))


def pct(report, metric):
    """(precision, recall, F1, aligned accuracy) of ``metric`` in percent, to 2 decimals."""
    s = report[metric]
    return tuple(None if x is None else round(100 * x, 2) for x in (s.precision, s.recall, s.f1, s.aligned_accuracy))


def counts(report, metric):
    s = report[metric]
    return s.correct, s.gold, s.system


FULL = ["1 She she PRON PRP Case=Nom|Number=Sing|Person=3",
        "2 reads read VERB VBZ Mood=Ind|Number=Sing|Tense=Pres",
        "3 books book NOUN NNS Number=Plur",
        "4 . . PUNCT . _",
        "",
        "1-2 Don't _ _ _ _",
        "1 Do do AUX VBP Mood=Ind|Tense=Pres",
        "2 n't not PART RB Polarity=Neg",
        "3 stop stop VERB VB VerbForm=Inf",
        "4 ! ! PUNCT . _"]


def test_identical_files_score_100_everywhere():
    report = score(FULL, FULL)
    assert [s.metric for s in report.metrics] == list(TEXT_METRICS)
    for metric in TEXT_METRICS:
        assert report[metric].status == "scored"
        assert pct(report, metric)[:3] == (100.0, 100.0, 100.0)
    # 7 surface tokens (Don't is one), 8 words, 2 sentences; the word layers are scored on 8 aligned words.
    assert counts(report, "Tokens") == (7, 7, 7)
    assert counts(report, "Sentences") == (2, 2, 2)
    assert counts(report, "Words") == (8, 8, 8)
    assert pct(report, "UPOS")[3] == 100.0 and report["UPOS"].aligned == 8
    assert report["Tokens"].aligned_accuracy is None  # only the word layers have one


I_DONT = ["1 I I PRON", "2 don't do AUX", "3 know know VERB", "4 . . PUNCT"]


def test_a_token_split_in_two_by_the_system():
    # gold: I | don't | know | .   system: I | do | n't | know | .   (no multiword token on either side)
    system = ["1 I I PRON", "2 do do AUX", "3 n't not PART", "4 know know NOUN", "5 . . PUNCT"]
    report = score(I_DONT, system)
    # I, know and . keep their spans: 3 of 5 system tokens, 3 of 4 gold ones -> F1 = 2*3 / (5+4).
    assert counts(report, "Tokens") == (3, 4, 5)
    assert pct(report, "Tokens") == (60.0, 75.0, 66.67, None)
    assert pct(report, "Words") == (60.0, 75.0, 66.67, None)
    # of the 3 aligned words, "know" is tagged NOUN: UPOS 2 correct -> P 2/5, R 2/4, F1 4/9, AligndAcc 2/3.
    assert pct(report, "UPOS") == (40.0, 50.0, 44.44, 66.67)
    assert pct(report, "Lemmas") == (60.0, 75.0, 66.67, 100.0)
    assert pct(report, "Sentences") == (100.0, 100.0, 100.0, None)


def test_two_gold_tokens_merged_by_the_system_spaces_aside():
    gold = ["1 I I PRON", "2 love love VERB", "3 New New PROPN", "4 York York PROPN", "5 . . PUNCT"]
    # the system's one token "New York" spells "NewYork" without its space: the same characters.
    system = ["1 I I PRON", "2 love love VERB", "3 New~York New~York PROPN", "4 . . PUNCT"]
    report = score(gold, system)
    # I, love, . match: P 3/4, R 3/5, F1 6/9.
    assert counts(report, "Tokens") == (3, 5, 4)
    assert pct(report, "Tokens") == (75.0, 60.0, 66.67, None)
    assert pct(report, "Words") == (75.0, 60.0, 66.67, None)
    assert pct(report, "UPOS") == (75.0, 60.0, 66.67, 100.0)


def test_a_shifted_token_boundary_matches_neither_token():
    gold = ["1 x x X", "2 ab ab X", "3 cd cd X", "4 y y X"]
    system = ["1 x x X", "2 abc abc X", "3 d d X", "4 y y X"]
    report = score(gold, system)
    # ab|cd against abc|d: only x and y keep their spans -> 2 of 4 on both sides.
    assert counts(report, "Tokens") == (2, 4, 4)
    assert pct(report, "Tokens") == (50.0, 50.0, 50.0, None)
    assert pct(report, "Words") == (50.0, 50.0, 50.0, None)


IL_PARLE_DU = ["1 Il il PRON", "2 parle parler VERB", "3-4 du _ _", "3 de de ADP", "4 le le DET",
               "5 chat chat NOUN", "6 . . PUNCT"]
IL_PARLE_DU_ONE_WORD = ["1 Il il PRON", "2 parle parler VERB", "3 du du ADP", "4 chat chat NOUN", "5 . . PUNCT"]


def test_a_gold_multiword_token_left_whole_by_the_system():
    report = score(IL_PARLE_DU, IL_PARLE_DU_ONE_WORD)
    # the five surface tokens have the same spans
    assert pct(report, "Tokens") == (100.0, 100.0, 100.0, None)
    # "de le" against "du" shares no form: 4 aligned words of 5 system and 6 gold -> F1 8/11.
    assert counts(report, "Words") == (4, 6, 5)
    assert pct(report, "Words") == (80.0, 66.67, 72.73, None)
    assert pct(report, "UPOS") == (80.0, 66.67, 72.73, 100.0)
    # the other way round, precision and recall swap
    assert pct(score(IL_PARLE_DU_ONE_WORD, IL_PARLE_DU), "Words") == (66.67, 80.0, 72.73, None)


def test_multiword_tokens_on_both_sides_align_by_common_forms_lowercased():
    gold = ["1-2 Du _ _", "1 De de ADP", "2 le le DET", "3 pain pain NOUN", "4 . . PUNCT"]
    system = ["1-2 Du _ _", "1 de de ADP", "2 les le PRON", "3 pain pain NOUN", "4 . . PUNCT"]
    report = score(gold, system)
    assert pct(report, "Tokens") == (100.0, 100.0, 100.0, None)
    # within "Du": De/de align (case aside), le/les do not -> 3 of 4 words on both sides.
    assert counts(report, "Words") == (3, 4, 4)
    assert pct(report, "Words") == (75.0, 75.0, 75.0, None)
    # les (PRON) is not aligned, so its wrong tag costs nothing beyond the word: UPOS = Words.
    assert pct(report, "UPOS") == (75.0, 75.0, 75.0, 100.0)


def test_overlapping_multiword_tokens_form_one_region():
    # gold xyz = x Q z, uvw = u R w; system xy = x y, zu = z u, vw = v w: the multiword tokens chain over
    # all six characters, and the longest common subsequence of the forms is x z u w.
    gold = ["1-3 xyz _ _", "1 x x X", "2 Q q X", "3 z z X", "4-6 uvw _ _", "4 u u X", "5 R r X", "6 w w X"]
    system = ["1-2 xy _ _", "1 x x X", "2 y y X", "3-4 zu _ _", "3 z z X", "4 u u X", "5-6 vw _ _", "5 v v X",
              "6 w w X"]
    report = score(gold, system)
    assert counts(report, "Tokens") == (0, 2, 3)
    assert pct(report, "Tokens") == (0.0, 0.0, 0.0, None)
    assert counts(report, "Words") == (4, 6, 6)
    assert pct(report, "Words") == (66.67, 66.67, 66.67, None)


def test_a_plain_word_crossing_the_start_of_a_multiword_token_is_not_aligned():
    # gold a | bc = b c; system ab | c: "ab" starts before the multiword token "bc", so the region is
    # bc's words against the system's "c" alone: c aligns. 1 of 2 system and 3 gold words -> F1 2/5.
    report = score(["1 a a X", "2-3 bc _ _", "2 b b X", "3 c c X"], ["1 ab ab X", "2 c c X"])
    assert counts(report, "Words") == (1, 3, 2)
    assert pct(report, "Words") == (50.0, 33.33, 40.0, None)
    assert counts(report, "Tokens") == (0, 2, 2)


def test_sentence_boundaries_off_by_one_token():
    gold = ["1 Hi hi INTJ", "2 . . PUNCT", "", "1 A a DET", "2 b b NOUN", "3 . . PUNCT", "",
            "1 C c DET", "2 d d NOUN", "3 . . PUNCT"]
    system = ["1 Hi hi INTJ", "2 . . PUNCT", "", "1 A a DET", "2 b b NOUN", "",
              "1 . . PUNCT", "2 C c DET", "3 d d NOUN", "4 . . PUNCT"]
    report = score(gold, system)
    # only "Hi ." keeps its span: 1 of 3 on both sides; tokens and words are untouched.
    assert counts(report, "Sentences") == (1, 3, 3)
    assert pct(report, "Sentences") == (33.33, 33.33, 33.33, None)
    assert pct(report, "Tokens") == pct(report, "Words") == (100.0, 100.0, 100.0, None)
    assert pct(report, "UPOS") == (100.0, 100.0, 100.0, 100.0)
    # merging the last two gold sentences instead: 1 of 2 system, 1 of 3 gold -> F1 2/5
    merged = system[:3] + ["1 A a DET", "2 b b NOUN", "3 . . PUNCT", "4 C c DET", "5 d d NOUN", "6 . . PUNCT"]
    assert pct(score(gold, merged), "Sentences") == (50.0, 33.33, 40.0, None)


def test_different_characters_name_both_lines_and_the_first_difference():
    gold = ["1 The the DET", "2 cat cat NOUN", "3 sat sit VERB"]
    with pytest.raises(ConlluError) as err:
        score(gold, ["1 The the DET", "2 cut cut NOUN", "3 sat sit VERB"])
    message = str(err.value)
    # "The" + "cut": the fifth character differs; the system's line 2 holds it, the gold's line 2.
    assert message.startswith("sys.conllu:2: the system's text differs from the gold's (gold.conllu:2) "
                              "at character 5 (spaces left out), after 'Thec': gold 'atsat', system 'utsat'")
    assert "\n" not in message
    with pytest.raises(ConlluError, match=r"sys.conllu:2: .* at character 7 .* gold 'sat', system the end"):
        score(gold, ["1 The the DET", "2 cat cat NOUN"])  # a system that stops early


def test_ufeats_compares_universal_features_only():
    gold = ["1 a a X _ Number=Sing|Foo=Bar", "2 b b X _ Case=Nom|Number[psor]=Sing", "3 c c X _ Number=Plur"]
    system = ["1 a a X _ Number=Sing", "2 b b X _ Case=Nom", "3 c c X _ Number=Sing|Foo=Bar"]
    report = score(gold, system)
    # Foo and Number[psor] are not universal: words 1 and 2 are right, word 3 (Plur/Sing) wrong.
    assert counts(report, "UFeats") == (2, 3, 3)
    assert pct(report, "UFeats") == (66.67, 66.67, 66.67, 66.67)
    assert report["XPOS"].status == "absent" and pct(report, "XPOS") == (None,) * 4
    # AllTags joins UPOS and UFeats (the gold has no XPOS)
    assert counts(report, "AllTags") == (2, 3, 3)


def test_a_gold_lemma_underscore_matches_any_lemma():
    gold = ["1 I _ PRON", "2 don't do AUX", "3 know know VERB", "4 . _ PUNCT"]
    system = ["1 I me PRON", "2 do do AUX", "3 n't not PART", "4 know known VERB", "5 . stop PUNCT"]
    report = score(gold, system)
    # aligned: I (gold _: right), know (known: wrong), . (gold _: right) -> 2 of 3 aligned.
    assert counts(report, "Lemmas") == (2, 4, 5)
    assert pct(report, "Lemmas") == (40.0, 50.0, 44.44, 66.67)


def test_an_empty_system_scores_zero():
    report = score(FULL, [])
    for metric in TEXT_METRICS:
        s = report[metric]
        assert s.status == "scored" and s.system == 0 and s.correct == 0
        assert pct(report, metric)[:3] == (0.0, 0.0, 0.0)
    assert counts(report, "Words") == (0, 8, 0) and counts(report, "Tokens") == (0, 7, 0)
    assert report["UPOS"].aligned == 0 and report["UPOS"].aligned_accuracy == 0.0


def test_with_the_gold_tokenization_the_f1s_are_the_gold_tokenization_accuracies():
    system = ["1 She she PRON PRP Case=Nom|Number=Sing|Person=3",
              "2 reads reads NOUN NNS Number=Plur",                 # UPOS, XPOS, UFeats, lemma wrong
              "3 books book NOUN NNS Number=Plur|Foo=Bar",          # right (Foo is not universal)
              "4 . . PUNCT , _",                                    # XPOS wrong
              "",
              "1-2 Don't _ _ _ _",
              "1 Do do VERB VBP Mood=Ind|Tense=Pres",               # UPOS wrong
              "2 n't n't PART RB Polarity=Neg",                     # lemma wrong
              "3 stop stop VERB VB VerbForm=Fin",                   # UFeats wrong
              "4 ! ! PUNCT . _"]
    gold_sentences = parse_conllu(conllu(*FULL), "gold.conllu")
    system_sentences = parse_conllu(conllu(*system), "sys.conllu")
    text = score_text(gold_sentences, system_sentences)
    words = score_conllu(gold_sentences, system_sentences)
    assert pct(text, "Words")[:3] == (100.0, 100.0, 100.0)
    for layer in ("UPOS", "XPOS", "UFeats", "AllTags", "Lemmas"):
        s = text[layer]
        assert s.precision == s.recall == s.f1 == s.aligned_accuracy == words[layer].accuracy, layer
    # by hand, of 8 words: UPOS 6 (reads, Do wrong), XPOS 6 (reads, .), UFeats 6 (reads, stop),
    # AllTags 4 (reads, ., Do, stop), Lemmas 6 (reads, n't)
    assert [text[m].correct for m in ("UPOS", "XPOS", "UFeats", "AllTags", "Lemmas")] == [6, 6, 6, 4, 6]
    assert pct(text, "AllTags") == (50.0, 50.0, 50.0, 50.0)


def test_report_json_and_table():
    report = score(I_DONT, ["1 I I PRON", "2 do do AUX", "3 n't not PART", "4 know know NOUN", "5 . . PUNCT"])
    obj = json.loads(json.dumps(report.to_json()))
    assert list(obj) == list(TEXT_METRICS)
    assert obj["Tokens"] == {"status": "scored", "precision": 0.6, "recall": 0.75, "f1": 6 / 9,
                             "aligned_accuracy": None, "gold": 4, "system": 5, "correct": 3, "aligned": None}
    assert obj["UPOS"]["aligned"] == 3 and obj["UPOS"]["correct"] == 2
    assert obj["XPOS"]["status"] == "absent" and obj["XPOS"]["f1"] is None
    table = report.format().splitlines()
    assert table[0] == "Metric     | Precision |    Recall |  F1 Score | AligndAcc"
    assert table[2] == "Tokens     |     60.00 |     75.00 |     66.67 |"
    assert table[5] == "UPOS       |     40.00 |     50.00 |     44.44 |     66.67"
    assert table[6] == "XPOS       |         – |         – |         – |         –   (absent)"
    assert table[-1] == "(4 gold words, 5 system words, 3 aligned)"


def test_surface_tokens_list_multiword_tokens_with_their_words():
    sentence = parse_conllu(conllu(*IL_PARLE_DU), "x.conllu")[0]
    tokens = sentence.surface_tokens
    assert [(t.form, [w.form for w in t.words], t.multiword, t.line) for t in tokens] == [
        ("Il", ["Il"], False, 1), ("parle", ["parle"], False, 2), ("du", ["de", "le"], True, 3),
        ("chat", ["chat"], False, 6), (".", ["."], False, 7)]


def test_eval_scores_a_system_file_against_the_gold(tmp_path, capsys):
    gold, system = tmp_path / "gold.conllu", tmp_path / "sys.conllu"
    gold.write_text(conllu(*IL_PARLE_DU), encoding="utf-8")
    system.write_text(conllu(*IL_PARLE_DU_ONE_WORD), encoding="utf-8")
    assert main(["eval", str(gold), "--system", str(system)]) == 0
    out = capsys.readouterr().out
    assert "Words      |     80.00 |     66.67 |     72.73 |" in out
    assert main(["eval", str(gold), "--system", str(system), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == score_text_files(gold, system).to_json()


def test_eval_system_errors_are_one_line(tmp_path, capsys):
    gold, system = tmp_path / "gold.conllu", tmp_path / "sys.conllu"
    gold.write_text(conllu(*IL_PARLE_DU), encoding="utf-8")
    system.write_text(conllu("1 Il il PRON", "2 parlait parler VERB"), encoding="utf-8")
    for argv, expected in [
        (["eval", str(gold), "--system", str(system)], f"{system}:2: the system's text differs"),
        (["eval", str(gold)], "give --model MODEL or --system SYSTEM.conllu"),
        (["eval", str(gold), "--model", "en", "--system", str(system)], "not both"),
        (["eval", "-", "--system", "-"], "cannot both be standard input"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1, err
