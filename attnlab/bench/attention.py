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
repetition (A B C ... then B C ... A, ...) and the median of the repetitions is
reported, so that load from other processes hits every case alike.

FLOPs: attention 4 N^2 d H per sequence (q k^T and weights @ v, 2 N^2 d each per
head; the normalizer's O(N^2 H) is not counted); layers add the projections,
2 N D 3D + 2 N D D = 8 N D^2. The matmul reference rate is the best median
GFLOP/s of ``torch.mm`` on square float32 matrices measured in the same run.

Peak memory: ``torch.profiler`` with ``profile_memory=True`` records every
allocation and free of torch's CPU allocator during one call; the peak of their
running sum is the extra memory the call needs on top of its inputs and weights
(its output included). Memory outside torch's allocator (e.g. thread stacks)
is not counted.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

DEFAULT_SIZES = (64, 128, 256, 512, 1024, 2048, 4096, 8192)
QUICK_SIZES = (16, 32)
MIB = 1024 * 1024


@dataclass(frozen=True)
class BenchConfig:
    sizes: tuple[int, ...] = DEFAULT_SIZES
    batch: int = 1
    heads: int = 8
    head_dim: int = 64
    repeats: int = 7
    min_sample_s: float = 0.05  # one timing sample loops the call until it lasts this long
    case_budget_s: float = 15.0  # slow cases get fewer repetitions (never fewer than 3)
    memory_budget_gib: float = 8.0  # skip a case whose N x N buffers would exceed this
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
    flops = 4.0 * n * n * cfg.head_dim * cfg.heads * cfg.batch
    if case.group == "layer":
        flops += 8.0 * n * cfg.d_model**2 * cfg.batch
    return flops


# -- measuring -----------------------------------------------------------------------------

def _time_loops(fn: Callable[[], object], loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops


def matmul_rate(sizes: tuple[int, ...], repeats: int, min_sample_s: float) -> list[dict]:
    """Median GFLOP/s of torch.mm on square float32 matrices, per size."""
    import torch

    rows = []
    for n in sizes:
        g = torch.Generator().manual_seed(n)
        a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
        fn = lambda: torch.mm(a, b)  # noqa: E731
        fn()
        t0 = _time_loops(fn, 1)
        loops = max(1, math.ceil(min_sample_s / max(t0, 1e-9)))
        samples = [_time_loops(fn, loops) for _ in range(max(3, repeats))]
        med = statistics.median(samples)
        rows.append({"n": n, "median_s": med, "gflops": 2.0 * n**3 / med / 1e9})
    return rows


class _QuietStderr:
    """The profiler prints start/stop lines on file descriptor 2; hide them."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)


def peak_memory_bytes(fn: Callable[[], object]) -> int:
    """Peak of the running sum of torch CPU allocations minus frees during one call of ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    with _QuietStderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
        del out
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    running = peak = 0
    for e in events:
        running += e.nbytes()
        peak = max(peak, running)
    return peak


def run(cfg: BenchConfig, log: Callable[[str], None] = print) -> dict:
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cases = make_cases(cfg)
    results: list[Result] = []
    skipped: list[dict] = []
    started = time.perf_counter()
    with torch.inference_mode():
        matmul = matmul_rate(cfg.matmul_sizes, cfg.repeats, cfg.min_sample_s)
        for n in cfg.sizes:
            active: list[tuple[Case, Callable[[], object], int]] = []
            for case in cases:
                need = case.quadratic_buffers * cfg.batch * cfg.heads * n * n * 4
                if need > cfg.memory_budget_gib * 1024**3:
                    skipped.append({"case": case.name, "n": n, "reason": f"{case.quadratic_buffers} (B, H, N, N) float32 buffers = {need / 1024**3:.1f} GiB > budget {cfg.memory_budget_gib:g} GiB"})
                    continue
                fn = case.build(n)
                fn()  # first call: allocations, kernel selection
                t0 = _time_loops(fn, 1)
                loops = max(1, math.ceil(cfg.min_sample_s / max(t0, 1e-9)))
                active.append((case, fn, loops))
            if not active:
                continue
            slowest = max(_time_loops(fn, 1) * loops for _, fn, loops in active)
            repeats = max(3, min(cfg.repeats, int(cfg.case_budget_s / max(slowest, 1e-9))))
            samples: dict[str, list[float]] = {c.name: [] for c, _, _ in active}
            for r in range(repeats):
                shift = r % len(active)
                for case, fn, loops in active[shift:] + active[:shift]:
                    samples[case.name].append(_time_loops(fn, loops))
            medians = {name: statistics.median(s) for name, s in samples.items()}
            for case, fn, loops in active:
                med = medians[case.name]
                flops = case_flops(case, n, cfg)
                peak = peak_memory_bytes(fn) / MIB if cfg.measure_memory else None
                base = medians.get(case.baseline)
                results.append(Result(
                    case=case.name, group=case.group, n=n, median_s=med, gflops=flops / med / 1e9,
                    ratio_to_matmul=0.0, rel_to_baseline=(med / base) if base else None,
                    peak_mib=peak, flops=flops, repeats=repeats, loops=loops, samples_s=samples[case.name],
                ))
            log(f"  N = {n}: done ({time.perf_counter() - started:.0f} s so far)")
        # measure the matmul rate again at the end; keep the best of both
        matmul += matmul_rate(cfg.matmul_sizes, cfg.repeats, cfg.min_sample_s)
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


def machine_info() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
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
        f"Cases whose (B, H, N, N) float32 score buffers would exceed {cfg['memory_budget_gib']:g} GiB are skipped;",
        "  slow sizes get fewer repetitions (at least 3). Other processes sharing the CPUs add noise to every case alike.",
        f"wall time {report['wall_s']:.0f} s",
    ]
    return "\n".join(lines)


def write_json(path: str, report: dict) -> None:
    """Atomic write: a temporary file in the same folder, then os.replace."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".bench-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# -- command line --------------------------------------------------------------------------

def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"must be >= 1, got {value}")
    return value


def config_from_args(args) -> BenchConfig:
    sizes = tuple(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    for n in sizes:
        if n < 1:
            raise ValueError(f"--sizes must be positive, got {n}")
    if args.heads < 1 or args.head_dim < 1 or args.batch < 1:
        raise ValueError(f"--heads, --head-dim and --batch must be >= 1, got {args.heads}, {args.head_dim}, {args.batch}")
    if args.repeats is not None and args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    if args.quick:
        return BenchConfig(
            sizes=sizes, batch=args.batch, heads=args.heads, head_dim=args.head_dim,
            repeats=args.repeats or 3, min_sample_s=0.002, case_budget_s=1.0,
            memory_budget_gib=args.memory_budget_gib, matmul_sizes=(64, 128),
            measure_memory=not args.no_memory, threads=args.threads,
        )
    return BenchConfig(
        sizes=sizes, batch=args.batch, heads=args.heads, head_dim=args.head_dim,
        repeats=args.repeats or BenchConfig.repeats, memory_budget_gib=args.memory_budget_gib,
        measure_memory=not args.no_memory, threads=args.threads,
    )


def main(args) -> int:
    cfg = config_from_args(args)
    print(f"attnlab bench attention: sizes {', '.join(map(str, cfg.sizes))} ...", flush=True)
    report = run(cfg, log=lambda s: print(s, flush=True))
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "attention",
        help="attention kernels and layers vs PyTorch: time, GFLOP/s, share of matmul, memory",
        description=(
            "attnlab fused / readable attention, torch SDPA and plain matmul-softmax-matmul on (B, H, N, d); "
            "torch.nn.MultiheadAttention and attnlab.MultiHeadSelfAttention (with projections) on (B, N, H*d). "
            "Prints median time, GFLOP/s, the ratio to the best torch.mm rate of the same run and peak memory."
        ),
    )
    p.add_argument("--json", default=None, metavar="FILE", help="also write the full results as JSON")
    p.add_argument("--sizes", type=int, nargs="+", default=None, metavar="N", help=f"sequence lengths (default {' '.join(map(str, DEFAULT_SIZES))})")
    p.add_argument("--repeats", type=int, default=None, metavar="R", help="interleaved repetitions per size (default 7; slow sizes use fewer, at least 3)")
    p.add_argument("--heads", type=int, default=8, help="heads H (default 8)")
    p.add_argument("--head-dim", type=int, default=64, help="head width d (default 64)")
    p.add_argument("--batch", type=int, default=1, help="batch size B (default 1)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--memory-budget-gib", type=float, default=8.0, help="skip cases whose N x N buffers exceed this (default 8)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--quick", action="store_true", help="tiny sizes and short samples (a smoke test, not a measurement)")
    p.set_defaults(func=main)
