"""Fully connected encoders: ``none`` (no context) and ``window`` (+-k neighbours).

Shape letters: B batch, N sequence, D_in input width, K = 2k + 1 window size.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import check_inputs


def _mlp(d_in: int, hidden: int, layers: int, dropout: float) -> nn.Sequential:
    parts: list[nn.Module] = []
    for i in range(layers):
        parts += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*parts)


class NoContextEncoder(nn.Module):
    """Each token's vector alone through fully connected layers: y_i = MLP(x_i)."""

    def __init__(self, d_in: int, config):
        super().__init__()
        self.d_in, self.out_dim = d_in, config.hidden
        self.mlp = _mlp(d_in, config.hidden, config.layers, config.dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = check_inputs(x, lengths, self.d_in)  # (B, N)
        return self.mlp(x) * mask.unsqueeze(-1)  # (B, N, hidden)


class WindowEncoder(nn.Module):
    """Fully connected layers over the concatenation [x_{i-k}; ...; x_i; ...; x_{i+k}].

    Neighbours outside the sentence (and padding) contribute zero vectors.
    """

    def __init__(self, d_in: int, config):
        super().__init__()
        self.d_in, self.k, self.out_dim = d_in, config.window, config.hidden
        self.mlp = _mlp((2 * self.k + 1) * d_in, config.hidden, config.layers, config.dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = check_inputs(x, lengths, self.d_in).unsqueeze(-1)  # (B, N, 1)
        x = x * mask  # padding -> zero vectors
        b, n, d = x.shape
        padded = F.pad(x, (0, 0, self.k, self.k))  # (B, N + 2k, D)
        windows = padded.unfold(1, 2 * self.k + 1, 1)  # (B, N, D, K)
        windows = windows.transpose(2, 3).reshape(b, n, (2 * self.k + 1) * d)  # (B, N, K*D)
        return self.mlp(windows) * mask  # (B, N, hidden)
