"""Sequence classification (N -> 1): one label per sentence, here the genre of an EWT sentence.

Shape letters: B sentences, N tokens (padded), D encoder width, C classes, V words.

The model is the tagger's front end (``TokenFeatures``: words, shapes, characters) and any
context encoder (``attnlab.encoders``), followed by a pooling step that turns the N token
vectors into one sentence vector, and a linear layer:

    mean        the average of the real tokens' vectors
    first       the first token's vector (with a contextual encoder it has seen the sentence)
    attention   a learned query attends over the tokens (``MultiHeadSelfAttention.attend``
                with the sentence as context): the weights say which tokens matter

The genre of an English Web Treebank sentence is the part of its ``sent_id`` before the
first hyphen: ``weblog-juancole.com_...-0001`` -> weblog (answers, email, newsgroup,
reviews, weblog). The scores are accuracy and macro-F1 (the mean over classes of F1, so
small genres count as much as large ones). ``BowBaseline`` is a bag-of-words logistic
regression: one weight per (word, class), L2-regularized, fitted with L-BFGS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import load_task_model, save_task_model
from ..data.vocab import Vocab
from ..encoders import EncoderConfig, build_encoder
from ..features import FeatureBatch, FeatureConfig, FeatureEncoder, FeatureVocabs, TokenFeatures
from ..modules import MultiHeadSelfAttention

TASK = "classification"
POOLINGS = ("mean", "first", "attention")


def genre(sentence) -> str:
    """The genre of an EWT sentence: its sent_id up to the first hyphen."""
    sid = sentence.sent_id
    if not sid or "-" not in sid:
        where = f"{sentence.source}:{sentence.start_line}"
        raise ValueError(f"{where}: sentence has no sent_id of the form GENRE-... (got {sid!r})")
    return sid.split("-", 1)[0]


@dataclass(frozen=True)
class ClassifierConfig:
    encoder: str = "attention"
    pooling: str = "attention"
    features: FeatureConfig = field(default_factory=FeatureConfig)
    encoder_config: EncoderConfig = field(default_factory=EncoderConfig)
    pool_heads: int = 4
    label_smoothing: float = 0.0

    def __post_init__(self):
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling {self.pooling!r} is unknown; choose one of {', '.join(POOLINGS)}")

    def to_json(self) -> dict:
        return {
            "encoder": self.encoder, "pooling": self.pooling, "features": self.features.to_json(),
            "encoder_config": self.encoder_config.to_json(), "pool_heads": self.pool_heads,
            "label_smoothing": self.label_smoothing,
        }

    @classmethod
    def from_json(cls, obj: dict) -> "ClassifierConfig":
        return cls(
            encoder=obj["encoder"], pooling=obj.get("pooling", "attention"),
            features=FeatureConfig.from_json(obj.get("features", {})),
            encoder_config=EncoderConfig.from_json(obj.get("encoder_config", {})),
            pool_heads=int(obj.get("pool_heads", 4)), label_smoothing=float(obj.get("label_smoothing", 0.0)),
        )


@dataclass
class ClassifierVocabs:
    features: FeatureVocabs
    labels: Vocab

    @classmethod
    def build(cls, sentences: Sequence, labels: Sequence[str]) -> "ClassifierVocabs":
        return cls(FeatureVocabs.build(s.forms for s in sentences), Vocab.build(sorted(labels)))

    def to_json(self) -> dict:
        return {"features": self.features.to_json(), "labels": self.labels.to_json()}

    @classmethod
    def from_json(cls, obj: dict) -> "ClassifierVocabs":
        return cls(FeatureVocabs.from_json(obj["features"]), Vocab.from_json(obj["labels"]))


class AttentionPooling(nn.Module):
    """A learned query attends over the tokens: (B, N, D) -> (B, D) [, weights (B, H, 1, N)]."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        while d_model % heads:
            heads -= 1
        self.query = nn.Parameter(torch.randn(1, 1, d_model) * d_model ** -0.5)
        self.attn = MultiHeadSelfAttention(d_model, heads, bias=False)  # a key bias would be inert

    def forward(self, h: torch.Tensor, lengths: torch.Tensor, return_weights: bool = False):
        q = self.query.expand(h.shape[0], 1, h.shape[-1])  # (B, 1, D)
        out = self.attn.attend(q, h, key_lengths=lengths, return_weights=return_weights)
        if return_weights:
            return out[0].squeeze(1), out[1]
        return out.squeeze(1)


class Classifier(nn.Module):
    """Token features -> context encoder -> pooling -> linear class scores (B, C)."""

    def __init__(self, config: ClassifierConfig, vocabs: ClassifierVocabs):
        super().__init__()
        self.config = config
        self.features = TokenFeatures(config.features, vocabs.features)
        self.encoder = build_encoder(config.encoder, self.features.out_dim, config.encoder_config)
        d = self.encoder.out_dim
        self.pool = AttentionPooling(d, config.pool_heads) if config.pooling == "attention" else None
        self.dropout = nn.Dropout(config.encoder_config.dropout)
        self.head = nn.Linear(d, len(vocabs.labels))

    def sentence_vectors(self, batch: FeatureBatch) -> torch.Tensor:
        """(B, D): one vector per sentence."""
        lengths = batch.lengths
        h = self.encoder(self.features(batch), lengths)  # (B, N, D), zeros at padding
        if self.config.pooling == "mean":
            return h.sum(dim=1) / lengths.clamp(min=1).unsqueeze(1).to(h.dtype)
        if self.config.pooling == "first":
            return h[:, 0]
        assert self.pool is not None  # built for pooling == "attention"
        return self.pool(h, lengths)

    def forward(self, batch: FeatureBatch) -> torch.Tensor:
        return self.head(self.dropout(self.sentence_vectors(batch)))  # (B, C)


@torch.inference_mode()
def predict_labels(model: Classifier, encoder: FeatureEncoder, vocabs: ClassifierVocabs,
                   sentences: Sequence[Sequence[str]], *, batch_tokens: int = 4096) -> list[str]:
    from .tagging import length_batches

    was_training = model.training
    model.eval()
    out: list[str | None] = [None] * len(sentences)
    try:
        for idx in length_batches([len(s) for s in sentences], batch_tokens):
            scores = model(encoder.encode([sentences[i] for i in idx]))
            scores[:, Vocab.PAD] = float("-inf")
            scores[:, Vocab.UNK] = float("-inf")
            for i, label in zip(idx, vocabs.labels.decode(scores.argmax(dim=-1).tolist())):
                out[i] = label
    finally:
        model.train(was_training)
    return cast("list[str]", out)  # every sentence was in a batch


def score_labels(gold: Sequence[str], predicted: Sequence[str]) -> dict:
    """Accuracy, macro-F1 over the gold classes, and precision/recall/F1 per class."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted must have the same length")
    classes = sorted(set(gold))
    per = {}
    for c in classes:
        tp = sum(g == c and p == c for g, p in zip(gold, predicted))
        n_pred = sum(p == c for p in predicted)
        n_gold = sum(g == c for g in gold)
        prec = tp / n_pred if n_pred else 0.0
        rec = tp / n_gold if n_gold else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[c] = {"precision": prec, "recall": rec, "f1": f1, "support": n_gold}
    return {
        "sentences": len(gold),
        "accuracy": sum(g == p for g, p in zip(gold, predicted)) / len(gold) if gold else 0.0,
        "macro_f1": sum(v["f1"] for v in per.values()) / len(per) if per else 0.0,
        "per_class": per,
    }


# -- the bag-of-words baseline -----------------------------------------------------------

class BowBaseline:
    """Multinomial logistic regression on the set of lowercased words of a sentence.

    scores = sum over the sentence's distinct known words of W[word] + b, (C,) per sentence;
    loss = mean cross-entropy + l2 / 2 * |W|^2; full-batch L-BFGS. ``fit`` picks l2 from
    ``grid`` by dev accuracy when dev data is given.
    """

    def __init__(self, l2: float = 1e-3):
        self.l2 = l2
        self.words: Vocab | None = None
        self.labels: Vocab | None = None
        self.weight: torch.Tensor | None = None  # (V, C)
        self.bias: torch.Tensor | None = None  # (C,)

    def _bags(self, sentences: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.words is None:
            raise ValueError("BowBaseline: call fit() before predict()")
        ids: list[int] = []
        offsets: list[int] = []
        for s in sentences:
            offsets.append(len(ids))
            ids.extend(sorted(set(self.words.encode(w.lower() for w in s)) - {Vocab.UNK}))
        return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)

    def _scores(self, bags, weight, bias) -> torch.Tensor:
        return F.embedding_bag(bags[0], weight, bags[1], mode="sum") + bias  # (B, C)

    def fit(self, sentences: Sequence[Sequence[str]], labels: Sequence[str], *, dev=None,
            grid: Sequence[float] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2), iterations: int = 200) -> "BowBaseline":
        self.words = Vocab.build(w.lower() for s in sentences for w in s)
        self.labels = Vocab.build(sorted(labels))
        bags = self._bags(sentences)
        gold = torch.tensor(self.labels.encode(labels))
        choices = grid if dev is not None else (self.l2,)
        best = None
        for l2 in choices:
            weight = torch.zeros(len(self.words), len(self.labels), requires_grad=True)
            bias = torch.zeros(len(self.labels), requires_grad=True)
            opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe",
                                    tolerance_grad=1e-6, tolerance_change=1e-9)

            def closure():
                opt.zero_grad()
                loss = F.cross_entropy(self._scores(bags, weight, bias), gold) + 0.5 * l2 * weight.pow(2).sum()
                loss.backward()
                return loss

            opt.step(closure)
            self.l2, self.weight, self.bias = l2, weight.detach(), bias.detach()
            if dev is not None:
                acc = score_labels(dev[1], self.predict(dev[0]))["accuracy"]
                if best is None or acc > best[0]:
                    best = (acc, l2, self.weight, self.bias)
        if best is not None:
            _, self.l2, self.weight, self.bias = best
        return self

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[str]:
        scores = self._scores(self._bags(sentences), self.weight, self.bias)
        scores[:, :2] = float("-inf")  # PAD and UNK labels
        assert self.labels is not None  # set by fit() with the words (_bags checks those)
        return self.labels.decode(scores.argmax(dim=-1).tolist())


# -- model directories -----------------------------------------------------------------

@dataclass
class LoadedClassifier:
    model: Classifier
    vocabs: ClassifierVocabs
    config: ClassifierConfig
    record: dict

    def encoder(self) -> FeatureEncoder:
        return FeatureEncoder(self.vocabs.features, self.config.features.max_chars)


def save_classifier(directory, model: Classifier, vocabs: ClassifierVocabs, extra: dict | None = None) -> None:
    save_task_model(directory, TASK, model, vocabs.to_json(), extra)


def load_classifier(directory) -> LoadedClassifier:
    model, config, vocabs, files = load_task_model(directory, TASK, "sentence classifier", ClassifierConfig.from_json,
                                                   ClassifierVocabs.from_json, Classifier)
    return LoadedClassifier(model, vocabs, config, files.config)


def evaluate_classifier(model_dir, sentences: Sequence, *, source: str, baseline: bool = True) -> dict:
    """Accuracy and macro-F1 of a model directory on gold ``sentences`` (read from ``source``),
    and of the bag-of-words baseline fitted on the training data the directory records."""
    from ..data.conllu import read_conllu
    from .base import recorded_data

    loaded = load_classifier(model_dir)
    gold = [genre(s) for s in sentences]
    forms = [s.forms for s in sentences]
    result = {"model": str(model_dir), "file": str(source), "task": TASK,
              "score": score_labels(gold, predict_labels(loaded.model, loaded.encoder(), loaded.vocabs, forms))}
    if baseline:
        train_path, dev_path = recorded_data(loaded.record, model_dir)
        tr, dv = read_conllu(train_path), read_conllu(dev_path)
        bow = BowBaseline().fit([s.forms for s in tr], [genre(s) for s in tr],
                                dev=([s.forms for s in dv], [genre(s) for s in dv]))
        result["baseline"] = {"name": f"bag-of-words logistic regression (l2 {bow.l2:g}, chosen on dev)",
                              "score": score_labels(gold, bow.predict(forms))}
    return result


# -- training --------------------------------------------------------------------------

@dataclass
class ClassificationBatch:
    features: FeatureBatch
    labels: torch.Tensor  # (B,)
    tokens: int
    units: int  # sentences: the loss is their mean


class ClassificationTask:
    """Sentence classification for ``attnlab.train.train``; the dev score is accuracy."""

    def __init__(self, model: Classifier, vocabs: ClassifierVocabs, train: Sequence, train_labels: Sequence[str],
                 dev: Sequence, dev_labels: Sequence[str], *, batch_tokens_eval: int = 4096):
        self.vocabs = vocabs
        self.encoder = FeatureEncoder(vocabs.features, model.config.features.max_chars)
        self.forms = [list(s.forms) for s in train]
        self.labels = vocabs.labels.encode(train_labels)
        self.dev_forms = [list(s.forms) for s in dev]
        self.dev_labels = list(dev_labels)
        self.batch_tokens_eval = batch_tokens_eval

    def lengths(self) -> list[int]:
        return [len(f) for f in self.forms]

    def make_batch(self, indices: Sequence[int]) -> ClassificationBatch:
        feats = self.encoder.encode([self.forms[i] for i in indices])
        return ClassificationBatch(feats, torch.tensor([self.labels[i] for i in indices], dtype=torch.long),
                                   int(feats.lengths.sum()), len(indices))

    def loss(self, model: Classifier, batch: ClassificationBatch) -> torch.Tensor:
        return F.cross_entropy(model(batch.features), batch.labels, label_smoothing=model.config.label_smoothing)

    def evaluate(self, model: Classifier) -> float:
        pred = predict_labels(model, self.encoder, self.vocabs, self.dev_forms, batch_tokens=self.batch_tokens_eval)
        return score_labels(self.dev_labels, pred)["accuracy"]

    def save_model(self, directory, model: Classifier, extra: dict) -> None:
        save_classifier(directory, model, self.vocabs, extra)
