"""What every model the explorer shows has in common, once it has an attention encoder
(an ``attnlab.TransformerEncoder``) and a way to turn a sentence's tokens into that encoder's
input: one head's steps recomputed from its layer's input, the mask, the normalizer of each
query, and the checks of layer and head numbers.

Shape letters: n tokens of one sentence, D width, d head width. Layers and heads are numbered
from 0 here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence, cast

import numpy as np
import torch

from .. import reference as R
from ..attention import masks
from ..modules import TransformerEncoder, TransformerEncoderLayer


@dataclass(frozen=True)
class HeadSteps(R.Steps):
    """One head of a model on one sentence: the seed's q, k, v, alpha, alpha', b (rows = tokens;
    q and k as attention uses them, after rotary positions) and what the model adds."""

    a: np.ndarray  # (n, D): a^i, the layer's input after its norm; what W^q, W^k, W^v multiply
    Wq: np.ndarray  # (d, D): the head's rows of the layer's W^q (so of W^k, W^v below)
    Wk: np.ndarray
    Wv: np.ndarray
    bq: np.ndarray | None  # (d,): the head's part of the projection's bias; None without biases
    bk: np.ndarray | None
    bv: np.ndarray | None
    q_projected: np.ndarray  # (n, d): W^q a^i + b^q, before rotary positions turn it (= q without rotary)
    k_projected: np.ndarray  # (n, d)
    theta: np.ndarray | None  # (d/2,): rotary angle of each pair per position; None without rotary


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
    first_input = "the encoder's input"  # what layer 1 is given, in words

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
    def steps(self, tokens: Sequence[str], layer: int, head: int) -> HeadSteps:
        """Head ``head`` of layer ``layer`` on one sentence, as the model computes it (float64).

        The layer's input x^i goes through the layer's norm (pre-norm; a post-norm layer's input
        is already normalized) to a^i; the head's rows of W^q, W^k, W^v and their biases give
        q^i, k^i, v^i (``q_projected``, ``k_projected``); rotary positions, when the model uses
        them, turn q and k (``attnlab.reference.rotate_pairs``); alpha, alpha' and b^i follow
        by ``attnlab.reference.attend_steps``. b^i is the head's slice of what W^O multiplies.
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
            a = (block.norm1(x) if block.norm_first else x).double().numpy()  # (n, D): the seed's a^i
            attn = block.attn
            d = attn.d_head
            rows = [slice(part * attn.d_model + head * d, part * attn.d_model + (head + 1) * d) for part in range(3)]
            weight, bias = attn.qkv.weight.double().numpy(), attn.qkv.bias
            W = [weight[r] for r in rows]  # W^(q,h), W^(k,h), W^(v,h): (d, D) each
            b = [None if bias is None else bias.double().numpy()[r] for r in rows]
        q0, k0, v = (a @ Wp.T + (0.0 if bp is None else bp) for Wp, bp in zip(W, b))  # (n, d) each
        theta = None
        q, k = q0, k0
        if t.rotary is not None:
            theta = t.rotary.inv_freq.double().numpy()
            q, k = R.rotate_pairs(q0, positions, theta), R.rotate_pairs(k0, positions, theta)
        s = R.attend_steps(q, k, v, self.attend_mask(n), normalize)
        return HeadSteps(q=s.q, k=s.k, v=s.v, alpha=s.alpha, alpha_prime=s.alpha_prime, b=s.b, a=a,
                         Wq=W[0], Wk=W[1], Wv=W[2], bq=b[0], bk=b[1], bv=b[2],
                         q_projected=q0, k_projected=k0, theta=theta)

    def additions(self, layer: int, head: int) -> list[dict]:
        """What this model adds to the seed's formula in layer ``layer``, head ``head`` (from 0),
        each named, in the order the model applies them: ``[{"name", "formula", "text"}]`` in the
        seed's plain notation (x^i, W^(q,h), alpha'_(i,j)), read by `attnlab explain --steps`
        and the explorer alike."""
        t = self.attention_encoder()
        self.check_layer_head(layer, head)
        block = cast(TransformerEncoderLayer, t.layers[layer])
        attn = block.attn
        L, h, d = layer + 1, head + 1, attn.d_head
        out = [self.norm_addition(L, block.norm_first)]
        rows = f"rows {head * d + 1}..{(head + 1) * d}"
        if attn.qkv.bias is not None:
            out.append({"name": "biases",
                        "formula": f"q^i = W^(q,{h}) a^i + b^(q,{h}),  k^i = W^(k,{h}) a^i + b^(k,{h}),  "
                                   f"v^i = W^(v,{h}) a^i + b^(v,{h})",
                        "text": f"W^(q,{h}), W^(k,{h}), W^(v,{h}) are {rows} of the layer's W^q, W^k, W^v "
                                f"(each {d} x {attn.d_model}); each projection adds its bias, b^(q,{h}) and so on."})
        else:
            out.append({"name": "no biases", "formula": f"q^i = W^(q,{h}) a^i",
                        "text": f"W^(q,{h}), W^(k,{h}), W^(v,{h}) are {rows} of the layer's W^q, W^k, W^v; "
                                "the projections have no biases, as in the seed."})
        out.append(self.position_addition())
        if t.causal or t.window is not None:
            limits = " and ".join(x for x in ("causal: j <= i" if t.causal else "",
                                              f"a window: |i - j| <= {t.window}" if t.window is not None else "") if x)
            out.append({"name": "mask", "formula": "alpha'_(i,j) = 0 where i may not attend to j",
                        "text": f"query i attends only to the keys its mask allows ({limits})."})
        bias_o = " + b^O" if attn.out.bias is not None else ""
        out.append({"name": "output", "formula": f"y^i = W^O [b^(i,1); ...; b^(i,{self.heads})]{bias_o}",
                    "text": f"b^i is head {h}'s slice (entries {head * d + 1}..{(head + 1) * d}) of the "
                            f"concatenation of the {self.heads} heads' outputs, which W^O turns into the "
                            "layer's attention output; the residual and the feed-forward follow."})
        return out

    def norm_addition(self, layer: int, norm_first: bool) -> dict:
        """How a^i comes from the layer's input x^i (``layer`` from 1)."""
        came = self.first_input if layer == 1 else f"the output of layer {layer - 1}"
        if norm_first:
            return {"name": "layer norm", "formula": "a^i = LayerNorm(x^i) = g * (x^i - mean(x^i)) / sd(x^i) + beta",
                    "text": f"x^i is token i's vector entering layer {layer} ({came}); the seed's a^i is x^i "
                            "after the layer's norm (pre-norm), with the norm's learned scale g and shift beta."}
        return {"name": "layer norm", "formula": "a^i = x^i (already normalized)",
                "text": f"x^i is token i's vector entering layer {layer} ({came}), already through a layer norm: "
                        "this model normalizes after each step (post-norm), so a^i = x^i."}

    def position_addition(self) -> dict:
        """Where the model's positions enter."""
        t = self.attention_encoder()
        if t.rotary is not None:
            return {"name": "rotary positions",
                    "formula": "q^i <- R(i - 1) q^i,  k^j <- R(j - 1) k^j",
                    "text": "after the projections, q and k are turned by the token's position p (from 0): "
                            "each pair of entries (2m - 1, 2m) by the angle p * theta_m, theta_m = "
                            f"{t.rotary.base:g}^(-2(m - 1)/d); so q^i . k^j depends on i - j, and equal words at "
                            "different positions get different q and k (v is not turned)."}
        table = t.position_table
        if table is not None:
            kind = "a fixed sinusoidal" if "Sinusoidal" in type(table).__name__ else "a learned"
            return {"name": "absolute positions", "formula": "x^i = input^i + P^(i - 1)  (before layer 1)",
                    "text": f"{kind} position vector P^p is added to every token's input once, before layer 1; "
                            "no rotary: q and k are used as projected."}
        return {"name": "no positions", "formula": "(none)",
                "text": "the model adds no positions: q and k are used as projected, and equal words in the "
                        "same context get equal q, k and v."}

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
