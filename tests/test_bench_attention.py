"""`attnlab bench attention`: FLOPs and bytes worked out by hand, the ratios on a fake clock,
and a --quick run whose JSON holds those numbers."""

import json
import os

import pytest
import torch
from fake_clock import FakeClock

from attnlab.bench.attention import BenchConfig, Case, case_flops, measure_size, quadratic_bytes
from attnlab.bench.memory import peak_memory_bytes
from attnlab.cli import main

CASES = {"attnlab fused", "attnlab readable", "torch SDPA", "plain", "torch MHA", "attnlab MHSA"}


def _case(name, group="kernel", buffers=0, build=None, baseline="torch SDPA"):
    return Case(name, group, buffers, build, baseline)


def test_flops_and_bytes_by_hand():
    cfg = BenchConfig(batch=1, heads=1, head_dim=2)  # D = 2
    # N = 4: q k^T is 4 x 2 @ 2 x 4 = 16 dot products of length 2 = 16 x 2 x 2 = 64 FLOPs,
    # weights @ v is 4 x 4 @ 4 x 2 = 8 dot products of length 4 = 8 x 4 x 2 = 64: 128 in all
    assert case_flops(_case("k"), 4, cfg) == 128
    # a layer adds q, k, v and W^O: 4 products (4 x 2 @ 2 x 2) of 4 x 2 x 2 x 2 = 32 FLOPs: 128 + 128
    assert case_flops(_case("l", "layer"), 4, cfg) == 256
    # B = 2, H = 8, d = 64 (D = 512), N = 16: attention 2 x 8 x 4 x 16^2 x 64 = 64 x 256 x 64 = 1,048,576;
    # projections 2 x 8 x 16 x 512^2 = 67,108,864
    big = BenchConfig(batch=2, heads=8, head_dim=64)
    assert case_flops(_case("k"), 16, big) == 1_048_576
    assert case_flops(_case("l", "layer"), 16, big) == 1_048_576 + 67_108_864
    # scores and weights of B = 2, H = 8, N = 64 in float32: 2 x (2 x 8 x 64 x 64 x 4 bytes) = 512 KiB
    assert quadratic_bytes(_case("r", buffers=2), 64, big) == 524_288


def test_medians_rates_and_ratios_on_a_fake_clock():
    clock = FakeClock()
    cfg = BenchConfig(batch=1, heads=1, head_dim=2, repeats=3, min_sample_s=0.01, case_budget_s=1.0,
                      memory_budget_gib=100 / 2**30, measure_memory=False)
    cases = [
        _case("slow", build=lambda n: clock.case("slow", 2**-8)),  # 1/256 s per call
        _case("torch SDPA", build=lambda n: clock.case("torch SDPA", 2**-9)),  # 1/512 s per call
        _case("big", buffers=2, build=None),  # 2 x 4 x 4 x 4 bytes = 128 bytes > 100: skipped
        _case("layer", "layer", build=lambda n: clock.case("layer", 2**-7), baseline="layer"),
    ]
    skipped = []
    results = {r.case: r for r in measure_size(cases, 4, cfg, skipped, clock)}
    assert [s["case"] for s in skipped] == ["big"]
    assert skipped[0]["reason"].startswith("2 (B, H, N, N) float32 buffers")
    slow, sdpa, layer = results["slow"], results["torch SDPA"], results["layer"]
    # loops: ceil(0.01 / (1/256)) = ceil(2.56) = 3; ceil(5.12) = 6; ceil(1.28) = 2
    assert (slow.loops, sdpa.loops, layer.loops) == (3, 6, 2)
    # the slowest sample lasts 3/256 s, far under the 1 s budget: the configured 3 repeats
    assert slow.repeats == 3 and slow.samples_s == [2**-8] * 3
    assert slow.median_s == 2**-8 and sdpa.median_s == 2**-9 and layer.median_s == 2**-7
    # 128 FLOPs in 1/256 s = 32,768 FLOP/s; 256 FLOPs (a layer) in 1/128 s = 32,768 FLOP/s
    assert slow.gflops == pytest.approx(32_768e-9) and layer.gflops == pytest.approx(32_768e-9)
    assert sdpa.gflops == pytest.approx(65_536e-9)
    assert slow.rel_to_baseline == 2.0 and sdpa.rel_to_baseline == 1.0 and layer.rel_to_baseline == 1.0


def test_quick_bench_writes_the_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    old_umask = os.umask(0o022)
    try:
        assert main(["bench", "attention", "--quick", "--sizes", "8", "24", "--heads", "2", "--head-dim", "16", "--json", str(out)]) == 0
    finally:
        os.umask(old_umask)
    assert out.stat().st_mode & 0o777 == 0o644  # 0666 less the umask, as other tools write files
    printed = capsys.readouterr().out
    for column in ("N", "case", "median ms", "GFLOP/s", "of mm", "rel", "peak MiB", "reps x loops"):
        assert column in printed
    report = json.loads(out.read_text())
    assert set(report) == {"machine", "config", "matmul", "matmul_best_gflops", "results", "skipped", "wall_s"}
    assert report["machine"]["nproc"] >= 1 and report["machine"]["torch"] == torch.__version__
    assert report["config"]["heads"] == 2 and report["config"]["d_model"] == 32
    assert [row["n"] for row in report["matmul"]] == [64, 128, 64, 128]  # at the start and at the end
    assert report["matmul_best_gflops"] == max(row["gflops"] for row in report["matmul"])
    rows = report["results"]
    assert {(r["case"], r["n"]) for r in rows} == {(c, n) for c in CASES for n in (8, 24)}
    # H = 2, d = 16, D = 32. Attention 4 N^2 d H: N = 8: 4 x 64 x 16 x 2 = 8,192; N = 24: 4 x 576 x 32 = 73,728.
    # Layers add 8 N D^2: N = 8: 8 x 8 x 1,024 = 65,536; N = 24: 8 x 24 x 1,024 = 196,608.
    flops = {("kernel", 8): 8_192, ("kernel", 24): 73_728, ("layer", 8): 73_728, ("layer", 24): 270_336}
    for r in rows:
        assert r["flops"] == flops[(r["group"], r["n"])]
        assert r["median_s"] > 0 and r["peak_mib"] >= 0 and len(r["samples_s"]) == r["repeats"] >= 3
        assert 0 < r["ratio_to_matmul"] == pytest.approx(r["gflops"] / report["matmul_best_gflops"])
        assert r["rel_to_baseline"] == 1.0 if r["case"] in {"torch SDPA", "torch MHA"} else r["rel_to_baseline"] > 0
    readable = next(r for r in rows if r["case"] == "attnlab readable" and r["n"] == 24)
    # scores and weights, each (1, 2, 24, 24) float32 = 4,608 bytes
    assert readable["peak_mib"] * 2**20 >= 9_216


def test_memory_budget_skips_the_quadratic_cases(tmp_path, capsys):
    out = tmp_path / "bench.json"
    main(["bench", "attention", "--quick", "--sizes", "64", "--head-dim", "8", "--memory-budget-gib", "0.0001",
          "--no-memory", "--json", str(out)])
    report = json.loads(out.read_text())
    # 2 buffers x (1, 8, 64, 64) float32 = 262,144 bytes > 0.0001 GiB = 107,374 bytes; the inputs, 3 x (1, 8, 64, 8)
    # float32 = 49,152 bytes, fit
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


@pytest.mark.parametrize("args, message", [
    (["--sizes", "0"], "argument --sizes: expected an integer >= 1, got '0'"),
    (["--head-dim", "0"], "argument --head-dim: expected an integer >= 1, got '0'"),
    (["--repeats", "-2"], "argument --repeats: expected an integer >= 1, got '-2'"),
    (["--threads", "-1"], "argument --threads: expected an integer >= 1, got '-1'"),
])
def test_bad_options_exit_2_with_one_line(args, message, capsys):
    assert main(["bench", "attention", "--quick", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
