"""The Python API (attnlab.load, Tagger) on tiny models: raw text to a Document (sentences,
tokens with offsets, multiword tokens, words), the same tags and probabilities as
`attnlab tag --format json`, CoNLL-U written back unchanged but for the predicted columns
(LEMMA, UPOS, XPOS, FEATS), type errors with hints, the same results from 8 threads as from
one, and shipped models found by name by the API and by every command that takes a model."""

from __future__ import annotations

import io
import json
from multiprocessing.pool import ThreadPool
from pathlib import Path

import pytest

import attnlab
from attnlab.cli import main
from attnlab.data.conllu import parse_conllu
from tiny_models import tiny_pipeline_dir, tiny_tagger_dir

TEXT = "I see a idea. they don't take me.\n\nthis old book like us."
WORDS = [["I", "see", "a", "idea", "."], ["they", "do", "n't", "take", "me", "."], ["this", "old", "book", "like", "us", "."]]
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
    return tiny_pipeline_dir(xpos_weight=0.5)


@pytest.fixture(scope="module")
def tagger(model_dir):
    return attnlab.load(model_dir)


def cli_json(model_dir, path, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["tag", "--model", str(model_dir), str(path), "--format", "json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_raw_text_gives_a_document_of_sentences_tokens_and_words(tagger):
    doc = tagger(TEXT)
    assert isinstance(doc, attnlab.Document) and doc.text == TEXT
    assert [s.forms for s in doc] == WORDS and len(doc) == 3 and len(doc.words) == 17
    assert [s.text for s in doc] == ["I see a idea.", "they don't take me.", "this old book like us."]
    dont = doc[1].tokens[1]
    assert (dont.form, dont.start, dont.end, [w.form for w in dont.words]) == ("don't", 19, 24, ["do", "n't"])
    assert dont.multiword and not doc[1].tokens[0].multiword
    assert all(TEXT[t.start:t.end] == t.form for t in doc.tokens)
    assert [s.sent_id for s in doc] == ["1", "2", "3"]
    lines = str(doc).splitlines()
    assert lines[:4] == ["# newdoc", "# newpar", "# sent_id = 1", "# text = I see a idea."]
    assert "# newpar" in lines[lines.index("# sent_id = 3") - 1]
    assert lines[lines.index("# sent_id = 2") + 3].split("\t")[0::9] == ["2-3", "TokenRange=19:24"]
    word_lines = [line.split("\t") for line in lines if line[:1].isdigit() and "-" not in line.split("\t")[0]]
    assert [(c[6], c[7]) for c in word_lines[:3]] == [("0", "root"), ("1", "dep"), ("1", "dep")]  # placeholder tree
    assert parse_conllu(str(doc))[1].surface_tokens[1].form == "don't"
    lines_doc = tagger("I see a idea. they take me.\nthis old book like us.", presegmented=True)
    assert [len(s) for s in lines_doc] == [9, 6]  # a sentence per line


def test_raw_text_and_token_lists_match_the_cli(tagger, model_dir, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text(TEXT, encoding="utf-8")
    expected = cli_json(model_dir, src, capsys)
    assert tagger.layers == ("upos", "xpos")
    for way in (tagger(TEXT).sentences, tagger([TEXT])[0].sentences, tagger.tag(WORDS)):
        assert len(way) == len(expected) == 3
        for sentence, obj in zip(way, expected):
            assert sentence.forms == obj["words"]
            assert sentence.upos == obj["upos"] and sentence.xpos == obj["xpos"]
            for layer in ("upos", "xpos"):
                probs = [t.probs[layer] for t in sentence]
                assert all(0.0 < p <= 1.0 for p in probs)
                assert [round(p, 4) for p in probs] == obj[layer + "_prob"]
    assert expected[1]["tokens"][1] == {"form": "don't", "start": 19, "end": 24, "words": [1, 2]}
    first = tagger.tag([["I", "saw", "a", "saw", "."]])[0]
    assert [t.id for t in first] == [1, 2, 3, 4, 5] and first[0].feats == {} and first[0].lemma is None
    assert [(t.form, t.start, t.end) for t in first.tokens][:2] == [("I", None, None), ("saw", None, None)]


def test_a_model_without_a_segmenter_says_what_it_takes(tmp_path, capsys):
    plain = attnlab.load(tiny_tagger_dir(xpos_weight=0.5))
    assert not plain.can_segment
    with pytest.raises(attnlab.NoSegmenterError, match="has no segmenter.*tagger.tag, or attnlab tag --input pretokenized"):
        plain("I saw a saw.")
    src = tmp_path / "in.txt"
    src.write_text("I saw a saw .\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["tag", "--model", str(tiny_tagger_dir(xpos_weight=0.5)), str(src)]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no segmenter" in err and "--input pretokenized" in err and len(err.splitlines()) == 1
    assert main(["tag", "--model", str(tiny_tagger_dir(xpos_weight=0.5)), str(src), "--input", "pretokenized",
                 "--format", "tsv"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.split("\n") if line] == ["I", "saw", "a", "saw", "."]


def test_top_k_starts_with_the_chosen_tag_and_sums_to_at_most_one(tagger):
    plain, = tagger.tag([["the", "dog", "saw", "a", "cat"]])
    ranked, = tagger.tag([["the", "dog", "saw", "a", "cat"]], top_k=3)
    assert all(t.top == {} for t in plain)
    for a, b in zip(plain, ranked):
        for layer in ("upos", "xpos"):
            top = b.top[layer]
            assert len(top) == 3 and top[0] == (a.upos if layer == "upos" else a.xpos, pytest.approx(a.probs[layer]))
            assert top[0][1] >= top[1][1] >= top[2][1] > 0.0 and sum(p for _, p in top) <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="top_k must be an integer >= 0, got -1"):
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


FULL_UD = "# newdoc id = d1\n" + UD + (
    "# sent_id = u2\n# text = they book a book\n# note = a comment of its own\n"
    "0.1\tthey\tthey\tPRON\tPRP\t_\t_\t_\t1:nsubj\t_\n"
    "1\tthey\t_\t_\t_\t_\t2\tnsubj\t2:nsubj\t_\n"
    "2\tbook\tbook\tVERB\tVBP\tMood=Ind\t0\troot\t0:root\t_\n"
    "3\ta\ta\tDET\tDT\t_\t4\tdet\t4:det\t_\n"
    "4\tbook\tbook\tNOUN\tNN\tNumber=Sing\t2\tobj\t2:obj\tSpaceAfter=No\n\n"
)


def test_every_layer_is_written_back_and_nothing_else(tmp_path, capsys):
    directory = tiny_tagger_dir(xpos_weight=0.5, full=True)
    tagger = attnlab.load(directory)
    assert tagger.layers == ("upos", "xpos", "feats", "lemma")
    src = tmp_path / "in.conllu"
    src.write_text(FULL_UD, encoding="utf-8")
    tagged = tagger.tag_conllu(src)
    capsys.readouterr()
    assert main(["tag", "--model", str(directory), str(src)]) == 0
    out = capsys.readouterr().out
    assert out == "".join(str(s) for s in tagged)
    before, after = FULL_UD.splitlines(), out.splitlines()
    assert len(before) == len(after)
    words = iter(t for s in tagged for t in s)
    for b, a in zip(before, after):
        cb, ca = b.split("\t"), a.split("\t")
        if len(cb) == 10 and cb[0].isdigit():  # LEMMA, UPOS, XPOS, FEATS predicted; the rest as it was
            t = next(words)
            assert ca[2:6] == [t.lemma, t.upos, t.xpos, t.column("feats")]
            assert cb[:2] + cb[6:] == ca[:2] + ca[6:]
        else:
            assert a == b  # comments, multiword tokens, empty nodes and blank lines untouched
    assert next(words, None) is None
    assert main(["tag", "--model", str(directory), str(src), "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["sent_id"] for r in rows] == ["u1", "u2"]
    for row, sentence in zip(rows, tagged):
        assert set(row) == {"sent_id", "words", *(f"{layer}{end}" for layer in tagger.layers for end in ("", "_prob"))}
        assert row["feats"] == sentence.column("feats") and row["lemma"] == [t.lemma for t in sentence]
        assert row["lemma_prob"] == [round(t.probs["lemma"], 4) for t in sentence]
        assert all(0.0 < p <= 1.0 for layer in tagger.layers for p in row[layer + "_prob"])


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


def test_load_names_what_it_could_not_find(tmp_path, monkeypatch):
    from attnlab import api

    monkeypatch.setattr(api, "MODELS_DIR", tmp_path / "no-models")
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


# -- shipped models: attnlab/models/<name>/, found by name ------------------------------------

@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A models directory holding the tiny full-layer tagger as "tiny" (and a directory that is
    not a model), which the registry is pointed at."""
    import shutil

    from attnlab import api

    models = tmp_path / "models"
    shutil.copytree(tiny_pipeline_dir(xpos_weight=0.5, full=True), models / "tiny")
    (models / "notes").mkdir()  # no config.json: not a model
    monkeypatch.setattr(api, "MODELS_DIR", models)
    return models / "tiny"


def test_shipped_models_are_found_by_name_and_a_path_is_still_a_path(shipped, tmp_path, monkeypatch):
    from attnlab.api import resolve_model, shipped_models

    assert shipped_models() == {"tiny": shipped}
    assert resolve_model("tiny") == shipped and resolve_model(shipped) == shipped
    tagger = attnlab.load("tiny")
    assert tagger.layers == ("upos", "xpos", "feats", "lemma") and tagger.name == "tiny"
    assert [w.form for w in tagger("a dog").words] == ["a", "dog"]
    local = tmp_path / "work"
    (local / "tiny").mkdir(parents=True)
    monkeypatch.chdir(local)
    assert resolve_model("tiny") == shipped  # the name wins over a directory in the working directory ...
    assert resolve_model("./tiny") == Path("./tiny")  # ... which a path reaches
    with pytest.raises(FileNotFoundError, match=r"^nope: no such model directory, and no shipped model of that "
                                                r"name \(shipped models: tiny\)$"):
        attnlab.load("nope")
    with pytest.raises(FileNotFoundError, match="shipped models: tiny"):
        attnlab.load(Path("notes"))  # a Path is never a name


def test_every_command_that_takes_a_model_takes_a_shipped_name(shipped, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("I saw a saw.\nthey book a book\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["tag", "--model", "tiny", str(src), "--format", "tsv"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines() if line]
    expected = attnlab.load("tiny")("I saw a saw.\nthey book a book\n")
    assert rows == [[t.form, t.upos, t.xpos, t.column("feats"), t.lemma] for t in expected.words]
    gold = tmp_path / "gold.conllu"
    gold.write_text(UD, encoding="utf-8")
    assert main(["eval", "--model", "tiny", str(gold), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["upos"]["tokens"] == 5
    assert main(["explain", "--model", "tiny", "--steps", "I", "saw"]) == 0
    short = attnlab.load("tiny").tag([["I", "saw"]])[0]
    assert capsys.readouterr().out.startswith(f"I/{short.upos[0]} saw/{short.upos[1]}\n")
    for command in (["tag", str(src)], ["eval", str(gold)], ["explain", "I", "saw"], ["serve"], ["bench", "serve"]):
        assert main([*command, "--model", "no-such-model"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"attnlab {command[0]}: error: no-such-model: no such model directory, and no shipped model "
                       "of that name (shipped models: tiny)")


def test_tag_without_a_model_uses_the_default_shipped_one(shipped, tmp_path, monkeypatch, capsys):
    from attnlab import api

    monkeypatch.setattr("sys.stdin", io.StringIO("I saw a saw .\n"))
    capsys.readouterr()
    assert main(["tag", "--format", "tsv"]) == 2
    assert capsys.readouterr().err.strip() == (
        "attnlab tag: error: no --model given and the default model 'en' is not installed; give --model a model "
        "directory or a shipped model's name (shipped models: tiny)")
    monkeypatch.setattr(api, "DEFAULT_MODEL", "tiny")
    monkeypatch.setattr("sys.stdin", io.StringIO("I saw a saw .\n"))
    assert main(["tag", "--format", "tsv"]) == 0
    expected = attnlab.load("tiny")("I saw a saw .\n")
    assert capsys.readouterr().out == "".join(f"{t.form}\t{t.upos}\t{t.xpos}\t{t.column('feats')}\t{t.lemma}\n"
                                              for t in expected.words) + "\n"


def test_the_notebook_explorer_takes_a_shipped_name_or_a_tagger(shipped):
    from attnlab.viz import show

    by_name = show("tiny", "I saw a saw").html
    assert '"name": "tiny"' in by_name and '"name": "LEMMA"' in by_name
    assert show(attnlab.load("tiny", precision="fp32"), "I saw a saw").html == by_name
    with pytest.raises(FileNotFoundError, match="shipped models: tiny"):
        show("no-such-model", "I saw")


def test_the_package_data_carries_the_shipped_models():
    import fnmatch
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["attnlab"]
    for path in ("models/en/config.json", "models/en/vocab.json", "models/en/model.safetensors", "models/en/LICENSE",
                 "models/en/README.md", "models/README.md"):
        assert any(fnmatch.fnmatch(path, p.replace("**/", "*/")) for p in patterns), path
    assert not any(fnmatch.fnmatch("models/en/notes.txt", p.replace("**/", "*/")) for p in patterns)


def test_eight_threads_give_the_single_threaded_results(tagger):
    words = [w for sentence in WORDS for w in sentence] + ["saw", "book", "can't", "fly"]
    batches = [[words[i % len(words):][: 3 + i % 7] or ["a"] for i in range(k, k + 5)] for k in range(24)]
    alone = [tagger.tag(b, top_k=2) for b in batches]
    with ThreadPool(8) as pool:
        together = pool.map(lambda b: tagger.tag(b, top_k=2), batches)
    assert together == alone
    assert sum(len(s) for r in alone for s in r) > 100
