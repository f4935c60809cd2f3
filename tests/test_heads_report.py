"""`attnlab heads` and what it stands on (attnlab.viz.headstats): the measures on a hand-made
attention matrix and tree with known answers, the fixed-offset baseline, switching heads off,
the report over a tiny treebank, the command line and its errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from attnlab.cli import main
from attnlab.data.conllu import parse_conllu, read_conllu
from attnlab.viz import headstats as hs
from attnlab.viz.model import load_explainable

from tiny_models import HEADS, LAYERS, full_corpus, tiny_tagger_dir

pytestmark = pytest.mark.usefixtures("one_thread")

# "the dog saw cats": the -det-> dog -nsubj-> saw <-obj- cats; saw is the root
TREE = hs.Tree(heads=[1, 2, -1, 2], relations=["det", "nsubj", "root", "obj"])
NEXT = [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1]]  # each word on the next one (the last on itself)
FIRST = [[0.4, 0.2, 0.2, 0.2]] * 4  # every word mostly on the first


def hand_report(min_count: int = 1) -> dict:
    tally = hs.HeadTally(1, 2)
    tally.add(torch.tensor([[NEXT, FIRST]], dtype=torch.float32), TREE)
    return hs.summarise(tally, min_count=min_count, sentences=1)


def test_entropy_and_distance_of_a_hand_made_matrix():
    one, spread = hand_report()["per_head"]
    assert one["entropy"] == 0.0 and one["distance"] == pytest.approx((1 + 1 + 1 + 0) / 4)
    assert spread["entropy"] == pytest.approx(-(0.4 * math.log(0.4) + 3 * 0.2 * math.log(0.2)))  # nats
    rows = [0.2 * 1 + 0.2 * 2 + 0.2 * 3, 0.4 * 1 + 0.2 * 1 + 0.2 * 2, 0.4 * 2 + 0.2 * 1 + 0.2 * 1, 0.4 * 3 + 0.2 * 2 + 0.2 * 1]
    assert spread["distance"] == pytest.approx(sum(rows) / 4)


def test_strongest_key_against_heads_and_dependents_by_relation():
    one, spread = hand_report()["per_head"]
    # "next word": the and dog find their heads, cats (on itself) does not
    assert (one["to_head"]["correct"], one["to_head"]["total"]) == (2, 3)
    assert {r: (s["correct"], s["total"]) for r, s in one["to_head"]["by_relation"].items()} == {
        "det": (1, 1), "nsubj": (1, 1), "obj": (0, 1)}
    # words with dependents: dog (-> saw, not its dependent), saw (-> cats, its obj)
    assert (one["to_dependent"]["correct"], one["to_dependent"]["total"]) == (1, 2)
    assert {r: (s["correct"], s["total"]) for r, s in one["to_dependent"]["by_relation"].items()} == {
        "det": (0, 1), "nsubj": (0, 1), "obj": (1, 1)}
    # "first word": nobody's head; dog's dependent (det), not saw's
    assert one["to_head"]["accuracy"] == pytest.approx(2 / 3) and spread["to_head"]["correct"] == 0
    assert {r: s["correct"] for r, s in spread["to_dependent"]["by_relation"].items()} == {"det": 1, "nsubj": 0, "obj": 0}


def test_fixed_offset_baseline_is_the_best_single_offset():
    report = hand_report()
    # heads lie at +1, +1, -1: "always the next word" gets 2 of 3; every head has a dependent just before it
    assert report["baseline"] == {"to_head": {"offset": 1, "correct": 2, "accuracy": pytest.approx(2 / 3)},
                                  "to_dependent": {"offset": -1, "correct": 2, "accuracy": 1.0}}
    by = {(r["relation"], r["direction"]): r for r in report["relations"]}
    assert by["obj", "to_head"]["baseline"]["offset"] == -1 and by["obj", "to_dependent"]["baseline"]["offset"] == 1
    assert by["obj", "to_dependent"]["best"][0] == {"layer": 1, "head": 1, "accuracy": 1.0}
    # with one word per relation every relation's baseline is right: no head finds more
    assert [e["best"] for e in report["per_head"]] == [None, None]


def test_best_relation_is_the_one_with_the_most_words_beyond_the_baseline():
    """A rare relation with a large margin loses to a common one where the head finds more words."""
    def relation(name, total, base):
        return {"relation": name, "direction": "to_head", "total": total,
                "baseline": {"offset": 1, "correct": base, "accuracy": base / total}}

    relations = [relation("vocative", 10, 5), relation("nsubj", 1000, 500)]
    entry = {"to_head": {"by_relation": {"vocative": {"correct": 10, "total": 10, "accuracy": 1.0},
                                         "nsubj": {"correct": 600, "total": 1000, "accuracy": 0.6}}}}
    best = hs.best_relation(entry, relations)
    assert (best["relation"], best["extra"], best["accuracy"], best["baseline"]) == ("nsubj", 100, 0.6, 0.5)
    assert hs.best_relation(entry, []) is None
    entry["to_head"]["by_relation"]["nsubj"]["correct"] = 500  # no more than the baseline anywhere ...
    entry["to_head"]["by_relation"]["vocative"]["correct"] = 4
    assert hs.best_relation(entry, relations) is None  # ... is no best relation


def test_relations_under_min_count_are_left_out():
    report = hand_report(min_count=2)
    assert report["relations"] == [] and report["per_head"][0]["best"] is None
    assert report["per_head"][0]["to_head"]["by_relation"] == {}
    assert report["per_head"][0]["to_head"]["total"] == 3  # still counted overall


def test_subtypes_count_as_their_base_relation_and_bad_heads_are_refused():
    [s] = parse_conllu(conllu_text([["a", "b", "c"]], heads=[[2, 0, 2]], deprels=[["nsubj:pass", "root", "obl:tmod"]]))
    assert hs.sentence_tree(s) == hs.Tree([1, -1, 1], ["nsubj", "root", "obl"])
    [s] = parse_conllu(conllu_text([["a", "b"]], heads=[[2, 0]], deprels=[["_", "root"]]))
    assert hs.sentence_tree(s).relations == ["_", "root"]
    [s] = parse_conllu(conllu_text([["a", "b"]], heads=[[7, 0]]), "x.conllu")
    with pytest.raises(ValueError, match=r"x.conllu:1: HEAD '7' of word 1 is not a word of its sentence"):
        hs.sentence_tree(s)


# -- a tiny tagger over a tiny treebank -------------------------------------------------------------

def conllu_text(sentences, heads=None, deprels=None, full=None) -> str:
    """CoNLL-U of word lists; default tree: every word on the next one, the last the root."""
    blocks = []
    for k, forms in enumerate(sentences):
        n = len(forms)
        h = heads[k] if heads else [i + 2 for i in range(n - 1)] + [0]
        r = deprels[k] if deprels else [("nmod:poss" if i % 2 else "dep") for i in range(n - 1)] + ["root"]
        rows = []
        for i, form in enumerate(forms):
            lemma, upos, xpos, feats = (full[k].lemmas[i], full[k].upos[i], full[k].xpos[i], full[k].feats[i]) if full \
                else ("_", "X", "_", "_")
            rows.append("\t".join([str(i + 1), form, lemma, upos, xpos, feats, str(h[i]), r[i], "_", "_"]))
        blocks.append("\n".join(rows) + "\n\n")
    return "".join(blocks)


@pytest.fixture(scope="module")
def treebank(tmp_path_factory):
    corpus = full_corpus(30, seed=5)
    path = tmp_path_factory.mktemp("tb") / "tiny-dev.conllu"
    path.write_text(conllu_text([s.forms for s in corpus], full=corpus), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def model():
    return load_explainable(tiny_tagger_dir(xpos_weight=0.5, full=True))


@pytest.fixture(scope="module")
def report(model, treebank):
    return hs.head_report(model, read_conllu(treebank), min_count=5, source=str(treebank))


def test_report_over_a_treebank_counts_every_word_once(report, model, treebank):
    sentences = read_conllu(treebank)
    words = sum(len(s) for s in sentences)
    assert (report["sentences"], report["words"], report["layers"], report["heads"]) == (len(sentences), words, LAYERS, HEADS)
    assert [(e["layer"], e["head"]) for e in report["per_head"]] == [(l, h) for l in (1, 2) for h in (1, 2)]
    for e in report["per_head"]:
        assert e["to_head"]["total"] == words - len(sentences)  # every word but the root has a head
        assert e["to_dependent"]["total"] == words - len(sentences)  # ... and every word but the first a dependent
        assert 0 <= e["entropy"] <= math.log(max(len(s) for s in sentences)) and e["distance"] >= 0
        by = e["to_head"]["by_relation"]
        assert set(by) == {"dep", "nmod"} and sum(s["total"] for s in by.values()) == e["to_head"]["total"]
    # every head is "always the next word" here: the baseline is perfect at offset +1
    assert report["baseline"]["to_head"] == {"offset": 1, "correct": words - len(sentences), "accuracy": 1.0}
    json.dumps(report)  # JSON as it stands


def test_entropy_and_hits_agree_with_the_models_own_attention(report, model, treebank):
    """The batched pass gives what one sentence at a time through the explorer's model gives."""
    sentences = read_conllu(treebank)
    tally = hs.HeadTally(LAYERS, HEADS)
    for s in sentences:
        tally.add(model.attention(s.forms)[2], hs.sentence_tree(s))
    alone = hs.summarise(tally, min_count=5)
    for a, b in zip(alone["per_head"], report["per_head"]):
        assert a["entropy"] == pytest.approx(b["entropy"], abs=1e-5)
        assert a["distance"] == pytest.approx(b["distance"], abs=1e-5)
        assert a["to_head"]["correct"] == b["to_head"]["correct"]
        assert a["to_dependent"]["by_relation"] == b["to_dependent"]["by_relation"]


def test_importance_against_the_intact_model(report, model, treebank):
    from attnlab.tasks.tagging import evaluate_tagger

    sentences = read_conllu(treebank)
    intact = evaluate_tagger(tiny_tagger_dir(xpos_weight=0.5, full=True), sentences, source="tiny")["layers"]
    assert report["intact"] == {k: pytest.approx(intact[k].accuracy) for k in hs.SCORED}
    # switching off no head changes nothing
    assert hs.tag_accuracies(hs.switched_off(model.model, []), model, sentences) == report["intact"]
    for e in report["per_head"]:
        for k, v in e["importance"].items():
            assert v["drop"] == pytest.approx(report["intact"][k] - v["accuracy"])
    # switching every head off costs accuracy somewhere
    everything = hs.switched_off(model.model, [(l, h) for l in range(LAYERS) for h in range(HEADS)])
    off = hs.tag_accuracies(everything, model, sentences)
    assert any(off[k] < report["intact"][k] for k in off)


def test_a_switched_off_head_no_longer_reaches_the_output(model):
    """With head h off, its values may be anything; with it on, they change the encoder's output."""
    batch = model.features.encode([["I", "saw", "a", "saw", "."]])

    def encoded(tagger, noise: bool):
        tagger = hs.switched_off(tagger, [])
        attn = tagger.encoder.transformer.layers[1].attn
        d = attn.d_head
        if noise:
            with torch.no_grad():  # head 2's rows of W^v
                attn.qkv.weight[2 * attn.d_model + d: 2 * attn.d_model + 2 * d] += 3.0
        with torch.inference_mode():
            return tagger.encode(batch)

    on, off = model.model, hs.switched_off(model.model, [(1, 1)])
    assert not torch.allclose(encoded(on, False), encoded(on, True))
    torch.testing.assert_close(encoded(off, False), encoded(off, True))
    assert not torch.allclose(encoded(on, False), encoded(off, False))
    assert torch.equal(model.model.encoder.transformer.layers[1].attn.out.weight,
                       hs.switched_off(model.model, []).encoder.transformer.layers[1].attn.out.weight)


def test_report_refuses_what_it_cannot_measure(model, treebank):
    with pytest.raises(ValueError, match="has no sentences"):
        hs.head_report(model, [], importance=False)
    no_trees = parse_conllu(conllu_text([["a", "b"]], heads=[["_", "_"]]))
    with pytest.raises(ValueError, match="no dependency trees"):
        hs.head_report(model, no_trees, importance=False)
    without = load_explainable(tiny_tagger_dir(encoder="cnn"))
    with pytest.raises(ValueError, match="no attention to show"):
        hs.head_report(without, read_conllu(treebank), importance=False)


# -- the command line -------------------------------------------------------------------------------

def test_cli_prints_the_table_and_writes_the_json(treebank, tmp_path, capsys):
    out = tmp_path / "heads.json"
    model_dir = tiny_tagger_dir(xpos_weight=0.5, full=True)
    assert main(["heads", "--model", str(model_dir), "--treebank", str(treebank), "--max-sentences", "12",
                 "--min-count", "3", "--json", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    written = hs.read_report(out)
    assert written["sentences"] == 12 and written["min_count"] == 3
    rows = [line for line in text.splitlines() if line.startswith("L")]
    assert len(rows) == LAYERS * HEADS
    first = written["per_head"][0]
    assert rows[0].split()[2:4] == [f"{first['entropy']:.2f}", f"{first['distance']:.2f}"]
    assert f"{100 * first['importance']['UPOS']['drop']:+.2f}" in rows[0]
    assert "dep >head" in text and "nmod >dep" in text and "intact: UPOS" in text

    # a directory: its --split file; --no-importance leaves importance out
    assert main(["heads", "--model", str(model_dir), "--treebank", str(treebank.parent), "--split", "dev",
                 "--no-importance", "--json", "-", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["intact"] is None and "importance" not in report["per_head"][0]
    assert report["sentences"] == len(read_conllu(treebank))


@pytest.mark.parametrize("argv, message", [
    (["--treebank", "/no/such/place"], "no such treebank directory or CoNLL-U file"),
    (["--treebank", "{dir}", "--split", "test"], "no *test.conllu file"),
    (["--treebank", "{bad}"], "HEAD 'x' of word 1 is not a word"),
    (["--treebank", "{file}", "--max-sentences", "0"], "--max-sentences"),
    (["--treebank", "{file}", "--json", "{dir}"], "is a directory"),
])
def test_cli_errors_are_one_line(argv, message, treebank, tmp_path, capsys):
    bad = tmp_path / "bad.conllu"
    bad.write_text("1\ta\t_\tX\t_\t_\tx\tdep\t_\t_\n\n", encoding="utf-8")
    argv = [a.format(dir=treebank.parent, file=treebank, bad=bad) for a in argv]
    code = main(["heads", "--model", str(tiny_tagger_dir()), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_cli_refuses_a_model_without_attention(treebank, capsys):
    assert main(["heads", "--model", str(tiny_tagger_dir(encoder="cnn")), "--treebank", str(treebank)]) == 2
    assert "no attention to show" in capsys.readouterr().err


def test_read_report_refuses_other_files_and_other_shapes(tmp_path, model):
    path = tmp_path / "r.json"
    path.write_text('{"format": "something else"}', encoding="utf-8")
    with pytest.raises(ValueError, match="not a head report"):
        hs.read_report(path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="not JSON"):
        hs.read_report(path)
    path.write_text(json.dumps(hand_report()), encoding="utf-8")
    assert hs.read_report(path)["heads"] == 2
    with pytest.raises(ValueError, match=f"a report of 1 layers x 2 heads, but the model has {LAYERS} x {HEADS}"):
        hs.read_report(path, model)


# -- the explorer's server ------------------------------------------------------------------------------

def test_the_server_gives_the_report_to_the_page(model, report):
    from starlette.testclient import TestClient

    from attnlab.serve.app import create_app

    with TestClient(create_app(model, heads=report), base_url="http://127.0.0.1") as client:
        answer = client.get("/api/heads")
        assert answer.status_code == 200 and answer.json() == {"report": json.loads(json.dumps(report))}
    with TestClient(create_app(model), base_url="http://127.0.0.1") as client:
        answer = client.get("/api/heads").json()
        assert answer["report"] is None and "--heads REPORT.json" in answer["reason"]


def test_serve_reads_or_computes_the_report_and_refuses_a_wrong_one(model, treebank, tmp_path, capsys):
    import argparse

    from attnlab.cli.serve import _head_report

    def args(**given):
        return argparse.Namespace(**{"heads": None, "treebank": None, **given})

    assert _head_report(args(), model) is None
    computed = _head_report(args(treebank=str(treebank)), model)
    assert computed["treebank"] == str(treebank) and computed["intact"] is not None
    path = tmp_path / "r.json"
    path.write_text(json.dumps(computed), encoding="utf-8")
    assert _head_report(args(heads=str(path)), model) == computed

    other = tmp_path / "other.json"
    other.write_text(json.dumps(hand_report()), encoding="utf-8")
    assert "measuring every head over" in capsys.readouterr().err
    for argv, message in [(["--heads", str(other)], "a report of 1 layers x 2 heads"),
                          (["--heads", str(tmp_path / "none.json")], "cannot read the head report"),
                          (["--heads", str(path), "--treebank", str(treebank)], "not both")]:
        assert main(["serve", "--model", str(tiny_tagger_dir(xpos_weight=0.5, full=True)), "--port", "0", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
