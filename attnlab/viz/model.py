"""A trained tagger seen from the outside: its tags, their probabilities and its attention.

Shape letters: L layers, H heads, n tokens of one sentence, d head width.

``load_explainable(model_dir)`` reads a shipped model (by name) or a tagger model directory
(``attnlab train``, ``attnlab demo``) through the Python API (``attnlab.api``), or a Hugging Face checkpoint directory (``attnlab.viz.hf_model``: word
pieces, attention, steps, no tags), and returns an ``Explainable``:

* ``tag(sentences)``      for each list of tokens: (UPOS tags, probability of each tag)
* ``annotate(tokens)``    every layer the model predicts (UPOS, then XPOS, FEATS and LEMMA
                          when it has those heads), each with its probabilities
* ``attention(tokens)``   (tags, probabilities, weights (L, H, n, n)): alpha'_{i,j} of every
                          layer and head, row i the query token, column j the key token
* ``steps(tokens, layer, head)``  the seed's intermediates of one head (q, k, v, alpha,
                          alpha', b), recomputed from the layer's input; its alpha' equals
                          ``attention(tokens)[2][layer, head]``
* ``split(text)``          the sentence as the tokens the other methods take (its words)
* ``segment(text)``        a raw document as sentences (tokens with their character offsets,
                          multiword tokens), by the model's segmenter when it has one
* ``tag_sentences(sentences)``  those (or pre-tokenized) sentences tagged with every layer:
                          ``attnlab.api.TaggedSentence`` objects
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
from typing import TYPE_CHECKING, Sequence

import torch

from ..data.tokenize import tokenize  # noqa: F401  (re-exported for serve)
from .heads import AttentionModel

if TYPE_CHECKING:
    from ..api import TaggedSentence
    from ..data.conllu import Sentence as ConlluSentence
    from .hf_model import CheckpointExplainable


class Explainable(AttentionModel):
    """A tagger (an ``attnlab.api.Tagger``) with its attention exposed, when it has some. Its tags
    come from the Tagger, as they do for ``attnlab tag`` and the Python API."""

    def __init__(self, tagger, name: str = "model"):
        loaded = tagger.loaded
        encoder = loaded.model.encoder
        transformer = getattr(encoder, "transformer", None)
        self.no_attention: str | None = None
        self.no_tags: str | None = None  # a model without a tagging head says why
        if transformer is None or not hasattr(encoder, "attention_weights"):
            self.no_attention = (f"{name} uses the {loaded.config.encoder!r} encoder, which has no attention "
                                 "to show (only its tags); train one with --encoder attention")
        self.name = name
        self.tagger = tagger
        self.model = loaded.model.eval()
        self.vocabs = loaded.vocabs
        self.features = loaded.encoder()
        self.transformer = transformer
        self.layers: int = len(transformer.layers) if transformer is not None else 0
        self.heads: int = transformer.heads if transformer is not None else 0
        self.normalize: str | None = transformer.layers[0].attn.normalize if transformer is not None else None
        self._lock = threading.Lock()

    # -- tags -----------------------------------------------------------------------------
    def annotate(self, tokens: Sequence[str]) -> list[dict]:
        """Every layer the model predicts for one sentence, in order (UPOS, XPOS, FEATS,
        LEMMA): ``[{"name": "UPOS", "tags": [...], "probabilities": [...]}, ...]``; FEATS as
        feature strings (``_`` for none), LEMMA as lemmas."""
        tokens = list(tokens)
        if not tokens:
            raise ValueError("the sentence has no tokens")
        [sentence] = self.tagger.tag([tokens])
        return [{"name": layer.upper(), "tags": sentence.column(layer), "probabilities": [t.probs[layer] for t in sentence]}
                for layer in self.tagger.layers]

    def tag(self, sentences: Sequence[Sequence[str]]) -> list[tuple[list[str], list[float]]]:
        """For each sentence (a list of tokens): its UPOS tags and each tag's probability."""
        return [(s.upos, [t.probs["upos"] for t in s]) for s in self.tagger.tag([list(s) for s in sentences])]

    # -- attention ------------------------------------------------------------------------
    @torch.inference_mode()
    def attention(self, tokens: Sequence[str]) -> tuple[list[str], list[float], torch.Tensor]:
        """(tags, probabilities, weights (L, H, n, n)) of one sentence."""
        tokens = list(tokens)
        self.require_attention()
        if not tokens:
            raise ValueError("the sentence has no tokens")
        [tagged] = self.tag([tokens])
        with self._lock:
            batch = self.features.encode([tokens])
            x = self.model.features(batch)  # (1, n, D_in)
            per_layer = self.model.encoder.attention_weights(x, batch.lengths)  # L lists of 1 x (H, n, n)
        weights = torch.stack([w[0] for w in per_layer]).float()  # (L, H, n, n)
        return tagged[0], tagged[1], weights

    def encoder_input(self, tokens: list[str]) -> torch.Tensor:
        """(n, D): what the attention encoder's first layer is given for one sentence (before
        the encoder's own position table, if it has one)."""
        batch = self.features.encode([tokens])
        return self.model.encoder.proj(self.model.features(batch)[0])

    def segment(self, text: str) -> list[ConlluSentence]:
        """Raw text as the sentences ``tag_sentences`` takes, each token's ``TokenRange`` its
        character offsets into ``text``: cut into sentences, tokens and multiword tokens by the
        model's segmenter when it has one, else one sentence of the words of
        ``attnlab.data.tokenize.tokenize`` (each word a token); [] for text without words."""
        from ..data.rawtext import conllu_sentences
        from ..tasks.segmenter import SegmentedToken, segment

        if self.tagger.segmenter is not None:
            model, vocab = self.tagger.segmenter
            return conllu_sentences(text, segment(model, vocab, text))
        tokens, p = [], 0
        for word in tokenize(text):  # its words are pieces of the text, in order
            start = text.index(word, p)
            p = start + len(word)
            tokens.append(SegmentedToken(start, p, word, [word]))
        return conllu_sentences(text, [[tokens]]) if tokens else []

    def tag_sentences(self, sentences: Sequence[ConlluSentence]) -> list[TaggedSentence]:
        """Tag sentences (``segment``'s, or ``attnlab.data.conllu.Sentence.from_words``) in shared
        forward passes: the tagger's ``TaggedSentence`` of each, every layer it predicts."""
        return self.tagger._tag(list(sentences), top_k=0)

    def split(self, text: str, how: str = "simple") -> list[str]:
        """A sentence as the tokens this model reads and the explorer shows: its syntactic words,
        found by the model's segmenter when it has one (multiword tokens split; every sentence of
        the text in one row), else by ``attnlab.data.tokenize.tokenize`` (``how``: "simple" or
        "whitespace"; "whitespace" always splits at spaces only)."""
        if how == "simple" and self.tagger.segmenter is not None:
            from ..tasks.segmenter import segment

            model, vocab = self.tagger.segmenter
            return [w for par in segment(model, vocab, text) for s in par for t in s for w in t.words]
        return tokenize(text, how)

    def describe(self) -> dict:
        """Name, sizes, the UPOS tags the model can predict, the layers it annotates and whether
        it has a segmenter (``segment`` then cuts raw text into sentences and tokens)."""
        from ..features import PAD, UNK

        ids = [i for i in range(len(self.vocabs.upos)) if i not in (PAD, UNK)]
        return {"name": self.name, "layers": self.layers, "heads": self.heads, "normalize": self.normalize,
                "tags": self.vocabs.upos.decode(ids), "annotations": [layer.upper() for layer in self.tagger.layers],
                "segmenter": self.tagger.segmenter is not None, "no_attention": self.no_attention, "no_tags": None}


def load_explainable(model_dir: str | Path) -> Explainable | CheckpointExplainable:
    """Read a model given by a shipped model's name or a directory (``attnlab.api.resolve_model``):
    a tagger (through ``attnlab.api.load``; a model whose encoder is not the attention encoder
    gives its tags only, ``no_attention`` says why), or a Hugging Face checkpoint directory
    (its config.json names a ``model_type``: its word pieces and attention, without tags,
    ``attnlab.viz.hf_model``)."""
    from ..api import load, resolve_model
    from .hf_model import is_checkpoint, load_checkpoint

    directory = resolve_model(model_dir)
    if is_checkpoint(directory):
        return load_checkpoint(directory)
    # fp32: the explorer shows the model's own numbers, the same on every CPU
    return Explainable(load(directory, precision="fp32"), name=directory.name or str(directory))
