"""Boolean masks (True = may attend): values checked against explicit loops."""

import pytest
import torch

from attnlab import masks


def loop_mask(n, allowed):
    return torch.tensor([[bool(allowed(i, j)) for j in range(n)] for i in range(n)])


def test_from_lengths_keys_and_queries():
    lengths = torch.tensor([3, 0, 5])
    keys = masks.from_lengths(lengths, 5)
    assert keys.shape == (3, 1, 1, 5) and keys.dtype == torch.bool
    for b, length in enumerate([3, 0, 5]):
        assert keys[b, 0, 0].tolist() == [j < length for j in range(5)]
    both = masks.from_lengths([3, 0, 5], 5, queries=True)
    assert both.shape == (3, 1, 5, 5)
    for b, length in enumerate([3, 0, 5]):
        torch.testing.assert_close(both[b, 0], loop_mask(5, lambda i, j: i < length and j < length))


def test_causal_and_window_by_loops():
    torch.testing.assert_close(masks.causal(6), loop_mask(6, lambda i, j: j <= i))
    for radius in (0, 1, 2, 10):
        torch.testing.assert_close(masks.window(6, radius), loop_mask(6, lambda i, j: abs(i - j) <= radius))
    assert masks.causal(0).shape == (0, 0)


def test_masks_combine_with_and_and_or():
    m = masks.from_lengths(torch.tensor([2, 4]), 4) & masks.causal(4)
    assert m.shape == (2, 1, 4, 4)
    torch.testing.assert_close(m[0, 0], loop_mask(4, lambda i, j: j <= i and j < 2))
    torch.testing.assert_close(m[1, 0], loop_mask(4, lambda i, j: j <= i))
    either = masks.window(5, 0) | masks.causal(5).T
    torch.testing.assert_close(either, loop_mask(5, lambda i, j: j >= i))


def test_from_graph_edges_directed_undirected_self_loops():
    edges = [(0, 1), (2, 3)]
    und = masks.from_graph(edges, 4)
    torch.testing.assert_close(und, loop_mask(4, lambda i, j: i == j or {i, j} in ({0, 1}, {2, 3})))
    dire = masks.from_graph(edges, 4, directed=True, self_loops=False)
    torch.testing.assert_close(dire, loop_mask(4, lambda i, j: (i, j) in edges))
    as_tensor = masks.from_graph(torch.tensor(edges), 4, directed=True, self_loops=False)
    torch.testing.assert_close(as_tensor, dire)
    # no edges: every node attends only to itself
    torch.testing.assert_close(masks.from_graph([], 3), torch.eye(3, dtype=torch.bool))


def test_from_graph_adjacency():
    adj = torch.tensor([[0, 1, 0], [0, 0, 0], [1, 0, 0]])
    torch.testing.assert_close(
        masks.from_graph(adj, 3, directed=True, self_loops=False), adj.bool()
    )
    torch.testing.assert_close(
        masks.from_graph(adj.float() * 0.5, 3), loop_mask(3, lambda i, j: i == j or {i, j} in ({0, 1}, {0, 2}))
    )
    # n = 2: a boolean (2, 2) array is an adjacency, an integer one is two edges
    adj2 = torch.tensor([[False, True], [False, False]])
    torch.testing.assert_close(masks.from_graph(adj2, 2, directed=True, self_loops=False), adj2)
    two_edges = masks.from_graph(torch.tensor([[0, 1], [1, 1]]), 2, directed=True, self_loops=False)
    torch.testing.assert_close(two_edges, torch.tensor([[False, True], [False, True]]))


def test_bad_input():
    with pytest.raises(ValueError, match=r"lengths must be >= 0, got \[3, -1\]"):
        masks.from_lengths([3, -1], 4)
    with pytest.raises(ValueError, match=r"lengths must be <= N = 4, got max 5"):
        masks.from_lengths([5, 1], 4)
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\), got \(2, 1\)"):
        masks.from_lengths([[1], [2]], 4)
    with pytest.raises(ValueError, match=r"lengths must be integers, got dtype torch.float32"):
        masks.from_lengths(torch.tensor([1.0, 2.0]), 4)
    with pytest.raises(ValueError, match=r"n must be a non-negative int, got -1"):
        masks.causal(-1)
    with pytest.raises(ValueError, match=r"radius must be a non-negative int, got -2"):
        masks.window(4, -2)
    with pytest.raises(ValueError, match=r"adjacency must have shape \(n, n\) = \(4, 4\), got \(3, 3\)"):
        masks.from_graph(torch.zeros(3, 3, dtype=torch.bool), 4)
    with pytest.raises(ValueError, match=r"edge endpoints must be in \[0, 3\), got range \[0, 3\]"):
        masks.from_graph([(0, 3)], 3)
    with pytest.raises(ValueError, match=r"edges must be \(i, j\) pairs, shape \(E, 2\); got \(2, 3\)"):
        masks.from_graph([(0, 1, 2), (1, 2, 0)], 3)
