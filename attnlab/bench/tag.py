"""`attnlab bench tag`: tagging throughput and memory end to end, through the command line.

    attnlab bench tag --model en --treebank $ATTNLAB_DATA/ud-english-ewt

Every case is the command a user runs (``attnlab tag FILE -o /dev/null --stats -q`` in a new
process, so Python, torch and the model's loading are counted), on one treebank's training file:
as CoNLL-U (its words kept, all four layers predicted) and as raw text (``document_text``: the
sentences' ``# text`` in paragraphs; segmenter, multiword tokens and all layers), with one
process (1 and 2 torch threads) and with ``--workers 2``, in the default precision ("auto":
bfloat16 where the CPU has it natively) and, with 2 workers, in fp32 (where the default is
bf16) and int8 beside it; the cases are
interleaved within each
round and the medians of words/s are compared. Optional cases run when their packages are
installed, and say so when not: the Dask path (``--scheduler local:2``) and spaCy.

spaCy (``pip install 'spacy>=3.8,<3.9'``, not a dependency): its CNN pipeline (tok2vec, tagger,
morphologizer, trainable_lemmatizer; ``spacy init config --optimize efficiency``), trained on the
same treebank's train file and cached (``attnlab.bench.spacy_peer``), runs ``nlp.pipe`` in a new
process per run, with ``n_process`` 1 and ``--workers``, over the same raw text (its paragraphs)
and over the CoNLL-U file's words; those cases are interleaved with attnlab's, and the report
gives the best attnlab case over spaCy's best for each input.

Memory: the peak resident memory of the whole process tree (the command and its workers, read
from /proc every 50 ms) while tagging raw text of ``memory_mb`` MB and of 1 MB (the treebank's
raw text repeated), so that the two can be compared: streaming keeps the peak flat.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class TagBenchConfig:
    model: str = "en"
    treebank: Path = Path(".")  # a directory with *train*.conllu
    repeat: int = 3
    memory_mb: int = 100
    cases: tuple[str, ...] = ()  # () = every case that can run
    workers: int = 2
    spacy_steps: int = 1000  # training steps of the spaCy pipeline (cached per treebank and budget)
    extra: list = field(default_factory=list)


def _tree_rss(root: int) -> int:
    """Resident bytes of process ``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * PAGE
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def run_command(args: list[str], *, sample_memory: bool = False) -> dict:
    """Run ``python -m attnlab ARGS``: wall seconds, the --stats line's words and sentences,
    and (``sample_memory``) the peak resident memory of its process tree."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                     os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "attnlab", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    peak = 0
    if sample_memory:
        while proc.poll() is None:
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.05)
    err = proc.communicate()[1].decode("utf-8", "replace")
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"attnlab {' '.join(args)} failed (exit {proc.returncode}): {err.strip()[-300:]}")
    stats = [line for line in err.splitlines() if line.startswith("tagged ")][-1].split()
    return {"seconds": seconds, "sentences": int(stats[1].replace(",", "")), "words": int(stats[3].replace(",", "")),
            "peak_rss_mb": peak / 2**20 if sample_memory else None}


def _inputs(config: TagBenchConfig, work: Path) -> tuple[Path, Path, str]:
    """(CoNLL-U file, its raw text, what they are)."""
    from ..data.conllu import read_conllu
    from ..data.rawtext import document_text
    from ..data.treebank import find_split

    conllu = find_split(config.treebank, "train")
    text = work / "raw.txt"
    text.write_text(document_text(read_conllu(conllu)), encoding="utf-8")
    return conllu, text, str(conllu)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def run(config: TagBenchConfig) -> dict:
    """Every case of ``config``, its inputs in a temporary directory removed at the end."""
    with tempfile.TemporaryDirectory(prefix="attnlab-bench-tag-") as work:
        return _run(config, Path(work))


def _run(config: TagBenchConfig, work: Path) -> dict:
    from .machine import machine_info
    from .timing import round_order

    conllu, text, what = _inputs(config, work)
    base = ["tag", "--model", config.model, "-o", os.devnull, "--stats", "-q"]
    w = str(config.workers)
    cases = {
        "conllu, 1 process, 1 thread": [*base, str(conllu), "--workers", "1", "--threads", "1"],
        "conllu, 1 process, 2 threads": [*base, str(conllu), "--workers", "1", "--threads", "2"],
        f"conllu, {w} workers": [*base, str(conllu), "--workers", w],
        "text, 1 process, 1 thread": [*base, str(text), "--workers", "1", "--threads", "1"],
        "text, 1 process, 2 threads": [*base, str(text), "--workers", "1", "--threads", "2"],
        f"text, {w} workers": [*base, str(text), "--workers", w],
    }
    from ..precision import native_bf16, resolve

    if resolve("auto") == "bf16":  # fp32 beside the default, where they differ
        cases[f"conllu, {w} workers, fp32"] = [*base, str(conllu), "--workers", w, "--precision", "fp32"]
        cases[f"text, {w} workers, fp32"] = [*base, str(text), "--workers", w, "--precision", "fp32"]
    cases[f"conllu, {w} workers, int8"] = [*base, str(conllu), "--workers", w, "--precision", "int8"]
    cases[f"text, {w} workers, int8"] = [*base, str(text), "--workers", w, "--precision", "int8"]
    notes = [f"precision: the default (auto) is {resolve('auto')} here ({native_bf16()[1]}); rows marked fp32 "
             "ask for it"]
    if _has("distributed"):
        cases[f"conllu, Dask local:{w}"] = [*base, str(conllu), "--scheduler", f"local:{w}"]
        cases[f"text, Dask local:{w}"] = [*base, str(text), "--scheduler", f"local:{w}"]
    else:
        notes.append("Dask (distributed) not installed: the cluster cases were not run (pip install 'attnlab[cluster]')")
    selected = (lambda name: any(c in name for c in config.cases)) if config.cases else (lambda name: True)
    jobs: dict[str, Callable[[], dict]] = {k: partial(run_command, v) for k, v in cases.items() if selected(k)}
    spacy_info = None
    if not _has("spacy"):
        notes.append("spaCy not installed: the spaCy comparison was not run (pip install 'spacy>=3.8,<3.9')")
    else:
        spacy_cases = {f"spaCy CNN, {kind}, n_process={n}": (path, kind, n)
                       for kind, path in (("conllu", conllu), ("text", text)) for n in sorted({1, config.workers})}
        spacy_cases = {k: v for k, v in spacy_cases.items() if selected(k)}
        if spacy_cases:
            from .spacy_peer import ensure_pipeline, run_pipe

            try:
                spacy_info = ensure_pipeline(config.treebank, config.spacy_steps)
            except FileNotFoundError as exc:  # no dev file
                notes.append(f"spaCy comparison not run: {exc}")
            else:
                for name, (path, kind, n) in spacy_cases.items():
                    jobs[name] = partial(run_pipe, spacy_info["path"], path, kind, n)
    if not jobs:
        raise ValueError(f"no case of this run matches {' or '.join(map(repr, config.cases))}")
    samples: dict[str, list[dict]] = {k: [] for k in jobs}
    names = list(jobs)
    for r in range(config.repeat):
        for name in round_order(names, r):
            samples[name].append(jobs[name]())
            print(f"  {name}: {samples[name][-1]['words'] / samples[name][-1]['seconds']:,.0f} words/s",
                  file=sys.stderr, flush=True)
    rows = {}
    for name, runs in samples.items():
        rates = [s["words"] / s["seconds"] for s in runs]
        rows[name] = {"words": runs[0]["words"], "sentences": runs[0]["sentences"],
                      "median_s": statistics.median(s["seconds"] for s in runs),
                      "words_per_s": statistics.median(rates), "samples_words_per_s": rates}
    memory = {}
    if config.memory_mb:
        unit = text.read_bytes()
        for mb in sorted({1, config.memory_mb}):
            big = work / f"raw-{mb}mb.txt"
            with open(big, "wb") as f:
                written = 0
                while written < mb * 2**20:
                    piece = unit[: mb * 2**20 - written]
                    f.write(piece + b"\n\n")
                    written += len(piece) + 2
            for workers in ("1", w):
                got = run_command([*base, str(big), "--workers", workers, "--threads", "1"], sample_memory=True)
                memory[f"{mb} MB, {workers} worker(s)"] = {**got, "mb": mb, "workers": int(workers)}
                print(f"  memory {mb} MB, {workers} worker(s): {got['peak_rss_mb']:,.0f} MB peak", file=sys.stderr,
                      flush=True)
            big.unlink()
    from .spacy_peer import versus

    return {"machine": machine_info(), "input": what, "model": config.model, "rows": rows, "memory": memory,
            "notes": notes, "repeat": config.repeat, "spacy": spacy_info, "versus_spacy": versus(rows)}


def _baseline(name: str) -> str:
    """The row a case is compared with in the table: the same input in one process with one thread
    (spaCy: ``n_process=1``)."""
    from .spacy_peer import input_kind, is_spacy

    kind = input_kind(name)
    return f"spaCy CNN, {kind}, n_process=1" if is_spacy(name) else f"{kind}, 1 process, 1 thread"


def _spacy_line(info: dict) -> str:
    from .spacy_peer import BATCH_SIZE

    dev = info.get("dev_scores", {})
    acc = ", ".join(f"{label} {100 * dev[key]:.1f}" for key, label in
                    (("tag_acc", "XPOS"), ("pos_acc", "UPOS"), ("morph_acc", "UFeats"), ("lemma_acc", "Lemmas"))
                    if key in dev)
    return (f"spaCy {info['spacy']} CNN pipeline ({' + '.join(info['pipeline'])}; spaCy's efficiency config), "
            f"trained on {info['train']} for {info['steps']:,} steps ({info['seconds']:,.0f} s, {info['trained_at']}"
            f"{', cached' if info.get('cached') else ''}); dev accuracy {acc or 'not recorded'} (not compared: its "
            "speed depends on the architecture, not on how long it trained); "
            f"nlp.pipe(batch_size={BATCH_SIZE}) in a new process "
            "per run (startup and spacy.load counted, torch kept out), words = spaCy's tokens")


def format_report(report: dict) -> str:
    m = report["machine"]
    lines = [f"attnlab tag end to end (a new process per run: startup and model loading counted), {report['input']}",
             f"CPU: {m['cpu']} ({m['nproc']} usable), torch {m['torch']}; medians of {report['repeat']} interleaved rounds",
             "", "| case | words | median s | words/s | vs 1 process, 1 thread |", "|---|---:|---:|---:|---:|"]
    rows = report["rows"]
    for name, r in rows.items():
        one = rows.get(_baseline(name))
        ratio = f"{r['words_per_s'] / one['words_per_s']:.2f}x" if one else "–"
        lines.append(f"| {name} | {r['words']:,} | {r['median_s']:.2f} | {r['words_per_s']:,.0f} | {ratio} |")
    if report.get("versus_spacy"):
        lines.append("")
        for v in report["versus_spacy"]:
            lines.append(f"{v['kind']}: attnlab best / spaCy best = {v['ratio']:.2f}x ({v['attnlab']}: "
                         f"{v['attnlab_words_per_s']:,.0f} words/s; {v['spacy']}: {v['spacy_words_per_s']:,.0f} words/s)")
    if report.get("spacy"):
        lines += ["", _spacy_line(report["spacy"])]
    if report["memory"]:
        lines += ["", "| raw text | workers | peak RSS of the process tree (MB) | words/s |", "|---|---:|---:|---:|"]
        for name, r in report["memory"].items():
            lines.append(f"| {r['mb']} MB | {r['workers']} | {r['peak_rss_mb']:,.0f} | "
                         f"{r['words'] / r['seconds']:,.0f} |")
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines)
