"""The tagger on every treebank of a data directory, against UDPipe 1.2's published scores.

    attnlab bench treebanks --data $ATTNLAB_DATA --out runs/treebanks

For each treebank directory (``ud-english-ewt``, ...) it runs the default command
``attnlab train --treebank DIR --out RUN --seed S`` (no per-language option), then
``attnlab eval --json`` on the test file (UPOS, XPOS, UFeats, AllTags, Lemmas on gold
tokenization, CoNLL 2018 definitions), then ``attnlab tag`` on the test file, checking that the
output differs from the input only in the predicted columns (LEMMA, UPOS, XPOS, FEATS) and
timing it, then ``attnlab eval --from-text --json``: the whole pipeline from the test file's raw
text (segmenter, multiword tokens, tagger), scored by the CoNLL 2018 shared task's definitions. Each step is a subprocess: the figures are those of the commands a user runs.
A treebank already trained in ``--out`` is not trained again (the wall-clock minutes of its
training, kept in ``training-time.json``, are reused).

With several seeds (``--seeds 3``: seeds 1, 2, 3) each treebank is trained once per seed, into
``--out/NAME/seed-S``, and every cell of the tables is the mean over the seeds with their
spread, the lowest and the highest value (``summarize``): one training run says little about a
difference of a few tenths of a point.

The anchor is UDPipe 1.2 with gold tokenization, its UD 2.3 models (Straka & Straková 2017,
"Tokenizing, POS Tagging, Lemmatizing and Parsing UD 2.0 with UDPipe"; figures from the UDPipe
1 model documentation for UD 2.3). The treebank versions differ slightly from those here.
From raw text the anchor is UDPipe 1.2's raw-text figures of the same models (``UDPIPE_RAW``).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..output import write_output

METRICS = ("UPOS", "XPOS", "UFeats", "AllTags", "Lemmas")
PREDICTED_COLUMNS = (2, 3, 4, 5)  # LEMMA, UPOS, XPOS, FEATS (0-based CoNLL-U columns)

# UDPipe 1.2, UD 2.3 models, gold tokenization: UPOS, XPOS, UFeats, AllTags, Lemmas (None: no XPOS)
UDPIPE = {
    "ud-english-ewt": (94.4, 93.9, 95.4, 92.5, 96.8),
    "ud-french-sequoia": (97.0, None, 96.0, 95.1, 97.8),
    "ud-turkish-imst": (93.1, 92.1, 89.8, 87.4, 91.4),
    "ud-greek-gdt": (96.0, 96.0, 90.5, 89.4, 94.9),
    "ud-vietnamese-vtb": (87.6, 85.0, 99.5, 84.9, 98.9),
    "ud-uyghur-udt": (88.2, 90.3, 84.4, 76.6, 92.2),
}


RAW_METRICS = ("Words", "Sentences", "UPOS", "XPOS", "UFeats", "AllTags", "Lemmas")
# UDPipe 1.2, UD 2.3 models, from raw text: Words, Sentences, UPOS, XPOS, UFeats, AllTags, Lemmas (F1)
UDPIPE_RAW = {
    "ud-english-ewt": (99.1, 77.1, 93.5, 92.9, 94.5, 91.5, 96.0),
    "ud-french-sequoia": (99.2, 88.6, 96.1, None, 95.2, 94.2, 97.0),
    "ud-turkish-imst": (98.3, 96.4, 91.7, 90.7, 88.4, 86.1, 90.0),
    "ud-greek-gdt": (99.8, 89.4, 95.8, 95.8, 90.3, 89.2, 94.7),
    "ud-vietnamese-vtb": (85.4, 93.7, 76.2, 74.1, 85.1, 74.1, 84.7),
    "ud-uyghur-udt": (99.7, 82.9, 87.9, 90.0, 84.1, 76.3, 91.9),
}


def _attnlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "attnlab", *args], capture_output=True, text=True)


def _check(done: subprocess.CompletedProcess, what: str) -> str:
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()[-400:]}")
    return done.stdout


def changed_columns(before: str, after: str) -> set[int]:
    """The 0-based CoNLL-U columns in which ``after`` differs from ``before`` on word lines;
    -1 when any other line (comment, range, empty node, blank) differs or the line count does."""
    a, b = before.split("\n"), after.split("\n")
    if len(a) != len(b):
        return {-1}
    changed: set[int] = set()
    for x, y in zip(a, b):
        if x == y:
            continue
        cx, cy = x.split("\t"), y.split("\t")
        if len(cx) != 10 or len(cy) != 10 or not cx[0].isdigit():
            return {-1}
        changed |= {k for k in range(10) if cx[k] != cy[k]}
    return changed


def run_treebank(directory: Path, out: Path, *, seed: int, threads: int, train_args: tuple[str, ...] = ()) -> dict:
    """Train (unless ``out`` holds a finished model), evaluate and tag one treebank; ``train_args``
    go to ``attnlab train`` as they are."""
    from ..data.treebank import find_split

    timing = out / "training-time.json"
    if not timing.is_file():
        start = time.perf_counter()
        _check(_attnlab("train", "--treebank", str(directory), "--out", str(out), "--seed", str(seed),
                        "--threads", str(threads), "--no-progress", *train_args), f"training on {directory.name}")
        write_output(timing, json.dumps({"minutes": (time.perf_counter() - start) / 60, "threads": threads}))
    minutes = json.loads(timing.read_text(encoding="utf-8"))["minutes"]
    test = find_split(directory, "test")
    report = json.loads(_check(_attnlab("eval", "--model", str(out), str(test), "--json", "--threads", str(threads)),
                               f"evaluating {directory.name}"))
    tagged = out / "test.tagged.conllu"
    start = time.perf_counter()
    done = _attnlab("tag", "--model", str(out), str(test), "-o", str(tagged), "--threads", str(threads), "--stats")
    wall = time.perf_counter() - start
    _check(done, f"tagging {directory.name}")
    changed = changed_columns(test.read_text(encoding="utf-8"), tagged.read_text(encoding="utf-8"))
    raw = None
    if (out / "segmenter" / "config.json").is_file():
        raw = json.loads(_check(_attnlab("eval", "--model", str(out), str(test), "--from-text", "--json",
                                         "--threads", str(threads)), f"tagging {directory.name} from raw text"))
    return {
        "raw": None if raw is None else {**{m: raw[m]["f1"] for m in RAW_METRICS if raw[m]["status"] == "scored"},
                                         "words_per_s": raw["words_per_s"]},
        "treebank": directory.name,
        "scores": {m: report["layers"][m]["accuracy"] for m in METRICS},
        "train_minutes": minutes,
        "tokens_per_s": report.get("tokens_per_s"),
        "tag_stats": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "",
        "tag_wall_s": wall,
        "only_predicted_columns_changed": changed <= set(PREDICTED_COLUMNS),
        "changed_columns": sorted(changed),
        "seed": seed,
    }


def spread(values: list[float]) -> dict:
    """Mean, lowest, highest and (sample) standard deviation of one cell's values over seeds
    (the deviation is 0.0 for a single value)."""
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}


def _spread_of(rows: list[dict], get) -> dict | None:
    values = [v for v in (get(r) for r in rows) if isinstance(v, (int, float))]
    return spread(values) if values else None


def summarize(results: list[dict]) -> list[dict]:
    """One entry per treebank (in the order of ``results``) over its runs, one per seed:
    ``spread`` of every metric (``scores``, ``raw``), of the training minutes and tagging speed,
    and whether every run changed only the predicted columns."""
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(r["treebank"], []).append(r)
    summary = []
    for name, rows in groups.items():
        raws = [r["raw"] for r in rows if r.get("raw") is not None]
        summary.append({
            "treebank": name,
            "seeds": [r.get("seed") for r in rows],
            "scores": {m: _spread_of(rows, lambda r, m=m: r.get("scores", {}).get(m)) for m in METRICS},
            "raw": None if len(raws) < len(rows) else {
                m: _spread_of(raws, lambda r, m=m: r.get(m)) for m in (*RAW_METRICS, "words_per_s")},
            "train_minutes": _spread_of(rows, lambda r: r.get("train_minutes")),
            "tokens_per_s": _spread_of(rows, lambda r: r.get("tokens_per_s")),
            "only_predicted_columns_changed": all(r.get("only_predicted_columns_changed", True) for r in rows),
            "changed_columns": sorted({c for r in rows for c in r.get("changed_columns", ())}),
        })
    return summary


def _cell(ours: dict | None, anchor: float | None) -> str:
    """A percentage cell: the mean over seeds, bold when above ``anchor``, else marked a miss;
    with several seeds the spread (lowest-highest) in the parentheses too."""
    if ours is None:
        return "–"
    text = f"{100 * ours['mean']:.2f}"
    miss = anchor is not None and 100 * ours["mean"] <= anchor
    if anchor is not None and not miss:
        text = f"**{text}**"
    notes = [f"{100 * ours['min']:.2f}–{100 * ours['max']:.2f}"] if ours["n"] > 1 else []
    notes += ["miss"] if miss else []
    return f"{text} ({'; '.join(notes)})" if notes else text


def _number(cell: dict | None, fmt: str) -> str:
    return "?" if cell is None else format(cell["mean"], fmt)


def _seeds_note(summary: list[dict]) -> str:
    most = max((len(s["seeds"]) for s in summary), default=1)
    return "" if most <= 1 else (f"cells: the mean over seeds {', '.join(str(x) for x in summary[0]['seeds'])} "
                                 "(lowest–highest); minutes and tokens/s: means\n\n")


def table(results: list[dict]) -> str:
    """Markdown: treebank x metric, attnlab (bold when above UDPipe 1.2) / UDPipe 1.2; with
    several seeds per treebank the mean and its range (``summarize``)."""
    summary = summarize(results)
    head = "| treebank | " + " | ".join(METRICS) + " | training min | tagging tokens/s | only predicted columns changed |"
    lines = [head, "|---|" + "---:|" * len(METRICS) + "---:|---:|---|"]
    for r in summary:
        anchor = UDPIPE.get(r["treebank"], (None,) * len(METRICS))
        cells = [f"{_cell(r['scores'][m], a)} / {a if a is not None else '–'}" for m, a in zip(METRICS, anchor)]
        lines.append(f"| {r['treebank']} | " + " | ".join(cells) + f" | {_number(r['train_minutes'], '.1f')} | "
                     f"{_number(r['tokens_per_s'], ',.0f')} | "
                     + ("yes" if r["only_predicted_columns_changed"] else f"NO: {r['changed_columns']}") + " |")
    return _seeds_note(summary) + "\n".join(lines)


def raw_table(results: list[dict]) -> str:
    """Markdown: from raw text, treebank x metric, attnlab (bold when above UDPipe 1.2) / UDPipe 1.2."""
    summary = summarize(results)
    head = "| treebank | " + " | ".join(RAW_METRICS) + " | raw text to CoNLL-U words/s |"
    lines = [head, "|---|" + "---:|" * (len(RAW_METRICS) + 1)]
    for r in summary:
        raw = r["raw"]
        if raw is None:
            lines.append(f"| {r['treebank']} | " + " | ".join(["no segmenter"] * len(RAW_METRICS)) + " | – |")
            continue
        anchor = UDPIPE_RAW.get(r["treebank"], (None,) * len(RAW_METRICS))
        cells = [f"{_cell(raw.get(m), a)} / {a if a is not None else '–'}" for m, a in zip(RAW_METRICS, anchor)]
        lines.append(f"| {r['treebank']} | " + " | ".join(cells) + f" | {_number(raw['words_per_s'], ',.0f')} |")
    return _seeds_note(summary) + "\n".join(lines)


def run_directory(out: Path, name: str, seed: int, seeds: list[int]) -> Path:
    """Where the run of treebank ``name`` with ``seed`` goes: ``out/NAME`` for a single seed
    (as before seeds could be several), else ``out/NAME/seed-S``."""
    return out / name if len(seeds) == 1 else out / name / f"seed-{seed}"


def main(data: Path, out: Path, *, only: list[str] | None, seeds: list[int], threads: int,
         train_args: tuple[str, ...] = (), run=None) -> list[dict]:
    """Every treebank directory of ``data`` (those named in ``only``), one after another, each
    with every seed in ``seeds``; ``run`` stands for ``run_treebank``."""
    run = run or run_treebank
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {seeds}: give one or more different seeds")
    names = sorted(p.name for p in data.iterdir() if p.is_dir() and list(p.glob("*train.conllu")))
    if only:
        missing = sorted(set(only) - set(names))
        if missing:
            raise ValueError(f"{data}: no treebank {', '.join(missing)} (found: {', '.join(names) or 'none'})")
        names = [n for n in names if n in only]
    results: list[dict[str, Any]] = []
    for name in names:
        for seed in seeds:
            print(f"{name}, seed {seed} ...", file=sys.stderr, flush=True)
            results.append(run(data / name, run_directory(out, name, seed, seeds), seed=seed, threads=threads,
                               train_args=train_args))
            print(table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    return results
