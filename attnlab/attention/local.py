"""Block self-attention: the sequence is cut into blocks of ``block`` positions and each position
attends only within its block, so cost grows linearly with the sequence (N * block scores, not
N^2). Layers alternate the cut (``shift``: the first block is ``block - shift`` positions long),
as shifted windows do, so that stacked layers pass information across every cut.

That is plain scaled dot-product attention under the mask ``block_mask`` (the readable twin,
which the tests hold this equal to); the fast form reshapes the blocks into a batch of small
attentions and never builds the N x N matrix. A character segmenter reads a document of any
length this way (``attnlab.tasks.segmenter``).

Shapes: q, k, v (B, N, H, d) — the layout a projection gives, no transposes; lengths (B,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .masks import check_lengths


def block_mask(n: int, block: int, shift: int = 0, *, device=None) -> torch.Tensor:
    """(n, n) boolean: query i may attend to key j iff (i + shift) // block == (j + shift) // block."""
    if block < 1 or not 0 <= shift < block:
        raise ValueError(f"need block >= 1 and 0 <= shift < block, got block={block}, shift={shift}")
    b = (torch.arange(n, device=device) + shift) // block
    return b[:, None] == b[None, :]


def block_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block: int, shift: int = 0,
                    lengths: torch.Tensor | None = None, *, dropout: float = 0.0) -> torch.Tensor:
    """Softmax attention of each query over the keys of its block (``block_mask``), keys past a
    sequence's length left out. (B, N, H, d) -> (B, N, H, d). A query whose block holds no real
    key (padding) gets the average of its block: finite, and ignored by callers."""
    if q.dim() != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"q, k, v must be (B, N, H, d) alike, got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if block < 1 or not 0 <= shift < block:
        raise ValueError(f"need block >= 1 and 0 <= shift < block, got block={block}, shift={shift}")
    B, N, H, d = q.shape
    nb = -(-(N + shift) // block)
    after = nb * block - N - shift

    def blocks(t: torch.Tensor) -> torch.Tensor:  # (B, N, H, e) -> (B * nb, H, block, e)
        t = F.pad(t, (0, 0, 0, 0, shift, after))
        return t.view(B, nb, block, H, t.shape[-1]).permute(0, 1, 3, 2, 4).reshape(B * nb, H, block, t.shape[-1])

    qb, kb, vb = blocks(q), blocks(k), blocks(v)
    scores = torch.matmul(qb, kb.transpose(-1, -2)) * d ** -0.5  # (B * nb, H, block, block)
    limit = torch.full((B,), N, device=q.device) if lengths is None else check_lengths(lengths, N).to(q.device)
    pos = torch.arange(nb * block, device=q.device) - shift
    real = ((pos >= 0) & (pos < limit[:, None])).view(B * nb, 1, 1, block)
    if not bool(real.all()):
        real = real | ~real.any(-1, keepdim=True)  # a block of padding only: attend to all of it (finite)
        scores = scores.masked_fill(~real, float("-inf"))
    weights = scores.softmax(-1)
    if dropout:
        weights = F.dropout(weights, dropout)
    out = torch.matmul(weights, vb)  # (B * nb, H, block, d)
    return out.view(B, nb, H, block, d).permute(0, 1, 3, 2, 4).reshape(B, nb * block, H, d)[:, shift:shift + N]
