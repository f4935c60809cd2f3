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

from ..errors import UserError
from .config import FAMILIES, HFConfig, parse_config, read_config
from .model import EncoderOutput, Embeddings, HFEncoder
from .tokenizer import Pieces, WordPieces, load_tokenizer
from .weights import encoder_state_dict, read_safetensors

__all__ = [
    "FAMILIES", "EncoderOutput", "Embeddings", "HFConfig", "HFEncoder", "Pieces", "WordPieces",
    "load_encoder", "load_tokenizer", "parse_config", "read_config",
]


def load_encoder(directory: str | Path, *, dtype: torch.dtype = torch.float32) -> HFEncoder:
    """The encoder of the checkpoint in ``directory``, in eval mode, its weights in ``dtype``.

    Raises ``attnlab.errors.UserError`` (one line) for a missing file or an unsupported
    configuration (relative positions, another activation, a decoder, another model type).
    """
    config = read_config(directory)
    model = HFEncoder(config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    state = encoder_state_dict(read_safetensors(directory), config, set(shapes))
    for name, tensor in state.items():
        if tuple(tensor.shape) != shapes[name]:
            raise UserError(f"{directory}: {name} has shape {tuple(tensor.shape)}, config.json implies {shapes[name]}")
    model.load_state_dict(state, strict=True)
    return model.to(dtype).eval()
