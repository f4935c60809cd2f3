"""Linear layers through oneDNN, with the steps around a product fused into it.

``linear(x, weight, bias, activation=..., dropout=..., residual=...)`` =
[residual +] dropout(act(x W^T + b)): float32 matrix products through oneDNN
(``torch.ops.mkldnn._linear_pointwise``, the operator PyTorch's own compiler uses), with
bias, relu and the residual add done inside the product when there is no dropout, and
the native dropout kernels when there is; backward through oneDNN as well. Training only:
inference (no gradient wanted) takes ``torch.nn.functional.linear`` (see ``_product``). On CPUs where
PyTorch's default float32 GEMM (MKL) does not use the widest vector units, this is much
faster. Falls back to ``torch.nn.functional.linear`` when the operator is missing, the
dtype is not float32, inside ``attnlab.kernels.disabled()``, or with ``ATTNLAB_ONEDNN=0``.
"""

from __future__ import annotations

import logging
import os

import torch
import torch.nn.functional as F

from . import paths
from .dropout import ACTIVATIONS, activation_dropout, residual_dropout
from .native import transposed

log = logging.getLogger("attnlab.kernels")

_probed: list[str | None] = []  # the probe's answer, once known


def _probe() -> str | None:
    """None when oneDNN's linear operator exists and gives the right numbers, else why not."""
    if os.environ.get("ATTNLAB_ONEDNN", "1") == "0":
        return "ATTNLAB_ONEDNN=0"
    op = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    try:
        if op is None or not torch.backends.mkldnn.is_available():
            raise RuntimeError("torch.ops.mkldnn._linear_pointwise is not available")
        g = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(*s, generator=g) for s in ((5, 16), (8, 16), (8,)))
        r = torch.randn(5, 8, generator=g)
        with torch.no_grad():
            ok = torch.allclose(op(x, w, b, "relu", [], ""), torch.relu(x @ w.t() + b), atol=1e-5)
            ok &= torch.allclose(op.binary(x, r, w, b, "add"), x @ w.t() + b + r, atol=1e-5)
        if not ok:
            raise RuntimeError("oneDNN linear gave different numbers on a probe")
    except (RuntimeError, AttributeError) as exc:
        return str(exc).splitlines()[0]
    return None


def onednn_unsupported_reason(*tensors: torch.Tensor) -> str | None:
    """None when float32 linear layers on these tensors can go through oneDNN, else why not."""
    if not _probed:
        _probed.append(_probe())
        if _probed[0]:
            log.info("linear layers use torch.nn.functional.linear (%s)", _probed[0])
    reason = _probed[0] or paths.switched_off(paths.ONEDNN)
    if reason:
        return reason
    for t in tensors:
        if t.dtype != torch.float32 or t.device.type != "cpu":
            return f"a {t.dtype} tensor on {t.device} (oneDNN takes float32 on CPU)"
    return None




def _onednn(x, weight, bias, relu, residual):
    """oneDNN: [relu](x W^T + b) [+ residual], x (T, in), weight (out, in)."""
    op = torch.ops.mkldnn._linear_pointwise
    if residual is not None:
        return op.binary(x, residual, weight, bias, "add")
    return op(x, weight, bias, "relu" if relu else "none", [], "")


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, residual, relu):
        y = _onednn(x, weight, bias, relu, residual)
        ctx.save_for_backward(x, weight, y if relu else None)
        ctx.relu, ctx.has_bias, ctx.has_residual = relu, bias is not None, residual is not None
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight, y = ctx.saved_tensors
        op = torch.ops.mkldnn._linear_pointwise
        g = g.contiguous()
        if ctx.relu:
            g = g.masked_fill(y <= 0, 0.0)
        gx = gw = gb = None
        # oneDNN wants the left operand contiguous; it reads the right one (the "weight")
        # through its strides while repacking it, so transposed views cost nothing there.
        if ctx.needs_input_grad[0]:
            gx = op(g, weight.t(), None, "none", [], "")  # (T, in) = g W
        if ctx.needs_input_grad[1]:
            if g.shape[1] <= x.shape[1]:
                gw = op(transposed(g), x.t(), None, "none", [], "")  # (out, in) = g^T x
            else:
                gw = op(transposed(x), g.t(), None, "none", [], "").t()  # ((in, out) = x^T g)^T
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        gr = g if ctx.has_residual and ctx.needs_input_grad[3] else None
        return gx, gw, gb, gr, None


def _product(x, weight, bias, relu, residual):
    """[relu](x W^T + b) [+ residual] (relu and residual exclude each other)."""
    tensors = [t for t in (x, weight, bias, residual) if t is not None]
    training = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    # Inference takes the plain product: oneDNN makes a primitive for every new row count, and
    # the process's memory grows with each (tagging a corpus, whose batches all differ, grew by
    # ~25 MB per block and never came back), while the plain product was as fast there.
    if x.dim() != 2 or not training or onednn_unsupported_reason(*tensors) is not None:
        y = F.linear(x, weight, bias)
        if relu:
            return y.relu_()
        return y if residual is None else y + residual
    paths.ran("onednn linear")
    x = x.contiguous()
    if residual is not None:
        residual = residual.contiguous()
    return _Linear.apply(x, weight, bias, residual, relu)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
           activation: str | None = None, dropout: float = 0.0,
           residual: torch.Tensor | None = None) -> torch.Tensor:
    """x (..., in), weight (out, in) -> [residual +] dropout(act(x W^T + bias)) (..., out).

    ``activation``: None, "relu" or "gelu"; ``dropout`` > 0 drops (training mode);
    ``residual`` (..., out) is added last. Without dropout, relu or the residual add
    happen inside oneDNN's product; with dropout, relu + dropout or dropout + add take
    one pass of the native kernels. Autograd-aware on every path.
    """
    if activation is not None and activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r} is unknown; choose one of {', '.join(ACTIVATIONS)}")
    relu = activation == "relu"
    if dropout == 0.0 and (activation is None or (relu and residual is None)):
        return _product(x, weight, bias, relu, residual)  # one fused product
    y = _product(x, weight, bias, False, None)
    if dropout == 0.0:
        assert activation is not None  # no activation and no dropout returned above
        y = ACTIVATIONS[activation](y)
        return y if residual is None else residual + y
    if residual is None:
        return activation_dropout(y, activation, dropout)
    if activation is not None:
        y = ACTIVATIONS[activation](y)
    return residual_dropout(residual, y, dropout)
