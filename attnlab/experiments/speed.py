"""speed: forward + backward time per token vs sequence length for bilstm, cnn and attention.

The three encoders get (nearly) the same number of parameters: the attention encoder
(width D, 2 layers, d_ff = 2D) sets the target, the CNN gets as many conv layers and the
BiLSTM as wide a hidden state as come closest to it. Each batch holds about the same
number of tokens (B = tokens // N sequences of length N, at least one), so time per token
is comparable across lengths: an RNN's cost per token is flat in N but its N steps run
one after another (with B = 1 at long N each step is a tiny matrix product), attention
runs all positions at once but its cost per token grows with N (N x N scores).

The crossover is the length where attention's time per token overtakes the other
encoder's (interpolated on log N between measured lengths).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from typing import Any

from .common import Settings, finish, footer, log, machine, markdown_table, plot_spec, series

NAME = "speed"
ENCODERS = ("bilstm", "cnn", "attention")
LENGTHS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def matched_configs(width: int) -> dict[str, dict]:
    """Encoder sizes with about the parameters of a 2-layer attention encoder of width D."""
    from ..encoders import EncoderConfig, build_encoder

    attention: dict[str, Any] = {"hidden": width, "layers": 2, "heads": 4, "d_ff": 2 * width}
    target = count(build_encoder("attention", width, EncoderConfig(**attention, dropout=0.0)))
    best_layers = min(range(1, 17), key=lambda l: abs(
        count(build_encoder("cnn", width, EncoderConfig(hidden=width, layers=l, kernel=3, dropout=0.0))) - target))
    best_hidden = min(range(4, 4 * width + 1, 2), key=lambda h: abs(
        count(build_encoder("bilstm", width, EncoderConfig(hidden=h, layers=1, dropout=0.0))) - target))
    return {
        "attention": attention,
        "cnn": {"hidden": width, "layers": best_layers, "kernel": 3},
        "bilstm": {"hidden": best_hidden, "layers": 1},
    }


def time_forward_backward(encoder, x, lengths, repeats: int, budget_s: float) -> list[float]:
    """Seconds of forward + backward (sum of outputs) per repeat, after one warm-up."""
    times = []
    for i in range(repeats + 1):
        encoder.zero_grad(set_to_none=True)
        t = time.perf_counter()
        encoder(x, lengths).sum().backward()
        dt = time.perf_counter() - t
        if i > 0:
            times.append(dt)
        if dt * (repeats - i) > budget_s and times:
            break  # long sequences on a slow encoder: fewer repeats
    return times


def crossover(xs: list[int], slow: list[float], fast: list[float]) -> float | None:
    """First N where ``slow`` (attention) goes from not slower to slower than ``fast``
    (log-interpolated); None if that never happens between measured lengths."""
    for i in range(len(xs) - 1):
        d0, d1 = slow[i] - fast[i], slow[i + 1] - fast[i + 1]
        if d0 <= 0 < d1:
            t = -d0 / (d1 - d0)
            return math.exp(math.log(xs[i]) + t * (math.log(xs[i + 1]) - math.log(xs[i])))
    return None


def measure(models: dict, lengths_n: list[int], width: int, batch_tokens: int, repeats: int, budget: float,
            progress: bool) -> tuple[dict, dict]:
    """Median microseconds per token of every encoder at every length, and the raw timings."""
    import torch
    from tqdm import tqdm

    per_token: dict[str, list[float]] = {e: [] for e in models}  # microseconds per token, median
    raw: dict[str, list[dict]] = {e: [] for e in models}
    bar = tqdm(total=len(lengths_n) * len(models), desc=NAME, disable=not progress, file=sys.stderr)
    for n in lengths_n:
        b = max(1, batch_tokens // n)
        x = torch.randn(b, n, width)
        lens = torch.full((b,), n, dtype=torch.long)
        for e, model in models.items():
            times = time_forward_backward(model.train(), x, lens, repeats, budget)
            med = statistics.median(times)
            per_token[e].append(1e6 * med / (b * n))
            raw[e].append({"n": n, "batch": b, "seconds": times, "median_s": med})
            log(f"{NAME}: {e:9s} N={n:5d} B={b:4d}: {1e6 * med / (b * n):8.2f} us/token ({len(times)} repeats)")
            bar.update(1)
    bar.close()
    return per_token, raw


def describe_crossover(other: str, c: float | None, per_token: dict, lengths_n: list[int]) -> str:
    """One sentence on where attention's time per token overtakes ``other``'s."""
    att, oth = per_token["attention"], per_token[other]
    if c is not None:
        return f"attention becomes slower per token than {other} at N ~ {c:,.0f}"
    if all(a > o for a, o in zip(att, oth)):
        return f"attention is slower per token than {other} at every measured length"
    if all(a <= o for a, o in zip(att, oth)):
        return f"attention is not slower per token than {other} at any measured length (up to N = {lengths_n[-1]})"
    return f"attention and {other} change order more than once"


def run(settings: Settings) -> dict:
    import torch

    from ..encoders import EncoderConfig, build_encoder

    started = time.monotonic()
    torch.set_num_threads(settings.threads)
    lengths_n = [int(n) for n in settings.get("lengths", LENGTHS, (16, 64, 256))]
    width = int(settings.get("width", 128, 32))
    batch_tokens = int(settings.get("batch_tokens", 4096, 256))
    repeats = int(settings.get("repeats", 5, 2))
    budget = float(settings.get("budget_seconds", 20.0, 2.0))  # per (encoder, length)
    encoders = tuple(settings.get("encoders", ENCODERS, ENCODERS))
    configs = matched_configs(width)
    torch.manual_seed(settings.seed)
    models = {e: build_encoder(e, width, EncoderConfig(**configs[e], dropout=0.0)) for e in encoders}
    params = {e: count(m) for e, m in models.items()}
    per_token, raw = measure(models, lengths_n, width, batch_tokens, repeats, budget, settings.progress)

    cross = {other: crossover(lengths_n, per_token["attention"], per_token[other])
             for other in encoders if other != "attention" and "attention" in encoders}
    lines = [series(f"{e} ({params[e]:,} params)", lengths_n, per_token[e]) for e in encoders]
    panel = plot_spec(f"forward + backward time per token (D = {width}, ~{batch_tokens} tokens per batch)",
                      "sequence length N (log scale)", "microseconds per token (log scale)", lines,
                      xscale="log", yscale="log")
    info = machine()
    seconds = time.monotonic() - started
    header = ["N", "batch"] + [f"{e} (us/token)" for e in encoders]
    rows = [[n, max(1, batch_tokens // n)] + [f"{per_token[e][i]:.2f}" for e in encoders] for i, n in enumerate(lengths_n)]
    cross_text = "; ".join(describe_crossover(o, c, per_token, lengths_n) for o, c in cross.items())
    md = f"""### speed: time per token vs sequence length

![time per token vs length]({NAME}.png)

Median forward + backward time per token (microseconds; {repeats} repeats, fewer where one step takes long),
single-threaded, width D = {width}, batches of about {batch_tokens} tokens (B = {batch_tokens} // N, at least 1).
Parameters: {', '.join(f'{e} {params[e]:,} ({configs[e]})' for e in encoders)}.

{markdown_table(header, rows)}

Crossover: {cross_text}.

{footer(settings, seconds, info, settings.seed)}
"""
    result = {
        "experiment": NAME, "width": width, "batch_tokens": batch_tokens, "repeats": repeats, "lengths": lengths_n,
        "configs": configs, "parameters": params, "us_per_token": per_token, "raw": raw, "crossover": cross,
        "machine": info, "seconds": seconds, "command": settings.command,
    }
    return finish(settings, NAME, result, [panel], md)
