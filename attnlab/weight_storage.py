"""How a model directory stores its weights: float32, float16, or int8 with one scale per row.

A trained model stores float32 weights (4 bytes per parameter), most of them in the
word-embedding table. A compact copy (``attnlab.compact.export_model``) stores them as

* ``float16``: every floating tensor in half precision (2 bytes per parameter);
* ``int8``: every floating tensor of two or more dimensions (matrices, embedding tables,
  convolution kernels) as int8 with one float32 scale per row, i.e. per output channel
  (``W[r] ~ q[r] * scale[r]``, ``q`` in -127..127, ``scale[r] = max |W[r]| / 127``),
  stored beside it as ``NAME#scale``; 1-D tensors (biases, LayerNorm) in float16.

config.json records the storage as ``"weight_storage"`` (absent: float32). Loading a model
directory (``attnlab.checkpoint.load_model_dir``, and so every model loader) turns the
stored weights back into float32 with ``decode_weights``, after the usual checksum and
size checks. Tensors that do not fit the declared storage (a missing or stray scale, a
scale of the wrong shape, a dtype the storage does not use) raise ``StorageError``, one
line that the loader prefixes with the file's name.
"""

from __future__ import annotations

import torch

from .errors import UserError

STORAGE_KEY = "weight_storage"  # the config.json entry naming how the weights are stored
STORAGES = ("float32", "float16", "int8")
COMPACT = ("float16", "int8")  # what export_model writes
SCALE = "#scale"  # suffix of the per-row scales of an int8 tensor ("#" is never in a torch name)
INT8_MAX = 127


class StorageError(ValueError):
    """Stored tensors that do not fit the storage config.json declares."""


# -- encoding ----------------------------------------------------------------------------

def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 tensor of ``weight``'s shape, float32 scales of shape (R,)) for a tensor of shape
    (R, ...): each row r (output channel) is ``q[r] * scale[r]`` to within ``scale[r] / 2``.
    A row of zeros gets scale 0."""
    rows = _rows(weight.detach().float())  # (R, K)
    scale = rows.abs().amax(dim=1) / INT8_MAX if rows.numel() else rows.new_zeros(rows.shape[0])  # (R,)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(rows / safe[:, None]).clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q.reshape(weight.shape), scale


def dequantize_rows(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 ``q * scale`` row by row (the inverse of ``quantize_rows``)."""
    return (_rows(q.float()) * scale.float()[:, None]).reshape(q.shape)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """(R, K) view of a tensor of shape (R, ...), K the product of the other sizes (also when R = 0)."""
    return t.reshape(t.shape[0], t[0].numel() if t.shape[0] else 0)


def encode_weights(state: dict[str, torch.Tensor], storage: str) -> dict[str, torch.Tensor]:
    """``state`` as ``storage`` ("float16" or "int8") stores it; integer buffers stay as they are.
    A weight that is not finite, or too large for float16, is a UserError naming it."""
    if storage not in COMPACT:
        raise UserError(f"weight storage {storage!r}: expected one of {', '.join(COMPACT)}")
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            out[name] = tensor
            continue
        if not bool(torch.isfinite(tensor).all()):
            raise UserError(f"weight {name} holds values that are not finite; the model cannot be exported")
        if storage == "int8" and tensor.dim() >= 2:
            out[name], out[name + SCALE] = quantize_rows(tensor)
        else:
            half = tensor.detach().half()
            if not bool(torch.isfinite(half).all()):
                raise UserError(f"weight {name} has values beyond float16's range (65504); use another storage")
            out[name] = half
    return out


# -- decoding ----------------------------------------------------------------------------

def storage_of(config: dict) -> str:
    """The weight storage a config.json declares ("float32" when it declares none)."""
    storage = config.get(STORAGE_KEY, "float32")
    if storage not in STORAGES:
        raise StorageError(f"{STORAGE_KEY} {storage!r:.40} is not one of {', '.join(STORAGES)}")
    return storage


def decode_weights(state: dict[str, torch.Tensor], storage: str) -> dict[str, torch.Tensor]:
    """The float32 weights of a model whose weight file holds ``state`` and whose config.json
    declares ``storage`` (``storage_of``); a one-line StorageError when the tensors do not fit
    it (float32 models are returned as they are, once checked to hold no int8)."""
    scales = {name[: -len(SCALE)]: t for name, t in state.items() if name.endswith(SCALE)}
    weights = {name: t for name, t in state.items() if not name.endswith(SCALE)}
    if storage == "float32":
        stray = sorted(scales) or sorted(n for n, t in weights.items() if t.dtype == torch.int8)
        if stray:
            raise StorageError(f"int8 weights or scales ({stray[0]}) but config.json declares "
                               f"no {STORAGE_KEY} (float32); the files do not belong together")
        return state
    orphan = sorted(set(scales) - set(weights))
    if orphan:
        raise StorageError(f"scale {orphan[0]}{SCALE} belongs to no weight")
    return {name: _decode_one(name, t, scales.get(name), storage) for name, t in weights.items()}


def _decode_one(name: str, tensor: torch.Tensor, scale: torch.Tensor | None, storage: str) -> torch.Tensor:
    """One stored tensor as float32 (integer buffers unchanged), checked against ``storage``."""
    if tensor.dtype == torch.int8:
        if storage != "int8":
            raise StorageError(f"weight {name} is int8 but config.json declares {storage} storage")
        return dequantize_rows(tensor, _checked_scale(name, tensor, scale))
    if scale is not None:
        raise StorageError(f"weight {name} has a scale but is stored as {_dtype(tensor)}, not int8")
    if tensor.is_floating_point():
        if tensor.dtype != torch.float16:
            raise StorageError(f"weight {name} is {_dtype(tensor)}; {storage} storage keeps floats in float16")
        if storage == "int8" and tensor.dim() >= 2:
            raise StorageError(f"weight {name} is a float16 matrix; int8 storage keeps matrices in int8")
        return tensor.float()
    return tensor


def _checked_scale(name: str, q: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """The scales of the int8 tensor ``q`` (R, ...): float32 of shape (R,), finite, >= 0."""
    if scale is None:
        raise StorageError(f"int8 weight {name} has no scale ({name}{SCALE} is missing)")
    if q.dim() < 2:
        raise StorageError(f"int8 weight {name} has shape {tuple(q.shape)}; only matrices are int8")
    if scale.dtype != torch.float32 or tuple(scale.shape) != (q.shape[0],):
        raise StorageError(f"scale {name}{SCALE} is {_dtype(scale)} {tuple(scale.shape)}, "
                           f"expected float32 ({q.shape[0]},) for weight {name} {tuple(q.shape)}")
    if not bool((torch.isfinite(scale) & (scale >= 0)).all()):
        raise StorageError(f"scale {name}{SCALE} holds negative or non-finite values")
    return scale


def _dtype(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")
