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

The anchor is UDPipe 1.2 with gold tokenization, its UD 2.3 models (Straka & Straková 2017,
"Tokenizing, POS Tagging, Lemmatizing and Parsing UD 2.0 with UDPipe"; figures from the UDPipe
1 model documentation for UD 2.3). The treebank versions differ slightly from those here.
From raw text the anchor is UDPipe 1.2's raw-text figures of the same models (``UDPIPE_RAW``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

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


def _cell(ours: float | None, anchor: float | None) -> str:
    if ours is None:
        return "–"
    text = f"{100 * ours:.2f}"
    if anchor is None:
        return text
    return f"**{text}**" if 100 * ours > anchor else f"{text} (miss)"


def table(results: list[dict]) -> str:
    """Markdown: treebank x metric, attnlab (bold when above UDPipe 1.2) / UDPipe 1.2."""
    head = "| treebank | " + " | ".join(METRICS) + " | training min | tagging tokens/s | only predicted columns changed |"
    lines = [head, "|---|" + "---:|" * len(METRICS) + "---:|---:|---|"]
    for r in results:
        anchor = UDPIPE.get(r["treebank"], (None,) * len(METRICS))
        cells = [f"{_cell(r['scores'][m], a)} / {a if a is not None else '–'}" for m, a in zip(METRICS, anchor)]
        minutes = f"{r['train_minutes']:.1f}" if isinstance(r["train_minutes"], (int, float)) else "?"
        speed = f"{r['tokens_per_s']:,.0f}" if r["tokens_per_s"] else "?"
        lines.append(f"| {r['treebank']} | " + " | ".join(cells) + f" | {minutes} | {speed} | "
                     + ("yes" if r["only_predicted_columns_changed"] else f"NO: {r['changed_columns']}") + " |")
    return "\n".join(lines)


def raw_table(results: list[dict]) -> str:
    """Markdown: from raw text, treebank x metric, attnlab (bold when above UDPipe 1.2) / UDPipe 1.2."""
    head = "| treebank | " + " | ".join(RAW_METRICS) + " | raw text to CoNLL-U words/s |"
    lines = [head, "|---|" + "---:|" * (len(RAW_METRICS) + 1)]
    for r in results:
        raw = r.get("raw")
        if raw is None:
            lines.append(f"| {r['treebank']} | " + " | ".join(["no segmenter"] * len(RAW_METRICS)) + " | – |")
            continue
        anchor = UDPIPE_RAW.get(r["treebank"], (None,) * len(RAW_METRICS))
        cells = [f"{_cell(raw.get(m), a)} / {a if a is not None else '–'}" for m, a in zip(RAW_METRICS, anchor)]
        lines.append(f"| {r['treebank']} | " + " | ".join(cells) + f" | {raw['words_per_s']:,.0f} |")
    return "\n".join(lines)


def main(data: Path, out: Path, *, only: list[str] | None, seed: int, threads: int,
         train_args: tuple[str, ...] = ()) -> list[dict]:
    """Every treebank directory of ``data`` (those named in ``only``), one after another."""
    names = sorted(p.name for p in data.iterdir() if p.is_dir() and list(p.glob("*train.conllu")))
    if only:
        missing = sorted(set(only) - set(names))
        if missing:
            raise ValueError(f"{data}: no treebank {', '.join(missing)} (found: {', '.join(names) or 'none'})")
        names = [n for n in names if n in only]
    results = []
    for name in names:
        print(f"{name} ...", file=sys.stderr, flush=True)
        results.append(run_treebank(data / name, out / name, seed=seed, threads=threads, train_args=train_args))
        print(table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    return results
