"""A trained tagger seen from the outside: its tags, their probabilities and its attention.

Shape letters: L layers, H heads, n tokens of one sentence, d head width.

``load_explainable(model_dir)`` reads a tagger model directory (``attnlab train``,
``attnlab demo``), or a Hugging Face checkpoint directory (``attnlab.viz.hf_model``: word
pieces, attention, steps, no tags), and returns an ``Explainable``:

* ``tag(sentences)``      for each list of tokens: (UPOS tags, probability of each tag)
* ``annotate(tokens)``    every layer of tags the model predicts (UPOS, then XPOS when it has
                          that head), each with its probabilities
* ``attention(tokens)``   (tags, probabilities, weights (L, H, n, n)): alpha'_{i,j} of every
                          layer and head, row i the query token, column j the key token
* ``steps(tokens, layer, head)``  the seed's intermediates of one head (q, k, v, alpha,
                          alpha', b), recomputed from the layer's input; its alpha' equals
                          ``attention(tokens)[2][layer, head]``
* ``split(text)``          the sentence as the tokens the other methods take (its words)
* ``layers``, ``heads``, ``normalize``, ``name``; ``no_attention``: why there is no attention
  to show (a model whose encoder is not the attention encoder: its tags only), else None;
  ``no_tags``: why there are no tags (a checkpoint without a tagging head), else None

``attention`` and ``steps`` of a model without attention raise ValueError with that reason.

Layers and heads are numbered from 0 here (from 1 in what people read: the CLI and the page).
Calls are serialized by a lock, so one ``Explainable`` can serve many threads.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import reference as R
from ..attention import masks
from ..data.tokenize import tokenize  # noqa: F401  (re-exported for serve)


class Explainable:
    """A loaded tagger (``attnlab.tasks.tagging.LoadedTagger``) with its attention exposed, when it has some."""

    def __init__(self, loaded, name: str = "model"):
        encoder = loaded.model.encoder
        transformer = getattr(encoder, "transformer", None)
        self.no_attention: str | None = None
        self.no_tags: str | None = None  # a model without a tagging head says why
        if transformer is None or not hasattr(encoder, "attention_weights"):
            self.no_attention = (f"{name} uses the {loaded.config.encoder!r} encoder, which has no attention "
                                 "to show (only its tags); train one with --encoder attention")
        self.name = name
        self.model = loaded.model.eval()
        self.vocabs = loaded.vocabs
        self.features = loaded.encoder()
        self.transformer = transformer
        self.layers: int = len(transformer.layers) if transformer is not None else 0
        self.heads: int = transformer.heads if transformer is not None else 0
        self.normalize: str | None = transformer.layers[0].attn.normalize if transformer is not None else None
        self._lock = threading.Lock()

    def require_attention(self) -> None:
        """ValueError saying why, for a model without attention."""
        if self.no_attention is not None:
            raise ValueError(self.no_attention)

    # -- tags -----------------------------------------------------------------------------
    def _scores(self, batch) -> torch.Tensor:
        return self.model(batch).upos  # (B, N, C)

    def _decode(self, scores: torch.Tensor, lengths: Sequence[int], vocab=None) -> list[tuple[list[str], list[float]]]:
        from ..features import PAD, UNK

        vocab = vocab if vocab is not None else self.vocabs.upos
        scores = scores.clone()
        scores[..., PAD] = float("-inf")  # never predicted
        scores[..., UNK] = float("-inf")
        probs, best = scores.softmax(dim=-1).max(dim=-1)  # (B, N) each
        out = []
        for b, n in enumerate(lengths):
            out.append((vocab.decode(best[b, :n].tolist()), [float(p) for p in probs[b, :n]]))
        return out

    @torch.inference_mode()
    def annotate(self, tokens: Sequence[str]) -> list[dict]:
        """Every layer of tags the model predicts for one sentence, in order (UPOS first):
        ``[{"name": "UPOS", "tags": [...], "probabilities": [...]}, ...]``."""
        tokens = list(tokens)
        if not tokens:
            raise ValueError("the sentence has no tokens")
        with self._lock:
            out = self.model(self.features.encode([tokens]))
        layers = [("UPOS", out.upos, self.vocabs.upos), ("XPOS", out.xpos, self.vocabs.xpos)]
        found = []
        for name, scores, vocab in layers:
            if scores is not None:
                tags, probs = self._decode(scores, [len(tokens)], vocab)[0]
                found.append({"name": name, "tags": tags, "probabilities": probs})
        return found

    @torch.inference_mode()
    def tag(self, sentences: Sequence[Sequence[str]]) -> list[tuple[list[str], list[float]]]:
        """For each sentence (a list of tokens): its UPOS tags and each tag's probability."""
        sentences = [list(s) for s in sentences]
        result: list[tuple[list[str], list[float]]] = [([], []) for _ in sentences]
        todo = [i for i, s in enumerate(sentences) if s]
        if not todo:
            return result
        with self._lock:
            batch = self.features.encode([sentences[i] for i in todo])
            tagged = self._decode(self._scores(batch), [len(sentences[i]) for i in todo])
        for i, t in zip(todo, tagged):
            result[i] = t
        return result

    # -- attention ------------------------------------------------------------------------
    @torch.inference_mode()
    def attention(self, tokens: Sequence[str]) -> tuple[list[str], list[float], torch.Tensor]:
        """(tags, probabilities, weights (L, H, n, n)) of one sentence."""
        tokens = list(tokens)
        self.require_attention()
        if not tokens:
            raise ValueError("the sentence has no tokens")
        with self._lock:
            batch = self.features.encode([tokens])
            tags, probs = self._decode(self._scores(batch), [len(tokens)])[0]
            x = self.model.features(batch)  # (1, n, D_in)
            per_layer = self.model.encoder.attention_weights(x, batch.lengths)  # L lists of 1 x (H, n, n)
        weights = torch.stack([w[0] for w in per_layer]).float()  # (L, H, n, n)
        return tags, probs, weights

    @torch.inference_mode()
    def steps(self, tokens: Sequence[str], layer: int, head: int) -> R.Steps:
        """The seed's intermediates of head ``head`` of layer ``layer`` on one sentence (float64).

        q^i, k^i, v^i are the head's slices of the layer's projections of its input (after the
        layer norm, with rotary positions applied to q and k when the model uses them);
        alpha, alpha' and b^i follow from them by ``attnlab.reference.attend_steps``.
        """
        tokens = list(tokens)
        self.require_attention()
        self.check_layer_head(layer, head)
        if not tokens:
            raise ValueError("the sentence has no tokens")
        n = len(tokens)
        t = self.transformer
        with self._lock:
            x = self.encoder_input(tokens)  # (n, D)
            cu = torch.tensor([0, n])
            positions = torch.arange(n)
            if t.position_table is not None:
                x = t.position_table(x, positions)
            for block in t.layers[:layer]:
                x = block.forward_packed(x, cu, rotary=t.rotary, positions=positions, causal=t.causal, window=t.window)
            block = t.layers[layer]
            a = block.norm1(x) if block.norm_first else x  # the a^i this layer's attention sees
            attn = block.attn
            qkv = attn.qkv(a).unflatten(-1, (3, attn.heads, attn.d_head))  # (n, 3, H, d)
            if t.rotary is not None:
                t.rotary.rotate_(qkv[:, :2], positions)
            q, k, v = (qkv[:, i, head].double().numpy() for i in range(3))  # (n, d) each
        return R.attend_steps(q, k, v, self.attend_mask(n), self.normalize)

    def encoder_input(self, tokens: list[str]) -> torch.Tensor:
        """(n, D): what the attention encoder's first layer is given for one sentence (before
        the encoder's own position table, if it has one)."""
        batch = self.features.encode([tokens])
        return self.model.encoder.proj(self.model.features(batch)[0])

    def split(self, text: str, how: str = "simple") -> list[str]:
        """A sentence as the tokens this model reads and the explorer shows: its words
        (``how``: "simple" or "whitespace", as ``attnlab.data.tokenize.tokenize``)."""
        return tokenize(text, how)

    def attend_mask(self, n: int) -> np.ndarray:
        """(n, n) booleans, True where query i may attend to key j (causal and window limits)."""
        t = self.transformer
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

    def describe(self) -> dict:
        """Name, sizes and the tags the model can predict."""
        from ..features import PAD, UNK

        ids = [i for i in range(len(self.vocabs.upos)) if i not in (PAD, UNK)]
        return {"name": self.name, "layers": self.layers, "heads": self.heads, "normalize": self.normalize,
                "tags": self.vocabs.upos.decode(ids), "no_attention": self.no_attention, "no_tags": None}


def load_explainable(model_dir: str | Path) -> Explainable:
    """Read a tagger model directory (safetensors + JSON); a model whose encoder is not the
    attention encoder gives its tags only (``no_attention`` says why). A Hugging Face
    checkpoint directory (its config.json names a ``model_type``) gives its word pieces and
    attention, without tags (``attnlab.viz.hf_model``)."""
    from .hf_model import is_checkpoint, load_checkpoint

    if is_checkpoint(model_dir):
        return load_checkpoint(model_dir)
    from ..tasks.tagging import load_tagger

    loaded = load_tagger(model_dir)
    return Explainable(loaded, name=Path(model_dir).name or str(model_dir))
