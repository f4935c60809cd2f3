"""Small helpers shared by the encoders. Shape letters: B batch, N sequence, D width."""

from __future__ import annotations

import torch


def token_mask(lengths: torch.Tensor, n: int) -> torch.Tensor:
    """(B,) lengths -> (B, N) boolean, True at real tokens."""
    return torch.arange(n, device=lengths.device) < lengths.to(torch.long).unsqueeze(1)


def check_inputs(x: torch.Tensor, lengths: torch.Tensor, d_in: int) -> torch.Tensor:
    """Validate x (B, N, D_in) and lengths (B,); return the (B, N) token mask."""
    if x.dim() != 3 or x.shape[-1] != d_in:
        raise ValueError(f"x must have shape (B, N, {d_in}), got {tuple(x.shape)}")
    lengths = torch.as_tensor(lengths, device=x.device)
    if lengths.dim() != 1 or lengths.shape[0] != x.shape[0]:
        raise ValueError(f"lengths must have shape (B,) = ({x.shape[0]},), got {tuple(lengths.shape)}")
    if lengths.numel() and (int(lengths.max()) > x.shape[1] or int(lengths.min()) < 0):
        raise ValueError(f"lengths must lie in [0, N = {x.shape[1]}], got {lengths.tolist()}")
    return token_mask(lengths, x.shape[1])
