"""Self-attention layers, batch first.

Shape letters: B batch, N sequence, D model width, H heads, d = D / H head width.
Every layer calls the one attention function, ``attnlab.attention.scaled_dot_product_attention``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .attention.functional import check_mask, check_normalize, scaled_dot_product_attention
from .attention.masks import from_lengths


def _check_x(x: torch.Tensor, d: int, name: str = "x") -> None:
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape (B, N, D), got {tuple(x.shape)}")
    if x.shape[-1] != d:
        raise ValueError(f"{name} has width {x.shape[-1]}, expected D = {d} (shape {tuple(x.shape)})")


def combine_masks(
    x: torch.Tensor, lengths: torch.Tensor | None, attend_mask: torch.Tensor | None, heads: int = 1
) -> torch.Tensor | None:
    """One boolean (B, H|1, N, N)-broadcastable mask from ``lengths`` and/or ``attend_mask``."""
    b, n = x.shape[0], x.shape[1]
    mask = None
    if lengths is not None:
        lengths = torch.as_tensor(lengths, device=x.device)
        if lengths.dim() != 1 or lengths.shape[0] != b:
            raise ValueError(f"lengths must have shape (B,) = ({b},), got {tuple(lengths.shape)}")
        mask = from_lengths(lengths, n)
    if attend_mask is not None:
        check_mask(attend_mask, (b, heads, n, n))
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
        _check_x(x, self.d_in)
        mask = combine_masks(x, lengths, attend_mask)
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
    """Multi-head self-attention with W^q, W^k, W^v (stacked in one projection) and W^O.

    Head h uses rows h*d ... (h+1)*d - 1 of W^q, W^k, W^v (the seed's W^{q,h} W^q
    folded into one matrix); the heads' outputs are concatenated and multiplied by W^O.
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

    # -- the seed's names for the parameters ------------------------------------------
    @property
    def Wq(self) -> torch.Tensor:
        return self.qkv.weight[: self.d_model]

    @property
    def Wk(self) -> torch.Tensor:
        return self.qkv.weight[self.d_model: 2 * self.d_model]

    @property
    def Wv(self) -> torch.Tensor:
        return self.qkv.weight[2 * self.d_model:]

    @property
    def Wo(self) -> torch.Tensor:
        return self.out.weight

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(..., D) -> q, k, v each (..., H, d)."""
        qkv = self.qkv(x).unflatten(-1, (3, self.heads, self.d_head))  # (..., 3, H, d)
        return qkv.unbind(dim=-3)

    def forward(self, x, *, lengths=None, attend_mask=None, return_weights=False, impl="auto"):
        """x (B, N, D) -> y (B, N, D) [, weights (B, H, N, N)].

        ``lengths`` (B,) marks the real tokens (keys beyond a sequence's length are
        never attended); ``attend_mask`` (broadcastable to (B, H, N, N), True = may
        attend) is combined with it by ``&``.
        """
        _check_x(x, self.d_model)
        mask = combine_masks(x, lengths, attend_mask, self.heads)
        # 1) project: (B, N, D) -> 3 x (B, N, H, d) -> (B, H, N, d)
        q, k, v = (t.transpose(1, 2) for t in self.project(x))
        # 2) attend in every head
        out = scaled_dot_product_attention(
            q, k, v,
            attend_mask=mask,
            normalize=self.normalize,
            dropout=self.dropout if self.training else 0.0,
            return_weights=return_weights,
            impl=impl,
        )
        weights = None
        if return_weights:
            out, weights = out
        # 3) concatenate the heads and apply W^O: (B, H, N, d) -> (B, N, D)
        y = self.out(out.transpose(1, 2).flatten(2))
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
