"""Counter-based dropout in the native kernels, and the choice between it and PyTorch's.

Keep/drop comes from a hash of (seed, element), so the backward regenerates the mask
instead of storing it; the seed is drawn from PyTorch's generator (``torch.manual_seed``
makes runs repeatable).

* ``dropout_add(x, residual, p)`` = residual + dropout(x) in one pass (native);
* ``relu_dropout_(h, p)`` = dropout(relu(h)) in place (native);
* ``residual_dropout`` and ``activation_dropout``: the same steps through the native
  kernels when they can take the tensors, else through PyTorch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import paths
from .native import DTYPES, call, native_unsupported_reason, ptr, seed

ACTIVATIONS = {"relu": torch.relu, "gelu": F.gelu}


def _dropout_call(x, y, p, seed_, add=None):
    call("dropout", DTYPES[x.dtype], ptr(x), ptr(y), x.numel(), p, seed_, ptr(add))


class _DropoutAdd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, residual, p):
        y = torch.empty_like(x, memory_format=torch.contiguous_format)
        ctx.args = (p, seed())
        _dropout_call(x, y, p, ctx.args[1], residual)
        return y

    @staticmethod
    def backward(ctx, dy):
        p, seed_ = ctx.args
        dy = dy.contiguous()
        dx = torch.empty_like(dy)
        _dropout_call(dy, dx, p, seed_)
        return dx, dy, None


class _ReluDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, p):
        call("relu_dropout_", DTYPES[h.dtype], ptr(h), h.numel(), p, seed())
        ctx.mark_dirty(h)
        ctx.save_for_backward(h)
        ctx.p = p
        return h

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        dy = dy.contiguous()
        dx = torch.empty_like(dy)
        call("relu_dropout_backward", DTYPES[y.dtype], ptr(y), ptr(dy), ptr(dx), y.numel(), ctx.p)
        return dx, None


def dropout_add(x: torch.Tensor, residual: torch.Tensor, p: float) -> torch.Tensor:
    """residual + dropout(x, p) in one pass (native kernels); x and residual of one shape."""
    if x.shape != residual.shape:
        raise ValueError(f"x {tuple(x.shape)} and residual {tuple(residual.shape)} must have one shape")
    paths.ran("native dropout")
    return _DropoutAdd.apply(x.contiguous(), residual.contiguous(), p)


def relu_dropout_(h: torch.Tensor, p: float) -> torch.Tensor:
    """h <- dropout(relu(h), p), in place (native kernels; h must be contiguous)."""
    if not h.is_contiguous():
        raise ValueError("relu_dropout_ needs a contiguous tensor")
    paths.ran("native dropout")
    return _ReluDropout.apply(h, p)


def residual_dropout(residual: torch.Tensor, x: torch.Tensor, p: float) -> torch.Tensor:
    """residual + dropout(x, p) (training mode): native in one pass when it can, else PyTorch."""
    if native_unsupported_reason(x, residual) is None:
        return dropout_add(x, residual, p)
    return residual + F.dropout(x, p, True)


def activation_dropout(h: torch.Tensor, activation: str | None, p: float) -> torch.Tensor:
    """dropout(act(h), p) (training mode), overwriting h: native relu + dropout in one
    pass when it can, else PyTorch."""
    if activation == "relu" and h.is_contiguous() and native_unsupported_reason(h) is None:
        return relu_dropout_(h, p)
    if activation == "relu":
        h = h.relu_()
    elif activation is not None:
        h = ACTIVATIONS[activation](h)
    return F.dropout(h, p, True)
