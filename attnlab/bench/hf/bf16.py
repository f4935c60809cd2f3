"""bfloat16 beside float32 in `attnlab bench hf --bf16`: the same checkpoint loaded twice by
``attnlab.hf.load_encoder`` (weights and activations in bfloat16), which fast paths each ran
(``attnlab.kernels.record()``), and what bfloat16 costs in accuracy on the last hidden state.

Shape letters: T real word pieces, D width.
"""

from __future__ import annotations

FP32, BF16, INT8 = "attnlab packed", "attnlab packed bf16", "attnlab packed int8"


class InPrecision:
    """An encoder whose ``forward_packed`` runs inside ``attnlab.precision.autocast(precision)``
    (for int8: its linear layers as int8 products, weights per channel, inputs per row)."""

    def __init__(self, encoder, precision: str):
        self.encoder, self.precision = encoder, precision

    def forward_packed(self, *args, **kwargs):
        from ...precision import autocast

        with autocast(self.precision):
            return self.encoder.forward_packed(*args, **kwargs)


def paths_ran(encoder, batch) -> list[str]:
    """The names of the fast paths (native attention, oneDNN linear, ...) one batch took."""
    import torch

    from ...kernels import record

    with record() as ran, torch.inference_mode():
        encoder.forward_packed(batch.packed, batch.cu)
    return sorted(ran)


def hidden_difference(fp32, bf16) -> dict[str, float]:
    """How far ``bf16`` (T, D) is from ``fp32`` (T, D), both last hidden states over real pieces:
    max and mean |bf16 - fp32|, the relative error ||bf16 - fp32|| / ||fp32|| (Frobenius), and
    the cosine similarity of every piece's vector (the smallest and the mean)."""
    import torch

    a, b = fp32.float(), bf16.float()
    diff = (b - a).abs()
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=-1)  # (T,)
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
            "relative": float(torch.linalg.norm(b - a) / torch.linalg.norm(a)),
            "min_cosine": float(cosine.min()), "mean_cosine": float(cosine.mean())}


def bf16_accuracy(engines: dict, batch, name: str = BF16) -> dict[str, float]:
    """``hidden_difference`` of the encoder ``name`` (bfloat16, or int8) against the float32
    one on ``batch``."""
    import torch

    with torch.inference_mode():
        fp32, other = (engines[n].forward_packed(batch.packed, batch.cu).last_hidden_state for n in (FP32, name))
    return hidden_difference(fp32, other)


def format_bf16(report: dict) -> list[str]:
    """The report's lines on bfloat16 and int8 (none without ``--bf16`` / ``--int8``)."""
    lines = []
    acc8 = report.get("int8_accuracy")
    if acc8:
        rows = report["rows"]
        lines += [
            "", f"int8: {rows[FP32]['median_s'] / rows[INT8]['median_s']:.2f}x the speed of float32 (interleaved "
            "medians, same checkpoint and batches; linear layers as int8 products, weights per channel, inputs per row)",
            f"int8 vs float32, last hidden state over real pieces: max |diff| {acc8['max_abs']:.2e}, "
            f"mean |diff| {acc8['mean_abs']:.2e}, relative {acc8['relative']:.2e}, "
            f"cosine per piece min {acc8['min_cosine']:.5f} mean {acc8['mean_cosine']:.5f}"]
    for name, a in report.get("peer_accuracy", {}).items():
        lines.append(f"{name} vs attnlab float32, last hidden state over real pieces: max |diff| {a['max_abs']:.2e}, "
                     f"relative {a['relative']:.2e}, cosine per piece min {a['min_cosine']:.5f}")
    acc = report.get("bf16_accuracy")
    if not acc:
        return lines
    rows = report["rows"]
    ratio = rows[FP32]["median_s"] / rows[BF16]["median_s"]
    paths = "; ".join(f"{name}: {', '.join(ran) or 'none (plain PyTorch)'}" for name, ran in report["attnlab_paths"].items())
    return [
        "", f"bfloat16: {ratio:.2f}x the speed of float32 (interleaved medians, same checkpoint and batches)",
        f"bfloat16 vs float32, last hidden state over real pieces: max |diff| {acc['max_abs']:.2e}, "
        f"mean |diff| {acc['mean_abs']:.2e}, relative {acc['relative']:.2e}, "
        f"cosine per piece min {acc['min_cosine']:.5f} mean {acc['mean_cosine']:.5f}",
        f"fast paths that ran: {paths}",
    ] + lines
