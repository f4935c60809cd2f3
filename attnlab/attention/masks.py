"""Boolean attention masks: True = the query (row) may attend to the key (column).

Every mask here is a plain ``torch.bool`` tensor, so masks combine with ``&``
(both must allow) and ``|`` (either allows) and broadcast like any tensor:

    >>> m = from_lengths(torch.tensor([3, 5]), 5) & causal(5)   # (2, 1, 5, 5)

Shapes: ``causal``, ``window`` and ``from_graph`` give (N, N); ``from_lengths``
gives (B, 1, 1, N) (a key mask that broadcasts over heads and queries), or
(B, 1, N, N) with ``queries=True`` (padded query rows then attend to nothing and
their outputs are zeros).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch


def _check_n(n: int) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    return n


def check_lengths(lengths: torch.Tensor | Sequence[int], n: int | None = None) -> torch.Tensor:
    """Validate ``lengths`` (B,): integers >= 0 and, when a padded length ``n`` is given,
    <= n. Returns a long tensor."""
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1:
        raise ValueError(f"lengths must have shape (B,), got {tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be integers, got dtype {lengths.dtype}")
    if lengths.numel() and int(lengths.min()) < 0:
        raise ValueError(f"lengths must be >= 0, got {lengths.tolist()}")
    if n is not None and lengths.numel() and int(lengths.max()) > n:
        raise ValueError(f"lengths must be <= N = {n}, got max {int(lengths.max())}")
    return lengths.long()


def from_lengths(lengths: torch.Tensor | Sequence[int], n: int, *, queries: bool = False) -> torch.Tensor:
    """Mask of real (non-padding) positions for sequences of the given lengths.

    Key j of sequence b may be attended iff j < lengths[b]. Returns (B, 1, 1, n);
    with ``queries=True`` also masks padded query rows: (B, 1, n, n).
    """
    n = _check_n(n)
    lengths = check_lengths(lengths, n)
    valid = torch.arange(n, device=lengths.device)[None, :] < lengths[:, None]  # (B, n)
    if queries:
        return (valid[:, None, :, None] & valid[:, None, None, :])  # (B, 1, n, n)
    return valid[:, None, None, :]  # (B, 1, 1, n)


def causal(n: int, *, device=None) -> torch.Tensor:
    """Query i may attend to keys j <= i. (n, n)."""
    n = _check_n(n)
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def window(n: int, radius: int, *, device=None) -> torch.Tensor:
    """Query i may attend to keys with |i - j| <= radius: the seed's fixed window,
    or a CNN's receptive field of width 2 * radius + 1. (n, n)."""
    n = _check_n(n)
    if not isinstance(radius, int) or radius < 0:
        raise ValueError(f"radius must be a non-negative int, got {radius!r}")
    idx = torch.arange(n, device=device)
    return (idx[:, None] - idx[None, :]).abs() <= radius


def _is_adjacency(x, n: int) -> bool:
    """Boolean or floating (n, n) arrays are adjacency matrices; so are integer
    (n, n) arrays unless n == 2, where (2, 2) integers read as two edges."""
    if not hasattr(x, "shape") or len(x.shape) != 2:
        return False
    t = torch.as_tensor(x)
    if t.dtype == torch.bool or t.dtype.is_floating_point:
        return True
    return tuple(t.shape) == (n, n) and n != 2


def from_graph(
    edges_or_adjacency: torch.Tensor | Iterable[tuple[int, int]],
    n: int,
    *,
    directed: bool = False,
    self_loops: bool = True,
) -> torch.Tensor:
    """Mask that lets node i attend to node j iff there is an edge i -> j.

    ``edges_or_adjacency`` is either an (n, n) adjacency matrix (non-zero = edge)
    or an iterable of (i, j) pairs / an (E, 2) integer tensor (for n = 2, pass
    the adjacency as booleans: an integer (2, 2) array is read as two edges). Undirected by
    default (an edge i-j lets each attend to the other); every node attends to
    itself unless ``self_loops=False``. Returns (n, n).
    """
    n = _check_n(n)
    if _is_adjacency(edges_or_adjacency, n):
        adj = torch.as_tensor(edges_or_adjacency)
        if tuple(adj.shape) != (n, n):
            raise ValueError(f"adjacency must have shape (n, n) = ({n}, {n}), got {tuple(adj.shape)}")
        mask = adj != 0
    else:
        edges = torch.as_tensor(
            list(edges_or_adjacency) if not isinstance(edges_or_adjacency, torch.Tensor) else edges_or_adjacency,
            dtype=torch.long,
        )
        if edges.numel() == 0:
            edges = edges.reshape(0, 2)
        if edges.dim() != 2 or edges.shape[1] != 2:
            raise ValueError(f"edges must be (i, j) pairs, shape (E, 2); got {tuple(edges.shape)}")
        if edges.numel() and (int(edges.min()) < 0 or int(edges.max()) >= n):
            raise ValueError(f"edge endpoints must be in [0, {n}), got range [{int(edges.min())}, {int(edges.max())}]")
        mask = torch.zeros(n, n, dtype=torch.bool)
        mask[edges[:, 0], edges[:, 1]] = True
    if not directed:
        mask = mask | mask.T
    if self_loops:
        mask = mask | torch.eye(n, dtype=torch.bool, device=mask.device)
    return mask
