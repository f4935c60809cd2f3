"""BERT-family checkpoints (BERT, RoBERTa, XLM-RoBERTa, DistilBERT, ELECTRA) in attnlab's
packed encoder, from a local Hugging Face directory (config.json + model.safetensors).

    >>> enc = attnlab.hf.load_encoder("path/to/bert-base-cased")
    >>> pieces = attnlab.hf.load_tokenizer("path/to/bert-base-cased")
    >>> ids, cu = pieces.pack(["A first sentence.", "And a second one."])
    >>> out = enc.forward_packed(ids, cu, return_hidden=True, return_weights=True)

Loading needs only torch and safetensors; the tokenizer needs the ``hf`` extra (``tokenizers``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import meta_skeleton
from .config import FAMILIES, HFConfig, parse_config, read_config
from .model import EncoderOutput, Embeddings, HFEncoder
from .tokenizer import Pieces, WordPieces, load_tokenizer
from .weights import FLOATS, read_encoder_state

__all__ = [
    "FAMILIES", "EncoderOutput", "Embeddings", "HFConfig", "HFEncoder", "Pieces", "WordPieces",
    "load_encoder", "load_tokenizer", "parse_config", "read_config",
]


def load_encoder(directory: str | Path, *, dtype: torch.dtype = torch.float32,
                 allow_nonfinite: bool = False) -> HFEncoder:
    """The encoder of the checkpoint in ``directory``, in eval mode, its weights in ``dtype``
    (float32, float16, bfloat16 or float64).

    Raises ``attnlab.checkpoint.CheckpointError`` (a ``UserError``, one line naming the file and
    the key) for a missing or unreadable file, an unsupported configuration (relative
    positions, another activation, a decoder, another model type), a config value of the
    wrong type or beyond the limits of ``attnlab.hf.config`` (checked before anything is
    built), and weights whose names, shapes or dtypes differ from what config.json implies
    (checked in the files' headers before a weight is read) or that hold NaN or infinite
    values (let through by ``allow_nonfinite=True``).
    """
    if dtype not in FLOATS:
        raise TypeError(f"dtype must be one of {', '.join(str(d) for d in FLOATS)}, got {dtype!r:.40}")
    config = read_config(directory)
    with meta_skeleton():  # the shapes and names the weights must have, without memory
        expected = HFEncoder(config).state_dict()
    state = read_encoder_state(directory, config, expected, allow_nonfinite=allow_nonfinite)
    model = HFEncoder(config)
    model.load_state_dict(state, strict=True)
    return model.to(dtype).eval()
