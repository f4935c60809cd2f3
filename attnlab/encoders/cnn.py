"""``cnn``: stacked 1-D convolutions over the sequence, with residual connections.

Shape letters: B batch, N sequence, D width. Each block sees kernel-1 more neighbours,
so ``layers`` blocks of width ``kernel`` see +-layers*(kernel-1)/2 tokens.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import check_inputs


class ConvEncoder(nn.Module):
    def __init__(self, d_in: int, config):
        super().__init__()
        self.d_in, self.out_dim = d_in, config.hidden
        self.proj = nn.Linear(d_in, config.hidden)
        self.convs = nn.ModuleList(
            nn.Conv1d(config.hidden, config.hidden, config.kernel, padding=config.kernel // 2)
            for _ in range(config.layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(config.hidden) for _ in range(config.layers))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = check_inputs(x, lengths, self.d_in).unsqueeze(-1)  # (B, N, 1)
        h = self.proj(x) * mask  # (B, N, D)
        for conv, norm in zip(self.convs, self.norms):
            # padding is zeroed before every convolution, so it never leaks into real tokens
            c = conv(h.transpose(1, 2)).transpose(1, 2)  # (B, D, N) -> (B, N, D)
            h = norm(h + self.dropout(F.gelu(c))) * mask
        return h
