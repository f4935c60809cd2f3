"""Timing shared by the benchmarks: samples of a loop of calls, and cases interleaved.

Other processes share the CPUs, so a benchmark never times one case after the other.
It runs every case once per round, in an order that changes from round to round, and
reports the median over the rounds: load from elsewhere hits every case alike.

``clock`` is ``time.perf_counter`` unless a test passes its own.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

Clock = Callable[[], float]


def time_loops(fn: Callable[[], object], loops: int, clock: Clock = time.perf_counter) -> float:
    """Mean seconds per call of ``fn`` over ``loops`` calls in a row."""
    start = clock()
    for _ in range(loops):
        fn()
    return (clock() - start) / loops


def loops_for(fn: Callable[[], object], min_sample_s: float, clock: Clock = time.perf_counter) -> int:
    """How many calls in a row make one sample last at least ``min_sample_s`` (one timed call decides)."""
    return max(1, math.ceil(min_sample_s / max(time_loops(fn, 1, clock), 1e-9)))


def warm_up(cases: Mapping[str, Callable[[], object]]) -> None:
    """Call every case once: kernel builds, first allocations, the thread pool."""
    for fn in cases.values():
        fn()


def round_order(names: Sequence[str], r: int) -> list[str]:
    """The order of the cases in round ``r``: rotated by one every other round, reversed in odd
    rounds (A B C, C B A, B C A, A C B, ...), so that every case runs in every place and after
    every other case. With two cases: A B, B A, B A, A B."""
    shift = (r // 2) % len(names)
    order = list(names[shift:]) + list(names[:shift])
    return order[::-1] if r % 2 else order


def interleaved(
    cases: Mapping[str, Callable[[], object]],
    repeats: int,
    loops: dict[str, int] | None = None,
    per_call: int = 1,
    clock: Clock = time.perf_counter,
) -> dict[str, dict]:
    """Median seconds per unit of work of every case, the cases interleaved within each round.

    One sample of a case is ``loops[name]`` calls in a row (1 unless given) divided by
    ``loops[name] * per_call`` (``per_call``: units of work one call does, e.g. batches).
    Returns ``{name: {"median_s": ..., "samples_s": [one per round]}}``; callers warm the
    cases up first (``warm_up``).
    """
    names = list(cases)
    loops = loops or {}
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in round_order(names, r):
            samples[name].append(time_loops(cases[name], loops.get(name, 1), clock) / per_call)
    return {name: {"median_s": statistics.median(s), "samples_s": s} for name, s in samples.items()}
