"""Part-of-speech tagging (N -> N): features -> encoder -> one score per tag per token.

Shape letters: B sentences, N tokens (padded), D encoder width, C tags.

The pieces are separate and small:

* ``Tagger.forward(batch)``            emission scores (B, N, C) for UPOS (and XPOS)
* ``tagging_loss(scores, gold, lengths)``   mean cross-entropy over the real tokens
* ``decode(scores, lengths)``          the best tag per token (tags are independent
                                        given the encoder's output, so argmax is exact)
* ``predict(model, sentences)``        tag lists for plain lists of word forms
                                        (``predict_tags``: with each tag's probability)

``TaggingTask`` plugs a tagger into ``attnlab.train.train``, ``load_tagger`` /
``save_tagger`` read and write a model directory (``attnlab.checkpoint``), and
``evaluate_tagger`` scores a model directory on gold sentences (`attnlab eval`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import load_task_model, save_task_model
from ..data.vocab import Vocab
from ..encoders import EncoderConfig, build_encoder
from ..features import PAD, UNK, FeatureBatch, FeatureConfig, FeatureEncoder, FeatureVocabs, TokenFeatures

TASK = "tagging"


@dataclass(frozen=True)
class TaggerConfig:
    """What to build: features, encoder, heads.

    xpos_weight  weight of the auxiliary XPOS loss (0 = no XPOS head)
    """

    encoder: str = "attention"
    features: FeatureConfig = field(default_factory=FeatureConfig)
    encoder_config: EncoderConfig = field(default_factory=EncoderConfig)
    xpos_weight: float = 0.5
    label_smoothing: float = 0.0

    def to_json(self) -> dict:
        return {
            "encoder": self.encoder,
            "features": self.features.to_json(),
            "encoder_config": self.encoder_config.to_json(),
            "xpos_weight": self.xpos_weight,
            "label_smoothing": self.label_smoothing,
        }

    @classmethod
    def from_json(cls, obj: dict) -> "TaggerConfig":
        return cls(
            encoder=obj["encoder"],
            features=FeatureConfig.from_json(obj.get("features", {})),
            encoder_config=EncoderConfig.from_json(obj.get("encoder_config", {})),
            xpos_weight=float(obj.get("xpos_weight", 0.0)),
            label_smoothing=float(obj.get("label_smoothing", 0.0)),
        )


@dataclass
class TaggerVocabs:
    features: FeatureVocabs
    upos: Vocab
    xpos: Vocab

    @classmethod
    def build(cls, sentences: Sequence) -> "TaggerVocabs":
        """From training sentences (objects with ``forms``, ``upos`` and ``xpos`` lists)."""
        return cls(
            features=FeatureVocabs.build(s.forms for s in sentences),
            upos=Vocab.build(t for s in sentences for t in s.upos),
            xpos=Vocab.build(t for s in sentences for t in (s.xpos or [])),
        )

    def to_json(self) -> dict:
        return {"features": self.features.to_json(), "upos": self.upos.to_json(), "xpos": self.xpos.to_json()}

    @classmethod
    def from_json(cls, obj: dict) -> "TaggerVocabs":
        return cls(FeatureVocabs.from_json(obj["features"]), Vocab.from_json(obj["upos"]), Vocab.from_json(obj["xpos"]))


@dataclass
class Emissions:
    upos: torch.Tensor  # (B, N, C_upos)
    xpos: torch.Tensor | None  # (B, N, C_xpos) or None


class Tagger(nn.Module):
    """Token features -> context encoder -> linear tag scores."""

    def __init__(self, config: TaggerConfig, vocabs: TaggerVocabs):
        super().__init__()
        self.config = config
        self.features = TokenFeatures(config.features, vocabs.features)
        self.encoder = build_encoder(config.encoder, self.features.out_dim, config.encoder_config)
        self.dropout = nn.Dropout(config.encoder_config.dropout)
        self.upos_head = nn.Linear(self.encoder.out_dim, len(vocabs.upos))
        has_xpos = config.xpos_weight > 0 and len(vocabs.xpos) > 2
        self.xpos_head = nn.Linear(self.encoder.out_dim, len(vocabs.xpos)) if has_xpos else None

    def encode(self, batch: FeatureBatch) -> torch.Tensor:
        """(B, N, D): each token's vector after the encoder."""
        return self.encoder(self.features(batch), batch.lengths)

    def forward(self, batch: FeatureBatch) -> Emissions:
        h = self.dropout(self.encode(batch))  # (B, N, D)
        return Emissions(self.upos_head(h), self.xpos_head(h) if self.xpos_head is not None else None)


def tagging_loss(scores: torch.Tensor, gold: torch.Tensor, lengths: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over the real tokens: scores (B, N, C), gold (B, N), lengths (B,)."""
    n = scores.shape[1]
    real = torch.arange(n) < lengths.unsqueeze(1)  # (B, N)
    return F.cross_entropy(scores[real], gold[real], label_smoothing=label_smoothing)


def _real_tags_only(scores: torch.Tensor) -> torch.Tensor:
    """``scores`` (..., C) with PAD and UNK at -inf: they are never predicted."""
    scores = scores.clone()
    scores[..., PAD] = float("-inf")
    scores[..., UNK] = float("-inf")
    return scores


def _cut(rows: list[list], lengths: torch.Tensor) -> list[list]:
    return [row[:n] for row, n in zip(rows, lengths.tolist())]


def decode(scores: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best tag id per real token; PAD and UNK are never predicted. scores (B, N, C)."""
    return _cut(_real_tags_only(scores).argmax(dim=-1).tolist(), lengths)  # (B, N)


def best_probabilities(scores: torch.Tensor, lengths: torch.Tensor) -> list[list[float]]:
    """The probability of the best tag per real token (softmax over the tags ``decode`` may choose)."""
    return _cut(torch.softmax(_real_tags_only(scores).float(), dim=-1).amax(dim=-1).tolist(), lengths)


def top_tags(scores: torch.Tensor, lengths: torch.Tensor, k: int) -> list[list[list[tuple[int, float]]]]:
    """The ``k`` most probable tags per real token, best first, as (tag id, probability); the
    first is ``decode``'s choice with ``best_probabilities``' probability. scores (B, N, C)."""
    probs = torch.softmax(_real_tags_only(scores).float(), dim=-1)  # (B, N, C)
    k = min(k, scores.shape[-1] - 2)  # PAD and UNK are never among them
    values, ids = probs.topk(k, dim=-1)  # (B, N, k)
    pairs = [[list(zip(i, v)) for i, v in zip(row_i, row_v)] for row_i, row_v in zip(ids.tolist(), values.tolist())]
    return _cut(pairs, lengths)


# -- inference -------------------------------------------------------------------------

def length_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Indices sorted by length, cut into batches of at most ``batch_tokens`` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = max(lengths[i], 1)  # sorted, so the newest sentence is the longest
        if current and longest * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


@dataclass
class TagPredictions:
    """Tags per sentence; with ``probabilities``, the probability of each chosen tag too; with
    ``top_k``, the k most probable tags of each token as (tag, probability), best first."""

    upos: list[list[str]]
    xpos: list[list[str]] | None  # None: the model has no XPOS head
    upos_prob: list[list[float]] | None = None
    xpos_prob: list[list[float]] | None = None
    upos_top: list[list[list[tuple[str, float]]]] | None = None
    xpos_top: list[list[list[tuple[str, float]]]] | None = None


@torch.inference_mode()
def predict_tags(
    model: Tagger, encoder: FeatureEncoder, vocabs: TaggerVocabs, sentences: Sequence[Sequence[str]],
    *, batch_tokens: int = 8192, probabilities: bool = False, top_k: int = 0,
) -> TagPredictions:
    """Tag lists of word forms (each with at least one word) in batches of similar length;
    ``top_k`` > 0 also lists each token's ``top_k`` most probable tags."""
    was_training = model.training
    model.eval()
    heads = {"upos": vocabs.upos} | ({"xpos": vocabs.xpos} if model.xpos_head is not None else {})
    tags: dict[str, list] = {name: [None] * len(sentences) for name in heads}
    probs: dict[str, list] = {name: [None] * len(sentences) for name in heads} if probabilities else {}
    tops: dict[str, list] = {name: [None] * len(sentences) for name in heads} if top_k > 0 else {}
    try:
        # character vectors once per distinct form, shared by every batch
        rows, table = encoder.char_table(model.features, [w for s in sentences for w in s])
        for idx in length_batches([len(s) for s in sentences], batch_tokens):
            batch = encoder.encode([sentences[i] for i in idx], rows=rows)
            batch.char_vectors = table
            out = model(batch)
            for name, vocab in heads.items():
                scores = getattr(out, name)  # (B, N, C)
                for i, ids in zip(idx, decode(scores, batch.lengths)):
                    tags[name][i] = vocab.decode(ids)
                for i, p in zip(idx, best_probabilities(scores, batch.lengths) if probabilities else ()):
                    probs[name][i] = p
                for i, row in zip(idx, top_tags(scores, batch.lengths, top_k) if top_k > 0 else ()):
                    tops[name][i] = [[(vocab.itos[t], p) for t, p in token] for token in row]
    finally:
        model.train(was_training)
    return TagPredictions(tags["upos"], tags.get("xpos"), probs.get("upos"), probs.get("xpos"),
                          tops.get("upos"), tops.get("xpos"))


def predict(
    model: Tagger, encoder: FeatureEncoder, vocabs: TaggerVocabs, sentences: Sequence[Sequence[str]],
    *, batch_tokens: int = 8192,
) -> tuple[list[list[str]], list[list[str]] | None]:
    """Tag lists of word forms: (UPOS per sentence, XPOS per sentence or None)."""
    found = predict_tags(model, encoder, vocabs, sentences, batch_tokens=batch_tokens)
    return found.upos, found.xpos


# -- model directories -----------------------------------------------------------------

@dataclass
class LoadedTagger:
    model: Tagger
    vocabs: TaggerVocabs
    config: TaggerConfig
    record: dict  # the whole config.json (training settings, metrics, data)

    def encoder(self) -> FeatureEncoder:
        return FeatureEncoder(self.vocabs.features, self.config.features.max_chars)


def save_tagger(directory: str | Path, model: Tagger, vocabs: TaggerVocabs, extra: dict | None = None) -> None:
    save_task_model(directory, TASK, model, vocabs.to_json(), extra)


def load_tagger(directory: str | Path) -> LoadedTagger:
    """Read a tagger model directory; every problem is a one-line CheckpointError."""
    model, config, vocabs, files = load_task_model(directory, TASK, "tagger", TaggerConfig.from_json,
                                                   TaggerVocabs.from_json, Tagger)
    return LoadedTagger(model, vocabs, config, files.config)


def evaluate_tagger(model_dir: str | Path, sentences: Sequence, *, source: str, batch_tokens: int = 8192) -> dict:
    """Tag gold ``sentences`` (read from ``source``) with a model directory and score them: a
    ``TaggingReport`` for UPOS (``report``), one for XPOS when the model and the gold have it."""
    loaded = load_tagger(model_dir)
    return score_tagger(
        lambda forms: predict(loaded.model, loaded.encoder(), loaded.vocabs, forms, batch_tokens=batch_tokens),
        loaded.vocabs, model_dir, sentences, source,
    )


def score_tagger(tag, vocabs: TaggerVocabs, model_dir, sentences: Sequence, source: str) -> dict:
    """``evaluate_tagger``'s result for a model that ``tag(list of word-form lists)`` runs:
    (UPOS per sentence, XPOS per sentence or None). ``layers`` holds the CoNLL 2018-style
    ``WordLevelReport`` (UPOS, XPOS, UFeats, AllTags, Lemmas; the layers the model does not
    predict are marked so)."""
    from ..evaluate import score_tags, score_word_layers

    forms = [s.forms for s in sentences]
    start = time.perf_counter()
    upos, xpos = tag(forms)
    seconds = time.perf_counter() - start
    known = vocabs.features.is_known
    report = score_tags([s.upos for s in sentences], upos, [[not known(f) for f in s.forms] for s in sentences])
    result = {"model": str(model_dir), "file": str(source), "report": report, "seconds": seconds}
    if xpos is not None and any(s.xpos for s in sentences):
        result["xpos"] = score_tags([s.xpos for s in sentences], xpos)
    predicted = {"upos": upos} if xpos is None else {"upos": upos, "xpos": xpos}
    result["layers"] = score_word_layers(sentences, predicted, known)
    return result


# -- training --------------------------------------------------------------------------

@dataclass
class TaggingBatch:
    features: FeatureBatch
    upos: torch.Tensor  # (B, N) gold ids, PAD at padding
    xpos: torch.Tensor  # (B, N)
    tokens: int


class TaggingTask:
    """The tagging side of ``attnlab.train.train``: batches, loss, dev score, saving."""

    def __init__(self, model: Tagger, vocabs: TaggerVocabs, train: Sequence, dev: Sequence, *, batch_tokens_eval: int = 4096):
        self.model, self.vocabs = model, vocabs
        self.encoder = self.feature_encoder(model)
        self.train_forms = [list(s.forms) for s in train]
        self.train_upos = [vocabs.upos.encode(s.upos) for s in train]
        self.train_xpos = [vocabs.xpos.encode(s.xpos) if s.xpos else [PAD] * len(s.forms) for s in train]
        self.dev = list(dev)
        self.batch_tokens_eval = batch_tokens_eval

    def lengths(self) -> list[int]:
        return [len(f) for f in self.train_forms]

    def feature_encoder(self, model: Tagger) -> FeatureEncoder:
        return FeatureEncoder(self.vocabs.features, model.config.features.max_chars)

    def features(self, sentences: Sequence[Sequence[str]]):
        """(the model's input for these sentences of word forms, N: their padded length)."""
        feats = self.encoder.encode(sentences)
        return feats, feats.words.shape[1]

    def make_batch(self, indices: Sequence[int]) -> TaggingBatch:
        feats, n = self.features([self.train_forms[i] for i in indices])

        def pad(rows):
            return torch.tensor([r + [PAD] * (n - len(r)) for r in rows], dtype=torch.long).view(len(rows), n)

        return TaggingBatch(
            features=feats,
            upos=pad([self.train_upos[i] for i in indices]),
            xpos=pad([self.train_xpos[i] for i in indices]),
            tokens=int(feats.lengths.sum()),
        )

    def loss(self, model: Tagger, batch: TaggingBatch) -> torch.Tensor:
        out = model(batch.features)
        ls = model.config.label_smoothing
        loss = tagging_loss(out.upos, batch.upos, batch.features.lengths, ls)
        if out.xpos is not None:
            loss = loss + model.config.xpos_weight * tagging_loss(out.xpos, batch.xpos, batch.features.lengths, ls)
        return loss

    def predict(self, model: Tagger, sentences: Sequence[Sequence[str]]):
        """(UPOS per sentence, XPOS per sentence or None) of sentences of word forms."""
        return predict(model, self.encoder, self.vocabs, sentences, batch_tokens=self.batch_tokens_eval)

    def evaluate(self, model: Tagger) -> float:
        """UPOS accuracy on the dev sentences."""
        pred, _ = self.predict(model, [s.forms for s in self.dev])
        total = sum(len(s.upos) for s in self.dev)
        correct = sum(p == g for s, tags in zip(self.dev, pred) for p, g in zip(tags, s.upos))
        return correct / total if total else 0.0

    def save_model(self, directory: str | Path, model: Tagger, extra: dict) -> None:
        save_tagger(directory, model, self.vocabs, extra)
