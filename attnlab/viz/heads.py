"""What every model the explorer shows has in common, once it has an attention encoder
(an ``attnlab.TransformerEncoder``) and a way to turn a sentence's tokens into that encoder's
input: one head's steps recomputed from its layer's input, the mask, the normalizer of each
query, and the checks of layer and head numbers.

Shape letters: n tokens of one sentence, D width, d head width. Layers and heads are numbered
from 0 here.
"""

from __future__ import annotations

import threading
from typing import Sequence, cast

import numpy as np
import torch

from .. import reference as R
from ..attention import masks
from ..modules import TransformerEncoder, TransformerEncoderLayer


class AttentionModel:
    """The shared part of ``attnlab.viz.model.Explainable`` (a tagger) and
    ``attnlab.viz.hf_model.CheckpointExplainable`` (a Hugging Face checkpoint).

    A subclass sets ``transformer`` (the encoder), ``layers``, ``heads``, ``normalize``,
    ``no_attention`` (why there is none, else None) and ``_lock``, and defines
    ``encoder_input(tokens)`` -> (n, D).
    """

    transformer: TransformerEncoder | None = None
    layers: int
    heads: int
    normalize: str | None  # None without attention
    no_attention: str | None = None
    _lock: threading.Lock

    def attention_encoder(self) -> TransformerEncoder:
        """The encoder whose attention is shown; ValueError saying why for a model without one."""
        self.require_attention()
        if self.transformer is None:
            raise ValueError("the model has no attention encoder")
        return self.transformer

    def encoder_input(self, tokens: list[str]) -> torch.Tensor:
        """(n, D): what the encoder's first layer is given for one sentence's ``tokens``."""
        raise NotImplementedError

    def require_attention(self) -> None:
        """ValueError saying why, for a model without attention."""
        if self.no_attention is not None:
            raise ValueError(self.no_attention)

    @torch.inference_mode()
    def steps(self, tokens: Sequence[str], layer: int, head: int) -> R.Steps:
        """The seed's intermediates of head ``head`` of layer ``layer`` on one sentence (float64).

        q^i, k^i, v^i are the head's slices of the layer's projections of its input (after the
        layer norm, with rotary positions applied to q and k when the model uses them);
        alpha, alpha' and b^i follow from them by ``attnlab.reference.attend_steps``.
        """
        tokens = list(tokens)
        t = self.attention_encoder()
        normalize = self.normalize
        assert normalize is not None  # set whenever there is attention
        self.check_layer_head(layer, head)
        if not tokens:
            raise ValueError("the sentence has no tokens")
        n = len(tokens)
        with self._lock:
            x = self.encoder_input(tokens)  # (n, D)
            cu = torch.tensor([0, n])
            positions = torch.arange(n)
            if t.position_table is not None:
                x = t.position_table(x, positions)
            for earlier in t.layers[:layer]:
                x = cast(TransformerEncoderLayer, earlier).forward_packed(
                    x, cu, rotary=t.rotary, positions=positions, causal=t.causal, window=t.window)
            block = cast(TransformerEncoderLayer, t.layers[layer])
            a = block.norm1(x) if block.norm_first else x  # the a^i this layer's attention sees
            attn = block.attn
            qkv = attn.qkv(a).unflatten(-1, (3, attn.heads, attn.d_head))  # (n, 3, H, d)
            if t.rotary is not None:
                t.rotary.rotate_(qkv[:, :2], positions)
            q, k, v = (qkv[:, i, head].double().numpy() for i in range(3))  # (n, d) each
        return R.attend_steps(q, k, v, self.attend_mask(n), normalize)

    def attend_mask(self, n: int) -> np.ndarray:
        """(n, n) booleans, True where query i may attend to key j (causal and window limits)."""
        t = self.attention_encoder()
        mask = torch.ones(n, n, dtype=torch.bool)
        if t.causal:
            mask &= masks.causal(n)
        if t.window is not None:
            mask &= masks.window(n, t.window)
        return mask.numpy()

    def normalizers(self, alpha: np.ndarray) -> tuple[str, np.ndarray]:
        """How alpha'_(i,.) follows from alpha_(i,.), and the one number per query i it divides by
        or shifts by: (formula, (n,) values). softmax: log Z_i = log sum_j exp(alpha_(i,j)), so
        alpha'_(i,j) = exp(alpha_(i,j) - log Z_i); relu: the count c_i of keys i may attend to;
        sigmoid: log c_i."""
        allowed = self.attend_mask(alpha.shape[0])
        count = allowed.sum(axis=1).astype(np.float64)
        if self.normalize == "softmax":
            top = np.where(allowed, alpha, -np.inf).max(axis=1)
            log_z = top + np.log(np.where(allowed, np.exp(alpha - top[:, None]), 0.0).sum(axis=1))
            return "alpha'_(i,j) = exp(alpha_(i,j) - log Z_i),  log Z_i = log sum_j exp(alpha_(i,j))", log_z
        if self.normalize == "relu":
            return "alpha'_(i,j) = max(alpha_(i,j), 0) / c_i,  c_i = keys token i may attend to", count
        return "alpha'_(i,j) = sigmoid(alpha_(i,j) - log c_i),  c_i = keys token i may attend to", np.log(count)

    def check_layer_head(self, layer: int | None, head: int | None) -> None:
        if layer is not None and not 0 <= layer < self.layers:
            raise ValueError(f"layer {layer + 1} does not exist: the model has {self.layers} layers (1..{self.layers})")
        if head is not None and not 0 <= head < self.heads:
            raise ValueError(f"head {head + 1} does not exist: the model has {self.heads} heads (1..{self.heads})")
