"""Native softmax attention over a packed batch, autograd-aware.

Shape letters: T packed tokens, B sequences, H heads, d head width (dv for values).
Every packed sequence attends only to itself; the backward recomputes the weights from
the saved log-sum-exp (no (n, n) tensor is kept). Keys outside a query's causal or
window range are never read, whatever their values.
"""

from __future__ import annotations

import torch

from . import paths
from .native import DTYPES, call, ptr, seed


def _rows(t: torch.Tensor) -> torch.Tensor:
    """(T, ..., H, d) with heads and width contiguous inside each row; copy otherwise."""
    width = t.shape[-1]
    if t.stride(-1) == 1 and t.stride(-2) == width and (t.dim() < 4 or t.stride(-3) == t.shape[-2] * width):
        return t
    return t.contiguous()


def _forward(q, k, v, out, lse, cu, scale, causal, window, p, seed_):
    heads, d, dv = q.shape[-2], q.shape[-1], v.shape[-1]
    call(
        "attention_forward", DTYPES[q.dtype], ptr(q), ptr(k), ptr(v), q.stride(0), k.stride(0), v.stride(0),
        ptr(out), out.stride(0), ptr(lse), ptr(cu), cu.shape[0] - 1, heads, d, dv,
        scale, int(causal), -1 if window is None else window, p, seed_,
    )


def _backward(q, k, v, out, dout, lse, dq, dk, dv_, cu, scale, causal, window, p, seed_):
    heads, d, dv = q.shape[-2], q.shape[-1], v.shape[-1]
    call(
        "attention_backward", DTYPES[q.dtype], ptr(q), ptr(k), ptr(v), q.stride(0), k.stride(0), v.stride(0),
        ptr(out), out.stride(0), ptr(dout), dout.stride(0), ptr(lse),
        ptr(dq), dq.stride(0), ptr(dk), dk.stride(0), ptr(dv_), dv_.stride(0),
        ptr(cu), cu.shape[0] - 1, heads, d, dv, scale, int(causal), -1 if window is None else window, p, seed_,
    )


def _run(ctx, q, k, v, cu, args):
    """Forward shared by both autograd functions: out (T, H, dv), log-sum-exp (T, H)."""
    out = q.new_empty((*q.shape[:2], v.shape[-1]))
    lse = q.new_empty(q.shape[:2])
    scale, causal, window, p = args
    ctx.args = (*args, seed() if p > 0 else 0)
    _forward(q, k, v, out, lse, cu, *ctx.args)
    paths.ran("native attention")
    return out, lse


class _AttentionQKV(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qkv, cu, scale, causal, window, p):
        q, k, v = qkv.unbind(1)  # (T, H, d) views, rows of 3 * H * d
        out, lse = _run(ctx, q, k, v, cu, (scale, causal, window, p))
        ctx.save_for_backward(qkv, out, lse, cu)
        return out

    @staticmethod
    def backward(ctx, dout):
        qkv, out, lse, cu = ctx.saved_tensors
        dqkv = torch.empty_like(qkv, memory_format=torch.contiguous_format)  # every row is written
        _backward(*qkv.unbind(1), out, _rows(dout), lse, *dqkv.unbind(1), cu, *ctx.args)
        return dqkv, None, None, None, None, None


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, cu, scale, causal, window, p):
        out, lse = _run(ctx, q, k, v, cu, (scale, causal, window, p))
        ctx.save_for_backward(q, k, v, out, lse, cu)
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse, cu = ctx.saved_tensors
        dq, dk, dv = (torch.empty(t.shape, dtype=t.dtype) for t in (q, k, v))
        _backward(q, k, v, out, _rows(dout), lse, dq, dk, dv, cu, *ctx.args)
        return dq, dk, dv, None, None, None, None, None


def attention_qkv(qkv, cu_seqlens, *, scale, causal=False, window=None, dropout=0.0):
    """qkv (T, 3, H, d), validated cu_seqlens (B + 1,) long -> out (T, H, d)."""
    return _AttentionQKV.apply(_rows(qkv), cu_seqlens.contiguous(), scale, causal, window, dropout)


def attention(q, k, v, cu_seqlens, *, scale, causal=False, window=None, dropout=0.0):
    """q, k (T, H, d), v (T, H, dv), validated cu_seqlens (B + 1,) long -> out (T, H, dv)."""
    return _Attention.apply(_rows(q), _rows(k), _rows(v), cu_seqlens.contiguous(), scale, causal, window, dropout)
