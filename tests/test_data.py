"""CoNLL-U reading and writing, vocabularies, length buckets, treebank lookup, demo corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from attnlab.data.batching import bucket_batches
from attnlab.data.conllu import ConlluError, Sentence, check_tags, format_conllu, parse_conllu, read_conllu, write_conllu
from attnlab.data.demo import PROBE, demo_paths, generate
from attnlab.data.treebank import find_split, resolve_treebank
from attnlab.data.vocab import Vocab

# A sentence with a comment block, a multiword token (3-4) and an empty node (5.1).
UD = (
    "# sent_id = s1\n"
    "# text = I don't saw.\n"
    "1\tI\tI\tPRON\tPRP\tCase=Nom\t3\tnsubj\t3:nsubj\t_\n"
    "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t4:aux\t_\n"
    "3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t4:advmod\t_\n"
    "4\tsaw\tsaw\tVERB\tVB\t_\t0\troot\t0:root\tSpaceAfter=No\n"
    "4.1\tsaw\tsaw\tVERB\tVB\t_\t_\t_\t4:conj\t_\n"
    "5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t4:punct\t_\n"
    "\n"
    "# sent_id = s2\n"
    "1\tHi\thi\tINTJ\tUH\t_\t0\troot\t0:root\t_\n"
    "\n"
)


def test_words_comments_and_multiword_tokens(tmp_path):
    path = tmp_path / "x.conllu"
    path.write_text(UD, encoding="utf-8")
    s1, s2 = read_conllu(path)
    assert s1.forms == ["I", "do", "n't", "saw", "."]  # syntactic words: not the range, not the empty node
    assert s1.upos == ["PRON", "AUX", "PART", "VERB", "PUNCT"]
    assert s1.xpos == ["PRP", "VBP", "RB", "VB", "."]
    assert s1.sent_id == "s1" and s1.text == "I don't saw."
    assert [t.space_after for t in s1.tokens] == [True, True, True, False, True]
    assert [t.line for t in s1.tokens] == [3, 5, 6, 7, 9]
    assert s2.start_line == 11 and s2.forms == ["Hi"]


def test_round_trip_is_byte_identical_and_only_tags_change(tmp_path):
    sents = parse_conllu(UD, "x")
    assert format_conllu(sents) == UD
    out = tmp_path / "o.conllu"
    write_conllu(sents, out, upos=[["X"] * 5, ["NOUN"]], xpos=[["x1", "x2", "x3", "x4", "x5"], ["NN"]])
    new, old = out.read_text().splitlines(), UD.splitlines()
    assert len(new) == len(old)
    changed = [(o.split("\t"), n.split("\t")) for o, n in zip(old, new) if o != n]
    assert len(changed) == 6  # the five words and "Hi"; ranges, empty nodes, comments untouched
    for o, n in changed:
        assert o[:3] == n[:3] and o[5:] == n[5:]
    again = read_conllu(out)
    assert again[0].upos == ["X"] * 5 and again[0].xpos == ["x1", "x2", "x3", "x4", "x5"] and again[1].upos == ["NOUN"]
    with pytest.raises(ValueError, match="sentence 2: 2 upos values for 1 words"):
        format_conllu(sents, upos=[["X"] * 5, ["A", "B"]])


@pytest.mark.parametrize("text, message", [
    ("1\ta\tb\n\n", r"bad.conllu:1: expected 10 tab-separated CoNLL-U columns, found 3"),
    ("1\ta" + "\t_" * 8 + "\n3\tb" + "\t_" * 8 + "\n", r"bad.conllu:2: word ID 3 out of order \(expected 2\)"),
    ("x\ta" + "\t_" * 8 + "\n", r"bad.conllu:1: bad token ID 'x'"),
    ("# c\n1\ta" + "\t_" * 8 + "\n# late\n", r"bad.conllu:3: comment line inside"),
    ("1\ta" + "\t_" * 8 + "\n   \n", r"bad.conllu:2: line of only whitespace"),
    ("# only a comment\n\n", r"bad.conllu:1: sentence without words"),
    ("1-3\tab" + "\t_" * 8 + "\n1\ta" + "\t_" * 8 + "\n2\tb" + "\t_" * 8 + "\n", r"bad.conllu:1: multiword token 1-3 covers word 3"),
    ("1\t" + "\t_" * 8 + "\n", r"bad.conllu:1: empty FORM"),
])
def test_malformed_input_names_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.conllu"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConlluError, match=message):
        read_conllu(path)


def test_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.conllu: no such file"):
        read_conllu(tmp_path / "nope.conllu")
    bad = tmp_path / "latin1.conllu"
    bad.write_bytes(b"1\tcaf\xe9" + b"\t_" * 8 + b"\n")
    with pytest.raises(ConlluError, match=r"latin1.conllu:1: not valid UTF-8 \(byte 0xe9 at column 6\)"):
        read_conllu(bad)


def test_missing_tags_are_reported_with_their_line():
    sents = parse_conllu("1\ta\ta\tDET\t_\t_\t_\t_\t_\t_\n2\tb\tb\t_\t_\t_\t_\t_\t_\t_\n", "t.conllu")
    with pytest.raises(ConlluError, match=r"t.conllu:2: UPOS is '_' \(no gold tag\)"):
        check_tags(sents)


def test_sentence_from_words_round_trips():
    s = Sentence.from_words(["I", "saw", "a", "saw"], text="I saw a saw", sent_id="q")
    assert parse_conllu(format_conllu([s]))[0].forms == ["I", "saw", "a", "saw"]
    assert parse_conllu(format_conllu([s]))[0].text == "I saw a saw"
    with pytest.raises(ValueError, match="word 2"):
        Sentence.from_words(["a", "b\tc"])


@pytest.mark.skipif(not os.environ.get("ATTNLAB_DATA"), reason="ATTNLAB_DATA is not set: no treebank to read")
def test_real_treebank_round_trip_is_byte_identical():
    for split in ("dev", "test"):
        path = find_split(resolve_treebank(None), split)
        sents = read_conllu(path)
        assert len(sents) > 1000
        assert format_conllu(sents) == path.read_text(encoding="utf-8")


# -- vocabularies ----------------------------------------------------------------------

def test_vocab_ids_order_and_json(tmp_path):
    v = Vocab.build(["b", "a", "b", "c", "a", "b"], min_count=2)
    assert v.itos == ["<pad>", "<unk>", "b", "a"]  # by count; "c" below min_count
    assert v.encode(["a", "c", "b"]) == [3, Vocab.UNK, 2]
    assert v.decode([2, 3]) == ["b", "a"]
    assert "a" in v and "c" not in v and "<unk>" not in v
    v.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json") == v
    assert Vocab.build("xyzzy", max_size=4).itos == ["<pad>", "<unk>", "y", "z"]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        v.decode([4])
    (tmp_path / "bad.json").write_text('{"itos": ["a"]}')
    with pytest.raises(ValueError, match=r"bad.json: a vocabulary starts with"):
        Vocab.load(tmp_path / "bad.json")


# -- batching --------------------------------------------------------------------------

def test_bucket_batches_cover_every_index_once_within_budget():
    lengths = [((i * 37) % 50) + 1 for i in range(500)] + [300]
    batches = bucket_batches(lengths, max_tokens=400, seed=3)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 400
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded < 1.15 * sum(lengths)  # buckets keep padding small
    assert bucket_batches(lengths, max_tokens=400, seed=3) == batches
    assert bucket_batches(lengths, max_tokens=400, seed=4) != batches
    by_count = bucket_batches(lengths, batch_size=32, shuffle=False)
    assert [len(b) for b in by_count] == [32] * 15 + [21]
    assert [lengths[i] for b in by_count for i in b] == sorted(lengths)
    with pytest.raises(ValueError, match="exactly one"):
        bucket_batches(lengths)


# -- treebank lookup -------------------------------------------------------------------

def test_treebank_lookup(tmp_path, monkeypatch):
    (tmp_path / "en-ud-train.conllu").write_text("")
    (tmp_path / "a-dev.conllu").write_text("")
    (tmp_path / "b-dev.conllu").write_text("")
    monkeypatch.delenv("ATTNLAB_DATA", raising=False)
    with pytest.raises(ValueError, match="set ATTNLAB_DATA"):
        resolve_treebank(None)
    monkeypatch.setenv("ATTNLAB_DATA", str(tmp_path))
    assert resolve_treebank(None) == tmp_path
    assert find_split(tmp_path, "train").name == "en-ud-train.conllu"
    with pytest.raises(ValueError, match="several"):
        find_split(tmp_path, "dev")
    with pytest.raises(FileNotFoundError, match=r"no \*test.conllu"):
        find_split(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="no such treebank directory"):
        resolve_treebank(tmp_path / "missing")


# -- the demo corpus -----------------------------------------------------------

def test_demo_corpus_is_written_on_first_use_and_mended(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNLAB_CACHE", str(tmp_path))
    generated = generate()
    paths = demo_paths()
    for split, path in paths.items():
        assert path.parent == tmp_path / "demo-corpus"
        assert path.read_text(encoding="utf-8") == generated[split]
    paths["dev"].write_text("1\tbroken\n", encoding="utf-8")  # a damaged file is rewritten
    before = paths["train"].stat().st_mtime_ns
    assert demo_paths()["dev"].read_text(encoding="utf-8") == generated["dev"]
    assert paths["train"].stat().st_mtime_ns == before  # an intact file is left alone
    assert generate(seed=7) != generated  # the seed matters: the text is not a constant


def test_demo_corpus_makes_context_decide_and_never_holds_the_probe():
    paths = demo_paths()
    sents = {k: read_conllu(p) for k, p in paths.items()}
    assert [len(sents[k]) for k in ("train", "dev", "test")] == [2400, 300, 300]
    for k in sents:
        check_tags(sents[k])  # gold UPOS from UD's 17 tags on every word
        check_tags(sents[k], "xpos")
    keys = [tuple(s.forms) for k in sents for s in sents[k]]
    assert len(set(keys)) == len(keys)  # no sentence repeated, within or across splits
    probe = [w.lower() for w in PROBE]
    for k in sents:
        for s in sents[k]:
            low = [f.lower() for f in s.forms]
            assert not any(low[i:i + 4] == probe for i in range(len(low) - 3))
    tags: dict[str, set[str]] = {}
    for s in sents["train"]:
        for f, t in zip(s.forms, s.upos):
            tags.setdefault(f, set()).add(t)
    assert tags["saw"] == {"NOUN", "VERB"} and tags["can"] == {"NOUN", "AUX"}
    assert {"NOUN", "VERB"} <= tags["book"] and {"NOUN", "VERB"} <= tags["fly"] and {"NOUN", "VERB"} <= tags["watch"]
    # a tagger that gives each word its most frequent tag cannot be right on every "saw"
    saw = [t for s in sents["train"] for f, t in zip(s.forms, s.upos) if f == "saw"]
    assert 0.3 < saw.count("NOUN") / len(saw) < 0.7
