"""`attnlab bench hf`: word-piece lengths, the two forms of a batch, the options, the missing
extra, and one run end to end on a tiny checkpoint (every engine computes attnlab's numbers)."""

from __future__ import annotations

import pytest
import torch

import attnlab.errors
from attnlab.bench.hf import QUICK, HFBenchConfig, format_report, run
from attnlab.bench.hf.engines import make_batches, pieces_of
from attnlab.cli import build_parser, main
from attnlab.cli.bench import hf_config

TINY = HFBenchConfig(batch=3, batches=2, repeats=1, layers=2, width=32, heads=4, d_ff=64, vocab_size=100,
                     max_positions=64, threads=1, matmul_sizes=(64,))


def test_word_pieces_per_sentence():
    assert pieces_of(10, TINY) == 15  # round(10 x 1.3) + [CLS] + [SEP]
    assert pieces_of(1, TINY) == 3
    assert pieces_of(200, TINY) == 64  # at most max_positions


def test_a_batch_in_its_padded_and_packed_forms():
    (first, second) = make_batches(TINY, [4, 10, 20])
    assert first.lengths != second.lengths or not torch.equal(first.ids, second.ids)
    lengths = torch.tensor(first.lengths)
    assert set(first.lengths) <= {7, 15, 28} and first.ids.shape == (3, max(first.lengths))
    assert first.mask.sum(1).tolist() == first.lengths
    assert (first.ids[first.mask == 0] == 0).all() and (first.ids[first.mask == 1] > 0).all()
    assert torch.equal(first.packed, first.ids[first.mask.bool()])
    assert first.cu.tolist() == [0, *lengths.cumsum(0).tolist()]
    assert first.onnx_feed["position_ids"][1].tolist() == list(range(max(first.lengths)))


def _args(*argv):
    return build_parser().parse_args(["bench", "hf", *argv])


def test_options_fill_the_config():
    cfg = hf_config(_args("--quick", "--threads", "1", "--no-onnx", "--pieces-per-word", "1.5"))
    assert (cfg.batches, cfg.repeats, cfg.threads, cfg.onnx, cfg.pieces_per_word) == (1, 3, 1, False, 1.5)
    assert QUICK == {"batches": 1, "repeats": 3}
    assert (cfg.bf16, hf_config(_args("--bf16")).bf16) == (False, True)
    full = hf_config(_args("--repeats", "2"))
    assert (full.batches, full.repeats, full.threads, full.onnx, full.layers, full.width, full.heads, full.batch) == (
        3, 2, 2, True, 12, 768, 12, 64)


@pytest.mark.parametrize("argv, message", [
    (["--repeats", "0"], "argument --repeats: expected an integer >= 1, got '0'"),
    (["--threads", "0"], "argument --threads: expected an integer >= 1, got '0'"),
    (["--pieces-per-word", "0.5"], "argument --pieces-per-word: expected a finite number >= 1, got '0.5'"),
])
def test_bad_options_exit_2_before_any_work(argv, message, capsys):
    assert main(["bench", "hf", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_without_the_extra_the_command_names_it(monkeypatch, capsys):
    monkeypatch.setattr(attnlab.errors, "_importable", lambda module: module != "onnxruntime")
    assert main(["bench", "hf", "--quick"]) == 2
    assert capsys.readouterr().err == "attnlab bench: needs the 'hf' extra: pip install 'attnlab[hf]'\n"


def test_a_tiny_run_end_to_end():
    pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
    pytest.importorskip("onnxruntime", reason="the hf extra (onnxruntime) is not installed")
    report = run(TINY, log=lambda line: None)
    assert list(report["rows"]) == ["attnlab packed", "transformers sdpa", "transformers eager", "onnxruntime"]
    for name, diff in report["max_abs_diff_vs_attnlab"].items():
        assert diff < 1e-5, name
    assert report["onnx"]["fused_operators"]["Attention"] == TINY.layers  # ONNX Runtime's fused attention ran
    mine = report["rows"]["attnlab packed"]
    assert mine["attnlab_speedup"] == 1.0 and len(mine["samples_s"]) == TINY.repeats
    assert report["pieces_per_batch"] < report["padded_pieces_per_batch"]
    assert [t["target"] for t in report["targets"]] == [
        "attnlab packed >= 3.0x transformers sdpa", "attnlab packed >= 1.5x onnxruntime",
        "attnlab useful FLOP/s >= 90% of the best matmul",
    ]
    text = format_report(report)
    assert "| engine | input | ms per batch | attnlab speed-up |" in text and "| onnxruntime | padded |" in text


def test_a_tiny_run_with_bf16():
    pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
    from dataclasses import replace

    from attnlab.kernels import native

    report = run(replace(TINY, bf16=True, onnx=False), log=lambda line: None)
    assert list(report["rows"]) == ["attnlab packed", "transformers sdpa", "transformers eager", "attnlab packed bf16",
                                    "transformers sdpa bf16"]
    # the peer at its bf16 too, with what that costs it against attnlab's fp32
    peer = report["peer_accuracy"]["transformers sdpa bf16"]
    assert 1e-4 < peer["relative"] < 5e-2 and "transformers sdpa bf16 vs attnlab float32" in format_report(report)
    acc = report["bf16_accuracy"]
    assert 1e-4 < acc["relative"] < 5e-2 and acc["min_cosine"] > 0.995  # see test_hf_bf16.py for the bound
    assert "attnlab packed bf16" not in report["max_abs_diff_vs_attnlab"]  # bf16 is not held to 1e-5
    # the native attention kernel and oneDNN linear take float32 only: bf16 runs plain PyTorch
    assert report["attnlab_paths"]["attnlab packed bf16"] == []
    if native.unavailable_reason() is None:
        assert "native attention" in report["attnlab_paths"]["attnlab packed"]
    text = format_report(report)
    rows = report["rows"]
    ratio = rows["attnlab packed"]["median_s"] / rows["attnlab packed bf16"]["median_s"]
    assert f"bfloat16: {ratio:.2f}x the speed of float32" in text
    assert "| attnlab packed bf16 | packed |" in text
    assert "attnlab packed bf16: none (plain PyTorch)" in text
    assert "bfloat16" not in format_report(run(replace(TINY, onnx=False), log=lambda line: None))


def test_a_tiny_run_with_int8():
    pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
    from dataclasses import replace

    report = run(replace(TINY, int8=True, onnx=False), log=lambda line: None)
    assert "attnlab packed int8" in report["rows"]
    acc = report["int8_accuracy"]
    # it ran in int8 (not exact) and stayed close to float32
    assert 1e-4 < acc["relative"] < 5e-2 and acc["min_cosine"] > 0.99
    assert "int8: " in format_report(report)


def test_onnx_runtime_in_int8_beside_attnlab_in_int8():
    pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    from dataclasses import replace

    report = run(replace(TINY, int8=True), log=lambda line: None)
    assert {"attnlab packed int8", "onnxruntime", "onnxruntime int8"} <= set(report["rows"])
    peer = report["peer_accuracy"]["onnxruntime int8"]
    assert 1e-4 < peer["relative"] < 0.1  # quantized: not exact, still the same function
    assert report["max_abs_diff_vs_attnlab"]["onnxruntime"] < 1e-4
