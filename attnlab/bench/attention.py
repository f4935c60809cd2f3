"""`attnlab bench attention`: attention kernels and layers side by side, in one run.

Every case is a forward pass (inference, ``torch.inference_mode``), float32, batch B,
H heads of width d, sequence length N:

    kernels (input q, k, v: (B, H, N, d))           layers (input x: (B, N, D), D = H d)
    ---------------------------------------          -----------------------------------
    attnlab fused     impl="fused"                   torch MHA      nn.MultiheadAttention
    attnlab readable  impl="readable"                                (batch_first, need_weights=False)
    torch SDPA        F.scaled_dot_product_attention attnlab MHSA   MultiHeadSelfAttention with the
    plain             softmax(q k^T / sqrt(d)) v                    same weights (from_torch)

The layers include the input and output projections, so they are compared with
each other, never with the kernels. Implementations are interleaved within every
repetition (``timing.interleaved``) and the median of the repetitions is reported,
so that load from other processes hits every case alike.

FLOPs (``flops.py``): attention 4 N^2 d H per sequence (q k^T and weights @ v);
layers add the projections, 8 N D^2. The matmul reference rate is the best median
GFLOP/s of ``torch.mm`` on square float32 matrices measured in the same run, at its
start and end (``matmul.py``).

Peak memory (``memory.peak_memory_bytes``): the peak of the running sum of torch's
CPU allocations minus frees during one call, on top of its inputs and weights (its
output included).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from .flops import attention_flops, projection_flops
from .machine import machine_info
from .matmul import matmul_rate
from .memory import MIB, peak_memory_bytes
from .timing import Clock, interleaved, loops_for, time_loops

DEFAULT_SIZES = (64, 128, 256, 512, 1024, 2048, 4096, 8192)
QUICK_SIZES = (16, 32)


@dataclass(frozen=True)
class BenchConfig:
    sizes: tuple[int, ...] = DEFAULT_SIZES
    batch: int = 1
    heads: int = 8
    head_dim: int = 64
    repeats: int = 7
    min_sample_s: float = 0.05  # one timing sample loops the call until it lasts this long
    case_budget_s: float = 15.0  # slow cases get fewer repetitions (never fewer than 3)
    memory_budget_gib: float = 8.0  # skip a case whose N x N buffers and inputs would exceed this
    matmul_sizes: tuple[int, ...] = (1024, 1536, 2048)
    measure_memory: bool = True
    threads: int = 0  # 0: torch's default

    @property
    def d_model(self) -> int:
        return self.heads * self.head_dim


@dataclass
class Case:
    name: str
    group: str  # "kernel" or "layer"
    quadratic_buffers: int  # how many (B, H, N, N) float32 tensors the case materializes at once
    build: Callable[[int], Callable[[], object]]  # N -> a zero-argument call
    baseline: str  # the case this one is compared with in the "rel" column


@dataclass
class Result:
    case: str
    group: str
    n: int
    median_s: float
    gflops: float
    ratio_to_matmul: float
    rel_to_baseline: float | None
    peak_mib: float | None
    flops: float
    repeats: int
    loops: int
    samples_s: list[float] = field(default_factory=list)



# -- the cases -----------------------------------------------------------------------------

def make_cases(cfg: BenchConfig) -> list[Case]:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from ..attention.functional import scaled_dot_product_attention
    from ..modules import MultiHeadSelfAttention

    B, H, d, D = cfg.batch, cfg.heads, cfg.head_dim, cfg.d_model
    scale = 1.0 / math.sqrt(d)

    def qkv(n: int):
        g = torch.Generator().manual_seed(n)
        return [torch.randn(B, H, n, d, generator=g) for _ in range(3)]  # (B, H, N, d)

    def fused(n):
        q, k, v = qkv(n)
        return lambda: scaled_dot_product_attention(q, k, v, impl="fused")

    def readable(n):
        q, k, v = qkv(n)
        return lambda: scaled_dot_product_attention(q, k, v, impl="readable")

    def torch_sdpa(n):
        q, k, v = qkv(n)
        return lambda: F.scaled_dot_product_attention(q, k, v)

    def plain(n):
        q, k, v = qkv(n)
        return lambda: torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * scale, dim=-1) @ v

    layers: dict[int, tuple[nn.Module, nn.Module, torch.Tensor]] = {}

    def layer_pair(n):
        if n not in layers:
            layers.clear()
            torch.manual_seed(0)
            mha = nn.MultiheadAttention(D, H, batch_first=True).eval()
            ours = MultiHeadSelfAttention.from_torch(mha).eval()
            x = torch.randn(B, n, D, generator=torch.Generator().manual_seed(n))  # (B, N, D)
            layers[n] = (mha, ours, x)
        return layers[n]

    def torch_mha(n):
        mha, _, x = layer_pair(n)
        return lambda: mha(x, x, x, need_weights=False)[0]

    def attnlab_mhsa(n):
        _, ours, x = layer_pair(n)
        return lambda: ours(x)

    return [
        Case("attnlab fused", "kernel", 0, fused, "torch SDPA"),
        Case("attnlab readable", "kernel", 2, readable, "torch SDPA"),
        Case("torch SDPA", "kernel", 0, torch_sdpa, "torch SDPA"),
        Case("plain", "kernel", 2, plain, "torch SDPA"),
        Case("torch MHA", "layer", 0, torch_mha, "torch MHA"),
        Case("attnlab MHSA", "layer", 0, attnlab_mhsa, "torch MHA"),
    ]


def case_flops(case: Case, n: int, cfg: BenchConfig) -> float:
    flops = attention_flops(n, cfg.head_dim, cfg.heads) * cfg.batch
    if case.group == "layer":
        flops += projection_flops(n, cfg.d_model) * cfg.batch
    return flops


# -- measuring -----------------------------------------------------------------------------

def matmul_reference(cfg: BenchConfig) -> list[dict]:
    """``torch.mm`` rates on square float32 matrices, one row per size of ``cfg.matmul_sizes``."""
    return [matmul_rate(n, cfg.repeats, cfg.min_sample_s) for n in cfg.matmul_sizes]


def quadratic_bytes(case: Case, n: int, cfg: BenchConfig) -> int:
    """Bytes of the (B, H, N, N) float32 buffers ``case`` holds at once."""
    return case.quadratic_buffers * cfg.batch * cfg.heads * n * n * 4


def input_bytes(n: int, cfg: BenchConfig) -> int:
    """Bytes of the q, k, v inputs, three (B, H, N, d) float32 tensors, that every case is given."""
    return 3 * cfg.batch * cfg.heads * n * cfg.head_dim * 4


def too_large(case: Case, n: int, cfg: BenchConfig) -> str | None:
    """Why ``case`` is skipped at this N (its N x N buffers and its inputs exceed the budget), else None."""
    need = quadratic_bytes(case, n, cfg) + input_bytes(n, cfg)
    if need <= cfg.memory_budget_gib * 1024**3:
        return None
    return (f"{case.quadratic_buffers} (B, H, N, N) float32 buffers and the (B, H, N, d) inputs = "
            f"{need / 1024**3:.1f} GiB > budget {cfg.memory_budget_gib:g} GiB")


def measure_size(
    cases: list[Case], n: int, cfg: BenchConfig, skipped: list[dict], clock: Clock = time.perf_counter
) -> list[Result]:
    """Every case that fits at sequence length ``n``, interleaved; appends the others to ``skipped``."""
    calls: dict[str, Callable[[], object]] = {}
    loops: dict[str, int] = {}
    for case in cases:
        reason = too_large(case, n, cfg)
        if reason:
            skipped.append({"case": case.name, "n": n, "reason": reason})
            continue
        fn = calls[case.name] = case.build(n)
        fn()  # first call: allocations, kernel selection
        loops[case.name] = loops_for(fn, cfg.min_sample_s, clock)
    if not calls:
        return []
    slowest = max(time_loops(fn, 1, clock) * loops[name] for name, fn in calls.items())
    repeats = max(3, min(cfg.repeats, int(cfg.case_budget_s / max(slowest, 1e-9))))
    timing = interleaved(calls, repeats, loops, clock=clock)
    results = []
    for case in (c for c in cases if c.name in calls):
        med, base = timing[case.name]["median_s"], timing.get(case.baseline, {}).get("median_s")
        flops = case_flops(case, n, cfg)
        results.append(Result(
            case=case.name, group=case.group, n=n, median_s=med, gflops=flops / med / 1e9,
            ratio_to_matmul=0.0, rel_to_baseline=(med / base) if base else None,
            peak_mib=peak_memory_bytes(calls[case.name]) / MIB if cfg.measure_memory else None,
            flops=flops, repeats=repeats, loops=loops[case.name], samples_s=timing[case.name]["samples_s"],
        ))
    return results


def run(cfg: BenchConfig, log: Callable[[str], None] = print) -> dict:
    """Every case at every size of ``cfg``; the report ``format_report`` prints."""
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cases = make_cases(cfg)
    results: list[Result] = []
    skipped: list[dict] = []
    started = time.perf_counter()
    with torch.inference_mode():
        matmul = matmul_reference(cfg)
        for n in cfg.sizes:
            found = measure_size(cases, n, cfg, skipped)
            results += found
            if found:
                log(f"  N = {n}: done ({time.perf_counter() - started:.0f} s so far)")
        matmul += matmul_reference(cfg)  # again at the end; the best of both counts
    best = max(row["gflops"] for row in matmul)
    for res in results:
        res.ratio_to_matmul = res.gflops / best
    return {
        "machine": machine_info(),
        "config": {**asdict(cfg), "d_model": cfg.d_model, "threads_used": torch.get_num_threads()},
        "matmul": matmul,
        "matmul_best_gflops": best,
        "results": [asdict(r) for r in results],
        "skipped": skipped,
        "wall_s": time.perf_counter() - started,
    }



# -- output --------------------------------------------------------------------------------

def format_report(report: dict) -> str:
    cfg, m = report["config"], report["machine"]
    lines = [
        f"attnlab bench attention: B={cfg['batch']}, H={cfg['heads']}, d={cfg['head_dim']} (layers: D={cfg['d_model']}), "
        f"float32, forward under inference_mode, {cfg['threads_used']} torch threads",
        f"machine: {m['cpu']}, {m['nproc']} CPUs, torch {m['torch']}, Python {m['python']}",
        f"matmul reference: best median torch.mm rate {report['matmul_best_gflops']:.1f} GFLOP/s "
        f"(square float32, n in {', '.join(str(n) for n in cfg['matmul_sizes'])}, measured at start and end)",
        "",
        f"{'N':>6}  {'case':<17} {'median ms':>11} {'GFLOP/s':>9} {'of mm':>6} {'rel':>6} {'peak MiB':>9}  reps x loops",
    ]
    last_n = None
    for r in report["results"]:
        if last_n is not None and r["n"] != last_n:
            lines.append("")
        last_n = r["n"]
        rel = f"{r['rel_to_baseline']:.2f}" if r["rel_to_baseline"] is not None else "-"
        peak = f"{r['peak_mib']:.2f}" if r["peak_mib"] is not None else "-"
        label = r["case"] + (" *" if r["group"] == "layer" else "")
        lines.append(
            f"{r['n']:>6}  {label:<17} {r['median_s'] * 1e3:>11.3f} {r['gflops']:>9.1f} "
            f"{r['ratio_to_matmul'] * 100:>5.1f}% {rel:>6} {peak:>9}  {r['repeats']} x {r['loops']}"
        )
    for s in report["skipped"]:
        lines.append(f"skipped: {s['case']} at N={s['n']}: {s['reason']}")
    lines += [
        "",
        "median ms: median over the repetitions of the mean time per call (cases interleaved in every repetition).",
        "GFLOP/s: attention counts 4 N^2 d H per sequence; * = layer with projections, which adds 8 N D^2;",
        "  'of mm' = that rate / the best torch.mm rate of this run.",
        "rel: median time / that of torch SDPA (kernels) or torch MHA (layers, marked *); layers include",
        "  the q, k, v and output projections, so compare them only with each other. Under inference_mode",
        "  torch MHA takes its native fast path (aten::_native_multi_head_attention), which on CPU multiplies",
        "  out the (B, H, N, N) weights with bmm; attnlab MHSA calls the fused SDPA kernel.",
        "peak MiB: peak extra memory of one call from torch's CPU allocator (torch.profiler, profile_memory=True):",
        "  the running sum of allocations minus frees, inputs and weights excluded, output included.",
        f"Cases whose (B, H, N, N) float32 score buffers and inputs would exceed {cfg['memory_budget_gib']:g} GiB "
        "are skipped;",
        "  slow sizes get fewer repetitions (at least 3). Other processes sharing the CPUs add noise to every case alike.",
        f"wall time {report['wall_s']:.0f} s",
    ]
    return "\n".join(lines)
