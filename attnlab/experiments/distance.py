"""distance: a generated tagging task whose label is decided by the token k positions away.

A sequence (``make_sequence``) looks like

    f03 B f11 D f07  ?  f02 f09 ... f14  C  f05 f01
    O   KEY O KEY O  C  O   O   ... O    KEY O  O
    `-- prefix --'   ^  `-- k - 1 fillers --' ^
                   query                  key, k after the query

The query ``?`` must be tagged with the class of the key token exactly k positions after
it (one of ``A B C D``). Distractors: key tokens of the same four forms stand before the
query (so "the class of some key in the sentence" is not the answer), and the gap is
filled with filler words. Keys are tagged ``KEY``, fillers ``O``; only the query's tag is
scored (chance: 1 / classes). ``query_label(forms, k)`` is the rule, and the tests check
that changing the token k away changes the label while changing any other token does not.

Each encoder is trained once per k: ``window`` (sees +-window tokens), ``cnn`` (sees
+-layers * (kernel - 1) / 2), ``bilstm`` and ``attention`` (see the whole sequence).
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from typing import Sequence

from .common import (
    GeneratedSentence, Settings, fmt_pct, finish, footer, log, machine, markdown_table, plot_spec,
    scaled_tagger_config, series, train_tagger,
)

NAME = "distance"
ENCODERS = ("window", "cnn", "bilstm", "attention")
DISTANCES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
QUERY = "?"
KEY_LABEL, FILLER_LABEL = "KEY", "O"

SIZES = {
    "window": {"hidden": 64, "layers": 1, "window": 4},
    "cnn": {"hidden": 64, "layers": 4, "kernel": 5},
    "bilstm": {"hidden": 32, "layers": 1},
    "attention": {"hidden": 64, "layers": 2, "heads": 4, "d_ff": 128},
}


def class_names(classes: int) -> list[str]:
    if not 2 <= classes <= 26:
        raise ValueError(f"classes must be in 2..26, got {classes}")
    return [chr(ord("A") + i) for i in range(classes)]


def filler_names(fillers: int) -> list[str]:
    if fillers < 1:
        raise ValueError(f"fillers must be >= 1, got {fillers}")
    return [f"f{i:02d}" for i in range(fillers)]


def make_sequence(k: int, rng: random.Random, *, classes: int = 4, fillers: int = 16,
                  prefix: tuple[int, int] = (3, 8), distractors: tuple[int, int] = (1, 3),
                  suffix: tuple[int, int] = (0, 4)) -> GeneratedSentence:
    """One sequence: prefix with distractor keys, the query, k - 1 fillers, the key, a suffix."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    keys, words = class_names(classes), filler_names(fillers)
    p = rng.randint(*prefix)
    d = min(rng.randint(*distractors), p)
    pre = [rng.choice(words) for _ in range(p)]
    for i in rng.sample(range(p), d):
        pre[i] = rng.choice(keys)
    key = rng.choice(keys)
    forms = pre + [QUERY] + [rng.choice(words) for _ in range(k - 1)] + [key] + \
        [rng.choice(words) for _ in range(rng.randint(*suffix))]
    labels = [KEY_LABEL if f in keys else FILLER_LABEL for f in forms]
    labels[p] = key  # the query's tag is the class of the key k positions after it
    return GeneratedSentence(forms, labels)


def query_label(forms: Sequence[str], k: int) -> str:
    """The rule: the form of the token k positions after the query."""
    return forms[list(forms).index(QUERY) + k]


def make_dataset(k: int, n: int, seed: int, **kw) -> list[GeneratedSentence]:
    rng = random.Random(seed * 1_000_003 + k)
    return [make_sequence(k, rng, **kw) for _ in range(n)]


def query_accuracy(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """Accuracy on the query tokens only (the tokens whose tag is a class)."""
    total = correct = 0
    for g_sent, p_sent in zip(gold, predicted):
        for g, p in zip(g_sent, p_sent):
            if g not in (KEY_LABEL, FILLER_LABEL):
                total += 1
                correct += g == p
    return correct / total if total else 0.0


def _task_class():
    from ..tasks.tagging import TaggingTask, predict

    class QueryTask(TaggingTask):
        """Early stopping on the query tokens' accuracy (the rest is trivial)."""

        def evaluate(self, model) -> float:
            pred, _ = predict(model, self.encoder, self.vocabs, [s.forms for s in self.dev],
                              batch_tokens=self.batch_tokens_eval)
            return query_accuracy([s.upos for s in self.dev], pred)

    return QueryTask


@dataclass(frozen=True)
class Plan:
    """The distances, encoders, data sizes and training budget of one distance run (from the settings)."""

    ks: list
    encoders: tuple
    classes: int
    train_tokens: int  # per k; the number of training sequences follows from it
    max_train: int
    min_train: int
    dev_n: int
    test_n: int
    epochs: int
    patience: int
    batch_tokens: int
    max_minutes: float
    scale: float

    def train_sequences(self, k: int) -> int:
        return max(self.min_train, min(self.max_train, self.train_tokens // (k + 10)))


def plan(settings: Settings) -> Plan:
    return Plan(
        ks=[int(k) for k in settings.get("distances", DISTANCES, (1, 4, 16, 64))],
        encoders=tuple(settings.get("encoders", ENCODERS, ENCODERS)),
        classes=int(settings.get("classes", 4, 4)),
        train_tokens=int(settings.get("train_tokens", 60_000, 12_000)),
        max_train=int(settings.get("max_train_sequences", 2000, 300)),
        min_train=int(settings.get("min_train_sequences", 48, 16)),
        dev_n=int(settings.get("dev_sequences", 48, 24)),
        test_n=int(settings.get("test_sequences", 200, 48)),
        epochs=int(settings.get("epochs", 30, 8)),
        patience=int(settings.get("patience", 8, 8)),
        batch_tokens=int(settings.get("batch_tokens", 1200, 600)),
        max_minutes=settings.get("max_minutes", 1.0, 0.15),
        scale=float(settings.get("scale", 1.0, 0.5)),
    )


def train_runs(p: Plan, settings: Settings) -> list[dict]:
    """One run per (k, encoder): accuracy on the query tokens of the test sequences."""
    from tqdm import tqdm

    from ..features import FeatureConfig
    from ..train import TrainConfig

    features = FeatureConfig(word_dim=32, shape_dim=4, char_dim=8, char_filters=8, char_widths=(2,),
                             word_dropout=0.0, dropout=0.0)
    runs = []
    bar = tqdm(total=len(p.ks) * len(p.encoders), desc=NAME, unit="run", disable=not settings.progress, file=sys.stderr)
    for k in p.ks:
        n_train = p.train_sequences(k)
        train = make_dataset(k, n_train, settings.seed, classes=p.classes)
        dev = make_dataset(k, p.dev_n, settings.seed + 1000, classes=p.classes)
        test = make_dataset(k, p.test_n, settings.seed + 2000, classes=p.classes)
        for enc in p.encoders:
            config = scaled_tagger_config(enc, SIZES[enc], p.scale, features, dropout=0.0)
            tc = TrainConfig(epochs=p.epochs, batch_tokens=p.batch_tokens, lr=3e-3, warmup=30, schedule="cosine",
                             patience=p.patience, seed=settings.seed, checkpoint_every=0)
            r = train_tagger(config, train, dev, test, tc, max_minutes=p.max_minutes, progress=settings.progress,
                             task_class=_task_class(), score=query_accuracy, label=f"{enc} k={k}")
            runs.append({"encoder": enc, "k": k, "train_sequences": n_train, **r})
            log(f"{NAME}: {enc:9s} k={k:4d} ({n_train} sequences): query accuracy {fmt_pct(r['test'], 1)}% "
                f"({r['status']}, {r['epochs']} epochs, {r['train_seconds']:.0f} s)")
            bar.update(1)
    bar.close()
    return runs


def run(settings: Settings) -> dict:
    import torch

    started = time.monotonic()
    torch.set_num_threads(settings.threads)
    p = plan(settings)
    runs = train_runs(p, settings)
    ks, encoders = p.ks, p.encoders
    acc = {enc: [next(r["test"] for r in runs if r["encoder"] == enc and r["k"] == k) for k in ks] for enc in encoders}
    lines = [series(enc, ks, [100 * a for a in acc[enc]]) for enc in encoders]
    chance = 100.0 / p.classes
    panel = plot_spec("query accuracy vs distance to the deciding token", "distance k (log scale)",
                      "accuracy on the query token (%)", lines, xscale="log", ylim=(0, 102),
                      hline={"y": chance, "label": f"chance ({chance:.0f}%)"})
    reach = {"window": SIZES["window"]["window"],
             "cnn": SIZES["cnn"]["layers"] * (SIZES["cnn"]["kernel"] - 1) // 2}
    info = machine()
    seconds = time.monotonic() - started
    header = ["k", "train sequences"] + list(encoders)
    rows = [[k, p.train_sequences(k)] + [fmt_pct(acc[e][i], 1) for e in encoders] for i, k in enumerate(ks)]
    md = f"""### distance: label decided by the token k positions away

![accuracy vs distance]({NAME}.png)

Accuracy (%) on the query token of {p.test_n} test sequences per k (chance {chance:.0f}%, {p.classes} classes);
{p.train_tokens:,} training tokens per k (at least {p.min_train} sequences), {p.dev_n} dev sequences for early stopping,
at most {p.epochs} epochs (patience {p.patience}) and {p.max_minutes} min per run. Receptive fields: window +-{reach['window']}, cnn
+-{reach['cnn']} tokens; bilstm and attention see the whole sequence. Sizes: {SIZES}.

{markdown_table(header, rows)}

{footer(settings, seconds, info, settings.seed)}
"""
    result = {
        "experiment": NAME, "distances": ks, "encoders": list(encoders), "classes": p.classes, "sizes": SIZES,
        "scale": p.scale, "train_tokens": p.train_tokens, "epochs": p.epochs, "patience": p.patience,
        "max_minutes": p.max_minutes, "receptive_field": reach, "accuracy": acc, "runs": runs, "machine": info,
        "seconds": seconds, "command": settings.command,
    }
    return finish(settings, NAME, result, [panel], md)
