"""`attnlab bench treebanks` over several seeds: one run per treebank and seed, each in its own
directory, and tables whose cells are the mean over the seeds with the lowest and highest value."""

from __future__ import annotations

import json

import pytest

from attnlab.bench import treebanks
from attnlab.bench.treebanks import METRICS, main, raw_table, spread, summarize, table
from attnlab.cli import main as cli


def result(name: str, seed: int, upos: float, minutes: float = 10.0, raw: dict | None = None) -> dict:
    return {"treebank": name, "seed": seed, "scores": {m: upos - 0.01 * k for k, m in enumerate(METRICS)},
            "train_minutes": minutes, "tokens_per_s": 1000.0 * seed, "only_predicted_columns_changed": True,
            "changed_columns": [3], "raw": raw}


def test_spread_is_the_mean_the_range_and_the_sample_deviation():
    s = spread([0.90, 0.93, 0.96])
    assert s["mean"] == pytest.approx(0.93) and (s["min"], s["max"], s["n"]) == (0.90, 0.96, 3)
    assert s["std"] == pytest.approx(0.03)  # sqrt(((-0.03)^2 + 0 + 0.03^2) / 2)
    assert spread([0.5]) == {"mean": 0.5, "min": 0.5, "max": 0.5, "std": 0.0, "n": 1}


def test_summary_and_table_give_the_mean_and_range_of_every_cell():
    results = [result("ud-english-ewt", s, u, minutes=m) for s, u, m in ((1, 0.940, 9.0), (2, 0.950, 10.0), (3, 0.948, 14.0))]
    results.append(result("ud-turkish-imst", 1, 0.920))
    summary = summarize(results)
    assert [s["treebank"] for s in summary] == ["ud-english-ewt", "ud-turkish-imst"]
    ewt = summary[0]
    assert ewt["seeds"] == [1, 2, 3]
    assert ewt["scores"]["UPOS"]["mean"] == pytest.approx(0.946)
    assert (ewt["scores"]["UPOS"]["min"], ewt["scores"]["UPOS"]["max"]) == (0.940, 0.950)
    assert ewt["scores"]["XPOS"]["mean"] == pytest.approx(0.936)
    assert ewt["train_minutes"]["mean"] == pytest.approx(11.0) and ewt["tokens_per_s"]["mean"] == pytest.approx(2000.0)

    lines = table(results).splitlines()
    assert lines[0] == "cells: the mean over seeds 1, 2, 3 (lowest–highest); minutes and tokens/s: means"
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in lines[3:]}
    # UPOS 94.60 > 94.4 (bold), XPOS 93.60 < 93.9 (a miss), both with their range
    assert rows["ud-english-ewt"][:2] == ["**94.60** (94.00–95.00) / 94.4", "93.60 (93.00–94.00; miss) / 93.9"]
    assert rows["ud-english-ewt"][5:] == ["11.0", "2,000", "yes"]
    # a single seed: the plain value, no range
    assert rows["ud-turkish-imst"][0] == "92.00 (miss) / 93.1"


def test_a_single_seed_keeps_the_table_as_it_was():
    lines = table([result("ud-english-ewt", 1, 0.95)]).splitlines()
    assert lines[0].startswith("| treebank | UPOS")
    assert lines[2].split("|")[2].strip() == "**95.00** / 94.4"


def test_raw_text_cells_average_over_seeds_and_a_missing_segmenter_is_said():
    raw = lambda w: {"Words": w, "Sentences": 0.8, "UPOS": 0.9, "XPOS": 0.9, "UFeats": 0.9, "AllTags": 0.9,
                     "Lemmas": 0.9, "words_per_s": 100.0 * w}
    lines = raw_table([result("ud-english-ewt", 1, 0.9, raw=raw(0.99)), result("ud-english-ewt", 2, 0.9, raw=raw(0.995)),
                       result("ud-greek-gdt", 1, 0.9)]).splitlines()
    cells = [c.strip() for c in lines[4].split("|")[1:-1]]
    assert cells[1] == "**99.25** (99.00–99.50) / 99.1" and cells[-1] == "99"
    assert lines[5].count("no segmenter") == 7


def fake_run(calls):
    def run(directory, out, *, seed, threads, train_args):
        calls.append((directory.name, out, seed, threads, train_args))
        return result(directory.name, seed, 0.90 + 0.01 * seed)
    return run


def make_data(tmp_path):
    for name in ("ud-a", "ud-b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "train.conllu").write_text("")
    return tmp_path / "data"


def test_main_trains_every_treebank_with_every_seed_in_its_own_directory(tmp_path):
    data, calls = make_data(tmp_path), []
    results = main(data, tmp_path / "runs", only=None, seeds=[1, 2, 3], threads=1, run=fake_run(calls))
    assert [(c[0], c[1].relative_to(tmp_path / "runs").as_posix(), c[2]) for c in calls] == [
        ("ud-a", "ud-a/seed-1", 1), ("ud-a", "ud-a/seed-2", 2), ("ud-a", "ud-a/seed-3", 3),
        ("ud-b", "ud-b/seed-1", 1), ("ud-b", "ud-b/seed-2", 2), ("ud-b", "ud-b/seed-3", 3)]
    assert [r["seed"] for r in results] == [1, 2, 3, 1, 2, 3]
    calls.clear()
    main(data, tmp_path / "runs", only=["ud-b"], seeds=[5], threads=1, run=fake_run(calls))
    assert [(c[1].relative_to(tmp_path / "runs").as_posix(), c[2]) for c in calls] == [("ud-b", 5)]  # as before
    with pytest.raises(ValueError, match="different seeds"):
        main(data, tmp_path / "runs", only=None, seeds=[1, 1], threads=1, run=fake_run(calls))


def test_the_command_line_takes_seeds_n_or_a_list_and_writes_the_summary(tmp_path, monkeypatch, capsys):
    data, calls = make_data(tmp_path), []
    monkeypatch.setattr(treebanks, "run_treebank", fake_run(calls))
    report = tmp_path / "report.json"
    assert cli(["bench", "treebanks", "--data", str(data), "--out", str(tmp_path / "runs"), "--only", "ud-a",
                "--seeds", "3", "--threads", "1", "--json", str(report)]) == 0
    assert [c[2] for c in calls] == [1, 2, 3]
    summary = json.loads(report.read_text())["summary"]
    assert summary[0]["scores"]["UPOS"]["mean"] == pytest.approx(0.92)
    assert (summary[0]["scores"]["UPOS"]["min"], summary[0]["scores"]["UPOS"]["max"]) == (0.91, 0.93)
    assert "| ud-a | 92.00 (91.00–93.00) / – |" in capsys.readouterr().out  # no UDPipe figure for ud-a: not bold
    calls.clear()
    assert cli(["bench", "treebanks", "--data", str(data), "--out", str(tmp_path / "runs2"), "--only", "ud-a",
                "--seed", "4", "7", "--threads", "1"]) == 0
    assert [c[2] for c in calls] == [4, 7]
    capsys.readouterr()
    assert cli(["bench", "treebanks", "--data", str(data), "--out", str(tmp_path / "r"), "--seed", "1", "--seeds", "2"]) == 2
    assert "argument --seeds: not allowed with argument --seed" in capsys.readouterr().err
