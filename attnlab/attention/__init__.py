"""Functional attention, normalizers and masks."""

from . import masks
from .functional import NORMALIZERS, normalize_scores, scaled_dot_product_attention

__all__ = ["masks", "NORMALIZERS", "normalize_scores", "scaled_dot_product_attention"]
