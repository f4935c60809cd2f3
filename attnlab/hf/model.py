"""A BERT-family encoder in attnlab's packed engine: the checkpoint's own embeddings, then
``attnlab.TransformerEncoder`` (post-norm, GELU, no position code of its own).

Shape letters: B sequences, N padded length, T packed word pieces, D width, H heads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..modules import TransformerEncoder
from ..packing import check_cu_seqlens, pack_padded, positions_in_sequence, unpack_padded
from .config import HFConfig


@dataclass
class EncoderOutput:
    """``last_hidden_state`` (T, D) packed or (B, N, D) padded (padding rows 0);
    ``hidden_states``: the embeddings' output then every layer's, L + 1 tensors of that shape
    (None unless asked for); ``attentions``: per layer a list of B weights (H, n_b, n_b)
    (None unless asked for); ``cu_seqlens`` (B + 1,)."""

    last_hidden_state: torch.Tensor
    hidden_states: list[torch.Tensor] | None
    attentions: list[list[torch.Tensor]] | None
    cu_seqlens: torch.Tensor


class Embeddings(nn.Module):
    """Word + token type + absolute position embeddings, LayerNorm, dropout (and ELECTRA's
    projection to the encoder's width), on packed word pieces (T,) -> (T, D).

    Positions count within each sequence from ``position_offset`` (0 for BERT; for RoBERTa
    pad_token_id + 1, and a padding id inside a sequence takes position pad_token_id).
    """

    def __init__(self, config: HFConfig):
        super().__init__()
        e = config.embedding_size
        self.word = nn.Embedding(config.vocab_size, e)
        self.position = nn.Embedding(config.max_positions, e)
        self.token_type = nn.Embedding(config.type_vocab_size, e) if config.type_vocab_size else None
        self.norm = nn.LayerNorm(e, eps=config.layer_norm_eps)
        self.project = nn.Linear(e, config.width) if e != config.width else None
        self.dropout = nn.Dropout(config.dropout)
        self.config = config

    def positions(self, ids: torch.Tensor, cu: torch.Tensor) -> torch.Tensor:
        """(T,) long position ids of the packed word pieces ``ids`` (T,)."""
        offset = self.config.position_offset
        if not offset:
            return positions_in_sequence(cu, ids.shape[0])
        real = (ids != self.config.pad_token_id).long()
        count = torch.cat([real.new_zeros(1), torch.cumsum(real, 0)])  # (T + 1,) real pieces before each index
        before = torch.repeat_interleave(count[cu[:-1]], cu[1:] - cu[:-1], output_size=ids.shape[0])
        return (count[1:] - before) * real + self.config.pad_token_id

    def forward(self, ids: torch.Tensor, cu: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        check_ids(ids, self.config)
        longest = int((cu[1:] - cu[:-1]).max()) if cu.numel() > 1 else 0
        if longest > self.config.longest:
            raise ValueError(
                f"a sequence has {longest} word pieces; this checkpoint takes at most {self.config.longest}"
            )
        check_token_types(token_type_ids, ids, self.config)
        x = self.word(ids)
        if self.token_type is not None:
            types = torch.zeros_like(ids) if token_type_ids is None else token_type_ids
            x = x + self.token_type(types)
        x = self.dropout(self.norm(x + self.position(self.positions(ids, cu))))
        return x if self.project is None else self.project(x)


def check_ids(ids: torch.Tensor, config: HFConfig) -> None:
    """ValueError unless ``ids`` is a (T,) integer tensor of ids in the vocabulary."""
    if ids.dim() != 1 or ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.dtype.is_complex:
        raise ValueError(f"input_ids must be a (T,) integer tensor, got {tuple(ids.shape)} {ids.dtype}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= config.vocab_size):
        raise ValueError(f"input_ids must be in [0, {config.vocab_size}), got {int(ids.min())}..{int(ids.max())}")


def check_token_types(types: torch.Tensor | None, ids: torch.Tensor, config: HFConfig) -> None:
    """ValueError unless ``types`` is None or an integer tensor of ``ids``' shape with every
    value below ``type_vocab_size`` (only zeros when the checkpoint has no token types)."""
    if types is None:
        return
    if not isinstance(types, torch.Tensor) or types.shape != ids.shape or types.dtype.is_floating_point \
            or types.dtype == torch.bool or types.dtype.is_complex:
        found = f"{tuple(types.shape)} {types.dtype}" if isinstance(types, torch.Tensor) else type(types).__name__
        raise ValueError(f"token_type_ids must be an integer tensor of input_ids' shape {tuple(ids.shape)}, got {found}")
    count = config.type_vocab_size
    if types.numel() and (int(types.min()) < 0 or int(types.max()) >= max(count, 1)):
        allowed = f"in [0, {count})" if count else "0 (this checkpoint has no token types)"
        raise ValueError(f"token_type_ids must be {allowed}, got {int(types.min())}..{int(types.max())}")


class HFEncoder(nn.Module):
    """A loaded checkpoint: ``embeddings`` then ``encoder`` (an ``attnlab.TransformerEncoder``).

    * ``forward_packed(input_ids (T,), cu_seqlens (B + 1,))``: the working form, nothing padded;
    * ``forward(input_ids (B, N), lengths (B,) | None)``: packs, runs, unpacks.

    Both return an ``EncoderOutput``; ``return_hidden`` / ``return_weights`` add every
    layer's output / attention maps (the weights take a slower path).
    """

    def __init__(self, config: HFConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = TransformerEncoder(
            config.width, config.heads, config.layers, config.d_ff, dropout=config.dropout, positions="none",
            norm_first=False, max_len=config.max_positions, activation="gelu", layer_norm_eps=config.layer_norm_eps,
        )

    def forward_packed(
        self, input_ids: torch.Tensor, cu_seqlens: torch.Tensor, *, token_type_ids: torch.Tensor | None = None,
        return_hidden: bool = False, return_weights: bool = False,
    ) -> EncoderOutput:
        cu = check_cu_seqlens(cu_seqlens, input_ids.shape[0]).to(input_ids.device)
        x = self.embeddings(input_ids, cu, token_type_ids)
        hidden: list[torch.Tensor] | None = [x] if return_hidden else None
        weights: list[list[torch.Tensor]] | None = [] if return_weights else None
        for x, w in self.encoder.layer_outputs(x, cu, return_weights=return_weights):
            if hidden is not None:
                hidden.append(x)
            if weights is not None:
                weights.append(w)
        return EncoderOutput(x, hidden, weights, cu)

    def forward(
        self, input_ids: torch.Tensor, lengths: torch.Tensor | None = None, *,
        token_type_ids: torch.Tensor | None = None, return_hidden: bool = False, return_weights: bool = False,
    ) -> EncoderOutput:
        """input_ids (B, N), lengths (B,) or None (all N) -> padded outputs (B, N, D)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (B, N), got {tuple(input_ids.shape)}")
        ids, cu = pack_padded(input_ids, lengths)
        check_token_types(token_type_ids, input_ids, self.config)
        types = None if token_type_ids is None else pack_padded(token_type_ids, lengths)[0]
        out = self.forward_packed(ids, cu, token_type_ids=types, return_hidden=return_hidden, return_weights=return_weights)
        n = input_ids.shape[1]
        hidden = None if out.hidden_states is None else [unpack_padded(h, cu, n) for h in out.hidden_states]
        return EncoderOutput(unpack_padded(out.last_hidden_state, cu, n), hidden, out.attentions, cu)
