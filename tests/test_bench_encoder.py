"""`attnlab bench encoder` and `attnlab bench serve`: the FLOP model, the matmul reference,
the targets, the memory probe and the option checks, with numbers worked out by hand (the
timings themselves are benchmark figures, never tested)."""

from pathlib import Path

import pytest

from attnlab.bench.encoder import QUICK
from attnlab.bench.encoder.long import peak_extra_bytes
from attnlab.bench.encoder.targets import check_targets
from attnlab.bench.flops import encoder_flops, matmul_flops
from attnlab.bench.matmul import MATMUL_N, matmul_case
from attnlab.bench.serve_load import format_result, median_of
from attnlab.cli import build_parser, main
from attnlab.cli.bench import encoder_config


def test_encoder_flops_by_hand():
    # two sentences of 3 and 5 tokens (T = 8), D = 4, d_ff = 8, 2 layers; per layer:
    #   q, k, v, W^O: 4 products of (8 x 4) @ (4 x 4) = 4 x 8 x 4 x 4 x 2 = 1,024
    #   feed-forward: (8 x 4) @ (4 x 8) and (8 x 8) @ (8 x 4) = 2 x 8 x 4 x 8 x 2 = 1,024
    #   attention, every head together: 4 n^2 D = 4 x 9 x 4 + 4 x 25 x 4 = 144 + 400 = 544
    # 2 x (1,024 + 1,024 + 544) = 5,184
    assert encoder_flops([3, 5], d_model=4, d_ff=8, layers=2) == 5_184
    # padding costs nothing: a sentence of 0 tokens adds 0
    assert encoder_flops([3, 5, 0], d_model=4, d_ff=8, layers=2) == 5_184


def test_matmul_reference_case_rounds_to_whole_products():
    assert MATMUL_N == 1024 and matmul_flops(1024) == 2_147_483_648  # 2 x 1024^3
    # 3.4 products' worth of FLOPs -> 3 products of 2^31 FLOPs each
    call, flops = matmul_case(3.4 * 2**31, "mkl")
    assert flops == 3 * 2**31 and callable(call)
    assert matmul_case(1.0, "mkl")[1] == 2**31  # at least one product


def _setting(mode, speedup, of_matmul):
    return {"norm_first": True, "mode": mode, "cases": {"attnlab": {"speedup_vs_torch": speedup, "of_matmul": of_matmul}}}


def test_targets_met_and_missed():
    settings = [_setting("inference", 2.5, 0.95), _setting("training", 1.5, 0.70)]
    long_rows = [
        {"n": 512, "ratio": 0.5, "attnlab varlen": {}},  # below 1k: no target
        {"n": 1024, "ratio": 1.2, "attnlab varlen": {}},
        {"n": 8192, "ratio": 0.9, "attnlab varlen": {}},
        {"n": 65536, "ratio": 0.8, "attnlab varlen": {"peak_extra_bytes": 2**29}},  # 0.5 GiB
    ]
    got = [(t["target"], t["value"], t["met"]) for t in check_targets(settings, long_rows)]
    assert got == [
        ("norm_first=True inference: speed-up vs torch >= 2.0x", 2.5, True),
        ("norm_first=True inference: useful FLOP/s >= 90% of matmul", 0.95, True),
        ("norm_first=True training: speed-up vs torch >= 2.0x", 1.5, False),
        ("norm_first=True training: useful FLOP/s >= 70% of matmul", 0.70, True),
        ("long N=1024: torch SDPA time / attnlab time >= 1.0", 1.2, True),
        ("long N=8192: torch SDPA time / attnlab time >= 1.0", 0.9, False),
        ("long N=65536: attnlab peak extra memory <= 1 GiB", 0.5, True),
    ]


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs /proc/self/clear_refs (Linux)")
def test_memory_probe_runs_as_a_module():
    # torch SDPA on (1, 1, 512, 16): the output alone is 512 x 16 x 4 bytes = 32 KiB, and the
    # resident set grows by whole pages; a fresh process holds little else
    extra = peak_extra_bytes("torch SDPA", 512, 16, threads=1)
    assert 0 <= extra < 64 * 2**20
    with pytest.raises(RuntimeError, match="memory probe for nonsense N=512 failed"):
        peak_extra_bytes("nonsense", 512, 16, threads=1)


def _args(*argv):
    return build_parser().parse_args(["bench", "encoder", *argv])


def test_encoder_options_fill_the_config():
    cfg = encoder_config(_args("--quick", "--repeats", "2", "--no-memory", "--threads", "1", "--treebank", "/x"))
    assert (cfg.batches, cfg.repeats, cfg.norm_first, cfg.long_sizes) == (2, 2, (True,), (1024, 2048, 4096))
    assert (cfg.measure_memory, cfg.threads, cfg.treebank, cfg.malloc_tuning) == (False, 1, "/x", True)
    assert QUICK["repeats"] == 5 and encoder_config(_args("--quick")).repeats == 5
    full = encoder_config(_args("--no-malloc-tuning"))
    assert (full.batches, full.repeats, full.norm_first, full.malloc_tuning) == (8, 11, (True, False), False)


@pytest.mark.parametrize("argv, message", [
    (["encoder", "--repeats", "0"], "argument --repeats: expected an integer >= 1, got '0'"),
    (["encoder", "--threads", "-3"], "argument --threads: expected an integer >= 1, got '-3'"),
    (["serve", "--model", "m", "--repeat", "0"], "argument --repeat: expected an integer >= 1, got '0'"),
    (["serve", "--model", "m", "--threads", "0"], "argument --threads: expected an integer >= 1, got '0'"),
    (["serve", "--model", "m", "--url", "http://example.com:80"], "loopback"),
])
def test_bad_options_exit_2_before_any_work(argv, message, capsys):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_serve_medians_and_printed_table():
    def run(p50, errors=0):
        return {"wall_s": 1.0, "throughput_rps": 1000.0 / p50, "p50_ms": p50, "p90_ms": 2 * p50, "p99_ms": 3 * p50,
                "max_ms": 4 * p50, "mean_ms": p50, "errors": errors, "error_examples": ["boom"] * errors, "requests": 10}

    batched = median_of([run(2.0), run(4.0), run(3.0, errors=1)])  # p50s 2, 4, 3 -> median 3
    assert (batched["p50_ms"], batched["p99_ms"], batched["errors"], batched["requests"]) == (3.0, 9.0, 1, 30)
    assert batched["throughput_rps"] == 1000.0 / 3.0 and batched["error_examples"] == ["boom"]
    alone = median_of([run(6.0)])
    result = {"clients": 2, "requests_per_client": 5, "repeat": 3, "model_alone_ms": 1.25,
              "variants": {"batched": batched, "one at a time": alone},
              "ratios": {"throughput": 2.0, "p50": 0.5, "p99": 0.5}}  # 333/167, 3/6, 9/18
    assert format_result(result).splitlines() == [
        "POST /api/tag on 127.0.0.1: 2 clients x 5 requests, 3 runs per server (medians over the runs; errors summed)",
        "  server         errors   p50 ms   p90 ms   p99 ms   max ms requests/s",
        "  batched             1      3.0      6.0      9.0     12.0        333",
        "      boom",
        "  one at a time       0      6.0     12.0     18.0     24.0        167",
        "  batched / one at a time: throughput x2.00, p50 x0.50, p99 x0.50",
        "  the model alone (tag one sentence, no HTTP, median): 1.25 ms",
    ]
