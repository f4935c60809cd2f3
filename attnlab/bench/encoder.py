"""`attnlab bench encoder`: the packed TransformerEncoder beside torch.nn.TransformerEncoder.

Part 1, sentences. Batches of B = 64 sentences whose lengths are drawn from a treebank
(``--treebank DIR`` or ``$ATTNLAB_DATA``: the directory's ``*train.conllu``; otherwise the
EWT length histogram shipped in ``attnlab/data/lengths_ewt.json``). Both encoders have
2 layers, d_model 256, 8 heads, d_ff 1024, relu, dropout 0.1, float32, and the same
weights (``TransformerEncoder.from_torch``, positions "none", so both compute the same
function; the run checks it):

    torch       nn.TransformerEncoder(batch_first=True, enable_nested_tensor=True) on the
                padded batch (B, N, D) with src_key_padding_mask; inference in eval mode
                under torch.no_grad(), i.e. its fast path (nested tensors when it can use
                them: norm_first=False), training = forward + backward of the padded batch;
    attnlab     forward_packed on the packed batch (T, D) + cu_seqlens.

Cases of one setting run interleaved (A B, then B A, ...) and every sample is the mean
time per batch over all batches, so load from other processes hits both alike; medians
over the repetitions are reported. "attnlab rotary" is the default encoder
(positions="rotary", so a different function than torch's) to show what positions cost.
Unless --no-malloc-tuning, glibc is asked to keep freed memory for reuse (both encoders
allocate large temporaries; otherwise each is page-faulted in afresh).

Useful FLOPs count real tokens only: per layer 2 T D (3D + D + 2 d_ff) for the
projections and feed-forward plus 4 n^2 D per sentence of n tokens for attention
(q k^T and weights @ v); training counts 3x the forward. The matmul reference is the
best median rate of square float32 products measured in the same run, over both GEMMs
PyTorch offers on CPU: ``torch.mm`` (MKL) and oneDNN (``torch.ops.mkldnn._linear_pointwise``,
which attnlab's linear layers use) -- at the start, at the end, and interleaved with every
setting as one more case of about the same FLOPs (the table also gives the rate relative
to that interleaved median).

Part 2, long single sequences (1 head, d = 64): ``attnlab.varlen_attention`` on
(N, 1, 64) with cu_seqlens [0, N] against ``F.scaled_dot_product_attention`` on
(1, 1, N, 64), forward under no_grad. Peak extra memory is measured in a fresh
subprocess per case: resident set after the inputs exist, peak resident set (VmHWM,
reset through /proc/self/clear_refs) during one call; the difference is reported.
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .attention import machine_info, write_json

MIB = 1024 * 1024
LONG_SIZES = (1024, 2048, 4096, 8192, 16384, 32768, 65536)

TARGETS = {
    "inference_speedup": 2.0,
    "training_speedup": 2.0,
    "inference_of_matmul": 0.90,
    "training_of_matmul": 0.70,
    "long_ratio_min": 1.0,  # torch SDPA time / attnlab time, for N = 1k ... 8k
    "long_memory_gib": 1.0,  # at N = 65,536
}


@dataclass(frozen=True)
class EncoderBenchConfig:
    batch: int = 64
    layers: int = 2
    d_model: int = 256
    heads: int = 8
    d_ff: int = 1024
    dropout: float = 0.1
    batches: int = 8  # different length draws; every sample runs all of them
    repeats: int = 11
    norm_first: tuple[bool, ...] = (True, False)
    long_sizes: tuple[int, ...] = LONG_SIZES
    long_repeats: int = 5
    long_head_dim: int = 64
    measure_memory: bool = True
    matmul_sizes: tuple[int, ...] = (1024, 1536, 2048)
    treebank: str | None = None
    seed: int = 0
    threads: int = 0  # 0: torch's default
    profile: bool = False
    malloc_tuning: bool = True  # glibc keeps freed memory (see keep_freed_memory)


QUICK = dict(batches=2, repeats=5, norm_first=(True,), long_sizes=(1024, 2048, 4096), long_repeats=3)


# -- sentence lengths ------------------------------------------------------------------------

def conllu_lengths(path: str | Path) -> list[int]:
    """Sentence lengths in syntactic words (multiword ranges and empty nodes left out) of a CoNLL-U file."""
    from ..data.conllu import iter_conllu

    lengths = [len(s) for s in iter_conllu(path)]
    if not lengths:
        raise ValueError(f"{path}: no sentences found")
    return lengths


def shipped_lengths() -> tuple[list[int], str]:
    path = Path(__file__).resolve().parent.parent / "data" / "lengths_ewt.json"
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    lengths = [int(n) for n, count in doc["counts"].items() for _ in range(int(count))]
    return lengths, f"shipped histogram {path.name} ({doc['treebank']} {doc['split']}, {len(lengths)} sentences)"


def find_train_file(directory: str | Path) -> Path:
    directory = Path(directory)
    if directory.is_file():
        return directory
    if not directory.is_dir():
        raise FileNotFoundError(f"treebank directory {directory} does not exist")
    found = sorted(directory.glob("*train*.conllu"))
    if not found:
        raise FileNotFoundError(f"no *train*.conllu in {directory}")
    return found[0]


def length_source(treebank: str | None) -> tuple[list[int], str]:
    directory = treebank or os.environ.get("ATTNLAB_DATA")
    if directory:
        path = find_train_file(directory)
        lengths = conllu_lengths(path)
        return lengths, f"{path} ({len(lengths)} sentences)"
    return shipped_lengths()


# -- encoders -----------------------------------------------------------------------------

def useful_flops(lengths: list[int], cfg: EncoderBenchConfig) -> float:
    """Forward FLOPs on real tokens only."""
    t, d = sum(lengths), cfg.d_model
    per_layer = 2.0 * t * d * (3 * d + d + 2 * cfg.d_ff) + sum(4.0 * n * n * d for n in lengths)
    return cfg.layers * per_layer


def build_pair(cfg: EncoderBenchConfig, norm_first: bool):
    import torch
    import torch.nn as nn

    from ..modules import TransformerEncoder

    torch.manual_seed(cfg.seed)
    layer = nn.TransformerEncoderLayer(
        cfg.d_model, cfg.heads, cfg.d_ff, dropout=cfg.dropout, batch_first=True, norm_first=norm_first
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "enable_nested_tensor is True, but ... norm_first was True"
        theirs = nn.TransformerEncoder(
            layer, cfg.layers, norm=nn.LayerNorm(cfg.d_model) if norm_first else None, enable_nested_tensor=True
        )
    mine = TransformerEncoder.from_torch(theirs)
    rotary = TransformerEncoder(
        cfg.d_model, cfg.heads, cfg.layers, cfg.d_ff, dropout=cfg.dropout, positions="rotary", norm_first=norm_first
    )
    rotary.load_state_dict(mine.state_dict())
    return theirs, mine, rotary


@dataclass
class Batch:
    lengths: list[int]
    x: object  # (B, N, D) padded, zeros at padding
    pad: object  # (B, N) True = padding (torch's convention)
    tokens: object  # (T, D)
    cu: object  # (B + 1,)
    grad_padded: object  # (B, N, D), zeros at padding
    grad_packed: object  # (T, D), the same numbers


def make_batches(cfg: EncoderBenchConfig, population: list[int]) -> list[Batch]:
    import torch

    from ..packing import cu_seqlens_from_lengths, pack_padded

    rng = random.Random(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    batches = []
    for _ in range(cfg.batches):
        lengths = [rng.choice(population) for _ in range(cfg.batch)]
        n = max(lengths)
        lt = torch.tensor(lengths)
        pad = torch.arange(n)[None, :] >= lt[:, None]  # (B, N)
        x = torch.randn(cfg.batch, n, cfg.d_model, generator=g).masked_fill(pad[..., None], 0.0)
        gp = torch.randn(cfg.batch, n, cfg.d_model, generator=g).masked_fill(pad[..., None], 0.0)
        tokens, cu = pack_padded(x, lt)
        grad_packed, _ = pack_padded(gp, lt)
        assert torch.equal(cu, cu_seqlens_from_lengths(lt))
        batches.append(Batch(lengths, x, pad, tokens.contiguous(), cu, gp, grad_packed.contiguous()))
    return batches


def encoder_cases(theirs, mine, batches: list[Batch], rotary=None) -> dict[str, dict[str, Callable[[], None]]]:
    """setting -> {case name -> a call that runs every batch once}."""
    import torch

    def infer_rotary():
        rotary.eval()
        with torch.no_grad():
            for b in batches:
                rotary.forward_packed(b.tokens, b.cu)

    def infer_torch():
        theirs.eval()
        with torch.no_grad():
            for b in batches:
                theirs(b.x, src_key_padding_mask=b.pad)

    def infer_mine():
        mine.eval()
        with torch.no_grad():
            for b in batches:
                mine.forward_packed(b.tokens, b.cu)

    def infer_mine_padded():
        mine.eval()
        with torch.no_grad():
            for b in batches:
                mine(b.x, torch.tensor(b.lengths))

    def train_torch():
        theirs.train()
        for b in batches:
            out = theirs(b.x, src_key_padding_mask=b.pad)
            torch.autograd.backward(out, b.grad_padded)
        theirs.zero_grad(set_to_none=True)

    def train_mine():
        mine.train()
        for b in batches:
            out = mine.forward_packed(b.tokens, b.cu)
            torch.autograd.backward(out, b.grad_packed)
        mine.zero_grad(set_to_none=True)

    inference = {"torch": infer_torch, "attnlab": infer_mine, "attnlab padded in/out": infer_mine_padded}
    if rotary is not None:
        inference["attnlab rotary"] = infer_rotary
    return {"inference": inference, "training": {"torch": train_torch, "attnlab": train_mine}}


def interleaved(cases: dict[str, Callable[[], None]], repeats: int, per_call: int) -> dict[str, dict]:
    """Median seconds per batch of every case, the cases alternating within each repetition."""
    names = list(cases)
    for name in names:  # warm-up: kernel builds, allocator, thread pool
        cases[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        if r % 2:
            order.reverse()
        for name in order:
            start = time.perf_counter()
            cases[name]()
            samples[name].append((time.perf_counter() - start) / per_call)
    return {name: {"median_s": statistics.median(s), "samples_s": s} for name, s in samples.items()}


MATMUL_N = 1024


def _square_product(backend: str, n: int) -> Callable[[], object]:
    """One float32 n x n x n product: "mkl" = torch.mm (PyTorch's default GEMM),
    "onednn" = torch.ops.mkldnn._linear_pointwise (a @ b^T, what attnlab's linear layers use)."""
    import torch

    g = torch.Generator().manual_seed(n)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    if backend == "onednn":
        op = torch.ops.mkldnn._linear_pointwise
        return lambda: op(a, b, None, "none", [], "")
    return lambda: torch.mm(a, b)


def matmul_backends() -> list[str]:
    from .. import kernels

    return ["mkl"] + (["onednn"] if kernels.onednn_reason() is None else [])


def matmul_rates(sizes: tuple[int, ...], repeats: int = 5, min_sample_s: float = 0.05) -> list[dict]:
    """Median GFLOP/s of square float32 products, per backend and size."""
    import torch

    rows = []
    with torch.no_grad():
        for backend in matmul_backends():
            for n in sizes:
                fn = _square_product(backend, n)
                fn()
                start = time.perf_counter()
                fn()
                loops = max(1, math.ceil(min_sample_s / max(time.perf_counter() - start, 1e-9)))
                samples = []
                for _ in range(max(3, repeats)):
                    start = time.perf_counter()
                    for _ in range(loops):
                        fn()
                    samples.append((time.perf_counter() - start) / loops)
                med = statistics.median(samples)
                rows.append({"backend": backend, "n": n, "median_s": med, "gflops": 2.0 * n**3 / med / 1e9})
    return rows


def matmul_case(flops: float, backend: str) -> tuple[Callable[[], None], float]:
    """Square float32 products repeated to about ``flops``: the reference that runs
    interleaved with the encoders. Returns the call and its exact FLOPs."""
    import torch

    product = _square_product(backend, MATMUL_N)
    reps = max(1, round(flops / (2.0 * MATMUL_N**3)))

    def run():
        with torch.no_grad():
            for _ in range(reps):
                product()

    return run, reps * 2.0 * MATMUL_N**3


def check_same_function(theirs, mine, batch: Batch) -> float:
    """max |attnlab - torch| over the real tokens, eval mode."""
    import torch

    theirs.eval()
    mine.eval()
    with torch.no_grad():
        a = theirs(batch.x, src_key_padding_mask=batch.pad)[~batch.pad]
        b = mine.forward_packed(batch.tokens, batch.cu)
    return float((a - b).abs().max())


def profile_table(fn: Callable[[], None], rows: int = 14) -> str:
    from torch.profiler import ProfilerActivity, profile

    from .attention import _QuietStderr

    with _QuietStderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


# -- long sequences ------------------------------------------------------------------------

def long_cases(n: int, d: int) -> dict[str, Callable[[], object]]:
    import torch
    import torch.nn.functional as F

    from ..attention.varlen import varlen_attention

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


_MEMORY_PROBE = r"""
import sys, torch
from attnlab.bench.encoder import long_cases
which, n, d, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if threads:
    torch.set_num_threads(threads)
fn = long_cases(n, d)[which]
long_cases(256, d)[which]()  # load every library the call needs, on small inputs
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
base = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM to the current resident set
out = fn()
print(status("VmHWM") - base, out.shape[-2] if out.dim() == 4 else out.shape[0])
"""


def peak_extra_bytes(which: str, n: int, d: int, threads: int) -> int | None:
    """Peak resident memory of one call beyond what existed before it, in a fresh process."""
    if not Path("/proc/self/clear_refs").exists():
        return None
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, which, str(n), str(d), str(threads)],
        capture_output=True, text=True, timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe for {which} N={n} failed: {proc.stderr.strip().splitlines()[-1:]}")
    extra, rows = proc.stdout.split()
    if int(rows) != n:
        raise RuntimeError(f"memory probe for {which} N={n} returned {rows} rows")
    return int(extra)


# -- the run -------------------------------------------------------------------------------

def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning large blocks to the
    system (as PyTorch's CPU tuning guides do with jemalloc or tcmalloc): otherwise every
    large temporary is page-faulted in afresh. Process-wide; affects both encoders."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


def run(cfg: EncoderBenchConfig, log: Callable[[str], None] = print) -> dict:
    import torch

    from .. import kernels

    malloc_tuned = keep_freed_memory() if cfg.malloc_tuning else False
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    population, source = length_source(cfg.treebank)
    batches = make_batches(cfg, population)
    tokens = sum(sum(b.lengths) for b in batches)
    padded = sum(len(b.lengths) * max(b.lengths) for b in batches)
    flops = sum(useful_flops(b.lengths, cfg) for b in batches) / len(batches)  # per batch
    log(f"lengths from {source}")
    log(f"{cfg.batches} batches of {cfg.batch}: {tokens / cfg.batches:.0f} real tokens per batch on average, "
        f"{padded / cfg.batches:.0f} when padded to the longest; native kernels: "
        f"{'yes' if kernels.available() else 'no (' + str(kernels.unavailable_reason()) + ')'}")
    matmul = matmul_rates(cfg.matmul_sizes)
    fastest = max(matmul, key=lambda r: r["gflops"])["backend"]  # the interleaved reference

    settings = []
    profiles = {}
    for norm_first in cfg.norm_first:
        theirs, mine, rotary = build_pair(cfg, norm_first)
        diff = check_same_function(theirs, mine, batches[0])
        cases = encoder_cases(theirs, mine, batches, rotary)
        for mode in ("inference", "training"):
            work = flops * (3 if mode == "training" else 1)
            reference, ref_flops = matmul_case(work * len(batches), fastest)
            timing = interleaved({**cases[mode], "matmul": reference}, cfg.repeats, len(batches))
            ref = timing.pop("matmul")
            ref_gflops = ref_flops / len(batches) / ref["median_s"] / 1e9
            matmul.append({
                "backend": fastest, "n": MATMUL_N, "median_s": ref["median_s"], "gflops": ref_gflops,
                "interleaved": f"norm_first={norm_first} {mode}",
            })
            rows = {
                name: {
                    **t,
                    "useful_gflops": work / t["median_s"] / 1e9,
                    "speedup_vs_torch": timing["torch"]["median_s"] / t["median_s"],
                    "of_matmul_same_moments": work / t["median_s"] / 1e9 / ref_gflops,
                }
                for name, t in timing.items()
            }
            settings.append({
                "norm_first": norm_first, "mode": mode, "max_abs_diff": diff, "cases": rows,
                "matmul_interleaved_gflops": ref_gflops,
            })
            log(f"  norm_first={norm_first} {mode}: torch {rows['torch']['median_s'] * 1e3:.2f} ms, attnlab "
                f"{rows['attnlab']['median_s'] * 1e3:.2f} ms per batch ({time.perf_counter() - started:.0f} s so far)")
            if cfg.profile:
                profiles[f"norm_first={norm_first} {mode} attnlab"] = profile_table(cases[mode]["attnlab"])
                profiles[f"norm_first={norm_first} {mode} torch"] = profile_table(cases[mode]["torch"])

    long_rows = []
    for n in cfg.long_sizes:
        cases = long_cases(n, cfg.long_head_dim)
        first = time.perf_counter()
        cases["attnlab varlen"]()
        slow = time.perf_counter() - first
        repeats = max(3, min(cfg.long_repeats, int(30.0 / max(slow, 1e-9))))
        timing = interleaved(cases, repeats, 1)
        row = {
            "n": n,
            "repeats": repeats,
            "flops": 4.0 * n * n * cfg.long_head_dim,
            **{name: t for name, t in timing.items()},
        }
        row["ratio"] = timing["torch SDPA"]["median_s"] / timing["attnlab varlen"]["median_s"]
        if cfg.measure_memory:
            for name in cases:
                row[name]["peak_extra_bytes"] = peak_extra_bytes(name, n, cfg.long_head_dim, cfg.threads)
        long_rows.append(row)
        log(f"  long N = {n}: ratio {row['ratio']:.3f} ({time.perf_counter() - started:.0f} s so far)")

    matmul += matmul_rates(cfg.matmul_sizes)
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
        "useful_gflop_per_batch": flops / 1e9,
        "native_kernels": kernels.available(),
        "onednn_linear": kernels.onednn_reason() is None,
        "malloc_tuned": malloc_tuned,
        "matmul": matmul,
        "matmul_best_gflops": best,
        "settings": settings,
        "long": long_rows,
        "targets": check_targets(settings, long_rows),
        "profiles": profiles,
        "wall_s": time.perf_counter() - started,
    }


def check_targets(settings: list[dict], long_rows: list[dict]) -> list[dict]:
    out = []
    for s in settings:
        mine = s["cases"]["attnlab"]
        tag = f"norm_first={s['norm_first']} {s['mode']}"
        out.append({
            "target": f"{tag}: speed-up vs torch >= {TARGETS[s['mode'] + '_speedup']:.1f}x",
            "value": mine["speedup_vs_torch"],
            "met": mine["speedup_vs_torch"] >= TARGETS[s["mode"] + "_speedup"],
        })
        goal = TARGETS[s["mode"] + "_of_matmul"]
        out.append({
            "target": f"{tag}: useful FLOP/s >= {goal:.0%} of matmul",
            "value": mine["of_matmul"],
            "met": mine["of_matmul"] >= goal,
        })
    for row in long_rows:
        if 1024 <= row["n"] <= 8192:
            out.append({
                "target": f"long N={row['n']}: torch SDPA time / attnlab time >= 1.0",
                "value": row["ratio"],
                "met": row["ratio"] >= TARGETS["long_ratio_min"],
            })
        if row["n"] == 65536:
            extra = row["attnlab varlen"].get("peak_extra_bytes")
            if extra is not None:
                out.append({
                    "target": "long N=65536: attnlab peak extra memory <= 1 GiB",
                    "value": extra / 1024**3,
                    "met": extra <= TARGETS["long_memory_gib"] * 1024**3,
                })
    return out


# -- output ------------------------------------------------------------------------------

def format_report(report: dict) -> str:
    m, cfg = report["machine"], report["config"]
    lines = [
        f"machine: {m['cpu']}, {m['nproc']} CPUs, torch {m['torch']}, python {m['python']}, "
        f"{cfg['threads_used']} torch threads, native kernels: {'yes' if report['native_kernels'] else 'no'}, "
        f"oneDNN linear: {'yes' if report['onednn_linear'] else 'no'}, glibc keeps freed memory: "
        f"{'yes' if report['malloc_tuned'] else 'no'}",
        f"lengths: {report['lengths_source']}",
        f"batches of {cfg['batch']} sentences: {report['tokens_per_batch']:.0f} real tokens "
        f"({report['padded_tokens_per_batch']:.0f} padded), {report['useful_gflop_per_batch']:.3f} useful GFLOP "
        f"per forward; {cfg['layers']} layers, d_model {cfg['d_model']}, {cfg['heads']} heads, d_ff {cfg['d_ff']}, "
        f"dropout {cfg['dropout']}, float32",
        "matmul, square float32, GFLOP/s (mkl = torch.mm, onednn = mkldnn._linear_pointwise): "
        + ", ".join(
            f"{r['backend']} n={r['n']}{' interleaved' if r.get('interleaved') else ''}: {r['gflops']:.0f}"
            for r in report["matmul"]
        )
        + f"; best {report['matmul_best_gflops']:.1f}",
        "",
        "| norm_first | mode | case | ms per batch | speed-up vs torch | useful GFLOP/s | of best matmul | of interleaved matmul |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in report["settings"]:
        for name, row in s["cases"].items():
            lines.append(
                f"| {s['norm_first']} | {s['mode']} | {name} | {row['median_s'] * 1e3:.2f} | "
                f"{row['speedup_vs_torch']:.2f}x | {row['useful_gflops']:.1f} | {row['of_matmul']:.1%} | "
                f"{row['of_matmul_same_moments']:.1%} |"
            )
    diffs = ", ".join(f"norm_first={s['norm_first']}: {s['max_abs_diff']:.1e}" for s in report["settings"] if s["mode"] == "inference")
    lines += ["", f"same function check, max |attnlab - torch| over real tokens (eval): {diffs}", ""]
    lines += [
        "| N | torch SDPA ms | attnlab varlen ms | ratio (torch / attnlab) | GFLOP/s attnlab | peak extra MiB torch | peak extra MiB attnlab |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["long"]:
        def mem(name):
            b = row[name].get("peak_extra_bytes")
            return "-" if b is None else f"{b / MIB:.1f}"

        a = row["attnlab varlen"]["median_s"]
        lines.append(
            f"| {row['n']} | {row['torch SDPA']['median_s'] * 1e3:.2f} | {a * 1e3:.2f} | {row['ratio']:.3f} | "
            f"{row['flops'] / a / 1e9:.1f} | {mem('torch SDPA')} | {mem('attnlab varlen')} |"
        )
    lines += ["", "targets:"]
    for t in report["targets"]:
        lines.append(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['value']:.3f}")
    for name, table in report.get("profiles", {}).items():
        lines += ["", f"profile, {name} (all batches once):", table]
    lines.append(f"\nwall time {report['wall_s']:.0f} s")
    return "\n".join(lines)


# -- command line --------------------------------------------------------------------------

def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text}")
    return value


def add_parser(sub) -> None:
    p = sub.add_parser(
        "encoder",
        help="packed TransformerEncoder vs torch.nn.TransformerEncoder; long sequences vs SDPA",
        description=(
            "Batches of sentences with treebank lengths through attnlab's packed encoder and "
            "torch.nn.TransformerEncoder (inference and training), interleaved, medians; then long "
            "single sequences through attnlab.varlen_attention and torch SDPA (time, peak memory)."
        ),
    )
    p.add_argument("--treebank", default=None, help="directory with *train*.conllu (default: $ATTNLAB_DATA, else the shipped EWT length histogram)")
    p.add_argument("--json", default=None, help="also write the full report to this file")
    p.add_argument("--quick", action="store_true", help="a short run: fewer batches and repeats, N up to 4096, norm_first=True only")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's default)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved repetitions per setting")
    p.add_argument("--no-memory", action="store_true", help="skip the subprocess memory probes")
    p.add_argument("--profile", action="store_true", help="also print torch.profiler tables of one pass")
    p.add_argument("--no-malloc-tuning", action="store_true", help="leave glibc's malloc thresholds alone")
    p.set_defaults(func=main)


def config_from_args(args) -> EncoderBenchConfig:
    kw = dict(QUICK) if args.quick else {}
    if args.repeats is not None:
        kw["repeats"] = _positive_int(str(args.repeats))
    if args.threads:
        kw["threads"] = _positive_int(str(args.threads))
    return EncoderBenchConfig(
        treebank=args.treebank, measure_memory=not args.no_memory, profile=args.profile,
        malloc_tuning=not args.no_malloc_tuning, **kw
    )


def main(args) -> int:
    cfg = config_from_args(args)
    report = run(cfg)
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0
