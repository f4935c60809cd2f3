"""A part-of-speech tagger on a pretrained BERT-family encoder (`attnlab train --pretrained DIR`).

Each sentence goes to the checkpoint's own word pieces (``tokenizer.json``), through its
encoder (``attnlab.hf``, packed), and every word is represented by its first word piece;
the UPOS (and XPOS) heads score those vectors. The tagger's model directory holds the
whole encoder (weights, its configuration in config.json, tokenizer.json), so it does not
depend on DIR afterwards. Tags, loss and scoring are the feature tagger's
(``attnlab.tasks.tagging``).

Shape letters: B sentences, W their words, T their word pieces, N the longest sentence in
words, D the encoder's width, C tags.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn

from ..checkpoint import load_task_model, save_task_model
from ..errors import UserError
from ..hf import HFConfig, HFEncoder, WordPieces, load_encoder, load_tokenizer
from ..packing import cu_seqlens_from_lengths, unpack_padded
from .tagging import Emissions, TaggerVocabs, TaggingTask, decode, score_tagger

TASK = "tagging-pretrained"
TOKENIZER = "tokenizer.json"


@dataclass(frozen=True)
class PieceTaggerConfig:
    encoder: dict = field(default_factory=dict)  # the fields of attnlab.hf.HFConfig
    dropout: float = 0.1
    xpos_weight: float = 0.5
    label_smoothing: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "PieceTaggerConfig":
        return cls(**obj)

    def weight(self, layer: str) -> float:
        return {"upos": 1.0, "xpos": self.xpos_weight}[layer]


@dataclass
class PieceBatch:
    """Word pieces (T,) with cu_seqlens (B + 1,), each word's first piece (W,) and the
    sentences' lengths in words (B,)."""

    ids: torch.Tensor
    cu: torch.Tensor
    first: torch.Tensor
    lengths: torch.Tensor


class PieceTagger(nn.Module):
    """HFEncoder -> the first piece of every word -> linear UPOS (and XPOS) scores."""

    def __init__(self, config: PieceTaggerConfig, vocabs: TaggerVocabs):
        super().__init__()
        self.config = config
        self.encoder = HFEncoder(HFConfig(**config.encoder))
        width = self.encoder.config.width
        self.dropout = nn.Dropout(config.dropout)
        self.upos_head = nn.Linear(width, len(vocabs.upos))
        has_xpos = config.xpos_weight > 0 and len(vocabs.xpos) > 2
        self.xpos_head = nn.Linear(width, len(vocabs.xpos)) if has_xpos else None

    @property
    def layers(self) -> tuple[str, ...]:
        return ("upos", "xpos") if self.xpos_head is not None else ("upos",)

    def forward(self, batch: PieceBatch) -> Emissions:
        pieces = self.encoder.forward_packed(batch.ids, batch.cu).last_hidden_state  # (T, D)
        words = unpack_padded(pieces[batch.first], cu_seqlens_from_lengths(batch.lengths))  # (B, N, D)
        h = self.dropout(words)
        return Emissions(self.upos_head(h), self.xpos_head(h) if self.xpos_head is not None else None)


def piece_batch(pieces: WordPieces, sentences: Sequence[Sequence[str]], longest: int) -> PieceBatch:
    """Sentences of word forms -> a PieceBatch; a sentence longer than ``longest`` pieces is refused."""
    ids, lengths, first, offset = [], [], [], 0
    for words in sentences:
        encoded = pieces.encode(list(words))
        starts = encoded.first_pieces()
        if len(encoded.ids) > longest:
            raise ValueError(f"a sentence of {len(words)} words gives {len(encoded.ids)} word pieces; "
                             f"the encoder takes at most {longest}")
        if len(starts) != len(words):
            empty = next(w for i, w in enumerate(words) if i not in set(encoded.word_ids))
            raise ValueError(f"the word {empty!r} gives no word piece (sentence {' '.join(words)[:60]!r})")
        ids += encoded.ids
        first += [offset + s for s in starts]
        offset += len(encoded.ids)
        lengths.append(len(encoded.ids))
    return PieceBatch(torch.tensor(ids, dtype=torch.long), cu_seqlens_from_lengths(lengths),
                      torch.tensor(first, dtype=torch.long), torch.tensor([len(s) for s in sentences]))


@torch.inference_mode()
def predict_pieces(model: PieceTagger, pieces: WordPieces, vocabs: TaggerVocabs, sentences: Sequence[Sequence[str]],
                   *, batch_size: int = 64) -> tuple[list[list[str]], list[list[str]] | None]:
    """Tag sentences of word forms: (UPOS per sentence, XPOS per sentence or None)."""
    was_training = model.training
    model.eval()
    upos: list[list[str]] = []
    xpos: list[list[str]] | None = [] if model.xpos_head is not None else None
    try:
        for start in range(0, len(sentences), batch_size):
            batch = piece_batch(pieces, sentences[start: start + batch_size], model.encoder.config.longest)
            out = model(batch)
            upos += [vocabs.upos.decode(ids) for ids in decode(out.upos, batch.lengths)]
            if xpos is not None:
                xpos += [vocabs.xpos.decode(ids) for ids in decode(out.xpos, batch.lengths)]
    finally:
        model.train(was_training)
    return upos, xpos


def predict_layers(model: PieceTagger, pieces: WordPieces, vocabs: TaggerVocabs, sentences) -> dict[str, list[list[str]]]:
    """``predict_pieces`` by layer: {"upos": one tag list per sentence, "xpos": ... when predicted}."""
    upos, xpos = predict_pieces(model, pieces, vocabs, sentences)
    return {"upos": upos} | ({"xpos": xpos} if xpos is not None else {})


class PieceTaggingTask(TaggingTask):
    """``TaggingTask`` with word-piece batches; loss and dev score are the tagger's.

    A PieceTagger stands where TaggingTask takes a Tagger (the same heads, ``layers`` and
    ``config`` weights, read by the shared loss and dev score); the methods that differ take
    it by its own type, hence the ``type: ignore`` of their signatures."""

    def __init__(self, model: PieceTagger, vocabs: TaggerVocabs, pieces: WordPieces, train, dev):
        self.pieces = pieces
        super().__init__(model, vocabs, train, dev)  # type: ignore[arg-type]

    def feature_encoder(self, model: PieceTagger) -> None:  # type: ignore[override]
        return None  # word pieces instead of token features

    def features(self, sentences):
        batch = piece_batch(self.pieces, sentences, self.model.encoder.config.longest)
        return batch, int(batch.lengths.max())

    def predict(self, model: PieceTagger, sentences):  # type: ignore[override]
        return predict_layers(model, self.pieces, self.vocabs, sentences)

    def save_model(self, directory, model: PieceTagger, extra: dict) -> None:  # type: ignore[override]
        tokenizer = json.loads(self.pieces.tokenizer.to_str())
        save_task_model(directory, TASK, model, self.vocabs.to_json(), extra, {TOKENIZER: tokenizer})


@dataclass
class LoadedPieceTagger:
    model: PieceTagger
    vocabs: TaggerVocabs
    config: PieceTaggerConfig
    record: dict
    pieces: WordPieces


def build_piece_tagger(checkpoint: str | Path, train: Sequence, *, xpos_weight: float, label_smoothing: float) -> LoadedPieceTagger:
    """A new tagger on the encoder and tokenizer of the checkpoint directory ``checkpoint``."""
    pieces = load_tokenizer(checkpoint)
    encoder = load_encoder(checkpoint)
    config = PieceTaggerConfig(asdict(encoder.config), encoder.config.dropout, xpos_weight, label_smoothing)
    vocabs = TaggerVocabs.build(train)
    model = PieceTagger(config, vocabs)
    model.encoder.load_state_dict(encoder.state_dict())
    return LoadedPieceTagger(model.train(), vocabs, config, {}, pieces)


def load_piece_tagger(directory: str | Path) -> LoadedPieceTagger:
    """A tagger directory (or checkpoint) written by ``PieceTaggingTask.save_model``."""
    model, config, vocabs, files = load_task_model(directory, TASK, "pretrained tagger", PieceTaggerConfig.from_json,
                                                   TaggerVocabs.from_json, PieceTagger)
    if not (Path(directory) / TOKENIZER).is_file():
        raise UserError(f"{directory}: no {TOKENIZER}")
    return LoadedPieceTagger(model, vocabs, config, files.config, load_tokenizer(directory))


def evaluate_piece_tagger(model_dir: str | Path, sentences: Sequence, *, source: str) -> dict:
    """``attnlab.tasks.tagging.evaluate_tagger`` for a pretrained tagger's directory."""
    loaded = load_piece_tagger(model_dir)
    return score_tagger(lambda forms: predict_layers(loaded.model, loaded.pieces, loaded.vocabs, forms),
                        loaded.vocabs, model_dir, sentences, source)
