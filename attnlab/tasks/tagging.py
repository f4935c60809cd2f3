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
from typing import Sequence, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import load_task_model, save_task_model
from ..data.vocab import Vocab
from ..encoders import EncoderConfig, build_encoder
from ..features import PAD, UNK, FeatureBatch, FeatureConfig, FeatureEncoder, FeatureVocabs, TokenFeatures
from ..gcpause import paused_gc

TASK = "tagging"


LAYERS = ("upos", "xpos", "feats", "lemma")  # what a tagger can predict, in CoNLL-U's terms
NONE = "_"  # CoNLL-U's empty value


@dataclass(frozen=True)
class TaggerConfig:
    """What to build: features, encoder, heads.

    xpos_weight   weight of the XPOS loss (0 = no XPOS head)
    feats_weight  weight of the FEATS loss (0 = no FEATS head); features are predicted as the
                  whole feature string (one class per combination seen in training)
    lemma_weight  weight of the LEMMA loss (0 = no LEMMA head); lemmas are predicted as edit
                  scripts (``attnlab.tasks.lemma_edits``)
    A head is also left out when the training data has no values for its layer.
    """

    encoder: str = "attention"
    features: FeatureConfig = field(default_factory=FeatureConfig)
    encoder_config: EncoderConfig = field(default_factory=EncoderConfig)
    xpos_weight: float = 0.5
    label_smoothing: float = 0.0
    feats_weight: float = 0.5
    lemma_weight: float = 0.5

    def to_json(self) -> dict:
        return {
            "encoder": self.encoder,
            "features": self.features.to_json(),
            "encoder_config": self.encoder_config.to_json(),
            "xpos_weight": self.xpos_weight,
            "label_smoothing": self.label_smoothing,
            "feats_weight": self.feats_weight,
            "lemma_weight": self.lemma_weight,
        }

    @classmethod
    def from_json(cls, obj: dict) -> "TaggerConfig":
        return cls(
            encoder=obj["encoder"],
            features=FeatureConfig.from_json(obj.get("features", {})),
            encoder_config=EncoderConfig.from_json(obj.get("encoder_config", {})),
            xpos_weight=float(obj.get("xpos_weight", 0.0)),
            label_smoothing=float(obj.get("label_smoothing", 0.0)),
            feats_weight=float(obj.get("feats_weight", 0.0)),
            lemma_weight=float(obj.get("lemma_weight", 0.0)),
        )

    def weight(self, layer: str) -> float:
        return 1.0 if layer == "upos" else getattr(self, f"{layer}_weight")


def _column(sentences: Sequence, layer: str) -> list[list[str]]:
    """Each sentence's values of a layer (``_`` for sentences that do not have the column)."""
    attribute = "lemmas" if layer == "lemma" else layer
    return [list(getattr(s, attribute, None) or [NONE] * len(s.forms)) for s in sentences]


def gold_labels(sentences: Sequence, layer: str) -> list[list[str]]:
    """The class of each word for a layer: the tag, the feature string, or the lemma's edit
    script; ``_`` where the gold has no value (such words do not count in the loss)."""
    from .lemma_edits import edit_script

    rows = _column(sentences, layer)
    if layer != "lemma":
        return rows
    return [[NONE if lemma == NONE else edit_script(form, lemma) for form, lemma in zip(s.forms, row)]
            for s, row in zip(sentences, rows)]


def lemma_table(sentences: Sequence) -> dict[str, list]:
    """The training lemmas as a table: for each (form, UPOS) pair with a lemma, the lemma seen
    most often with it and the share of the pair's occurrences that have it, keyed
    ``"form\tUPOS"``. Prediction answers a pair seen in training from the table, as
    dictionary-backed lemmatizers do (right on irregular and rare known words), and every other
    word from the edit-script classifier."""
    from collections import Counter

    counts: dict[str, Counter] = {}
    for s, lemmas in zip(sentences, _column(sentences, "lemma")):
        for form, upos, lemma in zip(s.forms, s.upos, lemmas):
            if lemma != NONE:
                counts.setdefault(f"{form}\t{upos}", Counter())[lemma] += 1
    table = {}
    for key, seen in counts.items():
        lemma, n = seen.most_common(1)[0]
        table[key] = [lemma, round(n / sum(seen.values()), 3)]
    return table


@dataclass
class TaggerVocabs:
    features: FeatureVocabs
    upos: Vocab
    xpos: Vocab
    feats: Vocab = field(default_factory=lambda: Vocab.build([]))
    lemma: Vocab = field(default_factory=lambda: Vocab.build([]))  # edit scripts
    feats_by_upos: dict[str, list[str]] = field(default_factory=dict)  # feature strings seen with each UPOS
    lemma_table: dict[str, list] = field(default_factory=dict)  # "form\tUPOS" -> [lemma, share], see lemma_table

    @classmethod
    def build(cls, sentences: Sequence) -> "TaggerVocabs":
        """From training sentences (objects with ``forms`` and ``upos`` lists, and ``xpos``,
        ``feats`` and ``lemmas`` lists when they have those layers)."""
        sentences = list(sentences)

        def labels(layer):  # a layer whose only value is ``_`` is not there at all
            values = [t for row in gold_labels(sentences, layer) for t in row]
            if layer == "feats" and any(t != NONE for t in values):
                return Vocab.build(values)  # no features is a class of its own
            return Vocab.build(t for t in values if t != NONE)

        by_upos: dict[str, set[str]] = {}
        for s, row in zip(sentences, _column(sentences, "feats")):
            for upos, feats in zip(s.upos, row):
                by_upos.setdefault(upos, set()).add(feats)
        feats = labels("feats")
        return cls(
            features=FeatureVocabs.build(s.forms for s in sentences),
            upos=Vocab.build(t for s in sentences for t in s.upos),
            xpos=labels("xpos"), feats=feats, lemma=labels("lemma"),
            feats_by_upos={u: sorted(f) for u, f in sorted(by_upos.items())} if len(feats) > 2 else {},
            lemma_table=lemma_table(sentences),
        )

    def layer(self, name: str) -> Vocab:
        return getattr(self, name)

    def to_json(self) -> dict:
        return {"features": self.features.to_json(), "upos": self.upos.to_json(), "xpos": self.xpos.to_json(),
                "feats": self.feats.to_json(), "lemma": self.lemma.to_json(), "feats_by_upos": self.feats_by_upos,
                "lemma_table": self.lemma_table}

    @classmethod
    def from_json(cls, obj: dict) -> "TaggerVocabs":
        empty = Vocab.build([]).to_json()
        return cls(FeatureVocabs.from_json(obj["features"]), Vocab.from_json(obj["upos"]), Vocab.from_json(obj["xpos"]),
                   Vocab.from_json(obj.get("feats", empty)), Vocab.from_json(obj.get("lemma", empty)),
                   {str(k): [str(f) for f in v] for k, v in obj.get("feats_by_upos", {}).items()},
                   {str(k): [str(v[0]), float(v[1])] for k, v in obj.get("lemma_table", {}).items()})


@dataclass
class Emissions:
    upos: torch.Tensor  # (B, N, C_upos)
    xpos: torch.Tensor | None = None  # (B, N, C_xpos) or None
    feats: torch.Tensor | None = None  # (B, N, C_feats) or None
    lemma: torch.Tensor | None = None  # (B, N, C_edits) or None

    def layers(self) -> dict[str, torch.Tensor]:
        """The scores of every layer the model predicts, by name."""
        return {name: getattr(self, name) for name in LAYERS if getattr(self, name) is not None}


class Tagger(nn.Module):
    """Token features -> context encoder -> one linear head per layer (UPOS, and XPOS, FEATS
    and LEMMA edit scripts where the training data has them)."""

    def __init__(self, config: TaggerConfig, vocabs: TaggerVocabs):
        super().__init__()
        self.config = config
        self.features = TokenFeatures(config.features, vocabs.features)
        self.encoder = build_encoder(config.encoder, self.features.out_dim, config.encoder_config)
        self.dropout = nn.Dropout(config.encoder_config.dropout)
        width = self.encoder.out_dim
        for layer in LAYERS:
            size = len(vocabs.layer(layer))
            wanted = layer == "upos" or (config.weight(layer) > 0 and size > 2)
            setattr(self, f"{layer}_head", nn.Linear(width, size) if wanted else None)

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers this model predicts, in ``LAYERS`` order."""
        return tuple(name for name in LAYERS if getattr(self, f"{name}_head") is not None)

    def encode(self, batch: FeatureBatch) -> torch.Tensor:
        """(B, N, D): each token's vector after the encoder."""
        return self.encoder(self.features(batch), batch.lengths)

    def forward(self, batch: FeatureBatch) -> Emissions:
        h = self.dropout(self.encode(batch))  # (B, N, D)
        return Emissions(**{name: getattr(self, f"{name}_head")(h) for name in self.layers})


def tagging_loss(scores: torch.Tensor, gold: torch.Tensor, lengths: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over the real tokens: scores (B, N, C), gold (B, N), lengths (B,)."""
    """Words whose gold is PAD (no value in the data) do not count; 0 when no word counts."""
    n = scores.shape[1]
    real = (torch.arange(n) < lengths.unsqueeze(1)) & (gold != PAD)  # (B, N)
    if not bool(real.any()):
        return scores.sum() * 0.0
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
    """Predictions per layer (``tags["upos"]``: one list of tags per sentence; FEATS as feature
    strings, LEMMA as lemmas); with ``probabilities``, the probability of each choice
    (``probs``); with ``top_k``, each word's k most probable values as (value, probability),
    best first (``top``). Only the layers the model predicts are there."""

    tags: dict[str, list[list[str]]]
    probs: dict[str, list[list[float]]] | None = None
    top: dict[str, list[list[list[tuple[str, float]]]]] | None = None

    @property
    def upos(self) -> list[list[str]]:
        return self.tags["upos"]

    @property
    def xpos(self) -> list[list[str]] | None:
        return self.tags.get("xpos")

    @property
    def upos_prob(self) -> list[list[float]] | None:
        return self.probs["upos"] if self.probs is not None else None

    @property
    def xpos_prob(self) -> list[list[float]] | None:
        return self.probs.get("xpos") if self.probs is not None else None


def feats_allowed(vocabs: TaggerVocabs) -> torch.Tensor | None:
    """(C_upos, C_feats) bool: which feature strings training saw with each UPOS (a UPOS never
    seen with features, or not seen at all, allows every string); None without a FEATS layer."""
    if not vocabs.feats_by_upos:
        return None
    allowed = torch.ones(len(vocabs.upos), len(vocabs.feats), dtype=torch.bool)
    for upos, strings in vocabs.feats_by_upos.items():
        row = vocabs.upos.stoi.get(upos)
        if row is not None:
            allowed[row] = False
            allowed[row, vocabs.feats.encode(strings)] = True
    return allowed


def masked_scores(out: Emissions, allowed: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """(B, N, C) scores per layer with PAD and UNK at -inf (never chosen), and FEATS at -inf
    for the strings not ``allowed`` with the word's best UPOS (``feats_allowed``). Works in
    place on ``out``'s tensors (inference: they are not needed again)."""
    masked: dict[str, torch.Tensor] = {}
    for name, scores in out.layers().items():
        scores = scores.float()
        scores[..., PAD] = float("-inf")
        scores[..., UNK] = float("-inf")
        if name == "feats" and allowed is not None:
            scores.masked_fill_(~allowed[masked["upos"].argmax(dim=-1)], float("-inf"))
        masked[name] = scores
    return masked


def layer_probabilities(out: Emissions, allowed: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """(B, N, C) probabilities per layer over the values ``masked_scores`` lets be chosen."""
    return {name: torch.softmax(scores, dim=-1) for name, scores in masked_scores(out, allowed).items()}


def _lemma_choices(forms: Sequence[str], upos: Sequence[str], ids: list[list[int]], values: list[list[float]],
                   vocabs: TaggerVocabs, k: int):
    """Per word: the training table's lemma for a (form, UPOS) pair seen in training (with the
    share of its occurrences that had it), else the (lemma, probability) of the candidate
    edit scripts that fit the form, best first, at most ``k``; the form itself when none fits."""
    from .lemma_edits import apply_edit

    out = []
    vocab, table = vocabs.lemma, vocabs.lemma_table
    for form, tag, row_ids, row_p in zip(forms, upos, ids, values):
        known = table.get(f"{form}\t{tag}")
        if known is not None:
            out.append([(known[0], known[1])])
            continue
        found = []
        for t, p in zip(row_ids, row_p):
            lemma = apply_edit(form, vocab.itos[t])
            if lemma is not None:
                found.append((lemma, p))
                if len(found) == k:
                    break
        out.append(found or [(form, 0.0)])
    return out


def _choices(scores: torch.Tensor, lengths: torch.Tensor, k: int, probabilities: bool):
    """The ``k`` best ids per real token and their probabilities (B lists of N lists of k);
    without ``probabilities`` the second list holds raw scores (cheaper: no normalisation)."""
    if k == 1:  # max is several times cheaper than topk
        values, ids = scores.max(dim=-1, keepdim=True)  # (B, N, 1)
    else:
        values, ids = scores.topk(min(k, scores.shape[-1]), dim=-1)  # (B, N, k)
    if probabilities:
        values = torch.exp(values - torch.logsumexp(scores, dim=-1, keepdim=True))  # (B, N, k)
    return _cut(ids.tolist(), lengths), _cut(values.tolist(), lengths)


@torch.inference_mode()
def predict_tags(
    model: Tagger, encoder: FeatureEncoder, vocabs: TaggerVocabs, sentences: Sequence[Sequence[str]],
    *, batch_tokens: int = 8192, probabilities: bool = False, top_k: int = 0, precision: str = "fp32",
) -> TagPredictions:
    """Tag lists of word forms (each with at least one word) in batches of similar length, on
    every layer the model predicts; ``top_k`` > 0 also lists each word's ``top_k`` best values.
    ``precision``: "fp32" or "bf16", the products' number format (``attnlab.precision``)."""
    was_training = model.training
    model.eval()
    try:
        with paused_gc():
            return _predict_batches(model, encoder, vocabs, sentences, batch_tokens, probabilities, top_k, precision)
    finally:
        model.train(was_training)


def _predict_batches(model: Tagger, encoder: FeatureEncoder, vocabs: TaggerVocabs, sentences: Sequence[Sequence[str]],
                     batch_tokens: int, probabilities: bool, top_k: int, precision: str) -> TagPredictions:
    """``predict_tags`` on a model in eval mode."""
    from ..precision import autocast

    allowed = feats_allowed(vocabs) if model.feats_head is not None else None
    tags: dict[str, list] = {name: [None] * len(sentences) for name in model.layers}
    probs: dict[str, list] = {name: [None] * len(sentences) for name in model.layers}
    tops: dict[str, list] = {name: [None] * len(sentences) for name in model.layers}
    # character vectors once per distinct form, shared by every batch
    rows, table = encoder.char_table(model.features, [w for s in sentences for w in s])
    device = table.device
    for idx in length_batches([len(s) for s in sentences], batch_tokens):
        batch = encoder.encode([sentences[i] for i in idx], rows=rows)
        if device.type != "cpu":
            batch = batch.to(device)
        batch.char_vectors = table
        with autocast(precision, device.type):
            out = model(batch)
        for name, scores in masked_scores(out, allowed).items():
            itos = vocabs.layer(name).itos
            k = max(top_k, 1)  # lemmas: a few more edit scripts, for forms the best one does not fit
            ids, values = _choices(scores, batch.lengths, k + 4 if name == "lemma" else k,
                                   probabilities or top_k > 0)
            for i, row_ids, row_p in zip(idx, ids, values):
                if name == "lemma":
                    choices = _lemma_choices(sentences[i], tags["upos"][i], row_ids, row_p, vocabs, k)
                    tags[name][i] = [c[0][0] for c in choices]
                    probs[name][i] = [c[0][1] for c in choices]
                else:
                    tags[name][i] = [itos[a[0]] for a in row_ids]
                    probs[name][i] = [b[0] for b in row_p]
                    choices = ([[(itos[t], p) for t, p in zip(a, b)] for a, b in zip(row_ids, row_p)]
                               if top_k > 0 else None)
                tops[name][i] = choices
    return TagPredictions(tags=tags, probs=probs if probabilities else None, top=tops if top_k > 0 else None)


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
    precision: str = "fp32"  # the products' number format at inference ("fp32", "bf16": attnlab.precision)

    def encoder(self) -> FeatureEncoder:
        """The model's feature encoder, one per loaded model (it keeps the forms it has seen)."""
        if getattr(self, "_encoder", None) is None:
            self._encoder = FeatureEncoder(self.vocabs.features, self.config.features.max_chars)
        return self._encoder


def save_tagger(directory: str | Path, model: Tagger, vocabs: TaggerVocabs, extra: dict | None = None) -> None:
    save_task_model(directory, TASK, model, vocabs.to_json(), extra)


def load_tagger(directory: str | Path) -> LoadedTagger:
    """Read a tagger model directory; every problem is a one-line CheckpointError."""
    model, config, vocabs, files = load_task_model(directory, TASK, "tagger", TaggerConfig.from_json,
                                                   TaggerVocabs.from_json, Tagger)
    return LoadedTagger(model, vocabs, config, files.config)


def evaluate_tagger(model_dir: str | Path, sentences: Sequence, *, source: str, batch_tokens: int = 8192,
                    precision: str = "fp32") -> dict:
    """Tag gold ``sentences`` (read from ``source``) with a model directory and score them
    (``score_tagger``); ``precision`` as ``predict_tags``."""
    loaded = load_tagger(model_dir)
    return score_tagger(
        lambda forms: predict_tags(loaded.model, loaded.encoder(), loaded.vocabs, forms, batch_tokens=batch_tokens,
                                   precision=precision).tags,
        loaded.vocabs, model_dir, sentences, source,
    )


def score_tagger(tag, vocabs: TaggerVocabs, model_dir, sentences: Sequence, source: str) -> dict:
    """``evaluate_tagger``'s result for a model that ``tag(list of word-form lists)`` runs,
    returning its predictions by layer ({"upos": one tag list per sentence, "xpos": ...}):
    a ``TaggingReport`` for UPOS (``report``), XPOS accuracy (``xpos``) when the model and the
    gold have it, and in ``layers`` the CoNLL 2018-style ``WordLevelReport`` (UPOS, XPOS,
    UFeats, AllTags, Lemmas; the layers the model does not predict are marked so)."""
    from ..evaluate import score_tags, score_word_layers

    forms = [s.forms for s in sentences]
    start = time.perf_counter()
    predicted = tag(forms)
    seconds = time.perf_counter() - start
    known = vocabs.features.is_known
    upos, xpos = predicted["upos"], predicted.get("xpos")
    report = score_tags([s.upos for s in sentences], upos, [[not known(f) for f in s.forms] for s in sentences])
    result = {"model": str(model_dir), "file": str(source), "report": report, "seconds": seconds}
    if xpos is not None and any(s.xpos for s in sentences):
        result["xpos"] = score_tags([s.xpos for s in sentences], xpos)
    result["layers"] = score_word_layers(sentences, predicted, known)
    return result


# -- training --------------------------------------------------------------------------

@dataclass
class TaggingBatch:
    features: FeatureBatch
    gold: dict[str, torch.Tensor]  # layer -> (B, N) gold ids, PAD at padding and where the gold has no value
    tokens: int

    @property
    def upos(self) -> torch.Tensor:
        return self.gold["upos"]


def encode_gold(vocab: Vocab, labels: Sequence[str]) -> list[int]:
    """Ids of gold labels; ``_`` is PAD (not counted) unless it is a class of its own
    (FEATS: no features)."""
    ids = vocab.encode(labels)
    return [PAD if label == NONE and label not in vocab else i for label, i in zip(labels, ids)]


class TaggingTask:
    """The tagging side of ``attnlab.train.train``: batches, loss, dev score, saving."""

    def __init__(self, model: Tagger, vocabs: TaggerVocabs, train: Sequence, dev: Sequence, *, batch_tokens_eval: int = 4096):
        self.model, self.vocabs = model, vocabs
        self.encoder = self.feature_encoder(model)
        self.train_forms = [list(s.forms) for s in train]
        self.train_gold = {layer: [encode_gold(vocabs.layer(layer), row) for row in gold_labels(train, layer)]
                           for layer in model.layers}
        self.dev = list(dev)
        self.dev_gold = {layer: _column(self.dev, layer) for layer in model.layers}
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
            gold={layer: pad([rows[i] for i in indices]) for layer, rows in self.train_gold.items()},
            tokens=int(feats.lengths.sum()),
        )

    def loss(self, model: Tagger, batch: TaggingBatch) -> torch.Tensor:
        """The weighted sum of each layer's mean cross-entropy (UPOS weight 1)."""
        out = model(batch.features).layers()
        ls = model.config.label_smoothing
        total = sum(model.config.weight(layer) * tagging_loss(scores, batch.gold[layer], batch.features.lengths, ls)
                    for layer, scores in out.items())
        return cast(torch.Tensor, total)  # a tensor: every model has a UPOS layer

    def predict(self, model: Tagger, sentences: Sequence[Sequence[str]]) -> dict[str, list[list[str]]]:
        """Predictions by layer ({"upos": one tag list per sentence, ...}) of sentences of word forms."""
        return predict_tags(model, self.encoder, self.vocabs, sentences, batch_tokens=self.batch_tokens_eval).tags

    def evaluate(self, model: Tagger) -> float:
        """The dev score: the mean accuracy of the layers the model predicts (a lemma counts
        where the gold has one; a feature string must match exactly)."""
        pred = self.predict(model, [s.forms for s in self.dev])
        scores = []
        for layer, gold_rows in self.dev_gold.items():
            pairs = [(p, g) for ps, gs in zip(pred[layer], gold_rows) for p, g in zip(ps, gs)
                     if layer == "upos" or g != NONE or layer == "feats"]
            if pairs:
                scores.append(sum(p == g for p, g in pairs) / len(pairs))
        return sum(scores) / len(scores) if scores else 0.0

    def save_model(self, directory: str | Path, model: Tagger, extra: dict) -> None:
        save_tagger(directory, model, self.vocabs, extra)
