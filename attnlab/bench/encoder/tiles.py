"""Time the long-sequence forward with other tile sizes of the native kernel (measurement only).

Builds ``cpu.cpp`` once per variant with build-time defines (key chunk, query chunk, rows per
block), loads each build, and times one sequence of N tokens (1 head of width d) through
``varlen_attention`` with every build, torch SDPA and a same-run square matmul, interleaved.
attnlab itself always uses the default build; this only swaps the loaded library in-process.

    python -m attnlab.bench.encoder.tiles --sizes 1024 2048 4096 --repeats 7
"""

from __future__ import annotations

import argparse
import ctypes
import shutil
import statistics
from concurrent.futures import ThreadPoolExecutor

VARIANTS = {  # name -> extra compiler flags
    "default (K512 Q64 R4)": (),
    "K256": ("-DATTNLAB_KEY_CHUNK=256",),
    "K1024": ("-DATTNLAB_KEY_CHUNK=1024",),
    "Q32": ("-DATTNLAB_QUERY_CHUNK=32",),
    "Q128": ("-DATTNLAB_QUERY_CHUNK=128",),
    "R2": ("-DATTNLAB_ROWS=2",),
    "R8": ("-DATTNLAB_ROWS=8",),
}
PARTS = {  # default tiles with one stage left out (wrong results): the time of each stage
    "default": (),
    "without exp": ("-DATTNLAB_TIME_WITHOUT_EXP",),
    "without P.V": ("-DATTNLAB_TIME_WITHOUT_PV",),
}


def build_variants(variants: dict[str, tuple[str, ...]]) -> dict[str, ctypes.CDLL]:
    from ...kernels import native

    compiler = shutil.which("c++") or shutil.which("g++")

    def one(extra):
        lib = ctypes.CDLL(str(native.build(compiler, flags=native.FLAGS + extra)))
        native._declare(lib)
        return lib

    with ThreadPoolExecutor(2) as pool:
        libs = list(pool.map(one, variants.values()))
    return dict(zip(variants, libs))


def with_lib(lib, fn):
    """``fn`` run with ``lib`` as the loaded native library."""
    from ...kernels import native

    def run():
        native._lib, native._loaded = lib, True
        return fn()

    return run


def main() -> None:
    import torch

    from ...kernels import native
    from ...options import positive_int, show_ranges
    from ..flops import attention_flops, matmul_flops
    from ..matmul import square_product
    from ..timing import interleaved, loops_for, warm_up
    from .long import long_cases

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=positive_int, nargs="+", default=[1024, 2048, 4096], help="sequence lengths")
    ap.add_argument("--d", type=positive_int, default=64, help="head width (default 64)")
    ap.add_argument("--repeats", type=positive_int, default=7, help="interleaved repetitions (default 7)")
    ap.add_argument("--threads", type=positive_int, default=2, help="torch threads (default 2)")
    ap.add_argument("--parts", action="store_true", help="time stages left out instead of tile sizes")
    show_ranges(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    libs = build_variants(PARTS if args.parts else VARIANTS)
    default = native.load()
    mm = square_product("mkl", 1024)
    for n in args.sizes:
        base = long_cases(n, args.d)
        cases = {"torch SDPA": base["torch SDPA"], "matmul 1024": mm}
        cases.update({name: with_lib(lib, base["attnlab varlen"]) for name, lib in libs.items()})
        with torch.no_grad():
            warm_up(cases)
            ref = with_lib(default, base["attnlab varlen"])()
            for name, lib in libs.items() if not args.parts else ():
                same = torch.equal(with_lib(lib, base["attnlab varlen"])(), ref)
                print(f"N={n} {name}: bit-identical to default: {same}")
            loops = {name: loops_for(fn, 0.05) for name, fn in cases.items()}
            t = interleaved(cases, args.repeats, loops)
        native._lib = default
        fl = attention_flops(n, args.d)
        sdpa = t["torch SDPA"]["median_s"]
        print(f"N={n} d={args.d}: matmul 1024 {matmul_flops(1024) / t['matmul 1024']['median_s'] / 1e9:.1f} GFLOP/s")
        for name, r in t.items():
            if name == "matmul 1024":
                continue
            med = r["median_s"]
            ratios = [a / b for a, b in zip(t["torch SDPA"]["samples_s"], r["samples_s"])]
            print(f"  {name:24s} {med * 1e3:8.2f} ms  {fl / med / 1e9:6.1f} GFLOP/s  SDPA/this {sdpa / med:.3f}"
                  f"  (median of round ratios {statistics.median(ratios):.3f}, range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
