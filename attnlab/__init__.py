"""attnlab: self-attention and multi-head self-attention, exact and fast.

    >>> import torch, attnlab
    >>> layer = attnlab.MultiHeadSelfAttention(d_model=64, heads=4)
    >>> y = layer(torch.randn(2, 10, 64), lengths=torch.tensor([10, 7]))

The names below are imported on first use, so that ``import attnlab`` (and
``attnlab --help``) does not load torch.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers see; at run time ``__getattr__`` imports on first use
    from . import api, hf, reference
    from .api import (Document, NoSegmenterError, TaggedSentence, TaggedToken, TaggedWord, Tagger, Token, load,
                      shipped_models)
    from .attention import masks
    from .attention.functional import NORMALIZERS, scaled_dot_product_attention
    from .attention.varlen import VarlenPlan, varlen_attention, varlen_attention_qkv
    from .modules import MultiHeadSelfAttention, SelfAttention, TransformerEncoder, TransformerEncoderLayer
    from .packing import cu_seqlens_from_lengths, pack, pack_padded, unpack, unpack_padded

# public name -> (module that defines it, attribute; None = the module itself)
_EXPORTS = {
    "NORMALIZERS": (".attention.functional", "NORMALIZERS"),
    "Document": (".api", "Document"),
    "MultiHeadSelfAttention": (".modules", "MultiHeadSelfAttention"),
    "NoSegmenterError": (".api", "NoSegmenterError"),
    "SelfAttention": (".modules", "SelfAttention"),
    "TaggedSentence": (".api", "TaggedSentence"),
    "TaggedToken": (".api", "TaggedToken"),
    "TaggedWord": (".api", "TaggedWord"),
    "Token": (".api", "Token"),
    "Tagger": (".api", "Tagger"),
    "TransformerEncoder": (".modules", "TransformerEncoder"),
    "TransformerEncoderLayer": (".modules", "TransformerEncoderLayer"),
    "VarlenPlan": (".attention.varlen", "VarlenPlan"),
    "api": (".api", None),
    "cu_seqlens_from_lengths": (".packing", "cu_seqlens_from_lengths"),
    "hf": (".hf", None),
    "load": (".api", "load"),
    "masks": (".attention.masks", None),
    "pack": (".packing", "pack"),
    "pack_padded": (".packing", "pack_padded"),
    "reference": (".reference", None),
    "scaled_dot_product_attention": (".attention.functional", "scaled_dot_product_attention"),
    "shipped_models": (".api", "shipped_models"),
    "unpack": (".packing", "unpack"),
    "unpack_padded": (".packing", "unpack_padded"),
    "varlen_attention": (".attention.varlen", "varlen_attention"),
    "varlen_attention_qkv": (".attention.varlen", "varlen_attention_qkv"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, attribute = _EXPORTS[name]
    module = import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
