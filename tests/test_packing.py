"""Packed batches: pack/unpack round trips, cu_seqlens validation, positions per sequence."""

import pytest
import torch

from attnlab.packing import (
    check_cu_seqlens,
    cu_seqlens_from_lengths,
    lengths_from_cu_seqlens,
    pack,
    pack_padded,
    positions_in_sequence,
    sequence_ids,
    unpack,
    unpack_padded,
)


def seqs(lengths, width=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, width, generator=g) for n in lengths]


def test_pack_concatenates_in_order_and_counts():
    parts = seqs([2, 0, 3])
    tokens, cu = pack(parts)
    assert tokens.shape == (5, 3)
    assert cu.tolist() == [0, 2, 2, 5]
    assert torch.equal(tokens[:2], parts[0]) and torch.equal(tokens[2:], parts[2])
    back = unpack(tokens, cu)
    assert [tuple(b.shape) for b in back] == [(2, 3), (0, 3), (3, 3)]
    assert all(torch.equal(a, b) for a, b in zip(parts, back))


def test_padded_round_trip_drops_and_restores_padding():
    lengths = torch.tensor([4, 1, 0, 3])
    x = torch.randn(4, 5, 2)
    tokens, cu = pack_padded(x, lengths)
    assert cu.tolist() == [0, 4, 5, 5, 8]
    assert torch.equal(tokens[:4], x[0, :4]) and torch.equal(tokens[4], x[1, 0]) and torch.equal(tokens[5:], x[3, :3])
    y = unpack_padded(tokens, cu, 5, value=-1.0)
    assert y.shape == (4, 5, 2)
    for b, n in enumerate(lengths.tolist()):
        assert torch.equal(y[b, :n], x[b, :n])
        assert bool((y[b, n:] == -1.0).all())
    assert unpack_padded(tokens, cu).shape == (4, 4, 2)  # N defaults to the longest


def test_full_lengths_are_views_not_copies():
    x = torch.randn(2, 3, 4)
    tokens, cu = pack_padded(x)
    assert cu.tolist() == [0, 3, 6] and tokens.data_ptr() == x.data_ptr()
    assert unpack_padded(tokens, cu).data_ptr() == x.data_ptr()


def test_gradients_flow_through_pack_and_unpack():
    x = torch.randn(3, 4, 2, requires_grad=True)
    tokens, cu = pack_padded(x, [4, 2, 1])
    (unpack_padded(tokens * 2, cu) ** 2).sum().backward()
    expected = torch.zeros(3, 4, 2)
    for b, n in enumerate([4, 2, 1]):
        expected[b, :n] = 8 * x[b, :n].detach()
    assert torch.allclose(x.grad, expected)


def test_lengths_cu_seqlens_positions_and_ids():
    cu = cu_seqlens_from_lengths([3, 0, 2, 1])
    assert cu.tolist() == [0, 3, 3, 5, 6]
    assert lengths_from_cu_seqlens(cu).tolist() == [3, 0, 2, 1]
    assert positions_in_sequence(cu).tolist() == [0, 1, 2, 0, 1, 0]
    assert sequence_ids(cu).tolist() == [0, 0, 0, 2, 2, 3]
    assert positions_in_sequence(torch.tensor([0])).tolist() == []


@pytest.mark.parametrize(
    "cu, total, message",
    [
        ([1, 3, 5], 5, "start at 0, got [1, 3, 5]"),
        ([0, 3, 2, 5], 5, "cu_seqlens[2] = 2 < cu_seqlens[1] = 3"),
        ([0, 3, 4], 5, "end at T = 5"),
        ([[0, 1]], 1, "shape (B + 1,)"),
        ([0.0, 1.0], 1, "integers"),
    ],
)
def test_bad_cu_seqlens_raise_with_values(cu, total, message):
    with pytest.raises(ValueError) as err:
        check_cu_seqlens(torch.tensor(cu), total)
    assert message in str(err.value)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="every sequence must be"):
        pack([torch.zeros(2, 3), torch.zeros(2, 4)])
    with pytest.raises(ValueError, match="lengths must be <= N"):
        pack_padded(torch.zeros(2, 3, 1), [4, 1])
    with pytest.raises(ValueError, match="shorter than the longest"):
        unpack_padded(torch.zeros(5, 1), torch.tensor([0, 2, 5]), 2)
    with pytest.raises(ValueError, match="end at T = 4"):
        unpack(torch.zeros(4, 1), torch.tensor([0, 2, 5]))
    with pytest.raises(ValueError, match=">= 0"):
        cu_seqlens_from_lengths([2, -1])
