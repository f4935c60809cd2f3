"""`attnlab bench attention --quick`: runs, and its JSON holds consistent positive numbers."""

import json

import pytest
import torch

from attnlab.bench.attention import peak_memory_bytes
from attnlab.cli import main

CASES = {"attnlab fused", "attnlab readable", "torch SDPA", "plain", "torch MHA", "attnlab MHSA"}


def test_quick_bench_writes_consistent_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "attention", "--quick", "--sizes", "8", "24", "--heads", "2", "--head-dim", "16", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "GFLOP/s" in printed and "peak MiB" in printed and "torch SDPA" in printed
    report = json.loads(out.read_text())
    assert set(report) >= {"machine", "config", "matmul", "matmul_best_gflops", "results", "skipped"}
    assert report["machine"]["nproc"] >= 1 and report["machine"]["torch"] == torch.__version__
    assert report["config"]["heads"] == 2 and report["config"]["d_model"] == 32
    best = report["matmul_best_gflops"]
    assert best > 0 and best == max(row["gflops"] for row in report["matmul"])
    rows = report["results"]
    assert {(r["case"], r["n"]) for r in rows} == {(c, n) for c in CASES for n in (8, 24)}
    for r in rows:
        n = r["n"]
        attention = 4 * n * n * 16 * 2
        assert r["flops"] == (attention + 8 * n * 32**2 if r["case"] in {"torch MHA", "attnlab MHSA"} else attention)
        assert r["median_s"] > 0 and r["peak_mib"] >= 0
        assert r["gflops"] == pytest.approx(r["flops"] / r["median_s"] / 1e9)
        assert r["ratio_to_matmul"] == pytest.approx(r["gflops"] / best)
        assert len(r["samples_s"]) == r["repeats"] >= 3
        if r["case"] in {"torch SDPA", "torch MHA"}:
            assert r["rel_to_baseline"] == 1.0
        else:
            assert r["rel_to_baseline"] > 0
    readable = next(r for r in rows if r["case"] == "attnlab readable" and r["n"] == 24)
    assert readable["peak_mib"] * 2**20 >= 2 * 2 * 24 * 24 * 4  # scores and weights, (1, 2, 24, 24) float32


def test_memory_budget_skips_the_quadratic_cases(tmp_path, capsys):
    out = tmp_path / "bench.json"
    main(["bench", "attention", "--quick", "--sizes", "64", "--memory-budget-gib", "0.0001", "--no-memory", "--json", str(out)])
    report = json.loads(out.read_text())
    assert {s["case"] for s in report["skipped"]} == {"attnlab readable", "plain"}
    assert {r["case"] for r in report["results"]} == CASES - {"attnlab readable", "plain"}
    assert all(r["peak_mib"] is None for r in report["results"])
    assert "skipped: plain at N=64" in capsys.readouterr().out


def test_peak_memory_counts_torch_allocations():
    def fn():
        a = torch.empty(2**20)  # 4 MiB
        b = torch.empty(2**19)  # 2 MiB while a is alive
        del a, b
        return torch.empty(2**18)  # 1 MiB

    assert peak_memory_bytes(fn) == 6 * 2**20


def test_bad_sizes_exit_2(capsys):
    assert main(["bench", "attention", "--sizes", "0", "--quick"]) == 2
    assert "--sizes must be positive, got 0" in capsys.readouterr().err
