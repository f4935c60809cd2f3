"""A Hugging Face checkpoint (BERT, RoBERTa, DistilBERT, XLM-R, ELECTRA) seen from the outside:
its word pieces and the attention of every layer and head, as attnlab's engine computes them.

``load_checkpoint(directory)`` reads ``config.json`` + ``model.safetensors`` (``attnlab.hf``)
and ``tokenizer.json``, and returns a ``CheckpointExplainable``: ``Explainable``'s interface,
whose tokens are the checkpoint's word pieces, special ones included ([CLS] ... [SEP],
<s> ... </s>, as its tokenizer gives them), and which has no tags (``no_tags`` says so):

* ``split(text)``             the word pieces of a sentence
* ``attention(pieces)``       ([], [], weights (L, H, n, n)): alpha'_{i,j} of every layer and head
* ``steps(pieces, l, h)``     q, k, v (softmax), alpha, alpha', b of one head; its alpha' equals
                              ``attention(pieces)[2][l, h]``
* ``annotate`` gives no tag layers; ``tag`` raises ValueError (there is no tagging head)

Pieces are read back to ids through the checkpoint's vocabulary, so ``{"tokens": [...]}`` sent
to the explorer must be word pieces of that vocabulary (``split`` gives them).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import torch

from ..errors import require_extra
from .heads import AttentionModel


def is_checkpoint(directory: str | Path) -> bool:
    """Whether ``directory`` holds a Hugging Face checkpoint: a config.json naming a ``model_type``
    (an attnlab tagger's config.json has none)."""
    from ..checkpoint import MAX_CONFIG_BYTES, CheckpointError, read_json

    try:
        return "model_type" in read_json(Path(directory) / "config.json", "config", limit=MAX_CONFIG_BYTES)
    except CheckpointError:  # not a regular file, too large, too deep, not a JSON object
        return False


def load_checkpoint(directory: str | Path) -> "CheckpointExplainable":
    """The checkpoint in ``directory`` with its tokenizer; needs the ``hf`` extra (named before any work)."""
    require_extra("hf", ["tokenizers", "safetensors"])
    from ..hf import load_encoder, load_tokenizer

    encoder = load_encoder(directory)
    pieces = load_tokenizer(directory)
    return CheckpointExplainable(encoder, pieces, name=Path(directory).name or str(directory))


class CheckpointExplainable(AttentionModel):
    """An ``attnlab.hf.HFEncoder`` and its ``WordPieces``, with the explorer's interface (that of
    ``attnlab.viz.model.Explainable``)."""

    def __init__(self, encoder, pieces, name: str = "checkpoint"):
        self.name = name
        self.encoder = encoder.eval()
        self.pieces = pieces
        transformer = encoder.encoder
        self.transformer = transformer
        self.layers: int = len(transformer.layers)
        self.heads: int = transformer.heads
        self.normalize: str = transformer.layers[0].attn.normalize
        self.no_attention: str | None = None
        self.no_tags: str = (f"{name} is a {encoder.config.model_type} checkpoint without a tagging head: "
                             "its word pieces are shown instead of tags")
        self._lock = threading.Lock()

    first_input = "the word-piece embeddings, through the embeddings' layer norm"

    def position_addition(self) -> dict:
        """A checkpoint's positions are learned absolute ones, added to its embeddings."""
        config = self.encoder.config
        kind, offset = config.model_type, config.position_offset
        p = f"i - 1 + {offset}" if offset else "i - 1"
        formula = f"LayerNorm(word^i + P^({p}){' + type^i' if config.type_vocab_size else ''})"
        if config.embedding_size != config.width:
            formula = f"W^E {formula} + b^E"  # ELECTRA projects its embeddings to the encoder's width
        return {"name": "absolute positions", "formula": f"x^i = {formula}  (before layer 1)",
                "text": f"{kind} adds a learned position vector P^p (and a token-type vector) to each word piece's "
                        "embedding once, before layer 1; no rotary: q and k are used as projected."}

    def split(self, text: str, how: str = "simple") -> list[str]:
        """The checkpoint's word pieces of ``text``, special ones included (``how`` is not used:
        the tokenizer splits the text itself)."""
        return self.pieces.encode(text).tokens

    def ids(self, tokens: Sequence[str]) -> torch.Tensor:
        """(n,) ids of the word pieces ``tokens``; ValueError for a piece not in the vocabulary
        or a sentence longer than the checkpoint's positions."""
        tokens = list(tokens)
        if not tokens:
            raise ValueError("the sentence has no word pieces")
        longest = self.encoder.config.longest
        if len(tokens) > longest:
            raise ValueError(f"the sentence has {len(tokens)} word pieces; {self.name} takes at most {longest}")
        ids = [self.pieces.tokenizer.token_to_id(t) for t in tokens]
        if None in ids:
            bad = tokens[ids.index(None)]
            raise ValueError(f"{bad!r} is not a word piece of {self.name}'s vocabulary (send the text, not tokens)")
        return torch.tensor(ids, dtype=torch.long)

    def encoder_input(self, tokens: list[str]) -> torch.Tensor:
        """(n, D): the checkpoint's embeddings of the pieces (word + position + token type, norm)."""
        ids = self.ids(tokens)
        return self.encoder.embeddings(ids, torch.tensor([0, ids.shape[0]]))

    def annotate(self, tokens: Sequence[str]) -> list[dict]:
        """No tag layers: the checkpoint has no tagging head."""
        return []

    def tag(self, sentences):
        raise ValueError(self.no_tags)

    @torch.inference_mode()
    def attention(self, tokens: Sequence[str]) -> tuple[list[str], list[float], torch.Tensor]:
        """([], [], weights (L, H, n, n)) of one sentence given as word pieces."""
        ids = self.ids(tokens)
        with self._lock:
            out = self.encoder.forward_packed(ids, torch.tensor([0, ids.shape[0]]), return_weights=True)
        return [], [], torch.stack([w[0] for w in out.attentions]).float()

    def describe(self) -> dict:
        return {"name": self.name, "layers": self.layers, "heads": self.heads, "normalize": self.normalize,
                "tags": [], "no_attention": None, "no_tags": self.no_tags,
                "model_type": self.encoder.config.model_type}
