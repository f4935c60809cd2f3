"""`attnlab bench tag`'s report on made-up figures (spaCy rows, the attnlab best / spaCy best line),
its cases run with fake timings (spaCy installed or not), and what the spaCy peer is given: the
CoNLL-U -> Doc conversion, its training settings and cache, its nlp.pipe script on a blank
pipeline (no training here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from attnlab.bench import spacy_peer, tag
from attnlab.bench.spacy_peer import input_kind, versus
from attnlab.bench.tag import TagBenchConfig, format_report

needs_spacy = pytest.mark.skipif(importlib.util.find_spec("spacy") is None,
                                 reason="spaCy is not installed (pip install 'spacy>=3.8,<3.9')")

TWO_SENTENCES = "\n".join([
    "# newdoc id = d1",
    "# text = Al-Zaman: they'll go.",
    "1\tAl\tAl\tPROPN\tNNP\tNumber=Sing\t0\troot\t_\tSpaceAfter=No",
    "2\t-\t-\tPUNCT\tHYPH\t_\t3\tpunct\t_\tSpaceAfter=No",
    "3\tZaman\tZaman\tPROPN\tNNP\tNumber=Sing\t1\tflat\t_\tSpaceAfter=No",
    "4\t:\t:\tPUNCT\t:\t_\t1\tpunct\t_\t_",
    "5-6\tthey'll\t_\t_\t_\t_\t_\t_\t_\t_",
    "5\tthey\tthey\tPRON\tPRP\tCase=Nom|Number=Plur|Person=3|PronType=Prs\t7\tnsubj\t_\t_",
    "6\t'll\twill\tAUX\tMD\tVerbForm=Fin\t7\taux\t_\t_",
    "7\tgo\tgo\tVERB\tVB\tVerbForm=Inf\t1\tparataxis\t_\tSpaceAfter=No",
    "8\t.\t.\tPUNCT\t.\t_\t1\tpunct\t_\t_",
    "",
    "# newpar",
    "# text = Cannot.",
    "1-2\tCannot\t_\t_\t_\t_\t_\t_\t_\tSpaceAfter=No",
    "1\tCan\tcan\tAUX\tMD\tVerbForm=Fin\t0\troot\t_\t_",
    "2\tnot\tnot\tPART\tRB\tPolarity=Neg\t1\tadvmod\t_\t_",
    "3\t.\t.\tPUNCT\t.\t_\t1\tpunct\t_\t_",
    "", ""])


def row(words: int, seconds: float) -> dict:
    return {"words": words, "sentences": None, "median_s": seconds, "words_per_s": words / seconds,
            "samples_words_per_s": [words / seconds]}


ROWS = {
    "conllu, 1 process, 1 thread": row(200_000, 40.0),      # 5,000 words/s
    "conllu, 2 workers": row(200_000, 25.0),                # 8,000
    "text, 1 process, 1 thread": row(204_000, 51.0),        # 4,000
    "text, 2 workers": row(204_000, 30.0),                  # 6,800
    "spaCy CNN, conllu, n_process=1": row(200_000, 50.0),   # 4,000
    "spaCy CNN, text, n_process=1": row(206_000, 82.4),     # 2,500
    "spaCy CNN, text, n_process=2": row(206_000, 51.5),     # 4,000
}
SPACY_INFO = {"spacy": "3.8.18", "pipeline": ["tok2vec", "tagger", "morphologizer", "trainable_lemmatizer"],
              "train": "en_ewt-ud-train.conllu", "steps": 1000, "seconds": 95.4, "trained_at": "2026-12-03 14:45 UTC",
              "cached": True, "dev_scores": {"tag_acc": 0.9012, "pos_acc": 0.9123, "morph_acc": 0.9346,
                                             "lemma_acc": 0.9456}}


def report(rows: dict, spacy: dict | None = SPACY_INFO, notes: list | None = None) -> dict:
    return {"machine": {"cpu": "AMD EPYC", "nproc": 2, "torch": "2.13.0+cpu"}, "input": "train.conllu",
            "model": "en", "rows": rows, "memory": {}, "notes": notes or [], "repeat": 3, "spacy": spacy,
            "versus_spacy": versus(rows)}


def test_input_kind_of_attnlab_and_spacy_cases():
    assert [input_kind(n) for n in ROWS] == ["conllu", "conllu", "text", "text", "conllu", "text", "text"]
    assert input_kind("conllu, Dask local:2") == "conllu"


def test_versus_takes_the_best_of_each_side_per_input():
    v = versus(ROWS)
    assert [(x["kind"], x["attnlab"], x["spacy"]) for x in v] == [
        ("conllu", "conllu, 2 workers", "spaCy CNN, conllu, n_process=1"),
        ("text", "text, 2 workers", "spaCy CNN, text, n_process=2")]
    assert [round(x["ratio"], 4) for x in v] == [2.0, 1.7]
    assert [round(x["attnlab_words_per_s"]) for x in v] == [8000, 6800]
    assert [round(x["spacy_words_per_s"]) for x in v] == [4000, 4000]
    # one side missing: no comparison for that input
    assert versus({k: r for k, r in ROWS.items() if not k.startswith("text")})[0]["kind"] == "conllu"
    assert len(versus({k: r for k, r in ROWS.items() if k.startswith("spaCy")})) == 0


def test_report_has_spacy_rows_ratios_and_the_pipeline():
    lines = format_report(report(ROWS)).splitlines()
    table = lines[lines.index("| case | words | median s | words/s | vs 1 process, 1 thread |"):][2:9]
    assert table == [
        "| conllu, 1 process, 1 thread | 200,000 | 40.00 | 5,000 | 1.00x |",
        "| conllu, 2 workers | 200,000 | 25.00 | 8,000 | 1.60x |",
        "| text, 1 process, 1 thread | 204,000 | 51.00 | 4,000 | 1.00x |",
        "| text, 2 workers | 204,000 | 30.00 | 6,800 | 1.70x |",
        "| spaCy CNN, conllu, n_process=1 | 200,000 | 50.00 | 4,000 | 1.00x |",
        "| spaCy CNN, text, n_process=1 | 206,000 | 82.40 | 2,500 | 1.00x |",
        "| spaCy CNN, text, n_process=2 | 206,000 | 51.50 | 4,000 | 1.60x |",
    ]
    assert lines[12:17] == [
        "",
        "conllu: attnlab best / spaCy best = 2.00x (conllu, 2 workers: 8,000 words/s; "
        "spaCy CNN, conllu, n_process=1: 4,000 words/s)",
        "text: attnlab best / spaCy best = 1.70x (text, 2 workers: 6,800 words/s; "
        "spaCy CNN, text, n_process=2: 4,000 words/s)",
        "",
        "spaCy 3.8.18 CNN pipeline (tok2vec + tagger + morphologizer + trainable_lemmatizer; spaCy's efficiency "
        "config), trained on en_ewt-ud-train.conllu for 1,000 steps (95 s, 2026-12-03 14:45 UTC, cached); dev "
        "accuracy XPOS 90.1, UPOS 91.2, UFeats 93.5, Lemmas 94.6 (not compared: its speed depends on the "
        "architecture, not on how long it trained); nlp.pipe(batch_size=256) in a new process per run (startup "
        "and spacy.load counted, torch kept out), words = spaCy's tokens",
    ]


def test_report_without_spacy_keeps_the_note_and_has_no_ratio():
    rows = {k: r for k, r in ROWS.items() if not k.startswith("spaCy")}
    note = "spaCy not installed: the spaCy comparison was not run (pip install 'spacy>=3.8,<3.9')"
    text = format_report(report(rows, spacy=None, notes=[note]))
    assert "attnlab best" not in text and "spaCy 3" not in text
    assert text.splitlines()[-1] == f"note: {note}"


def tiny_treebank(tmp_path: Path) -> Path:
    (tmp_path / "tb").mkdir(parents=True)
    (tmp_path / "tb" / "x-ud-train.conllu").write_text(TWO_SENTENCES, encoding="utf-8")
    return tmp_path / "tb"


def fake_runs(monkeypatch, spacy: bool) -> list:
    calls: list = []
    monkeypatch.setattr(tag, "_has", lambda module: spacy if module == "spacy" else False)
    monkeypatch.setattr(tag, "run_command", lambda args: calls.append(("attnlab",)) or
                        {"seconds": 2.0, "words": 11, "sentences": 2, "peak_rss_mb": None})
    monkeypatch.setattr(spacy_peer, "ensure_pipeline", lambda treebank, steps: {**SPACY_INFO, "path": "/p"})
    monkeypatch.setattr(spacy_peer, "run_pipe", lambda model, path, kind, n: calls.append(("spacy", kind, n)) or
                        {"seconds": 4.0, "words": 12, "sentences": None, "docs": 2, "peak_rss_mb": None})
    return calls


def test_spacy_cases_are_interleaved_with_attnlab_cases(tmp_path, monkeypatch):
    calls = fake_runs(monkeypatch, spacy=True)
    monkeypatch.setattr(tag.tempfile, "tempdir", str(tmp_path))
    got = tag.run(TagBenchConfig(treebank=tiny_treebank(tmp_path), repeat=2, memory_mb=0,
                                 cases=("text, 1 process, 1", "spaCy CNN, text")))
    assert list(got["rows"]) == ["text, 1 process, 1 thread", "spaCy CNN, text, n_process=1",
                                 "spaCy CNN, text, n_process=2"]
    assert [c[0] for c in calls] == ["attnlab", "spacy", "spacy", "spacy", "spacy", "attnlab"]  # round_order
    assert got["rows"]["spaCy CNN, text, n_process=2"]["words_per_s"] == 3.0
    assert [(v["kind"], round(v["ratio"], 4)) for v in got["versus_spacy"]] == [("text", 1.8333)]
    assert got["spacy"]["steps"] == 1000 and not any("spaCy" in n for n in got["notes"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tb"]  # the inputs' directory is gone


@pytest.mark.parametrize("native", [False, True])
def test_without_spacy_the_note_says_so(tmp_path, monkeypatch, native):
    from attnlab import precision

    monkeypatch.setattr(precision, "native_bf16", lambda: (native, "told by the test"))
    calls = fake_runs(monkeypatch, spacy=False)
    got = tag.run(TagBenchConfig(treebank=tiny_treebank(tmp_path), repeat=1, memory_mb=0, cases=("text",)))
    # with native bf16 the default runs in it, and fp32 is measured beside it; int8 always
    assert [k for k in got["rows"] if "fp32" in k] == (["text, 2 workers, fp32"] if native else [])
    assert [k for k in got["rows"] if "int8" in k] == ["text, 2 workers, int8"]
    assert len(calls) == 4 + native and got["spacy"] is None and got["versus_spacy"] == []
    assert f"precision: the default (auto) is {'bf16' if native else 'fp32'} here (told by the test)" in got["notes"][0]
    assert "spaCy not installed: the spaCy comparison was not run (pip install 'spacy>=3.8,<3.9')" in got["notes"]
    with pytest.raises(ValueError, match="no case of this run matches 'nothing'"):
        tag.run(TagBenchConfig(treebank=tiny_treebank(tmp_path / "b"), repeat=1, memory_mb=0, cases=("nothing",)))


@needs_spacy
def test_conllu_sentences_become_spacy_docs(tmp_path):
    import spacy

    from attnlab.data.conllu import read_conllu

    path = tmp_path / "two.conllu"
    path.write_text(TWO_SENTENCES, encoding="utf-8")
    vocab = spacy.blank("en").vocab
    first, second = (spacy_peer.sentence_doc(s, vocab) for s in read_conllu(path))
    assert [t.text for t in first] == ["Al", "-", "Zaman", ":", "they", "'ll", "go", "."]
    assert [t.whitespace_ for t in first] == ["", "", "", " ", "", " ", "", " "]
    assert first.text == "Al-Zaman: they'll go. "
    assert [t.tag_ for t in first] == ["NNP", "HYPH", "NNP", ":", "PRP", "MD", "VB", "."]
    assert [t.pos_ for t in first] == ["PROPN", "PUNCT", "PROPN", "PUNCT", "PRON", "AUX", "VERB", "PUNCT"]
    assert [t.lemma_ for t in first] == ["Al", "-", "Zaman", ":", "they", "will", "go", "."]
    assert [str(t.morph) for t in first] == ["Number=Sing", "", "Number=Sing", "",
                                            "Case=Nom|Number=Plur|Person=3|PronType=Prs", "VerbForm=Fin",
                                            "VerbForm=Inf", ""]
    assert second.text == "Cannot. " and [t.whitespace_ for t in second] == ["", "", " "]
    assert [(t.lemma_, t.pos_, str(t.morph)) for t in second] == [
        ("can", "AUX", "VerbForm=Fin"), ("not", "PART", "Polarity=Neg"), (".", "PUNCT", "")]
    out = tmp_path / "two.spacy"
    assert spacy_peer.write_docbin(read_conllu(path), out) == 2
    from spacy.tokens import DocBin

    back = list(DocBin().from_disk(out).get_docs(vocab))
    assert [d.text for d in back] == ["Al-Zaman: they'll go. ", "Cannot. "]
    assert [t.lemma_ for t in back[1]] == ["can", "not", "."] and back[0][5].tag_ == "MD"


@needs_spacy
def test_training_settings_and_config():
    text = spacy_peer.config_text()
    assert 'pipeline = ["tok2vec", "tagger", "morphologizer", "trainable_lemmatizer"]' in text
    assert "[components.tok2vec.model.encode]\n@architectures = \"spacy.MaxoutWindowEncoder.v2\"\nwidth = 96" in text
    assert spacy_peer.overrides(Path("t.spacy"), Path("d.spacy"), 1000) == {
        "paths.train": "t.spacy", "paths.dev": "d.spacy", "training.max_steps": 1000, "training.max_epochs": 1,
        "training.eval_frequency": 250, "system.seed": 0}


@needs_spacy
def test_a_trained_pipeline_is_found_in_the_cache(tmp_path):
    import spacy

    treebank = tiny_treebank(tmp_path)
    (treebank / "x-ud-dev.conllu").write_text(TWO_SENTENCES, encoding="utf-8")
    key = spacy_peer.cache_key(treebank, 1000, spacy.__version__)
    assert len(key) == 16 and key == spacy_peer.cache_key(treebank, 1000, spacy.__version__)
    assert key != spacy_peer.cache_key(treebank, 999, spacy.__version__) != spacy_peer.cache_key(treebank, 1000, "0")
    home = tmp_path / "cache" / "bench-spacy" / key
    home.mkdir(parents=True)
    (home / "trained.json").write_text(json.dumps({"steps": 1000, "seconds": 95.4}), encoding="utf-8")
    got = spacy_peer.ensure_pipeline(treebank, 1000, cache=tmp_path / "cache")
    assert got == {"steps": 1000, "seconds": 95.4, "path": str(home / "model-best"), "cached": True}
    (tmp_path / "tb" / "x-ud-dev.conllu").unlink()
    with pytest.raises(FileNotFoundError, match="no \\*dev.conllu file"):
        spacy_peer.ensure_pipeline(treebank, 1000, cache=tmp_path / "cache")


def test_a_failed_pipe_run_is_one_line(monkeypatch):
    import sys

    monkeypatch.setattr(spacy_peer, "pipe_command",
                        lambda *a, **k: [sys.executable, "-c", "import sys; print('x', file=sys.stderr); sys.exit('no such file')"])
    with pytest.raises(RuntimeError) as info:
        spacy_peer.run_pipe("m", "raw.txt", "text", 2)
    assert str(info.value) == "spaCy nlp.pipe over raw.txt (n_process=2) failed (exit 1): no such file"


@needs_spacy
def test_the_pipe_script_counts_tokens_and_docs(tmp_path):
    import spacy

    spacy.blank("en").to_disk(tmp_path / "blank")
    raw = tmp_path / "raw.txt"
    raw.write_text("Al-Zaman: they'll go.\n\nCannot.\n \nA b c\nd.\n", encoding="utf-8")
    conllu = tmp_path / "two.conllu"
    conllu.write_text(TWO_SENTENCES, encoding="utf-8")
    text = spacy_peer.run_pipe(tmp_path / "blank", raw, "text", 1, batch_size=2)
    # spaCy's English tokenizer: Al - Zaman : they 'll go . | Can not . | A b c \n d.
    assert (text["words"], text["docs"]) == (8 + 3 + 5, 3)
    words = spacy_peer.run_pipe(tmp_path / "blank", conllu, "conllu", 1)
    assert (words["words"], words["docs"]) == (11, 2) and words["seconds"] > 0
    with pytest.raises(ValueError, match="kind must be text or conllu"):
        spacy_peer.pipe_command("m", raw, "json", 1)
