"""The English model that ships with the package: its files are the ones recorded, it stays
small, and it tags the probe sentence right on every layer, offline and without training."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import attnlab
from attnlab.api import MODELS_DIR

EN = MODELS_DIR / "en"
# SHA-256 of the shipped weights and vocabulary: a changed file is a new model, and must say so here
EXPECTED = {"files": {"model.safetensors": "6187b47f956df5aa2c4f06dd03d8e923066593139c5675e5472fc6113b0b8c1a",
                     "vocab.json": "397773b45ab6b2b14de9caed9d44442feb7dc3ec6b8d3ccad36eda8c7290feae"},
            "segmenter": {"model.safetensors": "c07db4d9c66988e1c773a88b452a6f226e78a8d29210c7291974bf67938781df",
                          "vocab.json": "228f94b47af4f1f6b7f21b946656b32211c262e44490d360c0ad5f94fe9d23d7",
                          "multiword.json": "a05d5619248eb2419cb349f361f8daf309336e368998af41a0c9bb17faa72128"}}


def test_the_english_model_ships_with_its_recorded_checksums_and_license():
    assert attnlab.shipped_models()["en"] == EN
    record = json.loads((EN / "config.json").read_text(encoding="utf-8"))
    for name, digest in EXPECTED["files"].items():
        assert hashlib.sha256((EN / name).read_bytes()).hexdigest() == digest, name
        assert record["files"][name] == digest
    segmenter = json.loads((EN / "segmenter" / "config.json").read_text(encoding="utf-8"))
    for name, digest in EXPECTED["segmenter"].items():
        assert hashlib.sha256((EN / "segmenter" / name).read_bytes()).hexdigest() == digest, name
        assert segmenter["files"][name] == digest
    size = sum(p.stat().st_size for p in EN.rglob("*") if p.is_file())
    assert size <= 8 * 1024 * 1024, f"{size / 2**20:.2f} MiB"
    license_text = (EN / "LICENSE").read_text(encoding="utf-8")
    assert "CC BY-SA 4.0" in license_text and "English Web Treebank" in license_text


def test_the_english_model_tags_the_probe_sentence_on_every_layer():
    tagger = attnlab.load("en")
    assert tagger.layers == ("upos", "xpos", "feats", "lemma")
    doc = tagger("I saw a saw.")
    assert len(doc) == 1
    sentence = doc[0]
    assert sentence.forms == ["I", "saw", "a", "saw", "."]
    assert sentence.upos == ["PRON", "VERB", "DET", "NOUN", "PUNCT"]
    assert sentence.xpos == ["PRP", "VBD", "DT", "NN", "."]
    assert [t.lemma for t in sentence] == ["I", "see", "a", "saw", "."]
    assert sentence[0].feats == {"Case": "Nom", "Number": "Sing", "Person": "1", "PronType": "Prs"}
    assert sentence[1].feats == {"Mood": "Ind", "Number": "Sing", "Person": "1", "Tense": "Past", "VerbForm": "Fin"}
    assert sentence[3].feats == {"Number": "Sing"}


def test_the_english_model_segments_raw_text():
    text = "Dr. Smith didn't stay. He left at 5 p.m.!"
    doc = attnlab.load("en")(text)
    assert [s.text for s in doc] == ["Dr. Smith didn't stay.", "He left at 5 p.m.!"]
    didnt = [t for t in doc.tokens if t.multiword]
    assert [(t.form, t.start, t.end, [w.form for w in t.words]) for t in didnt] == [("didn't", 10, 16, ["did", "n't"])]
    assert [t.form for t in doc[0].tokens] == ["Dr.", "Smith", "didn't", "stay", "."]
    assert all(text[t.start:t.end] == t.form for t in doc.tokens)
    assert doc[0].upos[2:4] == ["AUX", "PART"]


def test_attnlab_tag_uses_the_shipped_model_from_stdin():
    done = subprocess.run([sys.executable, "-m", "attnlab", "tag", "--format", "tsv"], input="I saw a saw .\n",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines() if line]
    assert [r[0] for r in rows] == ["I", "saw", "a", "saw", "."]
    assert [r[1] for r in rows] == ["PRON", "VERB", "DET", "NOUN", "PUNCT"]
    assert rows[1][-1] == "see" and rows[3][-1] == "saw"  # the last column is the lemma
