"""Fast CPU paths: native kernels (packed attention, counter-based dropout) compiled on
first use, and linear layers through oneDNN.

``cpu.cpp`` (next to this file) is compiled once per machine with the system C++
compiler (``$CXX`` or ``c++``; ``-O3 -march=native -fopenmp``) into
``$ATTNLAB_CACHE`` (default ``~/.cache/attnlab``) and loaded with ctypes. It links the
OpenMP runtime that PyTorch has already loaded, so both share one thread pool.

Nothing here is required: when no compiler is found, the build fails, the tensors
are of an unsupported kind, or ``ATTNLAB_KERNELS=0`` is set, callers use their
pure-PyTorch path, and the reason is logged once (logger ``attnlab.kernels``).

Shape letters: T packed tokens, B sequences, H heads, d head width.

* ``attention(q, k, v, cu_seqlens, ...)`` / ``attention_qkv(qkv, cu_seqlens, ...)``:
  softmax attention of every packed sequence over itself, autograd-aware; the
  backward recomputes the weights from the saved log-sum-exp (no (n, n) tensor kept).
* ``dropout_add(x, residual, p)`` = residual + dropout(x) and ``relu_dropout_(h, p)`` =
  dropout(relu(h)) in place: keep/drop comes from a hash of (seed, element), so the
  backward regenerates it instead of storing a mask, and the seed is drawn from
  PyTorch's generator (``torch.manual_seed`` makes runs repeatable).
* ``linear(x, weight, bias, relu=..., residual=...)`` = [relu](x W^T + b) [+ residual]:
  float32 matrix products through oneDNN (``torch.ops.mkldnn._linear_pointwise``, the
  operator PyTorch's own compiler uses), with bias, relu and the residual add done
  inside the product; backward through oneDNN as well. On CPUs where PyTorch's default
  float32 GEMM (MKL) does not use the widest vector units, this is much faster (the
  benchmark prints both rates). Falls back to ``torch.nn.functional.linear`` when the
  operator is missing or the dtype is not float32 (``ATTNLAB_ONEDNN=0`` forces that).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

log = logging.getLogger("attnlab.kernels")

_SOURCE = Path(__file__).with_name("cpu.cpp")
_FLAGS = ["-O3", "-march=native", "-fopenmp", "-std=c++17", "-shared", "-fPIC"]
_DTYPES = {torch.float32: 0, torch.float64: 1}

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_why_not: str | None = None
_loaded = False


def cache_dir() -> Path:
    """Where attnlab keeps what it builds on first use: ``$ATTNLAB_CACHE`` or ``~/.cache/attnlab``."""
    return Path(os.environ.get("ATTNLAB_CACHE") or Path.home() / ".cache" / "attnlab")


def _machine_tag() -> str:
    """The compiled file depends on the CPU (-march=native): hash its feature flags."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return flags


def _build(compiler: str) -> Path:
    source = _SOURCE.read_bytes()
    key = hashlib.sha256(source + " ".join(_FLAGS).encode() + compiler.encode() + _machine_tag().encode())
    target = cache_dir() / f"attnlab_kernels_{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        proc = subprocess.run(
            [compiler, *_FLAGS, "-o", tmp, str(_SOURCE)], capture_output=True, text=True, timeout=300
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
        os.replace(tmp, target)  # atomic: a concurrent build simply wins or loses
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _declare(lib: ctypes.CDLL) -> None:
    i64, f64, u64, ptr, i32 = ctypes.c_int64, ctypes.c_double, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_int
    lib.attnlab_attention_forward.argtypes = [
        i32, ptr, ptr, ptr, i64, i64, i64, ptr, i64, ptr, ptr, i64, i64, i64, i64, f64, i64, i64, f64, u64,
    ]
    lib.attnlab_attention_backward.argtypes = [
        i32, ptr, ptr, ptr, i64, i64, i64, ptr, i64, ptr, i64, ptr, ptr, i64, ptr, i64, ptr, i64, ptr,
        i64, i64, i64, i64, f64, i64, i64, f64, u64,
    ]
    lib.attnlab_dropout.argtypes = [i32, ptr, ptr, i64, f64, u64, ptr]
    lib.attnlab_relu_dropout_.argtypes = [i32, ptr, i64, f64, u64]
    lib.attnlab_relu_dropout_backward.argtypes = [i32, ptr, ptr, ptr, i64, f64]
    lib.attnlab_transpose.argtypes = [i32, ptr, i64, i64, i64, ptr]
    for fn in (lib.attnlab_attention_forward, lib.attnlab_attention_backward, lib.attnlab_dropout,
               lib.attnlab_relu_dropout_, lib.attnlab_relu_dropout_backward, lib.attnlab_transpose):
        fn.restype = ctypes.c_int


def load() -> ctypes.CDLL | None:
    """The compiled library, building it if needed; None (reason logged once) if unavailable."""
    global _lib, _why_not, _loaded
    if _loaded:
        return _lib
    with _lock:
        if _loaded:
            return _lib
        if os.environ.get("ATTNLAB_KERNELS", "1") == "0":
            _why_not = "ATTNLAB_KERNELS=0"
        else:
            compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
            if not compiler:
                _why_not = "no C++ compiler found (set CXX)"
            else:
                try:
                    _lib = ctypes.CDLL(str(_build(compiler)))
                    _declare(_lib)
                except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as exc:
                    _lib, _why_not = None, f"could not build the native kernels: {exc}"
        if _lib is None:
            log.info("native kernels unavailable (%s): using the pure-PyTorch paths", _why_not)
        _loaded = True
    return _lib


def available() -> bool:
    return load() is not None


def unavailable_reason() -> str | None:
    load()
    return _why_not


def supports(*tensors: torch.Tensor) -> str | None:
    """None if the kernels can take these tensors, else why not."""
    if load() is None:
        return _why_not
    first = tensors[0]
    for t in tensors:
        if t.device.type != "cpu":
            return f"tensors on {t.device} (the kernels run on CPU)"
        if t.dtype not in _DTYPES:
            return f"dtype {t.dtype} (the kernels take float32 and float64)"
        if t.dtype != first.dtype:
            return f"mixed dtypes {first.dtype} and {t.dtype}"
    return None


def _call(name: str, *args) -> None:
    """Call a kernel; the profiler shows it as attnlab::<name>."""
    with torch.profiler.record_function(f"attnlab::{name}"):
        rc = getattr(load(), f"attnlab_{name}")(*args)
    if rc:
        raise RuntimeError(f"attnlab_{name} failed with code {rc}")


def _seed() -> int:
    return int(torch.randint(0, 2**62, (1,)).item())


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _rows(t: torch.Tensor) -> torch.Tensor:
    """(T, ..., H, d) with heads and width contiguous inside each row; copy otherwise."""
    width = t.shape[-1]
    if t.stride(-1) == 1 and t.stride(-2) == width and (t.dim() < 4 or t.stride(-3) == t.shape[-2] * width):
        return t
    return t.contiguous()


# -- attention --------------------------------------------------------------------------

def _attention_call(q, k, v, out, lse, cu, scale, causal, window, p, seed):
    heads, d, dv = q.shape[-2], q.shape[-1], v.shape[-1]
    _call(
        "attention_forward", _DTYPES[q.dtype], _ptr(q), _ptr(k), _ptr(v), q.stride(0), k.stride(0), v.stride(0),
        _ptr(out), out.stride(0), _ptr(lse), _ptr(cu), cu.shape[0] - 1, heads, d, dv,
        scale, int(causal), -1 if window is None else window, p, seed,
    )


def _attention_grad(q, k, v, out, dout, lse, dq, dk, dv_, cu, scale, causal, window, p, seed):
    heads, d, dv = q.shape[-2], q.shape[-1], v.shape[-1]
    _call(
        "attention_backward", _DTYPES[q.dtype], _ptr(q), _ptr(k), _ptr(v), q.stride(0), k.stride(0), v.stride(0),
        _ptr(out), out.stride(0), _ptr(dout), dout.stride(0), _ptr(lse),
        _ptr(dq), dq.stride(0), _ptr(dk), dk.stride(0), _ptr(dv_), dv_.stride(0),
        _ptr(cu), cu.shape[0] - 1, heads, d, dv, scale, int(causal), -1 if window is None else window, p, seed,
    )


class _AttentionQKV(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qkv, cu, scale, causal, window, p):
        q, k, v = qkv.unbind(1)  # (T, H, d) views, rows of 3 * H * d
        out = q.new_empty(q.shape)
        lse = q.new_empty(q.shape[:2])  # (T, H)
        seed = _seed() if p > 0 else 0
        _attention_call(q, k, v, out, lse, cu, scale, causal, window, p, seed)
        ctx.save_for_backward(qkv, out, lse, cu)
        ctx.args = (scale, causal, window, p, seed)
        return out

    @staticmethod
    def backward(ctx, dout):
        qkv, out, lse, cu = ctx.saved_tensors
        dout = _rows(dout)
        dqkv = torch.empty_like(qkv, memory_format=torch.contiguous_format)  # every row is written
        q, k, v = qkv.unbind(1)
        dq, dk, dv = dqkv.unbind(1)
        _attention_grad(q, k, v, out, dout, lse, dq, dk, dv, cu, *ctx.args)
        return dqkv, None, None, None, None, None


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, cu, scale, causal, window, p):
        out = q.new_empty((*q.shape[:2], v.shape[-1]))
        lse = q.new_empty(q.shape[:2])
        seed = _seed() if p > 0 else 0
        _attention_call(q, k, v, out, lse, cu, scale, causal, window, p, seed)
        ctx.save_for_backward(q, k, v, out, lse, cu)
        ctx.args = (scale, causal, window, p, seed)
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse, cu = ctx.saved_tensors
        dout = _rows(dout)
        dq, dk, dv = (torch.empty(t.shape, dtype=t.dtype) for t in (q, k, v))
        _attention_grad(q, k, v, out, dout, lse, dq, dk, dv, cu, *ctx.args)
        return dq, dk, dv, None, None, None, None, None


def attention_qkv(qkv, cu_seqlens, *, scale, causal=False, window=None, dropout=0.0):
    """qkv (T, 3, H, d), validated cu_seqlens (B + 1,) long -> out (T, H, d)."""
    return _AttentionQKV.apply(_rows(qkv), cu_seqlens.contiguous(), scale, causal, window, dropout)


def attention(q, k, v, cu_seqlens, *, scale, causal=False, window=None, dropout=0.0):
    """q, k (T, H, d), v (T, H, dv), validated cu_seqlens (B + 1,) long -> out (T, H, dv)."""
    return _Attention.apply(_rows(q), _rows(k), _rows(v), cu_seqlens.contiguous(), scale, causal, window, dropout)


# -- dropout ----------------------------------------------------------------------------

def _dropout_call(x, y, p, seed, add=None):
    _call("dropout", _DTYPES[x.dtype], _ptr(x), _ptr(y), x.numel(), p, seed, _ptr(add))


class _DropoutAdd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, residual, p):
        y = torch.empty_like(x, memory_format=torch.contiguous_format)
        seed = _seed()
        _dropout_call(x, y, p, seed, residual)
        ctx.args = (p, seed)
        return y

    @staticmethod
    def backward(ctx, dy):
        p, seed = ctx.args
        dy = dy.contiguous()
        dx = torch.empty_like(dy)
        _dropout_call(dy, dx, p, seed)
        return dx, dy, None


class _ReluDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, p):
        _call("relu_dropout_", _DTYPES[h.dtype], _ptr(h), h.numel(), p, _seed())
        ctx.mark_dirty(h)
        ctx.save_for_backward(h)
        ctx.p = p
        return h

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        dy = dy.contiguous()
        dx = torch.empty_like(dy)
        _call("relu_dropout_backward", _DTYPES[y.dtype], _ptr(y), _ptr(dy), _ptr(dx), y.numel(), ctx.p)
        return dx, None


def dropout_add(x: torch.Tensor, residual: torch.Tensor, p: float) -> torch.Tensor:
    """residual + dropout(x, p) in one pass; x and residual of one shape."""
    if x.shape != residual.shape:
        raise ValueError(f"x {tuple(x.shape)} and residual {tuple(residual.shape)} must have one shape")
    return _DropoutAdd.apply(x.contiguous(), residual.contiguous(), p)


def relu_dropout_(h: torch.Tensor, p: float) -> torch.Tensor:
    """h <- dropout(relu(h), p), in place (h must be contiguous)."""
    if not h.is_contiguous():
        raise ValueError("relu_dropout_ needs a contiguous tensor")
    return _ReluDropout.apply(h, p)



# -- transpose ---------------------------------------------------------------------------------

def transposed(x: torch.Tensor) -> torch.Tensor:
    """x (rows, cols) -> a contiguous (cols, rows) copy of x^T: register tiles on every
    core when the native kernels are available, else ``x.t().contiguous()``."""
    if x.dim() != 2 or x.stride(1) != 1 or supports(x) is not None:
        return x.t().contiguous()
    out = x.new_empty((x.shape[1], x.shape[0]))
    _call("transpose", _DTYPES[x.dtype], _ptr(x), x.shape[0], x.shape[1], x.stride(0), _ptr(out))
    return out


# -- linear layers through oneDNN ------------------------------------------------------------

_onednn_state: dict = {}


def onednn_reason() -> str | None:
    """None when float32 linear layers can go through oneDNN, else why not (probed once)."""
    if "reason" not in _onednn_state:
        reason = None
        if os.environ.get("ATTNLAB_ONEDNN", "1") == "0":
            reason = "ATTNLAB_ONEDNN=0"
        else:
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
                reason = str(exc).splitlines()[0]
        if reason:
            log.info("linear layers use torch.nn.functional.linear (%s)", reason)
        _onednn_state["reason"] = reason
    return _onednn_state["reason"]


def _onednn_ok(*tensors: torch.Tensor) -> bool:
    return all(t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors) and onednn_reason() is None


def _product(x, weight, bias, relu, residual):
    """oneDNN: [relu](x W^T + b) [+ residual], x (T, in), weight (out, in)."""
    op = torch.ops.mkldnn._linear_pointwise
    if residual is not None:
        return op.binary(x, residual, weight, bias, "add")
    return op(x, weight, bias, "relu" if relu else "none", [], "")


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, residual, relu):
        y = _product(x, weight, bias, relu, residual)
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


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
           relu: bool = False, residual: torch.Tensor | None = None) -> torch.Tensor:
    """x (T, in), weight (out, in) -> [relu](x W^T + bias) [+ residual] (T, out).

    ``relu`` and ``residual`` exclude each other. oneDNN for float32 CPU tensors, else
    ``torch.nn.functional.linear``; autograd-aware either way.
    """
    if relu and residual is not None:
        raise ValueError("linear: relu and residual cannot be combined")
    tensors = [t for t in (x, weight, bias, residual) if t is not None]
    if x.dim() != 2 or not _onednn_ok(*tensors):
        y = torch.nn.functional.linear(x, weight, bias)
        if relu:
            return y.relu_()
        return y if residual is None else y + residual
    x = x.contiguous()
    if residual is not None:
        residual = residual.contiguous()
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return _Linear.apply(x, weight, bias, residual, relu)
    return _product(x, weight, bias, relu, residual)
