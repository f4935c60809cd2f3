"""The shared timing of the benchmarks, on a fake clock: every duration is known, so every median is."""

import pytest
from fake_clock import FakeClock

from attnlab.bench.timing import interleaved, loops_for, round_order, time_loops


def test_time_loops_is_the_mean_per_call():
    clock = FakeClock()
    # 4 calls of 0.5, 1.0, 1.5, 1.0 s: 4.0 s in all, 1.0 s per call
    assert time_loops(clock.case("a", 0.5, 1.0, 1.5, 1.0), 4, clock) == 1.0


def test_loops_for_reaches_the_minimum_sample():
    clock = FakeClock()
    assert loops_for(clock.case("a", 0.01), 0.05, clock) == 5  # ceil(0.05 / 0.01)
    assert loops_for(clock.case("b", 0.02), 0.05, clock) == 3  # ceil(2.5)
    assert loops_for(clock.case("c", 0.2), 0.05, clock) == 1  # one call is long enough


def test_round_order_puts_every_case_everywhere():
    assert [round_order("AB", r) for r in range(4)] == [list("AB"), list("BA"), list("BA"), list("AB")]
    assert ["".join(round_order("ABC", r)) for r in range(6)] == ["ABC", "CBA", "BCA", "ACB", "CAB", "BAC"]
    # over 6 rounds each of 3 cases runs first, second and third twice
    for case in "ABC":
        assert sorted("".join(round_order("ABC", r)).index(case) for r in range(6)) == [0, 0, 1, 1, 2, 2]


def test_interleaved_reports_the_median_of_the_rounds():
    clock = FakeClock()
    # a: 3, 1, 2, 9, 1 s in the five rounds -> sorted 1, 1, 2, 3, 9 -> median 2
    # b: 4 s, except one slow round of 40 s (load from elsewhere) -> median 4
    cases = {"a": clock.case("a", 3, 1, 2, 9, 1), "b": clock.case("b", 40, 4)}
    timing = interleaved(cases, repeats=5, clock=clock)
    assert timing["a"] == {"median_s": 2.0, "samples_s": [3.0, 1.0, 2.0, 9.0, 1.0]}
    assert timing["b"] == {"median_s": 4.0, "samples_s": [40.0, 4.0, 4.0, 4.0, 4.0]}
    assert "".join(clock.log) == "ab" "ba" "ba" "ab" "ab"  # rounds 0..4 of round_order


def test_interleaved_divides_by_loops_and_units_per_call():
    clock = FakeClock()
    # a: 4 loops of a 3 s call doing 2 units of work: 12 s / (4 x 2) = 1.5 s per unit
    # b: 1 loop of a 1 s call doing 2 units: 0.5 s per unit
    cases = {"a": clock.case("a", 3.0), "b": clock.case("b", 1.0)}
    timing = interleaved(cases, repeats=3, loops={"a": 4}, per_call=2, clock=clock)
    assert timing["a"]["samples_s"] == [1.5, 1.5, 1.5] and timing["b"]["median_s"] == 0.5
    assert clock.log.count("a") == 12 and clock.log.count("b") == 3
    assert clock.now == pytest.approx(3 * (12.0 + 1.0))
