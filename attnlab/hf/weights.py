"""A checkpoint's ``model.safetensors`` (or the shards its ``model.safetensors.index.json``
names) -> an ``HFEncoder``'s parameters.

Only safetensors files are read: never a pickle. Only the tensors the encoder needs are read
(heads and poolers in the file, ``pooler.*``, ``discriminator_predictions.*``, ... are left
out), and each one only after its name, shape and dtype in the file's header match what the
config implies (``expected``: an HFEncoder built on torch's "meta" device). A weight map
may name only plain file names inside the checkpoint directory, and only regular files are
opened. Every problem is a one-line ``CheckpointError`` naming the file and the key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import (
    MAX_CONFIG_BYTES, CheckpointError, check_regular, check_tensor, check_tensor_header, member, read_json,
)
from .config import HFConfig

WEIGHTS, INDEX = "model.safetensors", "model.safetensors.index.json"
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"  # found under any prefix ("bert.", "electra.", ...)
# the dtypes a checkpoint may store its weights in (they are converted to the encoder's dtype)
FLOATS = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
# safetensors' dtype names -> torch's (the refused ones by name only)
_DTYPES: dict[str, torch.dtype | str] = {
    "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64",
}

# attnlab's Embeddings parts -> the checkpoint's module names (after the prefix)
EMBEDDING_NAMES = {
    "word": "embeddings.word_embeddings",
    "position": "embeddings.position_embeddings",
    "token_type": "embeddings.token_type_embeddings",
    "norm": "embeddings.LayerNorm",
    "project": "embeddings_project",
}
# per layout: where layer i lives, and attnlab's layer parts -> the checkpoint's module names
LAYER_NAMES = {
    "bert": ("encoder.layer.{i}.", {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "attn.out": "attention.output.dense", "norm1": "attention.output.LayerNorm",
        "ff1": "intermediate.dense", "ff2": "output.dense", "norm2": "output.LayerNorm",
    }),
    "distilbert": ("transformer.layer.{i}.", {
        "q": "attention.q_lin", "k": "attention.k_lin", "v": "attention.v_lin",
        "attn.out": "attention.out_lin", "norm1": "sa_layer_norm",
        "ff1": "ffn.lin1", "ff2": "ffn.lin2", "norm2": "output_layer_norm",
    }),
}


def weight_files(directory: str | Path) -> dict[str, Path]:
    """Where each tensor of the checkpoint is: tensor name -> file, from ``model.safetensors``'s
    header or from the weight map of ``model.safetensors.index.json`` (its file names checked
    to be plain names inside ``directory``)."""
    directory = Path(directory)
    if os.path.lexists(directory / WEIGHTS):
        with _open_safetensors(directory / WEIGHTS) as f:
            return {name: directory / WEIGHTS for name in f.keys()}
    if not os.path.lexists(directory / INDEX):
        raise CheckpointError(
            f"{directory}: no {WEIGHTS} (attnlab reads only safetensors weights, never pytorch_model.bin, a pickle)"
        )
    index = directory / INDEX
    weight_map = read_json(index, "shard index", limit=MAX_CONFIG_BYTES).get("weight_map")
    if not isinstance(weight_map, dict):
        raise CheckpointError(f"{index}: \"weight_map\" must be a JSON object (tensor name -> file name), "
                              f"found {type(weight_map).__name__}")
    return {name: member(directory, file, index, f"weight_map[{name!r:.60}]") for name, file in weight_map.items()}


class _Shards:
    """The safetensors files a checkpoint's tensors are in, each opened once (when first needed)."""

    def __init__(self, files: dict[str, Path]):
        self.files = files
        self.open: dict[Path, Any] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for f in self.open.values():
            f.__exit__(None, None, None)

    def tensor(self, name: str, shape: tuple[int, ...], allow_nonfinite: bool) -> torch.Tensor:
        """The tensor ``name``, read once its header's shape and dtype are those expected."""
        path = self.files[name]
        if path not in self.open:
            self.open[path] = _open_safetensors(path).__enter__()
        f = self.open[path]
        try:
            piece = f.get_slice(name)
            found_shape, found_dtype = tuple(piece.get_shape()), piece.get_dtype()
        except Exception:  # safetensors' own error type: the index names a tensor the file lacks
            raise CheckpointError(f"{path}: has no tensor {name!r} (the shard index says it has)") from None
        check_tensor_header(name, found_shape, _DTYPES.get(found_dtype, found_dtype), shape, FLOATS, path)
        tensor = f.get_tensor(name)
        check_tensor(tensor, name, shape, FLOATS, path, allow_nonfinite=allow_nonfinite)
        return tensor


def _open_safetensors(path: Path):
    """``safetensors.safe_open`` on a regular file (a FIFO or device is refused before it is opened)."""
    from safetensors import safe_open

    check_regular(path, "safetensors weights")
    try:
        return safe_open(str(path), framework="pt")
    except Exception as error:  # a truncated or foreign file: safetensors' own error type, one line
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{path}: not a readable safetensors file ({message})") from None


def read_encoder_state(directory: str | Path, config: HFConfig, expected: dict[str, torch.Tensor],
                       *, allow_nonfinite: bool = False) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under an HFEncoder's parameter names (``expected``: its
    ``state_dict()``, shapes and names only; q, k and v stacked into one projection)."""
    files = weight_files(directory)
    prefixes = [name[: -len(WORD_EMBEDDINGS)] for name in files if name.endswith(WORD_EMBEDDINGS)]
    if not prefixes:
        raise CheckpointError(f"{directory}: the weights have no {WORD_EMBEDDINGS!r}: not a {config.model_type} encoder")
    prefix = min(prefixes, key=len)
    state = {}
    with _Shards(files) as shards:
        for ours, want in expected.items():
            theirs = their_names(ours, config, prefix)
            shape = (want.shape[0] // len(theirs), *want.shape[1:])
            missing = [n for n in theirs if n not in files]
            if missing:
                raise CheckpointError(f"{directory}: the weights have no {missing[0]!r} "
                                      f"({config.model_type} with {config.layers} layers)")
            parts = [shards.tensor(n, shape, allow_nonfinite) for n in theirs]
            state[ours] = parts[0] if len(parts) == 1 else torch.cat(parts)
    return state


def their_names(ours: str, config: HFConfig, prefix: str) -> list[str]:
    """The checkpoint's names of the HFEncoder parameter ``ours`` (three for q, k, v)."""
    module, p = ours.rsplit(".", 1)
    if module.startswith("embeddings."):
        return [f"{prefix}{EMBEDDING_NAMES[module.removeprefix('embeddings.')]}.{p}"]
    layer, part = module.removeprefix("encoder.layers.").split(".", 1)
    template, names = LAYER_NAMES[config.layout]
    at = prefix + template.format(i=layer)
    if part == "attn.qkv":
        return [f"{at}{names[x]}.{p}" for x in "qkv"]
    return [f"{at}{names[part]}.{p}"]
