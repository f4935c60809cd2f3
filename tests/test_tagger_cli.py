"""`attnlab train`, `eval`, `tag` end to end on small files the project makes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnlab.cli import main
from attnlab.data.conllu import read_conllu
from tiny_models import tiny_segmenter_dir
from tiny_tasks import demo_slices

TINY = ["--hidden", "16", "--layers", "1", "--heads", "2", "--d-ff", "32", "--word-dim", "16", "--char-filters", "8",
        "--batch-tokens", "300", "--warmup", "5", "--no-progress", "--threads", "1", "--segmenter-minutes", "0"]

# A UD-style file with a multiword token, an empty node and SpaceAfter=No (tagged by the model).
UD = (
    "# sent_id = u1\n# text = I can't saw.\n"
    "1\tI\tI\tPRON\tPRP\tCase=Nom\t3\tnsubj\t3:nsubj\t_\n"
    "2-3\tcan't\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "2\tca\tcan\tAUX\tMD\t_\t4\taux\t4:aux\t_\n"
    "3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t4:advmod\t_\n"
    "4\tsaw\tsaw\tVERB\tVB\t_\t0\troot\t0:root\tSpaceAfter=No\n"
    "4.1\tsaw\tsaw\tVERB\tVB\t_\t_\t_\t4:conj\t_\n"
    "5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t4:punct\t_\n\n"
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tb")
    for split, path in demo_slices(root, train=240, dev=40, test=60).items():
        path.rename(root / f"tiny-{split}.conllu")
    return root


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "tagger"
    assert main(["train", "--treebank", str(data), "--encoder", "attention", "--out", str(out), "--epochs", "3",
                 "--lr", "5e-3", *TINY]) == 0
    shutil.copytree(tiny_segmenter_dir(), out / "segmenter")  # so that it reads raw text
    return out


def test_train_writes_a_model_and_eval_scores_it(model, data, capsys):
    record = json.loads((model / "config.json").read_text())
    assert record["task"] == "tagging" and record["model"]["encoder"] == "attention"
    assert record["best"]["dev_score"] > 0.5
    capsys.readouterr()
    assert main(["eval", "--model", str(model), str(data / "tiny-test.conllu"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    upos = report["upos"]
    assert upos["tokens"] == sum(len(s) for s in read_conllu(data / "tiny-test.conllu"))
    assert 0.5 < upos["accuracy"] <= 1.0
    assert main(["eval", "--model", str(model), str(data / "tiny-test.conllu")]) == 0
    assert "accuracy" in capsys.readouterr().out.lower()


def test_tagging_conllu_changes_only_the_predicted_columns(model, tmp_path):
    src = tmp_path / "in.conllu"
    src.write_text(UD, encoding="utf-8")
    out = tmp_path / "out.conllu"
    assert main(["tag", "--model", str(model), str(src), "-o", str(out)]) == 0
    before, after = src.read_text().splitlines(), out.read_text().splitlines()
    assert len(before) == len(after)
    for b, a in zip(before, after):
        cb, ca = b.split("\t"), a.split("\t")
        if len(cb) == 10 and cb[0].isdigit():
            assert cb[:2] == ca[:2] and cb[6:] == ca[6:]  # only LEMMA, UPOS, XPOS and FEATS may change
            assert ca[3] not in ("", "_") and ca[2] not in ("", "_")
        else:
            assert a == b  # comments, the multiword range and the empty node untouched
    assert [s.forms for s in read_conllu(out)] == [["I", "ca", "n't", "saw", "."]]


def test_tag_raw_text_as_tsv_and_json(model, tmp_path, capsys, monkeypatch):
    text = tmp_path / "in.txt"
    text.write_text("I saw a saw. they book a book.\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["tag", "--model", str(model), str(text), "--format", "tsv"]) == 0
    blocks = capsys.readouterr().out.strip().split("\n\n")
    assert [[line.split("\t")[0] for line in b.splitlines()] for b in blocks] == [
        ["I", "saw", "a", "saw", "."], ["they", "book", "a", "book", "."]]
    # the word, then each layer the model predicts: UPOS, XPOS and LEMMA (the demo data has no features)
    assert {len(line.split("\t")) for b in blocks for line in b.splitlines()} == {4}
    import io
    monkeypatch.setattr(sys, "stdin", io.StringIO("we don't fly a kite.\n"))
    assert main(["tag", "--model", str(model), "--format", "json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["words"] == ["we", "do", "n't", "fly", "a", "kite", "."] and len(obj["upos"]) == 7
    assert obj["tokens"][1] == {"form": "don't", "start": 3, "end": 8, "words": [1, 2]}
    assert sorted(obj) == ["lemma", "lemma_prob", "sent_id", "text", "tokens", "upos", "upos_prob", "words", "xpos",
                           "xpos_prob"]


def test_input_choices_and_stats(model, capsys, monkeypatch):
    _stdin(monkeypatch, "I saw a saw.\n\nwe can't fly\n")
    capsys.readouterr()
    assert main(["tag", "--model", str(model), "--format", "json", "--input", "pretokenized", "--stats"]) == 0
    captured = capsys.readouterr()
    words = [json.loads(line)["words"] for line in captured.out.splitlines()]
    assert words == [["I", "saw", "a", "saw."], ["we", "can't", "fly"]]
    assert captured.err.startswith("tagged 2 sentences, 7 words in ") and captured.err.endswith(" words/s)\n")
    _stdin(monkeypatch, "we see a idea. they take me.\nI see a idea.\n")
    assert main(["tag", "--model", str(model), "--format", "json", "--input", "presegmented"]) == 0
    assert [len(json.loads(line)["words"]) for line in capsys.readouterr().out.splitlines()] == [9, 5]
    _stdin(monkeypatch, "we don't fly\n")
    assert main(["tag", "--model", str(model), "--format", "tsv"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.split()[::4]] == ["we", "do", "n't", "fly"]


def test_raw_text_conllu_gives_back_every_character(model, tmp_path, capsys):
    from attnlab.data.conllu import parse_conllu
    from attnlab.data.rawtext import rebuild_text

    raw = "  I see a idea.  they don't\ttake me.\r\n\n\nthis old book like us.\n"
    src = tmp_path / "raw.txt"
    src.write_bytes(raw.encode("utf-8"))
    capsys.readouterr()
    assert main(["tag", "--model", str(model), str(src)]) == 0
    sentences = parse_conllu(capsys.readouterr().out)
    assert rebuild_text(sentences) == raw
    assert [s.text for s in sentences] == ["I see a idea.", "they don't\ttake me.", "this old book like us."]
    assert sentences[0].lines[:2] == ["# newdoc", "# newpar"] and sentences[2].lines[0] == "# newpar"


def test_malformed_conllu_is_one_line_with_file_and_line(tmp_path, data, capsys):
    bad = tmp_path / "bad-train.conllu"
    bad.write_text("1\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_\n2\tsaw\tsee\tVERB\n\n", encoding="utf-8")
    capsys.readouterr()
    rc = main(["train", "--train", str(bad), "--dev", str(data / "tiny-dev.conllu"), "--out", str(tmp_path / "m"), *TINY])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert f"{bad}:2: expected 10 tab-separated CoNLL-U columns, found 4" in err
    untagged = tmp_path / "untagged.conllu"
    untagged.write_text("1\tI\tI\t_\tPRP\t_\t0\troot\t_\t_\n\n", encoding="utf-8")
    rc = main(["train", "--train", str(untagged), "--dev", str(data / "tiny-dev.conllu"), "--out", str(tmp_path / "m2"), *TINY])
    assert rc == 2 and f"{untagged}:1: UPOS is '_' (no gold tag)" in capsys.readouterr().err


def test_no_data_and_an_existing_model_are_clear_errors(model, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ATTNLAB_DATA", raising=False)
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "x"), *TINY]) == 2
    assert "set ATTNLAB_DATA" in capsys.readouterr().err
    assert main(["train", "--treebank", str(tmp_path), "--out", str(model), *TINY]) == 2
    assert "already holds a model; use --resume" in capsys.readouterr().err


def test_a_killed_run_resumes_from_its_last_checkpoint(data, tmp_path):
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "attnlab", "train", "--treebank", str(data), "--encoder", "window", "--out", str(out),
            "--epochs", "5", "--checkpoint-every", "3", "--patience", "0", *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = out / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:  # wait for a checkpoint a few epochs in
            if pointer.exists() and json.loads(pointer.read_text())["step"] >= 6:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint within 60 s")
    finally:
        proc.send_signal(signal.SIGKILL)  # no chance to save anything
        proc.wait()
    step = json.loads(pointer.read_text())["step"]
    assert step >= 6
    resumed = subprocess.run([sys.executable, "-m", "attnlab", "train", "--resume", "--out", str(out), "--epochs", "1",
                              "--no-progress", "--threads", "1"], env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr and f"step {step})" in resumed.stderr
    state = json.loads((out / "checkpoints" / json.loads(pointer.read_text())["dir"] / "state.json").read_text())
    assert state["state"]["done"] and state["state"]["step"] > step and state["state"]["epoch"] == 5


def test_the_task_registry_finds_the_task_of_a_model_directory(tmp_path):
    from attnlab.tasks import TASKS, task_for_model

    assert list(TASKS) == ["tag", "classify", "seq2seq"]
    for name, task in TASKS.items():
        directory = tmp_path / name
        directory.mkdir()
        (directory / "config.json").write_text(json.dumps({"task": task.model_task}))
        assert task.name == name and task_for_model(directory) is task
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"task": "parsing"}))
    assert task_for_model(tmp_path / "other") is None and task_for_model(tmp_path / "missing") is None


def test_train_help_lists_the_options_of_every_task(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for option in ("--treebank", "--resume", "--epochs", "--hidden", "--label-smoothing", "--xpos-weight", "--pooling",
                   "--decoder-layers", "--max-chars", "--beam", "--task {tag,classify,seq2seq}"):
        assert option in text
    for name in ("--task tag:", "--task classify:", "--task seq2seq:"):
        assert name in text


def test_building_the_command_line_leaves_the_models_unimported():
    code = ("import sys; from attnlab.cli import build_parser; build_parser(); "
            "import json; print(json.dumps(sorted(m for m in sys.modules if m.startswith('attnlab.tasks'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == ["attnlab.tasks", "attnlab.tasks.base", "attnlab.tasks.classify_task",
                         "attnlab.tasks.seq2seq_task", "attnlab.tasks.tag_io",
                         "attnlab.tasks.tag_task"]


def test_demo_report_marks_the_saw_the_none_tagger_cannot_tell_apart(tmp_path):
    from attnlab.tasks.tagging_demo import DemoResult, DemoTagger, demo_report

    attention = DemoTagger("attention", tmp_path / "a", ["PRON", "VERB", "DET", "NOUN"], 0.9512, 12.4)
    none = DemoTagger("none", tmp_path / "n", ["PRON", "NOUN", "DET", "NOUN"], 0.8, 2.0)
    result = DemoResult(tmp_path, attention, none)
    lines = demo_report(result).splitlines()
    assert result.correct and not DemoResult(tmp_path, none, none).correct
    assert lines[3] == "saw    VERB      VERB       NOUN     <- same input vector as the other 'saw'"
    assert lines[5] == "saw    NOUN      NOUN       NOUN  "
    assert lines[7] == "attention tagger: correct on 'I saw a saw'; demo test accuracy 95.12% (trained 12 s)"


# -- bad and unusual input ------------------------------------------------------------------

def _stdin(monkeypatch, text: str) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_text_starting_with_a_hash_is_tagged_as_text(model, capsys, monkeypatch):
    _stdin(monkeypatch, "#MeToo is trending\n")
    capsys.readouterr()
    assert main(["tag", "--model", str(model), "--format", "json"]) == 0
    assert "".join(json.loads(capsys.readouterr().out)["words"]) == "#MeTooistrending"  # read as text, not CoNLL-U


def test_text_that_looks_like_broken_conllu_points_to_the_input_option(model, capsys, monkeypatch):
    _stdin(monkeypatch, "1\tI\tI\tPRON\n2\tsaw\tsee\tVERB\n")
    capsys.readouterr()
    assert main(["tag", "--model", str(model)]) == 2
    err = _one_line_error(capsys)
    assert "<stdin>:1:" in err and "4 tab-separated columns" in err and "--input text" in err
    broken = "# sent_id = s1\n1\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_\n2\tsaw\tsee\n\n"
    _stdin(monkeypatch, broken)
    assert main(["tag", "--model", str(model)]) == 2
    err = _one_line_error(capsys)
    assert "<stdin>:3: expected 10 tab-separated CoNLL-U columns, found 3" in err and "--input text" in err
    _stdin(monkeypatch, broken)
    assert main(["tag", "--model", str(model), "--input", "presegmented", "--format", "json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "".join(json.loads(lines[2])["words"]) == "2sawsee"


def test_eval_reads_stdin(model, data, capsys, monkeypatch):
    gold = data / "tiny-test.conllu"
    capsys.readouterr()
    assert main(["eval", "--model", str(model), str(gold), "--json"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    _stdin(monkeypatch, gold.read_text(encoding="utf-8"))
    assert main(["eval", "--model", str(model), "-", "--json"]) == 0
    from_stdin = json.loads(capsys.readouterr().out)
    assert from_stdin["file"] == "<stdin>" and from_stdin["upos"] == from_file["upos"]
    assert from_stdin["upos"]["tokens"] == sum(len(s) for s in read_conllu(gold)) == 456


def test_tag_gives_probabilities(model, capsys, monkeypatch):
    import torch

    from attnlab.tasks.tagging import load_tagger

    _stdin(monkeypatch, "I saw a saw.\n\nthey book a book\n")
    capsys.readouterr()
    assert main(["tag", "--model", str(model), "--format", "json", "--precision", "fp32"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["words"] for r in rows] == [["I", "saw", "a", "saw", "."], ["they", "book", "a", "book"]]
    loaded = load_tagger(model)
    batch = loaded.encoder().encode([rows[1]["words"]])
    with torch.no_grad():
        out = loaded.model(batch)
    for column, scores, vocab in (("upos", out.upos, loaded.vocabs.upos), ("xpos", out.xpos, loaded.vocabs.xpos)):
        p = torch.softmax(scores[0, :, 2:].double(), dim=-1)  # ids 0 and 1 are PAD and UNK, never predicted
        expected_tags = vocab.decode((p.argmax(dim=-1) + 2).tolist())
        assert rows[1][column] == expected_tags
        assert rows[1][column + "_prob"] == pytest.approx(p.max(dim=-1).values.tolist(), abs=1e-4)


def test_empty_input_is_an_error_for_tag_and_eval(model, tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty.conllu"
    empty.write_text("", encoding="utf-8")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n", encoding="utf-8")
    capsys.readouterr()
    for args in (["tag", str(empty)], ["tag", str(blank)], ["eval", str(empty)]):
        assert main([args[0], "--model", str(model), *args[1:]]) == 2
        assert f"{args[1]}: no sentences" in _one_line_error(capsys)
    assert not capsys.readouterr().out
    _stdin(monkeypatch, "")
    assert main(["eval", "--model", str(model), "-"]) == 2
    assert "<stdin>: no sentences" in _one_line_error(capsys)


def test_bad_paths_for_tag_are_one_line_errors(model, tmp_path, capsys):
    text = tmp_path / "in.txt"
    text.write_text("I saw a saw\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["tag", "--model", str(model), str(tmp_path)]) == 2  # a directory of inputs: -o DIRECTORY
    assert f"{tmp_path}: a directory or glob of inputs needs -o DIRECTORY for their outputs" in _one_line_error(capsys)
    assert main(["tag", "--model", str(model), str(text), "-o", str(tmp_path)]) == 2
    assert f"{tmp_path}: is a directory" in _one_line_error(capsys)
    assert main(["tag", "--model", str(model), str(text), "-o", str(text / "out.conllu")]) == 2
    assert f"{text}: is not a directory" in _one_line_error(capsys)
    assert text.read_text(encoding="utf-8") == "I saw a saw\n"


def test_unknown_or_missing_upos_in_gold_and_training_data_is_refused(model, data, tmp_path, capsys):
    lines = ["# sent_id = g1", "1\tI\tI\tPRON\tPRP\t_\t2\tnsubj\t_\t_", "2\tsaw\tsee\tVERB\tVBD\t_\t0\troot\t_\t_", ""]
    unknown, missing = tmp_path / "unknown.conllu", tmp_path / "missing.conllu"
    unknown.write_text("\n".join(lines).replace("\tVERB\t", "\tNOTATAG\t") + "\n", encoding="utf-8")
    missing.write_text("\n".join(lines).replace("\tPRON\t", "\t_\t") + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["eval", "--model", str(model), str(unknown)]) == 2
    assert f"{unknown}:3: unknown UPOS 'NOTATAG' (UD has ADJ ADP" in _one_line_error(capsys)
    assert main(["eval", "--model", str(model), str(missing)]) == 2
    assert f"{missing}:2: UPOS is '_' (no gold tag)" in _one_line_error(capsys)
    assert main(["train", "--train", str(unknown), "--dev", str(data / "tiny-dev.conllu"), "--out",
                 str(tmp_path / "m"), *TINY]) == 2
    assert f"{unknown}:3: unknown UPOS 'NOTATAG'" in _one_line_error(capsys)
    assert not (tmp_path / "m").exists()


def test_bytes_that_are_not_utf8_are_refused_on_stdin_as_in_files(model, tmp_path, capsys, monkeypatch):
    import io

    data = b"I saw a saw\nthe \xff saw\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape"))
    capsys.readouterr()
    assert main(["tag", "--model", str(model)]) == 2
    assert "<stdin>:2: not valid UTF-8 (byte 0xff at column 5)" in _one_line_error(capsys)
    (tmp_path / "in.txt").write_bytes(data)
    assert main(["tag", "--model", str(model), str(tmp_path / "in.txt")]) == 2
    assert f"{tmp_path / 'in.txt'}:2: not valid UTF-8 (byte 0xff at column 5)" in _one_line_error(capsys)


def test_eval_from_text_runs_the_whole_pipeline_and_scores_it(model, data, capsys):
    gold = data / "tiny-test.conllu"
    capsys.readouterr()
    assert main(["eval", "--model", str(model), str(gold), "--from-text", "--json", "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    words = sum(len(s) for s in read_conllu(gold))
    assert report["Words"]["gold"] == words and report["from_text"] is True and report["words_per_s"] > 0
    assert report["Tokens"]["f1"] > 0.95 and report["Words"]["f1"] > 0.95  # the tiny segmenter knows this text
    assert 0.5 < report["UPOS"]["f1"] <= report["Words"]["f1"]
    assert main(["eval", "--model", str(model), str(gold), "--from-text"]) == 0
    out = capsys.readouterr().out
    assert "Sentences  |" in out and "raw text to CoNLL-U, every layer:" in out


def test_train_makes_the_segmenter_with_the_tagger(data, tmp_path):
    out = tmp_path / "pipeline"
    args = [a for a in TINY if a not in ("--segmenter-minutes", "0")]
    done = subprocess.run([sys.executable, "-m", "attnlab", "train", "--treebank", str(data), "--out", str(out),
                           "--epochs", "1", *args, "--segmenter-minutes", "0.05"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    first = done.stderr.splitlines()[0]
    assert "first a segmenter" in first and "at most 0.05 minutes" in first
    assert (out / "segmenter" / "config.json").is_file() and (out / "config.json").is_file()
    record = json.loads((out / "segmenter" / "config.json").read_text())
    assert record["task"] == "segmenter" and record["training"]["stopped_by"] == "time"
    tagged = subprocess.run([sys.executable, "-m", "attnlab", "tag", "--model", str(out), "--threads", "1"],
                            input="I saw a saw. they book a book.\n", capture_output=True, text=True, timeout=120)
    assert tagged.returncode == 0, tagged.stderr
    assert "TokenRange=0:1" in tagged.stdout and tagged.stdout.startswith("# newdoc\n# newpar\n# sent_id = 1\n")
    plain = subprocess.run([sys.executable, "-m", "attnlab", "train", "--treebank", str(data), "--out",
                            str(tmp_path / "plain"), "--epochs", "1", *TINY], capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0 and "no segmenter" in plain.stderr.splitlines()[0]
