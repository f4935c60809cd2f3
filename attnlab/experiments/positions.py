"""positions: attention taggers without positions vs with each positional scheme.

Self-attention alone is permutation equivariant: without position information the two
"saw" in "I saw a saw" have the same input vector, attend to the same set of vectors
and so get the same output and the same tag, whatever the training. The experiment
trains the attention tagger with ``positions`` = none, sinusoidal, learned and rotary

* on a UD treebank (EWT): test accuracy;
* on the bundled demo corpus (where nouns and verbs share forms): test accuracy and the
  tags given to the probe "I saw a saw" (which the demo corpus never contains).
"""

from __future__ import annotations

import math
import time

from .common import (
    Settings, fmt_pct, finish, footer, log, machine, markdown_table, mean_and_spread, plot_spec, series,
    train_tagger,
)
from .data import load_tagging_data

NAME = "positions"
SCHEMES = ("none", "sinusoidal", "learned", "rotary")
PROBE = ["I", "saw", "a", "saw"]
PROBE_EXPECTED = ["PRON", "VERB", "DET", "NOUN"]


def _config(positions: str, scale: float):
    from ..encoders import EncoderConfig
    from ..features import FeatureConfig
    from ..tasks.tagging import TaggerConfig

    hidden = max(8, int(128 * scale)) // 4 * 4
    return TaggerConfig(
        encoder="attention",
        features=FeatureConfig(word_dim=max(8, int(64 * scale)), shape_dim=8, char_dim=16,
                               char_filters=max(4, int(24 * scale)), char_widths=(2, 3, 4), word_dropout=0.1, dropout=0.2),
        encoder_config=EncoderConfig(hidden=hidden, layers=2, heads=4, d_ff=2 * hidden, dropout=0.2, positions=positions),
        xpos_weight=0.0,
    )


def datasets(settings: Settings) -> list[dict]:
    """The treebank (left out on the quick path without one) and the demo corpus, with their budgets."""
    from ..data.conllu import read_conllu
    from ..data.demo import demo_paths

    out = []
    name, train, dev, test = load_tagging_data(settings.treebank, allow_demo=settings.quick)
    cap = settings.get("train_sentences", None, 400)
    if "demo" not in name:
        out.append({
            "name": "treebank", "source": name,
            "train": train[: int(cap)] if cap else train, "dev": dev[: int(settings.get("dev_sentences", 600, 100))],
            "test": test[: int(settings.get("test_sentences", 0, 100)) or None],
            "steps": int(settings.get("steps", 1200, 40)), "seeds": int(settings.get("seeds", 1, 1)),
            "max_minutes": settings.get("max_minutes", 1.5, 0.1),
        })
    paths = demo_paths()
    d_train, d_dev, d_test = (read_conllu(paths[s]) for s in ("train", "dev", "test"))
    cap = settings.get("demo_train_sentences", None, 400)
    out.append({
        "name": "demo", "source": "demo corpus (bundled)", "train": d_train[: int(cap)] if cap else d_train,
        "dev": d_dev[: int(settings.get("demo_dev_sentences", 300, 100))], "test": d_test,
        "steps": int(settings.get("demo_steps", 600, 40)), "seeds": int(settings.get("demo_seeds", 3, 1)),
        "max_minutes": settings.get("demo_max_minutes", 1.0, 0.1),
    })
    return out


def train_runs(settings: Settings, data: list[dict], schemes, scale: float, batch_tokens: int) -> list[dict]:
    """Every (dataset, scheme, seed) run: test accuracy and the tags given to the probe."""
    runs = []
    for ds in data:
        tokens = sum(len(s.forms) for s in ds["train"])
        epochs = max(1, min(40, math.ceil(ds["steps"] / max(1, math.ceil(tokens / batch_tokens)))))
        for scheme in schemes:
            for s in range(ds["seeds"]):
                runs.append(train_one(settings, ds, scheme, scale, batch_tokens, epochs, settings.seed + s))
    return runs


def train_one(settings: Settings, ds: dict, scheme: str, scale: float, batch_tokens: int, epochs: int,
              seed: int) -> dict:
    from ..train import TrainConfig

    tc = TrainConfig(epochs=epochs, batch_tokens=batch_tokens, lr=2e-3, warmup=min(100, ds["steps"] // 10),
                     schedule="cosine", patience=5, seed=seed, checkpoint_every=0)
    r = train_tagger(_config(scheme, scale), ds["train"], ds["dev"], ds["test"], tc,
                     max_minutes=ds["max_minutes"], progress=settings.progress,
                     probes=[PROBE], label=f"{ds['name']} {scheme} seed {seed}")
    probe = r["probes"][0]
    log(f"{NAME}: {ds['name']:9s} {scheme:10s} seed {seed}: test {fmt_pct(r['test'])}% "
        f"probe {' '.join(probe)} ({r['status']}, {r['train_seconds']:.0f} s)")
    return {"dataset": ds["name"], "positions": scheme, "seed": seed, **r,
            "probe_tags": probe, "probe_correct": probe == PROBE_EXPECTED, "saws_differ": probe[1] != probe[3]}


def summarize(runs: list[dict], data: list[dict], schemes) -> dict:
    """Per dataset and scheme: test accuracy (mean and spread) and how often the probe came out right."""
    summary: dict[str, dict[str, dict]] = {}
    for ds in data:
        summary[ds["name"]] = {}
        for scheme in schemes:
            rs = [r for r in runs if r["dataset"] == ds["name"] and r["positions"] == scheme]
            summary[ds["name"]][scheme] = {
                **mean_and_spread([r["test"] for r in rs]),
                "probe_correct": sum(r["probe_correct"] for r in rs),
                "saws_differ": sum(r["saws_differ"] for r in rs), "runs": len(rs),
                "probe_tags": [r["probe_tags"] for r in rs],
            }
    return summary


def accuracy_panel(summary: dict, data: list[dict], schemes) -> dict:
    lines = []
    for ds in data:
        rows = summary[ds["name"]]
        lines.append(series(f"{ds['name']} test accuracy", range(len(schemes)), [100 * rows[s]["mean"] for s in schemes],
                            low=[100 * rows[s]["min"] for s in schemes], high=[100 * rows[s]["max"] for s in schemes]))
    panel = plot_spec("attention tagger: test accuracy by positional scheme", "positions", "test accuracy (%)", lines)
    panel["kind"] = "bar"
    panel["categories"] = list(schemes)
    return panel


def accuracy_table(summary: dict, data: list[dict], schemes) -> str:
    header = ["positions"] + [f"{ds['name']} test % (n)" for ds in data] + ['"I saw a saw" (demo model)', "saws differ"]
    rows = []
    for scheme in schemes:
        cells = [scheme]
        for ds in data:
            row = summary[ds["name"]][scheme]
            cells.append(f"{100 * row['mean']:.2f}" + (f" ± {100 * row['std']:.2f}" if row["n"] > 1 else "") + f" ({row['n']})")
        demo = summary["demo"][scheme]
        tags = sorted({" ".join(t) for t in demo["probe_tags"]})
        cells.append("; ".join(tags) + f" ({demo['probe_correct']}/{demo['runs']} correct)")
        cells.append(f"{demo['saws_differ']}/{demo['runs']}")
        rows.append(cells)
    return markdown_table(header, rows)


def run(settings: Settings) -> dict:
    import torch

    started = time.monotonic()
    torch.set_num_threads(settings.threads)
    schemes = tuple(settings.get("schemes", SCHEMES, SCHEMES))
    scale = float(settings.get("scale", 1.0, 0.25))
    batch_tokens = int(settings.get("batch_tokens", 500, 300))
    data = datasets(settings)
    runs = train_runs(settings, data, schemes, scale, batch_tokens)
    summary = summarize(runs, data, schemes)
    panel = accuracy_panel(summary, data, schemes)
    info = machine()
    seconds = time.monotonic() - started
    md = f"""### positions: attention without and with position information

![accuracy by positional scheme]({NAME}.png)

Attention tagger (2 layers, width {_config('none', scale).encoder_config.hidden}, 4 heads) with each positional scheme.
{'; '.join(f"{d['name']}: {d['source']}, {len(d['train']):,} training sentences, at most {d['steps']} steps of {batch_tokens} tokens and {d['max_minutes']} min per run" for d in data)}.
The probe "I saw a saw" (expected {' '.join(PROBE_EXPECTED)}) is never in the demo corpus.

{accuracy_table(summary, data, schemes)}

{footer(settings, seconds, info, f"{settings.seed}..{settings.seed + max(d['seeds'] for d in data) - 1}")}
"""
    result = {
        "experiment": NAME, "schemes": list(schemes), "scale": scale, "batch_tokens": batch_tokens,
        "datasets": [{k: v for k, v in d.items() if k not in ("train", "dev", "test")} |
                     {"train_sentences": len(d["train"]), "dev_sentences": len(d["dev"]), "test_sentences": len(d["test"])}
                     for d in data],
        "runs": runs, "summary": summary, "machine": info, "seconds": seconds, "command": settings.command,
    }
    return finish(settings, NAME, result, [panel], md)
