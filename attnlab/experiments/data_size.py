"""data-size: does a CNN (a restricted self-attention) win on small data and attention on large?

Taggers with the ``window``, ``cnn``, ``bilstm`` and ``attention`` encoders (same token
features, similar small sizes) are trained on nested subsets of the training sentences
(1%, 3%, 10%, 30%, 100%: one shuffle, then prefixes, so every subset contains the
smaller ones), early-stopped on the same dev sentences and scored on the same test set.
Each run gets the same budget of optimizer steps (more epochs on small subsets), capped
by a time limit. The plot is test accuracy against training tokens (log axis) with the
min..max band over seeds; ``crossings`` lists where two encoders' mean curves cross.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .common import (
    Settings, fmt_pct, finish, footer, log, machine, markdown_table, mean_and_spread, plot_spec, scaled_tagger_config,
    series, train_tagger,
)
from .data import load_tagging_data

if TYPE_CHECKING:
    from ..features import FeatureConfig

NAME = "data-size"
ENCODERS = ("window", "cnn", "bilstm", "attention")
FRACTIONS = (0.01, 0.03, 0.1, 0.3, 1.0)
LARGE = 0.3  # fractions from here on get the large budget (steps_large, seeds_large, max_minutes_large)

# Encoder sizes: small enough for a shared CPU, similar widths for all four.
SIZES = {
    "window": {"hidden": 128, "layers": 1, "window": 2},
    "cnn": {"hidden": 128, "layers": 3, "kernel": 3},
    "bilstm": {"hidden": 64, "layers": 1},
    "attention": {"hidden": 128, "layers": 2, "heads": 4, "d_ff": 256},
}


def nested_subsets(sentences, fractions, seed: int = 0) -> dict[float, list]:
    """One fixed shuffle, then prefixes: subset(f) is contained in subset(g) for f < g."""
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    out = {}
    for f in fractions:
        n = max(1, round(f * len(sentences)))
        out[f] = [sentences[i] for i in order[:n]]
    return out


def crossings(xs: list[float], curves: dict[str, list[float]]) -> list[dict]:
    """Where two mean curves change order between neighbouring x (interpolated on log x)."""
    found = []
    names = list(curves)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            d = [ya - yb for ya, yb in zip(curves[a], curves[b])]
            for j in range(len(xs) - 1):
                if d[j] == 0 or d[j] * d[j + 1] < 0:
                    if d[j] == 0:
                        x = xs[j]
                    else:
                        t = d[j] / (d[j] - d[j + 1])
                        x = math.exp(math.log(xs[j]) + t * (math.log(xs[j + 1]) - math.log(xs[j])))
                    ahead = a if d[j + 1] > 0 else b if d[j + 1] < 0 else None
                    found.append({"a": a, "b": b, "tokens": round(x), "ahead_after": ahead,
                                  "between": [xs[j], xs[j + 1]]})
    return found


@dataclass(frozen=True)
class Plan:
    """What one data-size run trains on and with which budget (from the settings)."""

    data_name: str
    train: list  # every training sentence (capped by train_sentences)
    dev: list
    test: list
    fractions: tuple
    encoders: tuple
    seeds_small: int  # seeds for fractions below 0.3
    seeds_large: int  # seeds for fractions >= 0.3 (the expensive runs)
    steps: int
    steps_large: int
    max_minutes: float
    max_minutes_large: float
    max_epochs: int
    batch_tokens: int
    scale: float  # encoder width multiplier (tests shrink it)
    features: FeatureConfig  # shared by all encoders

    def seeds(self, fraction: float) -> int:
        return self.seeds_small if fraction < LARGE else self.seeds_large

    def budget(self, fraction: float) -> tuple[int, float]:
        """(optimizer steps, minutes) of one run on this fraction."""
        return (self.steps, self.max_minutes) if fraction < LARGE else (self.steps_large, self.max_minutes_large)


def plan(settings: Settings) -> Plan:
    from ..features import FeatureConfig

    data_name, train_all, dev_all, test = load_tagging_data(settings.treebank, allow_demo=settings.quick)
    dev_n = int(settings.get("dev_sentences", 600, 100))
    test_n = settings.get("test_sentences", None, 100)
    train_cap = settings.get("train_sentences", None, 600)
    scale = float(settings.get("scale", 1.0, 0.25))
    features = FeatureConfig(word_dim=max(8, int(64 * scale)), shape_dim=8, char_dim=16,
                             char_filters=max(4, int(24 * scale)), char_widths=(2, 3, 4),
                             word_dropout=0.1, dropout=0.2)
    return Plan(
        data_name=data_name,
        train=train_all[: int(train_cap)] if train_cap else train_all,
        dev=dev_all[:dev_n],
        test=test[: int(test_n)] if test_n else test,
        fractions=tuple(settings.get("fractions", FRACTIONS, (0.1, 0.3, 1.0))),
        encoders=tuple(settings.get("encoders", ENCODERS, ENCODERS)),
        seeds_small=int(settings.get("seeds", 3, 1)),
        seeds_large=int(settings.get("seeds_large", 1, 1)),
        steps=int(settings.get("steps", 600, 40)),
        steps_large=int(settings.get("steps_large", 1200, 40)),
        max_minutes=settings.get("max_minutes", 1.0, 0.1),
        max_minutes_large=settings.get("max_minutes_large", 2.0, 0.1),
        max_epochs=int(settings.get("max_epochs", 40, 4)),
        batch_tokens=int(settings.get("batch_tokens", 500, 300)),
        scale=scale,
        features=features,
    )


def train_runs(p: Plan, settings: Settings) -> list[dict]:
    """Every (fraction, encoder, seed) run: test and dev accuracy, epochs, time, parameters."""
    from tqdm import tqdm

    subsets = nested_subsets(p.train, p.fractions, seed=0)
    total = sum(len(p.encoders) * p.seeds(f) for f in p.fractions)
    bar = tqdm(total=total, desc=NAME, unit="run", disable=not settings.progress, file=sys.stderr)
    runs = []
    for f in p.fractions:
        for enc in p.encoders:
            for s in range(p.seeds(f)):
                runs.append(train_one(p, settings, enc, f, subsets[f], settings.seed + s))
                bar.update(1)
    bar.close()
    return runs


def train_one(p: Plan, settings: Settings, enc: str, f: float, train: list, seed: int) -> dict:
    from ..train import TrainConfig

    tokens = sum(len(s.forms) for s in train)
    config = scaled_tagger_config(enc, SIZES[enc], p.scale, p.features, dropout=0.2)
    run_steps, run_minutes = p.budget(f)
    batches_per_epoch = max(1, math.ceil(tokens / p.batch_tokens))
    epochs = max(1, min(p.max_epochs, math.ceil(run_steps / batches_per_epoch)))
    tc = TrainConfig(epochs=epochs, batch_tokens=p.batch_tokens, lr=2e-3, warmup=min(100, run_steps // 10),
                     schedule="cosine", patience=5, seed=seed, checkpoint_every=0)
    r = train_tagger(config, train, p.dev, p.test, tc, max_minutes=run_minutes, progress=settings.progress,
                     label=f"{enc} {100 * f:g}% seed {seed}")
    log(f"{NAME}: {enc:9s} {100 * f:5.1f}% ({tokens:,} tokens) seed {seed}: test {fmt_pct(r['test'])}% "
        f"dev {fmt_pct(r['dev'])}% ({r['status']}, {r['epochs']} epochs, {r['train_seconds']:.0f} s)")
    return {"encoder": enc, "fraction": f, "train_sentences": len(train), "train_tokens": tokens,
            "seed": seed, "planned_epochs": epochs, **r}


def summarize(runs: list[dict], fractions, encoders) -> dict:
    """Per encoder, one row per fraction: training tokens and the test accuracy's mean and spread."""
    summary: dict[str, list[dict]] = {}
    for enc in encoders:
        summary[enc] = []
        for f in fractions:
            accs = [r["test"] for r in runs if r["encoder"] == enc and r["fraction"] == f]
            tokens = next(r["train_tokens"] for r in runs if r["fraction"] == f)
            summary[enc].append({"fraction": f, "train_tokens": tokens, **mean_and_spread(accs)})
    return summary


def accuracy_panel(summary: dict, encoders, xs: list, data_name: str) -> dict:
    lines = [series(enc, xs, [100 * row["mean"] for row in summary[enc]],
                    low=[100 * row["min"] for row in summary[enc]], high=[100 * row["max"] for row in summary[enc]])
             for enc in encoders]
    return plot_spec(f"UPOS test accuracy vs training data ({data_name.split('/')[-1]})", "training tokens (log scale)",
                     "test accuracy (%)", lines, xscale="log")


def accuracy_table(p: Plan, summary: dict, xs: list) -> str:
    header = ["train share", "tokens"] + [f"{enc} (n)" for enc in p.encoders]
    rows = []
    for i, f in enumerate(p.fractions):
        cells = [f"{100 * f:g}%", f"{xs[i]:,}"]
        for enc in p.encoders:
            row = summary[enc][i]
            spread = f" ± {100 * row['std']:.2f}" if row["n"] > 1 else ""
            cells.append(f"{100 * row['mean']:.2f}{spread} ({row['n']})")
        rows.append(cells)
    return markdown_table(header, rows)


def markdown(p: Plan, settings: Settings, table: str, params: dict, cross: list, seconds: float, info: dict) -> str:
    cross_text = "; ".join(
        f"{c['a']} and {c['b']} cross near {c['tokens']:,} tokens"
        + (f" ({c['ahead_after']} ahead above)" if c["ahead_after"] else "") for c in cross) or "no two mean curves cross"
    seeds = (f"{settings.seed}..{settings.seed + p.seeds_small - 1} below 30%, "
             f"{settings.seed}..{settings.seed + p.seeds_large - 1} from 30%")
    return f"""### data-size: accuracy vs amount of training data

![accuracy vs training tokens]({NAME}.png)

UPOS test accuracy (%, mean ± std over seeds, number of seeds in brackets) on {p.data_name}; nested training
subsets, dev = first {len(p.dev)} dev sentences (early stopping), test = {len(p.test)} test sentences.

{table}

Encoder parameters (without the shared token features): {', '.join(f'{e} {n:,}' for e, n in params.items())}.
Budget per run: {p.steps} optimizer steps of {p.batch_tokens} tokens below 30% ({p.steps_large} from 30%), at most
{p.max_epochs} epochs, at most {p.max_minutes} min ({p.max_minutes_large} min from 30%), patience 5 epochs; the best
epoch on dev is scored. Crossings of the mean curves: {cross_text}.

{footer(settings, seconds, info, seeds)}
"""


def run(settings: Settings) -> dict:
    import torch

    started = time.monotonic()
    torch.set_num_threads(settings.threads)
    p = plan(settings)
    runs = train_runs(p, settings)
    summary = summarize(runs, p.fractions, p.encoders)
    xs = [row["train_tokens"] for row in summary[p.encoders[0]]]
    cross = crossings(xs, {enc: [row["mean"] for row in summary[enc]] for enc in p.encoders}) if len(xs) > 1 else []
    panel = accuracy_panel(summary, p.encoders, xs, p.data_name)
    info = machine()
    seconds = time.monotonic() - started
    params = {enc: next(r["parameters"] for r in runs if r["encoder"] == enc) for enc in p.encoders}
    md = markdown(p, settings, accuracy_table(p, summary, xs), params, cross, seconds, info)
    result = {
        "experiment": NAME, "data": p.data_name, "fractions": list(p.fractions), "encoders": list(p.encoders),
        "sizes": SIZES, "scale": p.scale, "features": p.features.to_json(), "steps": p.steps,
        "steps_large": p.steps_large, "max_epochs": p.max_epochs, "max_minutes": p.max_minutes,
        "max_minutes_large": p.max_minutes_large, "batch_tokens": p.batch_tokens, "dev_sentences": len(p.dev),
        "test_sentences": len(p.test), "runs": runs, "summary": summary, "crossings": cross,
        "machine": info, "seconds": seconds, "command": settings.command,
    }
    return finish(settings, NAME, result, [panel], md)
