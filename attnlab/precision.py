"""The number format a model runs in at inference: ``"fp32"``, ``"bf16"``, ``"int8"`` or ``"auto"``.

``"bf16"`` runs the matrix products in bfloat16 (torch's autocast: weights and inputs of
each linear layer and of attention are rounded to bfloat16, products accumulate in fp32;
layer norms, softmaxes and the scores that choose a tag stay fp32). On a CPU with native
bfloat16 instructions (AVX-512 BF16 or AMX-BF16) those products run about twice as fast as
in fp32; without them they are emulated and slower, so ``"auto"`` takes bfloat16 only where
the CPU has them, and an explicit ``"bf16"`` there logs that it will be slow.

``"int8"`` runs the linear layers as int8 products (weights quantized once per output
channel, inputs per row, both symmetric; exact int32 accumulation; fp32 out; attention, norms
and softmaxes stay fp32), fastest where the CPU has VNNI or AMX-INT8. CPU only; asked for,
never chosen by "auto".

What each costs in accuracy is measured, per treebank and layer, in RESULTS.md ("Tagging in
bfloat16 and int8").
"""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path

PRECISIONS = ("fp32", "bf16", "int8", "auto")
_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX-512 BF16"}

log = logging.getLogger("attnlab.precision")


@functools.lru_cache(maxsize=1)
def native_bf16() -> tuple[bool, str]:
    """Whether this CPU multiplies bfloat16 natively, and how that was told (the flags of
    /proc/cpuinfo; elsewhere no claim is made)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False, "no /proc/cpuinfo to read the CPU's flags from"
    return bf16_from_cpuinfo(text)


def bf16_from_cpuinfo(text: str) -> tuple[bool, str]:
    """``native_bf16`` for the text of /proc/cpuinfo."""
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    found = [name for flag, name in _FLAGS.items() if flag in flags]
    if found:
        return True, f"the CPU has {' and '.join(found)}"
    return False, "the CPU has neither AVX-512 BF16 nor AMX-BF16 (no avx512_bf16 / amx_bf16 in /proc/cpuinfo)"


def resolve(precision: str, device: str = "cpu") -> str:
    """``precision`` as it will run: "fp32", "bf16" or "int8" ("auto": bf16 where the CPU has
    native bfloat16, or on a GPU; fp32 elsewhere). ValueError for an unknown name, and for int8
    off the CPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is unknown; choose one of {', '.join(PRECISIONS)}")
    on_cpu = str(device).startswith("cpu")
    if precision == "int8":
        if not on_cpu:
            raise ValueError(f"precision int8 runs on the CPU only, not on {device}")
        return precision
    native, why = native_bf16() if on_cpu else (True, "a GPU")
    if precision == "auto":
        return "bf16" if native else "fp32"
    if precision == "bf16" and not native:
        log.warning("precision bf16: %s, so bfloat16 products are emulated and slower than fp32", why)
    return precision


ROWS = 256  # bfloat16 linear layers on the CPU: row counts rounded up to a multiple of this,
PIECE = 2048  # and taken at most this many at a time


@contextlib.contextmanager
def autocast(precision: str, device_type: str = "cpu"):
    """The context a forward pass runs in for a resolved ``precision``: for "bf16", torch's
    autocast, and on the CPU row counts of linear layers rounded up (``_rounded_rows``); for
    "int8", linear layers as dynamically quantized products (``_int8_linear``)."""
    if precision == "int8":
        with _int8_linear():
            yield
        return
    if precision != "bf16":
        yield
        return
    import torch

    with torch.autocast(device_type, dtype=torch.bfloat16):
        if device_type != "cpu":
            yield
            return
        with _rounded_rows():
            yield


def _linear_mode(product):
    """A torch function mode in which ``F.linear`` on the CPU runs as ``product(x, weight,
    bias)``: x the input's rows (all dimensions but the last, flattened) (M, K), weight (N, K),
    bias (N,) or None -> (M, N). Every other call runs as it would."""
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    class _LinearMode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is not F.linear or len(args) < 2 or args[0].dim() < 2 or args[0].device.type != "cpu":
                return func(*args, **kwargs)
            x, weight = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            out = product(x.reshape(-1, x.shape[-1]), weight, bias)
            return out.reshape(*x.shape[:-1], out.shape[-1])

    return _LinearMode()


def _rounded_rows():
    """``F.linear`` in bfloat16 on rows padded with zero rows to a multiple of ``ROWS``, at most
    ``PIECE`` at a time, so that every product has one of PIECE / ROWS shapes. oneDNN, which
    runs bfloat16 products on the CPU, builds and keeps a kernel for every new shape: tagging
    EWT train, with a new row count per batch, grew to 1.1 GB against 0.4 GB in fp32. Each
    row's result is the same either way (rows of a product do not mix), and as fast as one
    product (measured)."""
    return _linear_mode(_bf16_product)


def _bf16_product(x, weight, bias):
    import torch

    rows, width = x.shape
    padded = rows + -rows % ROWS
    xb = x.new_zeros(padded, width, dtype=torch.bfloat16)  # (P, K)
    xb[:rows] = x
    wt = weight.to(torch.bfloat16).t()  # (K, N)
    bb = None if bias is None else bias.to(torch.bfloat16)  # (N,)
    out = x.new_empty(padded, weight.shape[0], dtype=torch.bfloat16)  # (P, N)
    for i in range(0, padded, PIECE):
        if bb is None:
            torch.mm(xb[i:i + PIECE], wt, out=out[i:i + PIECE])
        else:
            torch.addmm(bb, xb[i:i + PIECE], wt, out=out[i:i + PIECE])
    return out[:rows]


def _int8_linear():
    """``F.linear`` as an int8 product: the weight quantized symmetrically per output channel
    (scale = its largest magnitude / 127, once, kept per weight and made again when it
    changes), each input row on its own scale in the same way, the product in exact int32
    arithmetic (``torch._int_mm``), then scaled back to fp32 and the bias added. Per row, so a
    word's result never depends on the other rows of its batch (the output is the same for
    any block size or batch, as in fp32)."""
    return _linear_mode(_int8_product)


def _int8_product(x, weight, bias):
    import torch

    wq, w_scale = _int8_weight(weight)  # (K, N) int8, (N,)
    x = x.float()  # (M, K)
    x_scale = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127  # (M, 1)
    xq = torch.round(x / x_scale).to(torch.int8)
    out = torch._int_mm(xq, wq).float().mul_(x_scale).mul_(w_scale)  # (M, N), exact up to here
    if bias is not None:
        out += bias.float()
    return out


_INT8: dict = {}  # id(weight) -> (a weak reference to it, its version, (K, N) int8 weight, (N,) scales)


def _int8_weight(weight):
    import weakref

    import torch

    version = (weight.data_ptr(), None if weight.is_inference() else weight._version)
    kept = _INT8.get(id(weight))
    if kept is not None and kept[0]() is weight and kept[1] == version:
        return kept[2], kept[3]
    w = weight.detach().float()  # (N, K)
    scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127  # (N,) per output channel
    wq = torch.round(w / scale[:, None]).to(torch.int8).t().contiguous()  # (K, N)
    _INT8[id(weight)] = (weakref.ref(weight), version, wq, scale)
    return wq, scale
