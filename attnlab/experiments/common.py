"""What every experiment shares: settings, the tagger runner, plots, result files.

Each experiment writes three files into its output directory:

    <name>.json   the settings, every measured number, and the exact arrays plotted
    <name>.png    the plot (matplotlib, Agg backend)
    <name>.md     a Markdown section: table, plot link, command, seeds, machine, wall time

Plots are drawn from a *plot spec* (a JSON-ready dict, kept in ``<name>.json`` under
``"plot"``) by ``draw(spec)``, so the numbers in the JSON are by construction the points
in the PNG; ``tests/test_experiments.py`` checks this against the figure's Line2D data.

``train_tagger`` is the one way the experiments train a model: it builds a
``Tagger`` from a ``TaggerConfig``, trains it with ``attnlab.train.train`` on a
``TaggingTask`` (or a subclass that scores differently), reloads the best model on dev
and scores it on the test sentences.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..output import write_output


@dataclass
class Settings:
    """How to run an experiment (from the command line)."""

    out: Path
    quick: bool = False
    treebank: Path | None = None
    seed: int = 1
    threads: int = 1
    progress: bool = True
    overrides: dict = field(default_factory=dict)  # experiment-specific settings (tests use tiny ones)
    command: str = ""

    def get(self, name: str, full, quick):
        """An experiment setting: the override if given, else the quick or the full value."""
        if name in self.overrides:
            return self.overrides[name]
        return quick if self.quick else full


def log(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(msg, file=sys.stderr)


def machine() -> dict:
    """What the numbers were measured on: the benchmarks' description plus threads and platform."""
    import torch

    from ..bench.attention import machine_info

    return {**machine_info(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform()}


def scaled_tagger_config(encoder: str, sizes: dict, scale: float, features, *, dropout: float):
    """A tagger config with ``sizes`` (EncoderConfig fields) scaled by ``scale``: width and
    feed-forward width shrink or grow, the number of layers and heads stays."""
    from ..encoders import EncoderConfig
    from ..tasks.tagging import TaggerConfig

    sizes = dict(sizes)
    sizes["hidden"] = max(8, int(sizes["hidden"] * scale)) // 4 * 4
    if "d_ff" in sizes:
        sizes["d_ff"] = max(8, int(sizes["d_ff"] * scale))
    return TaggerConfig(encoder=encoder, features=features,
                        encoder_config=EncoderConfig(**sizes, dropout=dropout, positions="rotary"), xpos_weight=0.0)


def mean_and_spread(values: Sequence[float]) -> dict:
    """Mean, min, max and sample standard deviation (0 for one value)."""
    values = list(values)
    return {
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


# -- result files ----------------------------------------------------------------------

def write_json(path: Path, obj) -> None:
    write_output(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_text(path: Path, text: str) -> None:
    write_output(path, text)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def footer(settings: Settings, seconds: float, info: dict, seeds) -> str:
    """The reproducibility lines under each section."""
    return (
        f"Command: `{settings.command}`  \n"
        f"Seeds: {seeds}; torch threads: {info['torch_threads']}; machine: {info['cpu']}, "
        f"{info['cores']} cores (shared with other work); torch {info['torch']}; wall time {seconds / 60:.1f} min."
    )


# -- plots -----------------------------------------------------------------------------

def series(label: str, x: Sequence[float], y: Sequence[float], *, low=None, high=None, marker: str = "o") -> dict:
    """One plotted line: ``low``/``high`` (optional) draw a shaded band (e.g. min..max over seeds)."""
    s = {"label": label, "x": [float(v) for v in x], "y": [float(v) for v in y], "marker": marker}
    if low is not None and high is not None:
        s["low"] = [float(v) for v in low]
        s["high"] = [float(v) for v in high]
    return s


def plot_spec(title: str, xlabel: str, ylabel: str, lines: list[dict], *, xscale: str = "linear",
              yscale: str = "linear", ylim=None, hline: dict | None = None, panel: str | None = None) -> dict:
    """A JSON-ready description of one panel: what ``draw`` plots."""
    spec: dict[str, object] = {"title": title, "xlabel": xlabel, "ylabel": ylabel, "xscale": xscale,
                               "yscale": yscale, "series": lines}
    if ylim is not None:
        spec["ylim"] = [float(ylim[0]), float(ylim[1])]
    if hline is not None:
        spec["hline"] = hline  # {"y": value, "label": text}
    if panel is not None:
        spec["panel"] = panel
    return spec


def draw(panels: dict | list[dict], suptitle: str | None = None):
    """A matplotlib figure with one axis per panel spec (a spec or a list of specs)."""
    from ..viz.figure import pyplot

    panels = [panels] if isinstance(panels, dict) else list(panels)
    fig, axes = pyplot().subplots(1, len(panels), figsize=(6.4 * len(panels), 4.6), squeeze=False)
    for ax, spec in zip(axes[0], panels):
        if spec.get("kind") == "bar":
            _draw_bars(ax, spec)
        else:
            _draw_lines(ax, spec)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def _draw_lines(ax, spec: dict) -> None:
    """One line per series (min..max as a band), an optional horizontal reference line."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for s in spec["series"]:
        (line,) = ax.plot(s["x"], s["y"], marker=s.get("marker", "o"), label=s["label"], markersize=4)
        if "low" in s:
            ax.fill_between(s["x"], s["low"], s["high"], alpha=0.18, color=line.get_color(), linewidth=0)
    if "hline" in spec:
        ax.axhline(spec["hline"]["y"], color="grey", linestyle="--", linewidth=1, label=spec["hline"]["label"])
    ax.set_xscale(spec["xscale"])
    ax.set_yscale(spec["yscale"])
    for axis, scale in ((ax.xaxis, spec["xscale"]), (ax.yaxis, spec["yscale"])):
        if scale == "log":  # plain numbers (20, 50, 100, 1000) instead of 2 x 10^1 ...
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.10g}"))
            axis.set_minor_formatter(NullFormatter())
    _label(ax, spec)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)


def _draw_bars(ax, spec: dict) -> None:
    """Grouped bars: one group per category (x = 0, 1, ...), one bar per series; min..max as error bars."""
    n = len(spec["series"])
    width = 0.8 / max(n, 1)
    for i, s in enumerate(spec["series"]):
        xs = [x - 0.4 + width * (i + 0.5) for x in s["x"]]
        err = None
        if "low" in s:
            err = [[y - lo for y, lo in zip(s["y"], s["low"])], [hi - y for y, hi in zip(s["y"], s["high"])]]
        bars = ax.bar(xs, s["y"], width=width, label=s["label"], yerr=err, capsize=3)
        for rect, y in zip(bars, s["y"]):
            ax.annotate(f"{y:.1f}", (rect.get_x() + rect.get_width() / 2, y), ha="center", va="bottom", fontsize=7,
                        xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(spec["categories"])), spec["categories"])
    _label(ax, spec)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def _label(ax, spec: dict) -> None:
    """A panel's y range (when the spec sets one), title and axis labels."""
    if "ylim" in spec:
        ax.set_ylim(*spec["ylim"])
    ax.set_title(spec["title"], fontsize=11)
    ax.set_xlabel(spec["xlabel"])
    ax.set_ylabel(spec["ylabel"])


def finish(settings: Settings, name: str, result: dict, panels: list[dict], markdown: str,
           suptitle: str | None = None) -> dict:
    """Write <name>.json (with the plot specs), <name>.png and <name>.md; returns the result."""
    from ..viz.figure import save_figure

    result = {**result, "plot": panels, "png": f"{name}.png"}
    out = Path(settings.out)
    save_figure(draw(panels, suptitle), out / f"{name}.png")
    write_json(out / f"{name}.json", result)
    write_text(out / f"{name}.md", markdown.rstrip() + "\n")
    log(f"wrote {out / (name + '.json')}, {name}.png, {name}.md")
    return result


# -- training a tagger -----------------------------------------------------------------

def token_accuracy(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    total = sum(len(g) for g in gold)
    correct = sum(p == g for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps))
    return correct / total if total else 0.0


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def train_tagger(
    config,
    train: Sequence,
    dev: Sequence,
    test: Sequence,
    train_config,
    *,
    max_minutes: float | None = None,
    progress: bool = True,
    task_class=None,
    score: Callable[[Sequence[Sequence[str]], Sequence[Sequence[str]]], float] = token_accuracy,
    probes: Sequence[Sequence[str]] = (),
    label: str = "",
) -> dict:
    """Train one tagger (``attnlab.train.train``), reload its best state on dev, score it on ``test``.

    ``task_class`` (default ``TaggingTask``) decides the dev score used for early
    stopping; ``score(gold, predicted)`` scores the test sentences (UPOS lists). Sentences
    are objects with ``forms``, ``upos`` and ``xpos``. ``probes`` are word lists tagged by
    the final model (e.g. "I saw a saw"). The model directory is temporary.
    """
    import torch

    from ..tasks.tagging import Tagger, TaggerVocabs, TaggingTask, load_tagger, predict
    from ..train import train as run_training

    task_class = task_class or TaggingTask
    vocabs = TaggerVocabs.build(train)
    torch.manual_seed(train_config.seed)
    model = Tagger(config, vocabs)
    task = task_class(model, vocabs, train, dev)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="attnlab-exp-"))
    try:
        result = run_training(
            model, task, train_config, workdir, max_minutes=max_minutes, progress=progress,
            log=(lambda m: log(f"  [{label}] {m}")) if progress else (lambda m: None),
        )
        seconds = time.monotonic() - started
        best = load_tagger(workdir)
        encoder = best.encoder()
        predicted, _ = predict(best.model, encoder, best.vocabs, [list(s.forms) for s in test])
        probe_tags = predict(best.model, encoder, best.vocabs, [list(p) for p in probes])[0] if probes else []
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "dev": result.best_score,
        "test": score([list(s.upos) for s in test], predicted),
        "status": result.status,
        "epochs": result.epoch + (1 if result.status == "time-limit" else 0),
        "best_epoch": result.best_epoch,
        "steps": result.step,
        "train_seconds": round(seconds, 2),
        "parameters": count_parameters(model.encoder),
        "parameters_total": count_parameters(model),
        "train_tokens": sum(len(s.forms) for s in train),
        "probes": [list(t) for t in probe_tags],
    }


def fmt_pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


@dataclass(frozen=True)
class GeneratedSentence:
    """A sentence of a generated task: forms and one label per token (xpos = upos)."""

    forms: list[str]
    upos: list[str]

    @property
    def xpos(self) -> list[str]:
        return self.upos


class Timer:
    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.start
