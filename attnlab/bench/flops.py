"""The FLOP model of the benchmarks: useful multiply-adds x 2, on real tokens only.

Shape letters: N (or n) tokens of one sequence, T tokens of a packed batch, d the head width,
H heads, D = H d the model width, d_ff the feed-forward width.

    attention     q k^T and weights @ v: 2 N^2 d each per head        4 N^2 d H
                  (the softmax's O(N^2 H) is not counted)
    projections   q, k, v (3 D x D) and W^O (D x D) on every token    2 T D (3D + D) = 8 T D^2
    feed-forward  D -> d_ff -> D on every token                        2 T D (2 d_ff)
    training      forward + backward (two products per product)       3 x forward
    matmul        one n x n x n product                                2 n^3
"""

from __future__ import annotations

from collections.abc import Iterable

TRAINING_FACTOR = 3


def attention_flops(n: int, head_dim: int, heads: int = 1) -> float:
    """q k^T and weights @ v of one sequence of ``n`` tokens."""
    return 4.0 * n * n * head_dim * heads


def projection_flops(tokens: int, d_model: int) -> float:
    """The q, k, v and output projections of a self-attention layer."""
    return 2.0 * tokens * d_model * (3 * d_model + d_model)


def feed_forward_flops(tokens: int, d_model: int, d_ff: int) -> float:
    return 2.0 * tokens * d_model * (2 * d_ff)


def encoder_flops(lengths: Iterable[int], d_model: int, d_ff: int, layers: int) -> float:
    """Forward FLOPs of a Transformer encoder on a batch of sequences of these lengths
    (any head count: attention costs 4 n^2 D per sequence)."""
    lengths = list(lengths)
    t = sum(lengths)
    per_layer = projection_flops(t, d_model) + feed_forward_flops(t, d_model, d_ff)
    per_layer += sum(attention_flops(n, d_model) for n in lengths)
    return layers * per_layer


def matmul_flops(n: int) -> float:
    return 2.0 * n**3
