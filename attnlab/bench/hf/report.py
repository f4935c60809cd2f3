"""The printed report of `attnlab bench hf` (markdown tables, as BENCHMARKS.md quotes them)."""

from __future__ import annotations

from .bf16 import format_bf16


def format_report(report: dict) -> str:
    m, cfg = report["machine"], report["config"]
    best = max(r["gflops"] for r in report["matmul"])
    lines = [
        f"machine: {m['cpu']}, {m['nproc']} CPUs, torch {m['torch']}, python {m['python']}, "
        f"{m['threads_used']} threads (ONNX Runtime: {cfg['threads']} intra-op)",
        f"lengths: {report['lengths_source']}, x {cfg['pieces_per_word']} word pieces per word + 2",
        f"batches of {cfg['batch']}: {report['pieces_per_batch']:.0f} real word pieces "
        f"({report['padded_pieces_per_batch']:.0f} padded); BERT {cfg['layers']} layers, width {cfg['width']}, "
        f"{cfg['heads']} heads, d_ff {cfg['d_ff']}, float32, random weights",
        f"best square matmul: {best:.1f} GFLOP/s",
        "",
        "| engine | input | ms per batch | attnlab speed-up | real pieces/s | useful GFLOP/s | of best matmul |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in report["rows"].items():
        form = "packed" if name.startswith("attnlab") else "padded"
        lines.append(
            f"| {name} | {form} | {row['median_s'] * 1e3:.0f} | {row['attnlab_speedup']:.2f}x | "
            f"{row['real_pieces_per_s']:.0f} | {row['useful_gflops']:.1f} | {row['of_matmul']:.0%} |"
        )
    diffs = ", ".join(f"{k}: {v:.1e}" for k, v in report["max_abs_diff_vs_attnlab"].items())
    lines += ["", f"same function check, max |engine - attnlab| over real pieces: {diffs}"]
    if report["onnx"]:
        lines.append(f"ONNX Runtime fused operators: {report['onnx']['fused_operators']}")
    lines += format_bf16(report)
    lines += ["", "targets:"]
    lines += [f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['value']:.2f}" for t in report["targets"]]
    for name, table in report["profiles"].items():
        lines += ["", f"profile, one batch, {name}:", table]
    lines.append(f"\nwall time {report['wall_s']:.0f} s")
    return "\n".join(lines)
