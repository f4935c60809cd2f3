"""``bilstm``: a bidirectional LSTM over the real tokens (padding is never read).

Shape letters: B batch, N sequence, D_in input width; out_dim = 2 * hidden.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .common import check_inputs


class BiLSTMEncoder(nn.Module):
    def __init__(self, d_in: int, config):
        super().__init__()
        self.d_in, self.out_dim = d_in, 2 * config.hidden
        self.lstm = nn.LSTM(
            d_in, config.hidden, num_layers=config.layers, bidirectional=True, batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = check_inputs(x, lengths, self.d_in)
        b, n, _ = x.shape
        lengths = torch.as_tensor(lengths).to("cpu", torch.long)
        real = lengths > 0  # pack_padded_sequence refuses empty sequences
        out = x.new_zeros(b, n, self.out_dim)
        if not bool(real.any()):
            return out
        packed = pack_padded_sequence(x[real], lengths[real], batch_first=True, enforce_sorted=False)
        y, _ = self.lstm(packed)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=n)  # (B', N, 2*hidden)
        out[real] = y
        return self.dropout(out) * mask.unsqueeze(-1)
