"""``attention``: the packed Transformer encoder behind the shared padded interface.

Shape letters: B batch, N sequence, D model width (= hidden), T real tokens in the batch,
L layers, H heads.

The padded batch (B, N, D_in) is projected to D, packed to the T real tokens (T, D) with
``cu_seqlens`` (B+1,) marking where each sequence starts, run through
``attnlab.TransformerEncoder.forward_packed`` (no work on padding, no attention across
sequences) and scattered back to (B, N, D).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..packing import pack_padded, unpack_padded
from .common import check_inputs


class AttentionEncoder(nn.Module):
    def __init__(self, d_in: int, config):
        super().__init__()
        from ..modules import TransformerEncoder

        self.d_in, self.out_dim = d_in, config.hidden
        self.proj = nn.Linear(d_in, config.hidden)
        self.transformer = TransformerEncoder(
            config.hidden, config.heads, config.layers, config.d_ff,
            dropout=config.dropout, positions=config.positions, normalize=config.normalize, norm_first=True,
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        check_inputs(x, lengths, self.d_in)
        # 1) pack and project: (B, N, D_in) -> (T, D_in) -> (T, D)
        tokens, cu_seqlens = pack_padded(x, lengths)
        tokens = self.proj(tokens)
        # 2) encode every sequence on its own
        encoded = self.transformer.forward_packed(tokens, cu_seqlens)  # (T, D)
        # 3) unpack: (T, D) -> (B, N, D), zeros at padding
        return unpack_padded(encoded, cu_seqlens, x.shape[1])

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, lengths: torch.Tensor) -> list[list[torch.Tensor]]:
        """Per layer, the B sequences' attention weights, each (H, n_b, n_b)."""
        check_inputs(x, lengths, self.d_in)
        tokens, cu_seqlens = pack_padded(x, lengths)
        _, weights = self.transformer.forward_packed(self.proj(tokens), cu_seqlens, return_weights=True)
        return weights
