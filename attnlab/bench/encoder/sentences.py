"""Part 1: batches of sentences through torch.nn.TransformerEncoder and attnlab's packed encoder.

Shape letters: B sentences per batch, N the longest of them, T their real tokens, D = d_model.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..flops import TRAINING_FACTOR, encoder_flops
from ..matmul import MATMUL_N, matmul_case
from ..memory import quiet_stderr
from ..timing import interleaved, warm_up
from .config import EncoderBenchConfig

if TYPE_CHECKING:
    import torch

MODES = ("inference", "training")


def build_pair(cfg: EncoderBenchConfig, norm_first: bool):
    """(torch's encoder, attnlab's with the same weights, attnlab's default rotary encoder)."""
    import torch
    import torch.nn as nn

    from ...modules import TransformerEncoder

    torch.manual_seed(cfg.seed)
    layer = nn.TransformerEncoderLayer(
        cfg.d_model, cfg.heads, cfg.d_ff, dropout=cfg.dropout, batch_first=True, norm_first=norm_first
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "enable_nested_tensor is True, but ... norm_first was True"
        theirs = nn.TransformerEncoder(
            layer, cfg.layers, norm=nn.LayerNorm(cfg.d_model) if norm_first else None, enable_nested_tensor=True
        )
    mine = TransformerEncoder.from_torch(theirs)
    rotary = TransformerEncoder(
        cfg.d_model, cfg.heads, cfg.layers, cfg.d_ff, dropout=cfg.dropout, positions="rotary", norm_first=norm_first
    )
    rotary.load_state_dict(mine.state_dict())
    return theirs, mine, rotary


@dataclass
class Batch:
    lengths: list[int]
    x: torch.Tensor  # (B, N, D) padded, zeros at padding
    pad: torch.Tensor  # (B, N) True = padding (torch's convention)
    tokens: torch.Tensor  # (T, D)
    cu: torch.Tensor  # (B + 1,)
    grad_padded: torch.Tensor  # (B, N, D), zeros at padding
    grad_packed: torch.Tensor  # (T, D), the same numbers


def make_batches(cfg: EncoderBenchConfig, population: list[int]) -> list[Batch]:
    """``cfg.batches`` batches of ``cfg.batch`` lengths drawn from ``population``, random inputs."""
    import torch

    from ...packing import cu_seqlens_from_lengths, pack_padded

    rng = random.Random(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    batches = []
    for _ in range(cfg.batches):
        lengths = [rng.choice(population) for _ in range(cfg.batch)]
        n = max(lengths)
        lt = torch.tensor(lengths)
        pad = torch.arange(n)[None, :] >= lt[:, None]  # (B, N)
        x = torch.randn(cfg.batch, n, cfg.d_model, generator=g).masked_fill(pad[..., None], 0.0)
        gp = torch.randn(cfg.batch, n, cfg.d_model, generator=g).masked_fill(pad[..., None], 0.0)
        tokens, cu = pack_padded(x, lt)
        grad_packed, _ = pack_padded(gp, lt)
        assert torch.equal(cu, cu_seqlens_from_lengths(lt))
        batches.append(Batch(lengths, x, pad, tokens.contiguous(), cu, gp, grad_packed.contiguous()))
    return batches


def encoder_cases(theirs, mine, batches: list[Batch], rotary=None) -> dict[str, dict[str, Callable[[], None]]]:
    """mode -> {case name -> a call that runs every batch once}."""
    import torch

    def packed(model, b: Batch):  # attnlab: (T, D) + cu_seqlens
        return model.forward_packed(b.tokens, b.cu)

    def masked(model, b: Batch):  # torch: (B, N, D) + key padding mask
        return model(b.x, src_key_padding_mask=b.pad)

    def padded(model, b: Batch):  # attnlab: (B, N, D) + lengths, packed and unpacked inside
        return model(b.x, torch.tensor(b.lengths))

    def infer(model, forward):
        def call():
            model.eval()
            with torch.no_grad():
                for b in batches:
                    forward(model, b)
        return call

    def train(model, forward):
        def call():
            model.train()
            for b in batches:
                torch.autograd.backward(forward(model, b), b.grad_packed if forward is packed else b.grad_padded)
            model.zero_grad(set_to_none=True)
        return call

    inference = {"torch": infer(theirs, masked), "attnlab": infer(mine, packed), "attnlab padded in/out": infer(mine, padded)}
    if rotary is not None:
        inference["attnlab rotary"] = infer(rotary, packed)
    return {"inference": inference, "training": {"torch": train(theirs, masked), "attnlab": train(mine, packed)}}


def check_same_function(theirs, mine, batch: Batch) -> float:
    """max |attnlab - torch| over the real tokens, eval mode."""
    import torch

    theirs.eval()
    mine.eval()
    with torch.no_grad():
        a = theirs(batch.x, src_key_padding_mask=batch.pad)[~batch.pad]
        b = mine.forward_packed(batch.tokens, batch.cu)
    return float((a - b).abs().max())


def profile_table(fn: Callable[[], None], rows: int = 14) -> str:
    """torch.profiler's table of one call, the most expensive operators first."""
    from torch.profiler import ProfilerActivity, profile

    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def forward_flops(cfg: EncoderBenchConfig, batches: list[Batch]) -> float:
    """Useful forward FLOPs per batch, averaged over the batches."""
    return sum(encoder_flops(b.lengths, cfg.d_model, cfg.d_ff, cfg.layers) for b in batches) / len(batches)


def time_mode(cases: dict[str, Callable[[], None]], work: float, batches: int, backend: str, repeats: int):
    """Interleave the cases of one mode with a matmul of about the same FLOPs (``work`` per
    batch). Returns (a row per case, the matmul's seconds per batch and its GFLOP/s)."""
    reference, ref_flops = matmul_case(work * batches, backend)
    cases = {**cases, "matmul": reference}
    warm_up(cases)
    timing = interleaved(cases, repeats, per_call=batches)
    ref = timing.pop("matmul")
    ref_gflops = ref_flops / batches / ref["median_s"] / 1e9
    rows = {
        name: {
            **t,
            "useful_gflops": work / t["median_s"] / 1e9,
            "speedup_vs_torch": timing["torch"]["median_s"] / t["median_s"],
            "of_matmul_same_moments": work / t["median_s"] / 1e9 / ref_gflops,
        }
        for name, t in timing.items()
    }
    return rows, ref["median_s"], ref_gflops


def run_sentences(cfg: EncoderBenchConfig, batches: list[Batch], backend: str, log: Callable[[str], None]):
    """Every norm_first setting in both modes, ``backend`` the interleaved matmul reference.
    Returns (settings, the interleaved matmul rows, profiler tables)."""
    flops = forward_flops(cfg, batches)
    settings, matmul, profiles = [], [], {}
    for norm_first in cfg.norm_first:
        theirs, mine, rotary = build_pair(cfg, norm_first)
        diff = check_same_function(theirs, mine, batches[0])
        cases = encoder_cases(theirs, mine, batches, rotary)
        for mode in MODES:
            work = flops * (TRAINING_FACTOR if mode == "training" else 1)
            rows, ref_s, ref_gflops = time_mode(cases[mode], work, len(batches), backend, cfg.repeats)
            tag = f"norm_first={norm_first} {mode}"
            matmul.append({"backend": backend, "n": MATMUL_N, "median_s": ref_s, "gflops": ref_gflops, "interleaved": tag})
            settings.append({"norm_first": norm_first, "mode": mode, "max_abs_diff": diff, "cases": rows,
                             "matmul_interleaved_gflops": ref_gflops})
            log(f"  {tag}: torch {rows['torch']['median_s'] * 1e3:.2f} ms, attnlab "
                f"{rows['attnlab']['median_s'] * 1e3:.2f} ms per batch")
            if cfg.profile:
                profiles[f"{tag} attnlab"] = profile_table(cases[mode]["attnlab"])
                profiles[f"{tag} torch"] = profile_table(cases[mode]["torch"])
    return settings, matmul, profiles
