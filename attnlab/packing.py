"""Packed (padding-free) batches of variable-length sequences.

A packed batch is the layout of FlashAttention's varlen API:

    tokens      (T, ...)   the B sequences' rows one after the other
    cu_seqlens  (B + 1,)   int, sequence b is tokens[cu_seqlens[b] : cu_seqlens[b + 1]]

so ``cu_seqlens[0] == 0``, it never decreases, and ``cu_seqlens[-1] == T``. A
zero-length sequence (two equal neighbours) is allowed: it owns no token.

    >>> tokens, cu = pack([torch.randn(3, 8), torch.randn(5, 8)])   # (8, 8), [0, 3, 8]
    >>> padded = unpack_padded(tokens, cu)                           # (2, 5, 8), zeros after 3
    >>> tokens2, cu2 = pack_padded(padded, torch.tensor([3, 5]))     # back again
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .attention.masks import check_lengths


def check_cu_seqlens(cu_seqlens: torch.Tensor | Sequence[int], total: int | None = None) -> torch.Tensor:
    """Validate ``cu_seqlens`` (B + 1,) and return it as a long tensor.

    Raises ValueError (quoting the values) unless it is a 1-D integer tensor that starts
    at 0, never decreases, and ends at ``total`` (the number of packed tokens T) when given.
    """
    cu = torch.as_tensor(cu_seqlens)
    if cu.dim() != 1 or cu.numel() < 1:
        raise ValueError(f"cu_seqlens must have shape (B + 1,) with B >= 0, got shape {tuple(cu.shape)}")
    if cu.dtype.is_floating_point or cu.dtype.is_complex or cu.dtype == torch.bool:
        raise ValueError(f"cu_seqlens must hold integers, got dtype {cu.dtype}")
    cu = cu.long()
    values = cu.tolist()
    if values[0] != 0:
        raise ValueError(f"cu_seqlens must start at 0, got {_show(values)}")
    drops = [i for i in range(1, len(values)) if values[i] < values[i - 1]]
    if drops:
        i = drops[0]
        raise ValueError(
            f"cu_seqlens must not decrease, but cu_seqlens[{i}] = {values[i]} < cu_seqlens[{i - 1}] = "
            f"{values[i - 1]} in {_show(values)}"
        )
    if total is not None and values[-1] != total:
        raise ValueError(f"cu_seqlens must end at T = {total} (the number of tokens), got {_show(values)}")
    return cu


def _show(values: list[int], limit: int = 12) -> str:
    if len(values) <= limit:
        return str(values)
    return "[" + ", ".join(map(str, values[: limit // 2])) + ", ..., " + ", ".join(map(str, values[-limit // 2:])) + "]"


def cu_seqlens_from_lengths(lengths: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """lengths (B,) -> cu_seqlens (B + 1,) long: [0, l0, l0 + l1, ...]."""
    lengths = check_lengths(lengths)
    cu = torch.zeros(lengths.numel() + 1, dtype=torch.long, device=lengths.device)
    torch.cumsum(lengths, dim=0, out=cu[1:])
    return cu


def lengths_from_cu_seqlens(cu_seqlens: torch.Tensor) -> torch.Tensor:
    """cu_seqlens (B + 1,) -> lengths (B,)."""
    cu = check_cu_seqlens(cu_seqlens)
    return cu[1:] - cu[:-1]


def pack(seqs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """A list of B tensors (n_b, ...) with the same trailing shape -> tokens (T, ...), cu_seqlens (B + 1,)."""
    seqs = list(seqs)
    if not seqs:
        raise ValueError("pack needs at least one sequence (got an empty list)")
    trailing = tuple(seqs[0].shape[1:])
    for i, s in enumerate(seqs):
        if s.dim() < 1 or tuple(s.shape[1:]) != trailing:
            raise ValueError(
                f"sequence {i} has shape {tuple(s.shape)}; every sequence must be (n, {', '.join(map(str, trailing))})"
            )
    tokens = torch.cat(seqs, dim=0)
    cu = cu_seqlens_from_lengths(torch.tensor([s.shape[0] for s in seqs], device=tokens.device))
    return tokens, cu


def pack_padded(x: torch.Tensor, lengths: torch.Tensor | Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded x (B, N, ...) + lengths (B,) -> tokens (T, ...), cu_seqlens (B + 1,).

    Positions at or beyond a sequence's length are padding and are dropped. Without
    ``lengths`` every sequence is N long.
    """
    if x.dim() < 2:
        raise ValueError(f"x must have shape (B, N, ...), got {tuple(x.shape)}")
    b, n = x.shape[0], x.shape[1]
    if lengths is None:
        lengths = torch.full((b,), n, dtype=torch.long, device=x.device)
    lengths = check_lengths(lengths, n).to(x.device)
    if lengths.shape[0] != b:
        raise ValueError(f"lengths must have shape (B,) = ({b},), got {tuple(lengths.shape)}")
    cu = cu_seqlens_from_lengths(lengths)
    if int(cu[-1]) == b * n:
        return x.reshape(b * n, *x.shape[2:]), cu
    valid = torch.arange(n, device=x.device)[None, :] < lengths[:, None]  # (B, N)
    return x[valid], cu


def unpack(tokens: torch.Tensor, cu_seqlens: torch.Tensor) -> list[torch.Tensor]:
    """tokens (T, ...), cu_seqlens (B + 1,) -> list of B views (n_b, ...)."""
    cu = check_cu_seqlens(cu_seqlens, tokens.shape[0]).tolist()
    return [tokens[s:e] for s, e in zip(cu[:-1], cu[1:])]


def unpack_padded(
    tokens: torch.Tensor, cu_seqlens: torch.Tensor, n: int | None = None, *, value: float = 0.0
) -> torch.Tensor:
    """tokens (T, ...), cu_seqlens (B + 1,) -> padded (B, N, ...), padding filled with ``value``.

    N defaults to the longest sequence; a smaller N raises ValueError.
    """
    cu = check_cu_seqlens(cu_seqlens, tokens.shape[0])
    lengths = cu[1:] - cu[:-1]
    b = lengths.shape[0]
    longest = int(lengths.max()) if b else 0
    n = longest if n is None else n
    if n < longest:
        raise ValueError(f"n = {n} is shorter than the longest sequence ({longest})")
    if b * n == tokens.shape[0]:
        return tokens.reshape(b, n, *tokens.shape[1:])
    valid = torch.arange(n, device=tokens.device)[None, :] < lengths.to(tokens.device)[:, None]  # (B, N)
    out = tokens.new_full((b, n, *tokens.shape[1:]), value)
    out[valid] = tokens
    return out


def positions_in_sequence(cu_seqlens: torch.Tensor, total: int | None = None) -> torch.Tensor:
    """(T,) long: each token's index within its own sequence (token index minus its sequence start)."""
    cu = check_cu_seqlens(cu_seqlens, total)
    lengths = cu[1:] - cu[:-1]
    t = int(cu[-1])
    starts = torch.repeat_interleave(cu[:-1], lengths, output_size=t)  # (T,)
    return torch.arange(t, device=cu.device) - starts


def sequence_ids(cu_seqlens: torch.Tensor, total: int | None = None) -> torch.Tensor:
    """(T,) long: the sequence b each token belongs to."""
    cu = check_cu_seqlens(cu_seqlens, total)
    lengths = cu[1:] - cu[:-1]
    return torch.repeat_interleave(torch.arange(lengths.shape[0], device=cu.device), lengths, output_size=int(cu[-1]))
