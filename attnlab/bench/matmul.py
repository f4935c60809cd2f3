"""The matmul reference: how fast this machine multiplies square float32 matrices, now.

A benchmark divides its useful FLOP/s by the best rate measured here in the same run, so that
the figure says how close a case comes to the machine's dense GEMM. Backends: "mkl" =
``torch.mm`` (PyTorch's default GEMM on CPU) and "onednn" =
``torch.ops.mkldnn._linear_pointwise`` (a @ b^T, what attnlab's linear layers use).
"""

from __future__ import annotations

from collections.abc import Callable

from .flops import matmul_flops
from .timing import interleaved, loops_for

MATMUL_N = 1024  # the size of the product that runs interleaved with the cases


def square_product(backend: str, n: int) -> Callable[[], object]:
    """One float32 n x n x n product with ``backend`` ("mkl" or "onednn")."""
    import torch

    g = torch.Generator().manual_seed(n)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    if backend == "onednn":
        op = torch.ops.mkldnn._linear_pointwise
        return lambda: op(a, b, None, "none", [], "")
    return lambda: torch.mm(a, b)


def matmul_backends() -> list[str]:
    """"mkl", and "onednn" where attnlab's linear layers can use it."""
    from .. import kernels

    return ["mkl"] + (["onednn"] if kernels.onednn_unsupported_reason() is None else [])


def matmul_rate(n: int, repeats: int, min_sample_s: float, backend: str = "mkl") -> dict:
    """``{"n", "median_s", "gflops"}`` of one n x n x n product: the median of at least three
    samples, each looping the product for at least ``min_sample_s``. Call under no_grad."""
    fn = square_product(backend, n)
    fn()
    loops = loops_for(fn, min_sample_s)
    timing = interleaved({"mm": fn}, max(3, repeats), {"mm": loops})["mm"]
    med = timing["median_s"]
    return {"n": n, "median_s": med, "gflops": matmul_flops(n) / med / 1e9}


def matmul_rates(sizes: tuple[int, ...], repeats: int = 5, min_sample_s: float = 0.05) -> list[dict]:
    """``matmul_rate`` for every backend and size, each row with its "backend"."""
    import torch

    with torch.no_grad():
        return [
            {"backend": backend, **matmul_rate(n, repeats, min_sample_s, backend)}
            for backend in matmul_backends()
            for n in sizes
        ]


def matmul_case(flops: float, backend: str) -> tuple[Callable[[], None], float]:
    """Square products of size MATMUL_N repeated to about ``flops``: a reference that runs
    interleaved with the cases it is compared with. Returns the call and its exact FLOPs."""
    import torch

    product = square_product(backend, MATMUL_N)
    reps = max(1, round(flops / matmul_flops(MATMUL_N)))

    def run():
        with torch.no_grad():
            for _ in range(reps):
                product()

    return run, reps * matmul_flops(MATMUL_N)
