"""The Transformer decoder: causal self-attention, cross-attention to an encoded source,
feed-forward -- and a cache of keys and values for decoding one step at a time.

Shape letters: B batch, N target steps, M source length, D model width, H heads, d = D / H.

Both attentions of a layer are ``attnlab.MultiHeadSelfAttention``: the self-attention
with a causal ``attend_mask``, the cross-attention with ``context=memory``
(queries from the target, keys and values from the source, the same W^q, W^k, W^v, W^O
layout). Positions are the sinusoidal table added to the target embeddings, offset by the
number of steps already decoded, so the one-step-at-a-time path with a ``KVCache`` gives
the same numbers as the whole target at once.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .modules import MultiHeadSelfAttention
from .positions import SinusoidalPositions


def causal_mask(n: int, past: int = 0, *, device=None) -> torch.Tensor:
    """(N, past + N): new query i (at absolute step past + i) may attend to keys j <= past + i."""
    return torch.ones(n, past + n, dtype=torch.bool, device=device).tril(diagonal=past)


class KVCache:
    """Keys and values of every decoder layer, for incremental decoding.

    ``layers[l]["self"]`` holds the causal self-attention's keys and values of the steps
    decoded so far (grown by one step per call); ``layers[l]["cross"]`` the source's keys
    and values (computed once). ``reorder(index)`` keeps rows ``index`` (beam search).
    """

    def __init__(self, layers: int):
        self.layers: list[dict[str, dict[str, torch.Tensor]]] = [{"self": {}, "cross": {}} for _ in range(layers)]
        self.steps = 0

    def reorder(self, index: torch.Tensor) -> None:
        for layer in self.layers:
            for part in layer.values():
                for key in ("k", "v"):
                    if key in part:
                        part[key] = part[key].index_select(0, index)


class TransformerDecoderLayer(nn.Module):
    """Pre-norm decoder layer:

        x = x + drop(self_attn(norm1(x), causal))
        x = x + drop(cross_attn(norm2(x), memory))
        x = x + drop(W2 drop(relu(W1 norm3(x))))
    """

    def __init__(self, d_model: int, heads: int, d_ff: int, *, dropout: float = 0.1):
        super().__init__()
        # no biases in W^q, W^k, W^v, W^O: a key bias cannot change softmax weights, so its
        # gradient is pure rounding noise, which Adam would blow up into steps of size lr
        self.self_attn = MultiHeadSelfAttention(d_model, heads, dropout=dropout, bias=False)
        self.cross_attn = MultiHeadSelfAttention(d_model, heads, dropout=dropout, bias=False)
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, memory, memory_lengths, *, self_mask, cache: dict | None = None):
        """x (B, N, D), memory (B, M, D), memory_lengths (B,), self_mask (N, past + N) -> (B, N, D)."""
        self_cache = cache["self"] if cache is not None else None
        cross_cache = cache["cross"] if cache is not None else None
        h = self.norm1(x)
        x = x + self.drop(self.self_attn(h, attend_mask=self_mask, cache=self_cache))
        h = self.norm2(x)
        x = x + self.drop(self.cross_attn(h, memory, lengths=memory_lengths, cache=cross_cache))
        h = self.norm3(x)
        return x + self.drop(self.ff2(self.drop(torch.relu(self.ff1(h)))))


class TransformerDecoder(nn.Module):
    """Embedded target steps + encoded source -> one vector per target step.

    ``forward(x, memory, memory_lengths, cache=None)``: x (B, N, D) are the embedded
    target inputs (step 0 is the start symbol). Without a cache every step attends to
    itself and the steps before it (teacher forcing). With a ``KVCache`` the N new steps
    continue after the ``cache.steps`` already decoded; the cache grows by N.
    """

    def __init__(self, d_model: int, heads: int, layers: int, d_ff: int, *, dropout: float = 0.1, max_len: int = 256):
        super().__init__()
        if layers < 1:
            raise ValueError(f"decoder layers must be >= 1, got {layers}")
        self.d_model, self.max_len = d_model, max_len
        self.positions = SinusoidalPositions(d_model, max_len)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(TransformerDecoderLayer(d_model, heads, d_ff, dropout=dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)

    def new_cache(self) -> KVCache:
        return KVCache(len(self.layers))

    def forward(self, x, memory, memory_lengths, *, cache: KVCache | None = None) -> torch.Tensor:
        b, n, dm = x.shape
        past = cache.steps if cache is not None else 0
        if past + n > self.max_len:
            raise ValueError(f"the decoder handles at most {self.max_len} steps, asked for {past + n}")
        steps = torch.arange(past, past + n, device=x.device).repeat(b)  # (B * N,)
        x = self.positions(x.reshape(b * n, dm), steps).view(b, n, dm)
        x = self.drop(x)
        mask = causal_mask(n, past, device=x.device)  # (N, past + N)
        for i, layer in enumerate(self.layers):
            x = layer(x, memory, memory_lengths, self_mask=mask, cache=cache.layers[i] if cache is not None else None)
        if cache is not None:
            cache.steps += n
        return self.norm(x)
