"""The settings of `attnlab bench encoder`."""

from __future__ import annotations

from dataclasses import dataclass

LONG_SIZES = (1024, 2048, 4096, 8192, 16384, 32768, 65536)


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
    malloc_tuning: bool = True  # glibc keeps freed memory (memory.keep_freed_memory)


# `--quick`: a short run (a smoke test of the whole benchmark, about 20 s)
QUICK = dict(batches=2, repeats=5, norm_first=(True,), long_sizes=(1024, 2048, 4096), long_repeats=3)
