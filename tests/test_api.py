"""The Python API (attnlab.load, Tagger) on a tiny model: the same tags and probabilities as
`attnlab tag --format json`, CoNLL-U written back unchanged but for UPOS/XPOS, type errors
with hints, and the same results from 8 threads as from one."""

from __future__ import annotations

import json
from multiprocessing.pool import ThreadPool

import pytest

import attnlab
from attnlab.cli import main
from attnlab.data.conllu import parse_conllu
from tiny_models import tiny_tagger_dir

LINES = ["I saw a saw.", "they book a book", "the dog can't fly over the old house ."]
UD = (
    "# sent_id = u1\n# text = I can't saw.\n"
    "1\tI\tI\tPRON\tPRP\tCase=Nom|Person=1\t3\tnsubj\t3:nsubj\t_\n"
    "2-3\tcan't\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "2\tca\tcan\tAUX\tMD\t_\t4\taux\t4:aux\t_\n"
    "3\tn't\tnot\tPART\tRB\tPolarity=Neg\t4\tadvmod\t4:advmod\t_\n"
    "4\tsaw\t_\tVERB\tVB\t_\t0\troot\t0:root\tSpaceAfter=No\n"
    "4.1\tsaw\tsaw\tVERB\tVB\t_\t_\t_\t4:conj\t_\n"
    "5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t4:punct\t_\n\n"
)


@pytest.fixture(scope="module")
def model_dir():
    return tiny_tagger_dir(xpos_weight=0.5)


@pytest.fixture(scope="module")
def tagger(model_dir):
    return attnlab.load(model_dir)


def cli_json(model_dir, path, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["tag", "--model", str(model_dir), str(path), "--format", "json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_text_and_token_lists_match_the_cli(tagger, model_dir, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    expected = cli_json(model_dir, src, capsys)
    assert tagger.layers == ("upos", "xpos")
    for way in (tagger(LINES), [tagger(line) for line in LINES], tagger.tag([obj["words"] for obj in expected])):
        assert len(way) == len(expected) == 3
        for sentence, obj in zip(way, expected):
            assert sentence.forms == obj["words"]
            assert sentence.upos == obj["upos"] and sentence.xpos == obj["xpos"]
            for layer in ("upos", "xpos"):
                probs = [t.probs[layer] for t in sentence]
                assert all(0.0 < p <= 1.0 for p in probs)
                assert [round(p, 4) for p in probs] == obj[layer + "_prob"]
    first = tagger("I saw a saw.")
    assert first.forms == ["I", "saw", "a", "saw", "."] and first.text == "I saw a saw."
    assert [t.id for t in first] == [1, 2, 3, 4, 5] and first[0].feats == {} and first[0].lemma is None


def test_top_k_starts_with_the_chosen_tag_and_sums_to_at_most_one(tagger):
    plain, = tagger.tag([["the", "dog", "saw", "a", "cat"]])
    ranked, = tagger.tag([["the", "dog", "saw", "a", "cat"]], top_k=3)
    assert all(t.top == {} for t in plain)
    for a, b in zip(plain, ranked):
        for layer in ("upos", "xpos"):
            top = b.top[layer]
            assert len(top) == 3 and top[0] == (a.upos if layer == "upos" else a.xpos, pytest.approx(a.probs[layer]))
            assert top[0][1] >= top[1][1] >= top[2][1] > 0.0 and sum(p for _, p in top) <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="top_k must be an int >= 0"):
        tagger.tag([["a"]], top_k=-1)


def test_conllu_round_trip_changes_only_upos_and_xpos(tagger, model_dir, tmp_path, capsys):
    src = tmp_path / "in.conllu"
    src.write_text(UD, encoding="utf-8")
    from_path, = tagger.tag_conllu(src)
    from_text, = tagger.tag_conllu(UD)
    assert str(from_path) == from_text.to_conllu()
    out = from_path.to_conllu()
    capsys.readouterr()
    assert main(["tag", "--model", str(model_dir), str(src)]) == 0
    assert out == capsys.readouterr().out  # byte for byte what `attnlab tag` writes
    before, after = UD.splitlines(), out.splitlines()
    assert len(before) == len(after)
    for b, a in zip(before, after):
        cb, ca = b.split("\t"), a.split("\t")
        if len(cb) == 10 and cb[0].isdigit():
            assert cb[:3] == ca[:3] and cb[5:] == ca[5:] and ca[3] == from_path.upos[int(cb[0]) - 1]
        else:
            assert a == b
    assert from_path.sent_id == "u1" and from_path.forms == ["I", "ca", "n't", "saw", "."]
    assert from_path[0].feats == {"Case": "Nom", "Person": "1"} and from_path[2].feats == {"Polarity": "Neg"}
    assert from_path[1].lemma == "can" and from_path[3].lemma is None
    assert [s.forms for s in parse_conllu(out)] == [from_path.forms]


def test_wrong_types_raise_type_errors_with_a_hint(tagger):
    with pytest.raises(TypeError, match=r"^tag\(\) takes a list of token lists; for raw text call tagger\(text\)$"):
        tagger.tag("I saw")
    with pytest.raises(TypeError, match=r"sentence 1 is a str \('I'\); wrap one sentence in a list"):
        tagger.tag(["I", "saw"])
    with pytest.raises(TypeError, match=r"sentence 2, token 3 is a int \(7\), not a str"):
        tagger.tag([["a"], ["b", "c", 7]])
    with pytest.raises(TypeError, match="for token lists call tagger.tag"):
        tagger([["I", "saw"]])
    with pytest.raises(TypeError, match="takes a path or CoNLL-U text, not int"):
        tagger.tag_conllu(3)
    with pytest.raises(ValueError, match="empty or holds a tab"):
        tagger.tag([["a", ""]])


def test_empty_sentences_stay_in_place(tagger):
    out = tagger.tag([["a", "dog"], [], ["the", "cat"]])
    assert [len(s) for s in out] == [2, 0, 2]
    assert out[2].upos == tagger.tag([["the", "cat"]])[0].upos


def test_load_names_what_it_could_not_find(tmp_path, monkeypatch, model_dir):
    with pytest.raises(FileNotFoundError, match=r"^no-such-model: no such model directory, and no shipped model "
                                                r"of that name \(shipped models: none\)$"):
        attnlab.load("no-such-model")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a model directory"):
        attnlab.load(tmp_path / "file")
    with pytest.raises(ValueError, match="missing"):
        attnlab.load(tmp_path)
    with pytest.raises(TypeError, match="takes a model name or directory"):
        attnlab.load(None)
    from attnlab import api

    monkeypatch.setitem(api.SHIPPED, "tiny", model_dir)
    assert attnlab.load("tiny")("a dog").forms == ["a", "dog"]


def test_eight_threads_give_the_single_threaded_results(tagger):
    words = [w for line in LINES for w in line.split()]
    batches = [[words[i % len(words):][: 3 + i % 7] or ["a"] for i in range(k, k + 5)] for k in range(24)]
    alone = [tagger.tag(b, top_k=2) for b in batches]
    with ThreadPool(8) as pool:
        together = pool.map(lambda b: tagger.tag(b, top_k=2), batches)
    assert together == alone
    assert sum(len(s) for r in alone for s in r) > 100
