"""Self-attention layers, batch first.

Shape letters: B batch, N sequence, D model width, H heads, d = D / H head width.
Every layer calls the one attention function, ``attnlab.attention.scaled_dot_product_attention``.
"""

from __future__ import annotations

from typing import Iterable, cast

import torch
import torch.nn as nn

from . import kernels
from .attention.functional import check_mask, check_normalize, scaled_dot_product_attention
from .attention.masks import from_lengths
from .attention.varlen import VarlenPlan, varlen_attention_qkv
from .packing import check_cu_seqlens, pack_padded, positions_in_sequence, unpack_padded
from .positions import RotaryPositions, check_positions, make_positions


def check_input(x: torch.Tensor, d: int, dtype: torch.dtype, shape: str = "(B, N, D)", name: str = "x") -> None:
    """Raise ValueError unless x has rank len(shape), width ``d`` and the layer's ``dtype``."""
    rank = shape.count(",") + 1
    if x.dim() != rank:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")
    if x.shape[-1] != d:
        raise ValueError(f"{name} has width {x.shape[-1]}, expected D = {d} (shape {tuple(x.shape)})")
    if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise ValueError(
            f"{name} has dtype {x.dtype} but the layer's weights are {dtype}: convert one (x.to(...) or layer.to(...))"
        )


def combine_masks(
    lengths: torch.Tensor | None, attend_mask: torch.Tensor | None, shape: tuple[int, int, int, int],
    device: torch.device | None = None,
) -> torch.Tensor | None:
    """One boolean mask broadcastable to ``shape`` = (B, H, N, M) from the keys' ``lengths``
    (B,) (key j of row b is attended only if j < lengths[b]) and/or ``attend_mask``.

    ``attend_mask`` is (N, M) for every sequence, (B, N, M) per sequence, or (B, H|1, N, M)
    per sequence and head. A 3-D mask always means (B, N, M): it is never read as (H, N, M).
    """
    b, _, n, m = shape
    mask = None
    if lengths is not None:
        lengths = torch.as_tensor(lengths, device=device)
        if lengths.dim() != 1 or lengths.shape[0] != b:
            raise ValueError(f"lengths must have shape (B,) = ({b},), got {tuple(lengths.shape)}")
        mask = from_lengths(lengths, m)  # (B, 1, 1, M)
    if attend_mask is not None:
        if attend_mask.dim() == 3:
            if attend_mask.shape[0] not in (1, b):
                raise ValueError(f"a 3-D attend_mask is (B, N, N) = ({b}, {n}, {m}), got {tuple(attend_mask.shape)}")
            attend_mask = attend_mask.unsqueeze(1)  # (B, 1, N, M)
        check_mask(attend_mask, shape)
        mask = attend_mask if mask is None else mask & attend_mask
    return mask


class SelfAttention(nn.Module):
    """The seed's single-head self-attention: exactly W^q, W^k, W^v, no output projection.

    q^i = W^q a^i, k^i = W^k a^i, v^i = W^v a^i, alpha_{i,j} = q^i . k^j / sqrt(d_k),
    alpha' = normalize_j(alpha), b^i = sum_j alpha'_{i,j} v^j.
    ``self.Wq.weight`` is the seed's W^q, shape (d_k, d_in).
    """

    def __init__(self, d_in: int, d_k: int, d_v: int, *, normalize: str = "softmax"):
        super().__init__()
        self.normalize = check_normalize(normalize)
        self.d_in = d_in
        self.Wq = nn.Linear(d_in, d_k, bias=False)
        self.Wk = nn.Linear(d_in, d_k, bias=False)
        self.Wv = nn.Linear(d_in, d_v, bias=False)

    def forward(self, x, *, lengths=None, attend_mask=None, return_weights=False):
        """x (B, N, d_in) -> b (B, N, d_v) [, weights (B, N, N)]."""
        check_input(x, self.d_in, self.Wq.weight.dtype)
        b, n = x.shape[0], x.shape[1]
        mask = combine_masks(lengths, attend_mask, (b, 1, n, n), x.device)
        # (B, N, d) -> (B, 1, N, d): one head
        q, k, v = (w(x).unsqueeze(1) for w in (self.Wq, self.Wk, self.Wv))
        out = scaled_dot_product_attention(
            q, k, v, attend_mask=mask, normalize=self.normalize, return_weights=return_weights
        )
        if return_weights:
            out, weights = out
            return out.squeeze(1), weights.squeeze(1)
        return out.squeeze(1)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head attention with W^q, W^k, W^v (stacked in one projection) and W^O.

    Head h uses rows h*d ... (h+1)*d - 1 of W^q, W^k, W^v (the seed's W^{q,h} W^q
    folded into one matrix); the heads' outputs are concatenated and multiplied by W^O.

    Two ways in, one set of weights:

    * ``forward(x, context=None, ...)``: padded batches (B, N, D). Self-attention, or
      cross-attention when keys and values come from ``context`` (B, M, D); a ``cache``
      serves decoding one step at a time;
    * ``forward_packed(tokens, cu_seqlens, ...)``: packed batches (T, D), every sequence
      attending to itself (the encoder's working form).
    """

    def __init__(
        self,
        d_model: int,
        heads: int,
        *,
        bias: bool = True,
        dropout: float = 0.0,
        normalize: str = "softmax",
    ):
        super().__init__()
        if heads < 1 or d_model % heads != 0:
            raise ValueError(f"d_model = {d_model} must be divisible by heads = {heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.d_model, self.heads, self.d_head = d_model, heads, d_model // heads
        self.dropout = dropout
        self.normalize = check_normalize(normalize)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)  # [W^q; W^k; W^v]
        self.out = nn.Linear(d_model, d_model, bias=bias)  # W^O
        self._q_rows, self._kv_rows = slice(0, d_model), slice(d_model, 3 * d_model)

    # -- the seed's names for the parameters ------------------------------------------
    @property
    def Wq(self) -> torch.Tensor:
        return self.qkv.weight[self._q_rows]

    @property
    def Wk(self) -> torch.Tensor:
        return self.qkv.weight[self.d_model: 2 * self.d_model]

    @property
    def Wv(self) -> torch.Tensor:
        return self.qkv.weight[2 * self.d_model:]

    @property
    def Wo(self) -> torch.Tensor:
        return self.out.weight

    # -- the three steps: project, attend (in forward / forward_packed), merge ----------
    def _projected(self, x: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """(..., D) -> (..., parts, H, d): [W^q; W^k; W^v] x, or only ``rows`` of it."""
        weight: torch.Tensor = self.qkv.weight
        bias: torch.Tensor | None = self.qkv.bias
        if rows is not None:
            weight, bias = weight[rows], None if bias is None else bias[rows]
        return kernels.linear(x, weight, bias).unflatten(-1, (-1, self.heads, self.d_head))

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(..., D) -> q, k, v each (..., H, d)."""
        q, k, v = self._projected(x).unbind(dim=-3)
        return q, k, v

    def _merge(self, heads: torch.Tensor, residual=None, residual_dropout: float = 0.0) -> torch.Tensor:
        """Concatenate the heads and apply W^O: (..., H, d) -> (..., D) [residual + dropout(.)]."""
        return kernels.linear(
            heads.flatten(-2), self.out.weight, self.out.bias, dropout=residual_dropout, residual=residual
        )

    def _weight_dropout(self) -> float:
        return self.dropout if self.training else 0.0

    # -- padded batches: self- and cross-attention ----------------------------------------
    def forward(self, x, context=None, *, lengths=None, attend_mask=None, cache=None, return_weights=False, impl="auto"):
        """Queries from x (B, N, D); keys and values from ``context`` (B, M, D), or from x
        itself when ``context`` is None. One set of weights serves both: q = W^q x,
        k = W^k c, v = W^v c, y = W^O [heads] -- cross-attention is self-attention whose
        keys and values come from another sequence.

        ``lengths`` (B,): key j of row b is attended only if j < lengths[b] (the padded
        sequence's lengths; with ``context``, the context's).
        ``attend_mask``: (M, N), (B, N, M) or broadcastable to (B, H, N, M), True = may attend.
        ``cache`` (a dict this layer reads and fills) serves incremental decoding:

        * self-attention: the keys and values of the earlier steps ("k", "v", each
          (B, H, M_past, d)); the new steps' keys and values are appended, so the queries
          see M = M_past + N keys (give a causal ``attend_mask`` of shape (N, M) when N > 1);
        * cross-attention: the context's keys and values, computed on the first call
          and reused afterwards (later calls may pass ``context=None``).

        Returns y (B, N, D) [, weights (B, H, N, M)].
        """
        check_input(x, self.d_model, self.qkv.weight.dtype)
        # 1) project: q (B, H, N, d); k, v (B, H, M, d)
        q, k, v = self._queries_keys_values(x, context, cache)
        # 2) attend in every head, to the keys the masks allow
        mask = combine_masks(lengths, attend_mask, (q.shape[0], self.heads, q.shape[2], k.shape[2]), x.device)
        out = scaled_dot_product_attention(
            q, k, v, attend_mask=mask, normalize=self.normalize, dropout=self._weight_dropout(),
            return_weights=return_weights, impl=impl,
        )
        out, weights = out if return_weights else (out, None)
        # 3) concatenate the heads and apply W^O: (B, H, N, d) -> (B, N, H, d) -> (B, N, D)
        y = self._merge(out.transpose(1, 2))
        return (y, weights) if return_weights else y

    def attend(self, x, context=None, *, key_lengths=None, **options):
        """``forward(x, context, lengths=key_lengths, ...)``: the keys' lengths named as such."""
        return self(x, context, lengths=key_lengths, **options)

    def _queries_keys_values(self, x, context, cache):
        """q (B, H, N, d) from x; k, v (B, H, M, d) from context, x, or the cache."""
        def heads(t: torch.Tensor, rows: slice | None) -> tuple[torch.Tensor, ...]:
            # (B, L, D) -> (B, L, parts, H, d) -> parts x (B, H, L, d)
            return self._projected(t, rows).permute(2, 0, 3, 1, 4).unbind(0)

        if context is None and not (cache is not None and cache.get("cross", False)):
            q, k, v = heads(x, None)
            if cache is not None:
                if "k" in cache:
                    k = torch.cat([cache["k"], k], dim=2)
                    v = torch.cat([cache["v"], v], dim=2)
                cache["k"], cache["v"] = k, v
            return q, k, v
        (q,) = heads(x, self._q_rows)
        if cache is not None and "k" in cache:
            return q, cache["k"], cache["v"]
        check_input(context, self.d_model, self.qkv.weight.dtype, name="context")
        if context.shape[0] != x.shape[0]:
            raise ValueError(f"context has {context.shape[0]} rows, x has {x.shape[0]}")
        k, v = heads(context, self._kv_rows)
        if cache is not None:
            cache.update(k=k, v=v, cross=True)
        return q, k, v

    # -- packed batches ----------------------------------------------------------------------
    def forward_packed(
        self,
        tokens: torch.Tensor,
        cu_seqlens: torch.Tensor,
        *,
        causal: bool = False,
        window: int | None = None,
        rotary: RotaryPositions | None = None,
        positions: torch.Tensor | None = None,
        plan=None,
        return_weights: bool = False,
        residual: torch.Tensor | None = None,
        residual_dropout: float = 0.0,
    ):
        """Packed tokens (T, D) + cu_seqlens (B + 1,) -> y (T, D) [, list of B weights (H, n, n)].

        Each sequence attends only to itself (``attnlab.varlen_attention``); nothing is
        padded. ``rotary`` (an ``attnlab.positions.RotaryPositions``) turns q and k by
        each token's position in its sequence (``positions`` (T,), computed from
        ``cu_seqlens`` when not given). ``plan`` (a ``VarlenPlan``) is shared by layers
        that see the same batch. ``residual`` (T, D), when given, makes the result
        residual + dropout(y, residual_dropout): an encoder's skip connection, fused
        into the W^O product (``attnlab.kernels.linear``).
        """
        check_input(tokens, self.d_model, self.qkv.weight.dtype, shape="(T, D)", name="tokens")
        # 1) project: (T, D) -> (T, 3, H, d)
        qkv = self._projected(tokens)
        if rotary is not None:
            if positions is None:
                positions = positions_in_sequence(cu_seqlens, tokens.shape[0])
            rotary.rotate_(qkv[:, :2], positions)  # q and k, in place
        # 2) attend within every sequence: (T, H, d)
        out = varlen_attention_qkv(
            qkv, cu_seqlens, causal=causal, window=window, normalize=self.normalize,
            dropout=self._weight_dropout(), return_weights=return_weights, plan=plan,
        )
        out, weights = out if return_weights else (out, None)
        # 3) concatenate the heads and apply W^O: (T, H, d) -> (T, D)
        y = self._merge(out, residual, residual_dropout)
        return (y, weights) if return_weights else y

    # -- conversion to and from torch.nn.MultiheadAttention -------------------------------
    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention, *, normalize: str = "softmax") -> "MultiHeadSelfAttention":
        """Copy the weights of a ``torch.nn.MultiheadAttention`` (batch_first or not)."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise ValueError(f"mha must be a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        if not mha._qkv_same_embed_dim:
            raise ValueError("mha has kdim/vdim different from embed_dim: not a self-attention layer")
        if mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("mha uses add_bias_kv or add_zero_attn, which attnlab does not model")
        bias = mha.in_proj_bias is not None
        new = cls(mha.embed_dim, mha.num_heads, bias=bias, dropout=mha.dropout, normalize=normalize)
        new = new.to(dtype=mha.in_proj_weight.dtype, device=mha.in_proj_weight.device)
        with torch.no_grad():
            new.qkv.weight.copy_(mha.in_proj_weight)
            new.out.weight.copy_(mha.out_proj.weight)
            if bias:
                new.qkv.bias.copy_(mha.in_proj_bias)
                new.out.bias.copy_(mha.out_proj.bias)
        return new

    def to_torch(self) -> nn.MultiheadAttention:
        """A ``torch.nn.MultiheadAttention(batch_first=True)`` with the same weights (softmax only)."""
        if self.normalize != "softmax":
            raise ValueError(f"torch.nn.MultiheadAttention only does softmax, this layer uses {self.normalize!r}")
        bias = self.qkv.bias is not None
        mha = nn.MultiheadAttention(self.d_model, self.heads, dropout=self.dropout, bias=bias, batch_first=True)
        mha = mha.to(dtype=self.qkv.weight.dtype, device=self.qkv.weight.device)
        with torch.no_grad():
            mha.in_proj_weight.copy_(self.qkv.weight)
            mha.out_proj.weight.copy_(self.out.weight)
            if bias:
                mha.in_proj_bias.copy_(self.qkv.bias)
                mha.out_proj.bias.copy_(self.out.bias)
        return mha


# -- packed Transformer encoder ----------------------------------------------------------

class TransformerEncoderLayer(nn.Module):
    """One encoder layer on packed tokens (T, D): attention and feed-forward, each a residual.

    norm_first=True:   x = x + drop(attn(norm1(x)));  x = x + drop(ff(norm2(x)))
    norm_first=False:  x = norm1(x + drop(attn(x)));  x = norm2(x + drop(ff(x)))
    with ff(x) = W2 drop(act(W1 x + b1)) + b2 (the layout of ``torch.nn.TransformerEncoderLayer``).
    Every step works row by row on (T, D) except attention, which is
    ``MultiHeadSelfAttention.forward_packed``. The residual adds, dropouts and relu happen
    inside the products of ``attnlab.kernels.linear`` (oneDNN and the native kernels when
    they can take the tensors, else plain PyTorch: the same numbers).
    """

    def __init__(
        self,
        d_model: int,
        heads: int,
        d_ff: int,
        *,
        dropout: float = 0.1,
        normalize: str = "softmax",
        norm_first: bool = True,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        if activation not in kernels.ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is unknown; choose one of {', '.join(kernels.ACTIVATIONS)}")
        self.attn = MultiHeadSelfAttention(d_model, heads, dropout=dropout, normalize=normalize)
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout, self.norm_first, self.activation = dropout, norm_first, activation

    def feed_forward(self, h: torch.Tensor, residual: torch.Tensor, p: float) -> torch.Tensor:
        """residual + drop(W2 drop(act(W1 h + b1)) + b2): (T, D) -> (T, d_ff) -> (T, D)."""
        h = kernels.linear(h, self.ff1.weight, self.ff1.bias, activation=self.activation, dropout=p)
        return kernels.linear(h, self.ff2.weight, self.ff2.bias, dropout=p, residual=residual)

    def forward_packed(self, x, cu_seqlens, *, plan=None, rotary=None, positions=None, causal=False, window=None, return_weights=False):
        """x (T, D) -> (T, D) [, list of B weights (H, n, n)]."""
        p = self.dropout if self.training else 0.0
        h = self.norm1(x) if self.norm_first else x
        x = self.attn.forward_packed(  # x + drop(attn(h))
            h, cu_seqlens, residual=x, residual_dropout=p,
            causal=causal, window=window, rotary=rotary, positions=positions, plan=plan, return_weights=return_weights,
        )
        x, weights = x if return_weights else (x, None)
        if self.norm_first:  # x + drop(ff(norm2(x)))
            x = self.feed_forward(self.norm2(x), x, p)
        else:  # norm2(y + drop(ff(y))) with y = norm1(x)
            x = self.norm1(x)
            x = self.norm2(self.feed_forward(x, x, p))
        return (x, weights) if return_weights else x


class TransformerEncoder(nn.Module):
    """A stack of encoder layers that never computes on padding.

    Shape letters: B sequences, N padded length, T packed tokens, D model width.

    * ``forward_packed(tokens (T, D), cu_seqlens (B + 1,))`` -> (T, D): the working form.
    * ``forward(x (B, N, D), lengths (B,) | None)`` -> (B, N, D): packs, runs the packed
      form, and unpacks (padding rows of the result are zeros).

    ``positions``: "none" | "sinusoidal" | "learned" (added to the input once) | "rotary"
    (q and k turned inside every attention layer), always by each token's index within
    its own sequence. With norm_first (pre-norm) a final LayerNorm follows the last layer.
    ``return_weights=True`` also returns, per layer, the list of per-sequence weights
    (H, n, n) (a slower path that computes them one sequence at a time).

    Nothing is computed on padding: attention runs on the packed rows (the native kernel
    of ``attnlab.attention.varlen``; without it, PyTorch's kernel on a few length buckets
    padded only to their longest member), every other step works on the T real tokens,
    and the float32 matrix products go through oneDNN with bias, relu and the residual
    add fused (``attnlab.kernels.linear``).
    """

    def __init__(
        self,
        d_model: int,
        heads: int,
        layers: int,
        d_ff: int,
        *,
        dropout: float = 0.1,
        positions: str = "rotary",
        normalize: str = "softmax",
        norm_first: bool = True,
        max_len: int = 1024,
        activation: str = "relu",
        causal: bool = False,
        window: int | None = None,
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        if heads < 1 or d_model % heads != 0:
            raise ValueError(f"d_model = {d_model} must be divisible by heads = {heads}")
        self.d_model, self.heads, self.max_len = d_model, heads, max_len
        self.positions = check_positions(positions)
        self.causal, self.window = causal, window
        pos = make_positions(positions, d_model, heads, max_len)
        self.rotary = pos if isinstance(pos, RotaryPositions) else None
        self.position_table = pos if positions in ("sinusoidal", "learned") else None
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(
                d_model, heads, d_ff, dropout=dropout, normalize=normalize, norm_first=norm_first,
                activation=activation, layer_norm_eps=layer_norm_eps,
            )
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps) if norm_first else None

    def _weights_dtype(self) -> torch.dtype:
        """The dtype of the weights (inputs must have it)."""
        return cast(TransformerEncoderLayer, self.layers[0]).ff1.weight.dtype

    def layer_outputs(self, tokens: torch.Tensor, cu_seqlens: torch.Tensor, *, return_weights: bool = False):
        """Yield every layer's output (T, D) in turn, with its list of B weights (H, n, n)
        when ``return_weights`` (else None). The final LayerNorm of a pre-norm stack is not
        applied here (``forward_packed`` applies it)."""
        check_input(tokens, self.d_model, self._weights_dtype(), shape="(T, D)", name="tokens")
        total = tokens.shape[0]
        cu = check_cu_seqlens(cu_seqlens, total).to(tokens.device)
        plan = VarlenPlan(cu, total, width=self.d_model)  # shared by every layer (and the backward)
        positions = positions_in_sequence(cu, total) if self.positions != "none" else None  # (T,)
        x = tokens
        if self.position_table is not None:
            x = self.position_table(x, positions)
        for layer in cast("Iterable[TransformerEncoderLayer]", self.layers):
            x = layer.forward_packed(
                x, cu, plan=plan, rotary=self.rotary, positions=positions,
                causal=self.causal, window=self.window, return_weights=return_weights,
            )
            x, w = x if return_weights else (x, None)
            yield x, w

    def forward_packed(self, tokens: torch.Tensor, cu_seqlens: torch.Tensor, *, return_weights: bool = False):
        """tokens (T, D), cu_seqlens (B + 1,) -> (T, D) [, per layer a list of B weights (H, n, n)]."""
        x, weights = tokens, []
        for x, w in self.layer_outputs(tokens, cu_seqlens, return_weights=return_weights):
            weights.append(w)
        if self.norm is not None:
            x = self.norm(x)
        return (x, weights) if return_weights else x

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None, *, return_weights: bool = False):
        """x (B, N, D), lengths (B,) or None (all N) -> (B, N, D) [, per-layer weights], padding rows 0."""
        check_input(x, self.d_model, self._weights_dtype())
        tokens, cu = pack_padded(x, lengths)  # (T, D), (B + 1,)
        out = self.forward_packed(tokens, cu, return_weights=return_weights)
        if return_weights:
            out, weights = out
            return unpack_padded(out, cu, x.shape[1]), weights
        return unpack_padded(out, cu, x.shape[1])

    @classmethod
    def from_torch(cls, encoder: nn.TransformerEncoder, *, normalize: str = "softmax") -> "TransformerEncoder":
        """Copy a ``torch.nn.TransformerEncoder`` (batch_first, relu or gelu) into positions="none"."""
        if not isinstance(encoder, nn.TransformerEncoder) or not len(encoder.layers):
            raise ValueError(f"encoder must be a torch.nn.TransformerEncoder, got {type(encoder).__name__}")
        first = encoder.layers[0]
        act = {1: "relu", 2: "gelu"}.get(getattr(first, "activation_relu_or_gelu", 0))
        if act is None:
            raise ValueError("only relu and gelu feed-forward activations can be copied")
        if first.norm_first != (encoder.norm is not None):
            raise ValueError(
                "attnlab's pre-norm encoder ends with a LayerNorm and its post-norm one does not: "
                f"the torch encoder has norm_first={first.norm_first} and final norm={encoder.norm is not None}"
            )
        mha = first.self_attn
        new = cls(
            mha.embed_dim, mha.num_heads, len(encoder.layers), first.linear1.out_features,
            dropout=first.dropout.p, positions="none", normalize=normalize, norm_first=first.norm_first,
            activation=act, layer_norm_eps=first.norm1.eps,
        ).to(dtype=first.linear1.weight.dtype, device=first.linear1.weight.device)
        for mine, theirs in zip(new.layers, encoder.layers):
            mine.attn = MultiHeadSelfAttention.from_torch(theirs.self_attn, normalize=normalize)
            for a, b in (("ff1", "linear1"), ("ff2", "linear2"), ("norm1", "norm1"), ("norm2", "norm2")):
                getattr(mine, a).load_state_dict(getattr(theirs, b).state_dict())
        if new.norm is not None and encoder.norm is not None:  # both or neither (checked above)
            new.norm.load_state_dict(encoder.norm.state_dict())
        return new
