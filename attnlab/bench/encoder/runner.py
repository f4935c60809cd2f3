"""`attnlab bench encoder` from start to end: lengths, batches, part 1, part 2, targets."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict

from ..machine import machine_info
from ..matmul import matmul_rates
from ..memory import keep_freed_memory
from .config import EncoderBenchConfig
from .lengths import length_source
from .long import run_long
from .sentences import forward_flops, make_batches, run_sentences
from .targets import check_targets


def run(cfg: EncoderBenchConfig, log: Callable[[str], None] = print) -> dict:
    """The whole benchmark; the report ``format_report`` prints."""
    import torch

    from ... import kernels

    malloc_tuned = keep_freed_memory() if cfg.malloc_tuning else False
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.perf_counter()

    def progress(text: str) -> None:
        log(f"{text} ({time.perf_counter() - started:.0f} s so far)")

    population, source = length_source(cfg.treebank)
    batches = make_batches(cfg, population)
    tokens = sum(sum(b.lengths) for b in batches)
    padded = sum(len(b.lengths) * max(b.lengths) for b in batches)
    log(f"lengths from {source}")
    log(f"{cfg.batches} batches of {cfg.batch}: {tokens / cfg.batches:.0f} real tokens per batch on average, "
        f"{padded / cfg.batches:.0f} when padded to the longest; native kernels: "
        f"{'yes' if kernels.available() else 'no (' + str(kernels.unavailable_reason()) + ')'}")
    matmul = matmul_rates(cfg.matmul_sizes)
    fastest = max(matmul, key=lambda r: r["gflops"])["backend"]  # the interleaved reference
    settings, interleaved_matmul, profiles = run_sentences(cfg, batches, fastest, progress)
    long_rows = run_long(cfg, progress)
    matmul += interleaved_matmul + matmul_rates(cfg.matmul_sizes)
    best = max(row["gflops"] for row in matmul)
    for s in settings:
        for row in s["cases"].values():
            row["of_matmul"] = row["useful_gflops"] / best
    return {
        "machine": machine_info(),
        "config": {**asdict(cfg), "threads_used": torch.get_num_threads()},
        "lengths_source": source,
        "tokens_per_batch": tokens / cfg.batches,
        "padded_tokens_per_batch": padded / cfg.batches,
        "useful_gflop_per_batch": forward_flops(cfg, batches) / 1e9,
        "native_kernels": kernels.available(),
        "onednn_linear": kernels.onednn_unsupported_reason() is None,
        "malloc_tuned": malloc_tuned,
        "matmul": matmul,
        "matmul_best_gflops": best,
        "settings": settings,
        "long": long_rows,
        "targets": check_targets(settings, long_rows),
        "profiles": profiles,
        "wall_s": time.perf_counter() - started,
    }
