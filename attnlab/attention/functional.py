"""Functional scaled dot-product attention.

Shape letters used throughout attnlab:
    B  batch        H  heads        N  sequence length (Nq queries, Nk keys)
    D  model width  d  head width   T  tokens of a packed batch

``attend_mask`` is boolean and **True means "this query may attend to this key"**.
A query row with no key it may attend to returns zeros (never NaN), and its
gradients are zero (never NaN).

Non-finite inputs, the same on every path (readable, fused, and the packed paths of
``attnlab.attention.varlen``):

* keys a query may not attend to never reach its output, whatever their values: an inf
  or NaN in a masked-out key or value leaves the row as it would be without it (and a
  row that may attend to nothing stays zeros);
* the keys and values a query may attend to, and the query itself, go through the
  formula's plain arithmetic: a NaN there makes the row NaN (never a silent zero); an
  inf gives what the formula gives (inf or NaN, or a weight of 0 for a score of -inf).

Two paths compute the same thing:

* ``impl="readable"``: scores -> normalize -> weighted sum, written out so it can
  be read against the seed's formulas (and the only path that can return weights
  or use a normalizer other than softmax);
* ``impl="fused"``: PyTorch's ``scaled_dot_product_attention`` kernel.

``impl="auto"`` (the default) takes the fused path whenever it can serve the call
and otherwise logs at DEBUG level (logger ``attnlab.attention``) why it did not.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from ..reference import NORMALIZERS, check_normalize

log = logging.getLogger("attnlab.attention")

IMPLS = ("auto", "fused", "readable")


def normalize_scores(scores: torch.Tensor, attend_mask: torch.Tensor | None, normalize: str) -> torch.Tensor:
    """Turn scaled scores alpha (..., Nq, Nk) into weights alpha' over the keys (last axis).

    softmax:  alpha'_ij = exp(alpha_ij) / sum_{j'} exp(alpha_ij')
    relu:     alpha'_ij = relu(alpha_ij) / n_i
    sigmoid:  alpha'_ij = sigmoid(alpha_ij - log n_i)

    where n_i is the number of keys query i may attend to (Nk without a mask).
    Keys outside ``attend_mask`` get weight 0; a row with no allowed key is all zeros.
    """
    check_normalize(normalize)
    if attend_mask is None:
        n_keys = scores.shape[-1]
        if normalize == "softmax":
            return scores.softmax(dim=-1)
        if normalize == "relu":
            return scores.relu() / n_keys
        return torch.sigmoid(scores - math.log(max(n_keys, 1)))  # Nk = 0: an empty row

    row_any = attend_mask.any(dim=-1, keepdim=True)  # (..., Nq, 1)
    if normalize == "softmax":
        # A fully masked row would be softmax over all -inf = NaN. Let such rows
        # "attend" everywhere, then zero them: values and gradients stay finite.
        safe_mask = attend_mask | ~row_any
        weights = scores.masked_fill(~safe_mask, float("-inf")).softmax(dim=-1)
        return weights.masked_fill(~row_any, 0.0)
    key_counts = attend_mask.sum(dim=-1, keepdim=True).clamp(min=1).to(scores.dtype)
    if normalize == "relu":
        weights = scores.relu() / key_counts
    else:
        weights = torch.sigmoid(scores - key_counts.log())
    return weights.masked_fill(~attend_mask, 0.0)


def _check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attend_mask: torch.Tensor | None) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name} must have rank 4 (B, H, N, d), got shape {tuple(t.shape)}")
    if q.shape[:2] != k.shape[:2] or k.shape[:2] != v.shape[:2]:
        raise ValueError(
            f"q, k, v must agree on (B, H): q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same head width d: q {tuple(q.shape)}, k {tuple(k.shape)}")
    check_dtypes(q=q, k=k, v=v)
    if k.shape[2] != v.shape[2]:
        raise ValueError(f"k and v must have the same number of keys Nk: k {tuple(k.shape)}, v {tuple(v.shape)}")
    if attend_mask is not None:
        target = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        check_mask(attend_mask, target)


def check_dtypes(**tensors: torch.Tensor) -> None:
    """Raise ValueError unless every tensor has one dtype, naming them: check_dtypes(q=q, k=k)."""
    (first, t0), *rest = tensors.items()
    for name, t in rest:
        if t.dtype != t0.dtype:
            raise ValueError(f"{first} and {name} must have one dtype, got {first} {t0.dtype} and {name} {t.dtype}")


def check_mask(attend_mask: torch.Tensor, target: tuple[int, ...]) -> None:
    """Raise ValueError unless ``attend_mask`` is boolean and broadcasts to ``target``."""
    if attend_mask.dtype != torch.bool:
        raise ValueError(
            f"attend_mask must be boolean (True = may attend), got dtype {attend_mask.dtype}"
        )
    shape = tuple(attend_mask.shape)
    ok = len(shape) <= len(target) and all(
        s == 1 or s == t for s, t in zip(reversed(shape), reversed(target))
    )
    if not ok:
        raise ValueError(
            f"attend_mask of shape {shape} does not broadcast to (B, H, Nq, Nk) = {tuple(target)}"
        )


def _fused_unsupported_reason(normalize: str, return_weights: bool) -> str | None:
    if normalize != "softmax":
        return f"normalize={normalize!r} (the fused kernel only does softmax)"
    if return_weights:
        return "return_weights=True (the fused kernel does not expose the weights)"
    return None


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    attend_mask: torch.Tensor | None = None,
    normalize: str = "softmax",
    scale: float | None = None,
    dropout: float = 0.0,
    return_weights: bool = False,
    impl: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Attention over the keys for every query.

    q (B, H, Nq, d), k (B, H, Nk, d), v (B, H, Nk, dv) -> out (B, H, Nq, dv)
    and, when ``return_weights``, the normalized weights (B, H, Nq, Nk).

    ``attend_mask``: boolean, broadcastable to (B, H, Nq, Nk), True = may attend.
    ``scale`` defaults to 1 / sqrt(d). ``dropout`` is applied to the weights.
    """
    check_normalize(normalize)
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r} is unknown; choose one of {', '.join(IMPLS)}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    _check_inputs(q, k, v, attend_mask)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])

    refusal = _fused_unsupported_reason(normalize, return_weights)
    if impl == "fused" and refusal:
        raise ValueError(f"impl='fused' cannot serve this call: {refusal}")
    use_fused = impl == "fused" or (impl == "auto" and refusal is None)
    if impl == "auto" and refusal:
        log.debug("readable attention path: %s", refusal)

    if not all_finite(q, k, v):
        return _nonfinite(q, k, v, attend_mask, normalize, scale, dropout, return_weights)
    if use_fused:
        return _fused(q, k, v, attend_mask, scale, dropout)
    return _readable(q, k, v, attend_mask, normalize, scale, dropout, return_weights)


def all_finite(*tensors: torch.Tensor) -> bool:
    """True when no tensor holds an inf or NaN (one reduction per tensor, one sync)."""
    finite = torch.isfinite(tensors[0]).all()
    for t in tensors[1:]:
        finite &= torch.isfinite(t).all()
    return bool(finite)


def _nonfinite(q, k, v, attend_mask, normalize, scale, dropout, return_weights):
    """The readable path for inputs holding inf or NaN: the weighted sum runs over the keys
    each query may attend to only, as plain arithmetic would let a masked-out inf or NaN
    value through (0 * inf = NaN). It costs a (B, H, Nq, Nk, dv) product, so it is taken
    only when an input is not finite."""
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale  # (B, H, Nq, Nk)
    weights = normalize_scores(scores, attend_mask, normalize)  # masked-out scores never enter
    if dropout > 0.0:
        weights = F.dropout(weights, p=dropout)
    terms = weights[..., None] * v[..., None, :, :]  # (B, H, Nq, Nk, dv): alpha'_ij v_j
    if attend_mask is not None:
        terms = terms.masked_fill(~attend_mask[..., None], 0.0)
    out = terms.sum(dim=-2)  # (B, H, Nq, dv)
    return (out, weights) if return_weights else out


def _readable(q, k, v, attend_mask, normalize, scale, dropout, return_weights):
    # 1) scores: alpha_ij = q_i . k_j * scale               (B, H, Nq, Nk)
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale
    # 2) normalize over the keys: alpha'_ij                 (B, H, Nq, Nk)
    weights = normalize_scores(scores, attend_mask, normalize)
    if dropout > 0.0:
        weights = F.dropout(weights, p=dropout)
    # 3) weighted sum of the values: b_i = sum_j alpha'_ij v_j   (B, H, Nq, dv)
    out = torch.matmul(weights, v)
    return (out, weights) if return_weights else out


def _fused(q, k, v, attend_mask, scale, dropout):
    if attend_mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scale)
    if attend_mask.dim() == 1:  # one row of keys for every query; PyTorch's kernel wants (Nq|1, Nk)
        attend_mask = attend_mask[None, :]
    row_any = attend_mask.any(dim=-1, keepdim=True)
    if bool(row_any.all()):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attend_mask, dropout_p=dropout, scale=scale)
    # Same trick as the readable path: fully masked rows attend everywhere, then are zeroed.
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attend_mask | ~row_any, dropout_p=dropout, scale=scale
    )
    return out.masked_fill(~row_any, 0.0)
