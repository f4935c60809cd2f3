"""`attnlab bench hf`: a BERT checkpoint in attnlab's packed engine beside the engines people
run it with on CPU, all padded: ``transformers`` (``attn_implementation="sdpa"`` and
``"eager"``) and ONNX Runtime (the model exported and fused by ONNX Runtime's transformer
optimiser).

One random bert-base-sized checkpoint (12 layers, 768 wide, 12 heads, d_ff 3072) is saved
as safetensors and loaded by every engine, so all compute the same function (the run
checks it). Batches of 64 sentences whose lengths in words are drawn from EWT (``--treebank``,
``$ATTNLAB_DATA`` or the shipped histogram) and turned into word pieces as
round(words x ``pieces_per_word``) + 2. Everything runs under ``torch.inference_mode`` with
``threads`` threads (ONNX Runtime: as many intra-op threads); the cases run interleaved
(``timing.interleaved``), every sample is the mean time per batch over all batches, and
medians over the rounds are reported, with the speed-ups of attnlab and the useful FLOP/s
(real pieces only, ``flops.encoder_flops``) against the best square matmul of the same run.

    config.py    HFBenchConfig, QUICK, the targets
    engines.py   the checkpoint, the batches, the transformers models, the ONNX export
    report.py    the printed report
    bf16.py      ``--bf16``: attnlab in bfloat16 beside float32, its accuracy and fast paths
"""

from __future__ import annotations

import time
from pathlib import Path
from collections.abc import Callable
from dataclasses import asdict

from ..encoder.lengths import length_source
from ..flops import encoder_flops
from ..machine import machine_info
from ..matmul import matmul_rates
from ..timing import interleaved, warm_up
from .bf16 import BF16, FP32, INT8, InPrecision, bf16_accuracy, paths_ran
from .config import OF_MATMUL_TARGET, QUICK, TARGETS, HFBenchConfig
from .engines import (Batch, export_onnx, load_transformers, make_batches, ort_session, quantized_onnx, save_random_bert,
                      temporary_directory)

TF_BF16, ORT_INT8 = "transformers sdpa bf16", "onnxruntime int8"
from .report import format_report

__all__ = ["QUICK", "HFBenchConfig", "format_report", "run"]


def engine_cases(engines: dict, batches: list[Batch]) -> dict[str, Callable[[], None]]:
    """name -> a call that runs every batch once through that engine."""
    import torch

    def packed(encoder):
        def call():
            with torch.inference_mode():
                for b in batches:
                    encoder.forward_packed(b.packed, b.cu)
        return call

    def padded(model):
        def call():
            with torch.inference_mode():
                for b in batches:
                    model(input_ids=b.ids, attention_mask=b.mask, token_type_ids=torch.zeros_like(b.ids))
        return call

    def onnx(session):
        def call():
            for b in batches:
                session.run(None, b.onnx_feed)
        return call

    kinds = {FP32: packed, BF16: packed, INT8: packed, "transformers sdpa": padded, "transformers eager": padded,
             TF_BF16: padded, "onnxruntime": onnx, ORT_INT8: onnx}
    return {name: kinds[name](engine) for name, engine in engines.items()}


def peer_outputs(engines: dict, batch: Batch):
    """attnlab's fp32 last hidden state over the real pieces of ``batch`` (T, D), and every
    peer's, by name."""
    import torch

    real = batch.mask.bool()
    with torch.inference_mode():
        mine = engines["attnlab packed"].forward_packed(batch.packed, batch.cu).last_hidden_state
        out = {}
        for name, engine in engines.items():
            if name.startswith("transformers"):
                out[name] = engine(input_ids=batch.ids, attention_mask=batch.mask).last_hidden_state[real].float()
            elif name.startswith("onnxruntime"):
                out[name] = torch.from_numpy(engine.run(None, batch.onnx_feed)[0])[real]
    return mine, out


def max_differences(engines: dict, batch: Batch) -> dict[str, float]:
    """max |engine - attnlab| over the real pieces of ``batch``, per peer."""
    mine, theirs = peer_outputs(engines, batch)
    return {name: float((out - mine).abs().max()) for name, out in theirs.items()}


def peer_accuracy(engines: dict, batch: Batch) -> dict[str, dict[str, float]]:
    """``hidden_difference`` against attnlab's fp32 of the peers in a lower precision."""
    from .bf16 import hidden_difference

    mine, theirs = peer_outputs(engines, batch)
    return {name: hidden_difference(mine, out) for name, out in theirs.items() if name in (TF_BF16, ORT_INT8)}


def build_engines(cfg: HFBenchConfig, directory, log: Callable[[str], None]) -> tuple[dict, dict]:
    """Every engine with the weights of one checkpoint saved in ``directory``; and notes on the ONNX export."""
    import torch

    from ...hf import load_encoder

    eager = save_random_bert(cfg, directory)
    engines = {FP32: load_encoder(directory), "transformers sdpa": load_transformers(directory, "sdpa"),
               "transformers eager": eager}
    if cfg.bf16:
        engines[BF16] = load_encoder(directory, dtype=torch.bfloat16)
        engines[TF_BF16] = load_transformers(directory, "sdpa").to(torch.bfloat16)  # the peer at its bf16
    if cfg.int8:
        engines[INT8] = InPrecision(engines[FP32], "int8")
    notes = {}
    if cfg.onnx:
        path, fused, seconds = export_onnx(eager, cfg, directory)
        engines["onnxruntime"] = ort_session(path, cfg.threads)
        notes = {"fused_operators": fused, "export_s": seconds}
        if cfg.int8:  # the peer at its int8: ONNX Runtime's dynamic quantization of the fused model
            engines[ORT_INT8] = ort_session(quantized_onnx(path), cfg.threads)
        log(f"ONNX export and optimisation: {seconds:.0f} s, fused {fused}")
    return engines, notes


def timing_rows(cases: dict, cfg: HFBenchConfig, batches: list[Batch], best_gflops: float) -> dict[str, dict]:
    """The interleaved medians of every case, with speed-ups of attnlab and useful FLOP/s."""
    warm_up(cases)
    timing = interleaved(cases, cfg.repeats, per_call=len(batches))
    flops = sum(encoder_flops(b.lengths, cfg.width, cfg.d_ff, cfg.layers) for b in batches) / len(batches)
    tokens = sum(sum(b.lengths) for b in batches) / len(batches)
    mine = timing["attnlab packed"]["median_s"]
    return {
        name: {**t, "attnlab_speedup": t["median_s"] / mine, "real_pieces_per_s": tokens / t["median_s"],
               "useful_gflops": flops / t["median_s"] / 1e9, "of_matmul": flops / t["median_s"] / 1e9 / best_gflops}
        for name, t in timing.items()
    }


def check_targets(rows: dict[str, dict]) -> list[dict]:
    out = [{"target": f"attnlab packed >= {goal:.1f}x {name}", "value": rows[name]["attnlab_speedup"],
            "met": rows[name]["attnlab_speedup"] >= goal} for name, goal in TARGETS.items() if name in rows]
    share = rows["attnlab packed"]["of_matmul"]
    return out + [{"target": f"attnlab useful FLOP/s >= {OF_MATMUL_TARGET:.0%} of the best matmul", "value": share,
                   "met": share >= OF_MATMUL_TARGET}]


def run(cfg: HFBenchConfig, log: Callable[[str], None] = print) -> dict:
    """The whole benchmark; the report ``format_report`` prints."""
    import torch

    torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    population, source = length_source(cfg.treebank)
    batches = make_batches(cfg, population)
    log(f"lengths from {source}; {cfg.batches} batch(es) of {cfg.batch}")
    with temporary_directory() as directory:
        engines, notes = build_engines(cfg, Path(directory), log)
        differences = max_differences(engines, batches[0])
        accuracy = bf16_accuracy(engines, batches[0]) if cfg.bf16 else {}
        accuracy8 = bf16_accuracy(engines, batches[0], INT8) if cfg.int8 else {}
        accuracy_peers = peer_accuracy(engines, batches[0])
        ran = {name: paths_ran(engines[name], batches[0]) for name in (FP32, BF16) if name in engines}
        matmul = matmul_rates(cfg.matmul_sizes)
        rows = timing_rows(engine_cases(engines, batches), cfg, batches, max(r["gflops"] for r in matmul))
        profiles = profile_engines(engines, batches[:1]) if cfg.profile else {}
    return {
        "machine": {**machine_info(), "threads_used": torch.get_num_threads()},
        "config": asdict(cfg),
        "lengths_source": source,
        "pieces_per_batch": sum(sum(b.lengths) for b in batches) / len(batches),
        "padded_pieces_per_batch": sum(len(b.lengths) * max(b.lengths) for b in batches) / len(batches),
        "matmul": matmul,
        "max_abs_diff_vs_attnlab": differences,
        "onnx": notes,
        "bf16_accuracy": accuracy,
        "int8_accuracy": accuracy8,
        "peer_accuracy": accuracy_peers,
        "attnlab_paths": ran,
        "rows": rows,
        "targets": check_targets(rows),
        "profiles": profiles,
        "wall_s": time.perf_counter() - started,
    }


def profile_engines(engines: dict, batches: list[Batch]) -> dict[str, str]:
    """torch.profiler tables of one batch through attnlab (and its bfloat16 form) and transformers sdpa."""
    from ..encoder.sentences import profile_table

    cases = engine_cases({k: v for k, v in engines.items() if k in (FP32, BF16, "transformers sdpa")}, batches)
    return {name: profile_table(call) for name, call in cases.items()}
