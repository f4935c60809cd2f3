"""The printed report of `attnlab bench encoder`: a header, the sentence table, the long-sequence
table and the targets (markdown tables, as BENCHMARKS.md quotes them)."""

from __future__ import annotations

from ..memory import MIB


def _header(report: dict) -> list[str]:
    m, cfg = report["machine"], report["config"]
    yes = {True: "yes", False: "no"}
    return [
        f"machine: {m['cpu']}, {m['nproc']} CPUs, torch {m['torch']}, python {m['python']}, "
        f"{cfg['threads_used']} torch threads, native kernels: {yes[report['native_kernels']]}, "
        f"oneDNN linear: {yes[report['onednn_linear']]}, glibc keeps freed memory: "
        f"{yes[report['malloc_tuned']]}",
        f"lengths: {report['lengths_source']}",
        f"batches of {cfg['batch']} sentences: {report['tokens_per_batch']:.0f} real tokens "
        f"({report['padded_tokens_per_batch']:.0f} padded), {report['useful_gflop_per_batch']:.3f} useful GFLOP "
        f"per forward; {cfg['layers']} layers, d_model {cfg['d_model']}, {cfg['heads']} heads, d_ff {cfg['d_ff']}, "
        f"dropout {cfg['dropout']}, float32",
        "matmul, square float32, GFLOP/s (mkl = torch.mm, onednn = mkldnn._linear_pointwise): "
        + ", ".join(
            f"{r['backend']} n={r['n']}{' interleaved' if r.get('interleaved') else ''}: {r['gflops']:.0f}"
            for r in report["matmul"]
        )
        + f"; best {report['matmul_best_gflops']:.1f}",
    ]


def _sentence_table(settings: list[dict]) -> list[str]:
    lines = [
        "| norm_first | mode | case | ms per batch | speed-up vs torch | useful GFLOP/s | of best matmul | of interleaved matmul |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in settings:
        for name, row in s["cases"].items():
            lines.append(
                f"| {s['norm_first']} | {s['mode']} | {name} | {row['median_s'] * 1e3:.2f} | "
                f"{row['speedup_vs_torch']:.2f}x | {row['useful_gflops']:.1f} | {row['of_matmul']:.1%} | "
                f"{row['of_matmul_same_moments']:.1%} |"
            )
    diffs = ", ".join(f"norm_first={s['norm_first']}: {s['max_abs_diff']:.1e}" for s in settings if s["mode"] == "inference")
    return lines + ["", f"same function check, max |attnlab - torch| over real tokens (eval): {diffs}"]


def _long_table(long_rows: list[dict]) -> list[str]:
    lines = [
        "| N | torch SDPA ms | attnlab varlen ms | ratio (torch / attnlab) | GFLOP/s attnlab | peak extra MiB torch | peak extra MiB attnlab |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in long_rows:
        def mem(name):
            b = row[name].get("peak_extra_bytes")
            return "-" if b is None else f"{b / MIB:.1f}"

        a = row["attnlab varlen"]["median_s"]
        lines.append(
            f"| {row['n']} | {row['torch SDPA']['median_s'] * 1e3:.2f} | {a * 1e3:.2f} | {row['ratio']:.3f} | "
            f"{row['flops'] / a / 1e9:.1f} | {mem('torch SDPA')} | {mem('attnlab varlen')} |"
        )
    return lines


def format_report(report: dict) -> str:
    lines = _header(report) + [""] + _sentence_table(report["settings"]) + [""] + _long_table(report["long"])
    lines += ["", "targets:"]
    for t in report["targets"]:
        lines.append(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['value']:.3f}")
    for name, table in report.get("profiles", {}).items():
        lines += ["", f"profile, {name} (all batches once):", table]
    lines.append(f"\nwall time {report['wall_s']:.0f} s")
    return "\n".join(lines)
