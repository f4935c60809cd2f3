"""The goals the packed encoder is measured against, and which of them a run met."""

from __future__ import annotations

TARGETS = {
    "inference_speedup": 2.0,
    "training_speedup": 2.0,
    "inference_of_matmul": 0.90,
    "training_of_matmul": 0.70,
    "long_ratio_min": 1.0,  # torch SDPA time / attnlab time, for N = 1k ... 8k
    "long_memory_gib": 1.0,  # at N = 65,536
}


def _target(text: str, value: float, met: bool) -> dict:
    return {"target": text, "value": value, "met": met}


def sentence_targets(settings: list[dict]) -> list[dict]:
    """Speed-up vs torch and share of the best matmul rate, per setting."""
    out = []
    for s in settings:
        mine = s["cases"]["attnlab"]
        tag = f"norm_first={s['norm_first']} {s['mode']}"
        speedup = TARGETS[s["mode"] + "_speedup"]
        out.append(_target(f"{tag}: speed-up vs torch >= {speedup:.1f}x", mine["speedup_vs_torch"],
                           mine["speedup_vs_torch"] >= speedup))
        goal = TARGETS[s["mode"] + "_of_matmul"]
        out.append(_target(f"{tag}: useful FLOP/s >= {goal:.0%} of matmul", mine["of_matmul"], mine["of_matmul"] >= goal))
    return out


def long_targets(long_rows: list[dict]) -> list[dict]:
    """attnlab at least as fast as torch SDPA for N = 1k ... 8k; at most 1 GiB extra at N = 65,536."""
    out = []
    for row in long_rows:
        if 1024 <= row["n"] <= 8192:
            out.append(_target(f"long N={row['n']}: torch SDPA time / attnlab time >= 1.0", row["ratio"],
                               row["ratio"] >= TARGETS["long_ratio_min"]))
        extra = row["attnlab varlen"].get("peak_extra_bytes")
        if row["n"] == 65536 and extra is not None:
            out.append(_target("long N=65536: attnlab peak extra memory <= 1 GiB", extra / 1024**3,
                               extra <= TARGETS["long_memory_gib"] * 1024**3))
    return out


def check_targets(settings: list[dict], long_rows: list[dict]) -> list[dict]:
    return sentence_targets(settings) + long_targets(long_rows)
