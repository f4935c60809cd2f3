"""attnlab: self-attention and multi-head self-attention, exact and fast.

    >>> import torch, attnlab
    >>> layer = attnlab.MultiHeadSelfAttention(d_model=64, heads=4)
    >>> y = layer(torch.randn(2, 10, 64), lengths=torch.tensor([10, 7]))
"""

from . import reference
from .attention import masks
from .attention.functional import NORMALIZERS, scaled_dot_product_attention
from .modules import MultiHeadSelfAttention, SelfAttention

__version__ = "0.1.0"

__all__ = [
    "NORMALIZERS",
    "MultiHeadSelfAttention",
    "SelfAttention",
    "masks",
    "reference",
    "scaled_dot_product_attention",
]
