"""Part 2: one long sequence (1 head of width d) through attnlab.varlen_attention and torch SDPA.

attnlab takes (N, 1, d) with cu_seqlens [0, N]; torch SDPA takes (1, 1, N, d), the same storage.
Forward under no_grad, interleaved; peak extra memory of each case in a fresh process
(``probe.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..flops import attention_flops
from ..memory import resident_peak_supported, run_probe
from ..timing import interleaved, time_loops, warm_up
from .config import EncoderBenchConfig

if TYPE_CHECKING:
    import torch

LONG_BUDGET_S = 30.0  # sizes whose attnlab call takes longer get fewer repetitions (at least 3)


def long_cases(n: int, d: int) -> dict[str, Callable[[], torch.Tensor]]:
    import torch
    import torch.nn.functional as F

    from ...attention.varlen import varlen_attention

    g = torch.Generator().manual_seed(n)
    q, k, v = (torch.randn(n, 1, d, generator=g) for _ in range(3))  # (N, H=1, d)
    cu = torch.tensor([0, n])
    q4, k4, v4 = (t.reshape(1, 1, n, d) for t in (q, k, v))  # (1, 1, N, d), same storage

    def mine():
        with torch.no_grad():
            return varlen_attention(q, k, v, cu)

    def torch_sdpa():
        with torch.no_grad():
            return F.scaled_dot_product_attention(q4, k4, v4)

    return {"torch SDPA": torch_sdpa, "attnlab varlen": mine}


def peak_extra_bytes(which: str, n: int, d: int, threads: int) -> int | None:
    """Peak resident memory of one call of case ``which`` beyond what existed before it, in a
    fresh process; None where /proc/self/clear_refs is missing."""
    if not resident_peak_supported():
        return None
    out = run_probe(f"{__package__}.probe", [which, str(n), str(d), str(threads)], what=f"{which} N={n}")
    extra, rows = out.split()
    if int(rows) != n:
        raise RuntimeError(f"memory probe for {which} N={n} returned {rows} rows")
    return int(extra)


def measure_long(n: int, cfg: EncoderBenchConfig) -> dict:
    """Both cases at sequence length ``n``: medians, their ratio and (if asked) peak memory."""
    cases = long_cases(n, cfg.long_head_dim)
    slow = time_loops(cases["attnlab varlen"], 1)
    repeats = max(3, min(cfg.long_repeats, int(LONG_BUDGET_S / max(slow, 1e-9))))
    warm_up(cases)
    timing = interleaved(cases, repeats)
    row: dict[str, Any] = {"n": n, "repeats": repeats, "flops": attention_flops(n, cfg.long_head_dim), **timing}
    row["ratio"] = timing["torch SDPA"]["median_s"] / timing["attnlab varlen"]["median_s"]
    if cfg.measure_memory:
        for name in cases:
            row[name]["peak_extra_bytes"] = peak_extra_bytes(name, n, cfg.long_head_dim, cfg.threads)
    return row


def run_long(cfg: EncoderBenchConfig, log: Callable[[str], None]) -> list[dict]:
    rows = []
    for n in cfg.long_sizes:
        rows.append(measure_long(n, cfg))
        log(f"  long N = {n}: ratio {rows[-1]['ratio']:.3f}")
    return rows
