"""attnlab: self-attention and multi-head self-attention, exact and fast.

    >>> import torch, attnlab
    >>> layer = attnlab.MultiHeadSelfAttention(d_model=64, heads=4)
    >>> y = layer(torch.randn(2, 10, 64), lengths=torch.tensor([10, 7]))
"""

from . import reference
from .attention import masks
from .attention.functional import NORMALIZERS, scaled_dot_product_attention
from .attention.varlen import VarlenPlan, varlen_attention, varlen_attention_qkv
from .modules import MultiHeadSelfAttention, SelfAttention, TransformerEncoder, TransformerEncoderLayer
from .packing import cu_seqlens_from_lengths, pack, pack_padded, unpack, unpack_padded

__version__ = "0.1.0"

__all__ = [
    "NORMALIZERS",
    "MultiHeadSelfAttention",
    "SelfAttention",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "VarlenPlan",
    "cu_seqlens_from_lengths",
    "masks",
    "pack",
    "pack_padded",
    "reference",
    "scaled_dot_product_attention",
    "unpack",
    "unpack_padded",
    "varlen_attention",
    "varlen_attention_qkv",
]
