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
Calls are serialized by a lock, so one ``Explainable`` can serve many threads. ``steps`` and
what it stands on are shared with the checkpoint's model (``attnlab.viz.heads``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import torch

from ..data.tokenize import tokenize  # noqa: F401  (re-exported for serve)
from .heads import AttentionModel


class Explainable(AttentionModel):
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

    def encoder_input(self, tokens: list[str]) -> torch.Tensor:
        """(n, D): what the attention encoder's first layer is given for one sentence (before
        the encoder's own position table, if it has one)."""
        batch = self.features.encode([tokens])
        return self.model.encoder.proj(self.model.features(batch)[0])

    def split(self, text: str, how: str = "simple") -> list[str]:
        """A sentence as the tokens this model reads and the explorer shows: its words
        (``how``: "simple" or "whitespace", as ``attnlab.data.tokenize.tokenize``)."""
        return tokenize(text, how)

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
