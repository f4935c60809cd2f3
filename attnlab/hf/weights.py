"""A checkpoint's ``model.safetensors`` -> an ``HFEncoder``'s parameters.

Only safetensors files are read (``safetensors.torch.load_file``): never a pickle. Heads and
poolers in the file (``pooler.*``, ``discriminator_predictions.*``, ...) are left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import UserError
from .config import HFConfig

WEIGHTS, INDEX = "model.safetensors", "model.safetensors.index.json"
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"  # found under any prefix ("bert.", "electra.", ...)

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


def read_safetensors(directory: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of ``model.safetensors`` (or of the shards its index names)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    if (directory / WEIGHTS).is_file():
        files = [directory / WEIGHTS]
    elif (directory / INDEX).is_file():
        weight_map = json.loads((directory / INDEX).read_text(encoding="utf-8")).get("weight_map", {})
        files = [directory / name for name in sorted(set(weight_map.values()))]
    else:
        raise UserError(
            f"{directory}: no {WEIGHTS} (attnlab reads only safetensors weights, never pytorch_model.bin, a pickle)"
        )
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            tensors.update(load_file(str(file)))
        except Exception as error:  # a truncated or foreign file: one line, naming it
            raise UserError(f"{file}: not a readable safetensors file ({error})") from None
    return tensors


def encoder_state_dict(theirs: dict[str, torch.Tensor], config: HFConfig, wanted: set[str]) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors renamed to an HFEncoder's ``wanted`` parameter names
    (q, k and v stacked into one projection)."""
    prefixes = [name[: -len(WORD_EMBEDDINGS)] for name in theirs if name.endswith(WORD_EMBEDDINGS)]
    if not prefixes:
        raise UserError(f"the weights have no {WORD_EMBEDDINGS!r}: not a {config.model_type} encoder")
    prefix = min(prefixes, key=len)

    def get(name: str) -> torch.Tensor:
        if prefix + name not in theirs:
            raise UserError(f"the weights have no {prefix + name!r} ({config.model_type} with {config.layers} layers)")
        return theirs[prefix + name]

    ours = {}
    for part, name in EMBEDDING_NAMES.items():
        for p in ("weight", "bias"):
            if f"embeddings.{part}.{p}" in wanted:
                ours[f"embeddings.{part}.{p}"] = get(f"{name}.{p}")
    template, names = LAYER_NAMES[config.layout]
    for i in range(config.layers):
        theirs_at, ours_at = template.format(i=i), f"encoder.layers.{i}."
        for p in ("weight", "bias"):
            ours[f"{ours_at}attn.qkv.{p}"] = torch.cat([get(f"{theirs_at}{names[x]}.{p}") for x in "qkv"])
            for part in ("attn.out", "norm1", "ff1", "ff2", "norm2"):
                ours[f"{ours_at}{part}.{p}"] = get(f"{theirs_at}{names[part]}.{p}")
    return ours
