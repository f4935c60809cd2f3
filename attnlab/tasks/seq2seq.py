"""Sequence to sequence (N -> M): lemmatization as characters with an encoder-decoder Transformer.

Shape letters: B words, M source characters, N target characters, D model width, V symbols.

The input of one example is the word form as characters, preceded by its UPOS tag as one
extra symbol (``<NOUN> w a t c h e s``); the output is the lemma as characters (``w a t
c h``) followed by the end symbol. The encoder is the packed ``TransformerEncoder``; the
decoder (``attnlab.decoder``) attends causally to the characters produced so far and,
through cross-attention, to the encoded source. Decoding is greedy or beam search, one
step at a time with cached keys and values.

The training set is the distinct (form, UPOS, lemma) triples of the training treebank;
the score is exact-match accuracy over the tokens of the evaluation file, also on the
known and the unknown tokens (forms present in / absent from the training file). The
baseline (``LemmaBaseline``) answers the lemma seen most often with the form in training,
else the form itself.

A model directory also stores the training lookup table (``LemmaTable``, in lookup.json):
the lemma seen most often with each (form, UPOS) pair, and with each form. Prediction
answers from the table the (form, UPOS) pairs seen in training and asks the model only
about the others (``LoadedLemmatizer.lemmatize``; ``lookup=False`` for the model alone), as
dictionary-backed lemmatizers do: the table is right on frequent irregular words, the
model generalizes to unseen ones.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import (
    CheckpointError, add_model_json, load_task_model, read_model_json, save_task_model,
)
from ..config import JsonConfig, check_positive
from ..data.vocab import Vocab
from ..decoder import KVCache, TransformerDecoder
from ..modules import TransformerEncoder

TASK = "seq2seq"
LOOKUP = "lookup.json"
LOOKUP_FORMAT = "attnlab-lemma-table/1"
PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")


@dataclass(frozen=True)
class Seq2seqConfig(JsonConfig):
    """Sizes of the encoder-decoder.

    max_chars  longest form (in characters) the model reads; longer forms are not
               trained on and are returned unchanged as their own lemma
    """

    d_model: int = 128
    heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    d_ff: int = 512
    dropout: float = 0.1
    max_chars: int = 40
    label_smoothing: float = 0.0

    def __post_init__(self):
        if self.d_model % self.heads:
            raise ValueError(f"d_model = {self.d_model} must be divisible by heads = {self.heads}")
        check_positive(self, ("max_chars",))


def tag_symbol(upos: str) -> str:
    return f"<{upos}>"


class LemmaVocab:
    """Symbols shared by source and target: the specials, one symbol per UPOS tag, characters."""

    def __init__(self, itos: Sequence[str]):
        self.vocab = Vocab(itos)
        if tuple(itos[:4]) != SPECIALS:
            raise ValueError(f"a lemma vocabulary starts with {list(SPECIALS)}, got {list(itos[:4])}")

    @classmethod
    def build(cls, triples: Sequence[tuple[str, str, str]]) -> "LemmaVocab":
        tags = sorted({tag_symbol(u) for _, u, _ in triples})
        chars = Counter(c for f, _, l in triples for c in f + l)
        ranked = [c for c, _ in sorted(chars.items(), key=lambda kv: -kv[1])]
        return cls([*SPECIALS, *tags, *ranked])

    def __len__(self) -> int:
        return len(self.vocab)

    def source(self, form: str, upos: str, max_chars: int) -> list[int]:
        return self.vocab.encode([tag_symbol(upos), *form[:max_chars]])

    def target(self, lemma: str) -> list[int]:
        return self.vocab.encode(list(lemma))

    def text(self, ids: Sequence[int]) -> str:
        """Characters up to the first end symbol; specials are dropped."""
        out = []
        for i in ids:
            if i == EOS:
                break
            if i > 3:
                out.append(self.vocab.itos[i])
        return "".join(out)

    def to_json(self) -> dict:
        return self.vocab.to_json()

    @classmethod
    def from_json(cls, obj: dict) -> "LemmaVocab":
        return cls(Vocab.from_json(obj).itos)


def lemma_triples(sentences: Sequence) -> list[tuple[str, str, str]]:
    """(form, UPOS, lemma) of every token."""
    return [(t.form, t.upos, t.lemma) for s in sentences for t in s.tokens]


def pad_rows(rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Lists of ids -> (B, L) PAD-filled tensor and (B,) lengths."""
    n = max((len(r) for r in rows), default=0)
    out = torch.zeros(len(rows), max(n, 1), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out, torch.tensor([len(r) for r in rows], dtype=torch.long)


class Lemmatizer(nn.Module):
    """Characters (+ UPOS symbol) -> encoder -> decoder -> scores over the next character.

    One embedding table serves the source, the target and (transposed) the output layer.
    """

    def __init__(self, config: Seq2seqConfig, vocab_size: int):
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(vocab_size, c.d_model, padding_idx=PAD)
        nn.init.normal_(self.embed.weight, std=c.d_model ** -0.5)
        self.scale = c.d_model ** 0.5
        self.encoder = TransformerEncoder(c.d_model, c.heads, c.encoder_layers, c.d_ff, dropout=c.dropout,
                                          positions="rotary", norm_first=True)
        self.decoder = TransformerDecoder(c.d_model, c.heads, c.decoder_layers, c.d_ff, dropout=c.dropout,
                                          max_len=c.max_chars + 8)
        self.drop = nn.Dropout(c.dropout)

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> torch.Tensor:
        """src (B, M) ids -> memory (B, M, D), zeros at padding."""
        return self.encoder(self.drop(self.embed(src) * self.scale), src_lengths)

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_lengths: torch.Tensor,
               cache: KVCache | None = None) -> torch.Tensor:
        """tgt_in (B, N) ids (BOS first) -> scores (B, N, V) for the next symbol at each step."""
        h = self.decoder(self.embed(tgt_in) * self.scale, memory, src_lengths, cache=cache)
        return h @ self.embed.weight.t()

    def forward(self, src, src_lengths, tgt_in) -> torch.Tensor:
        """Teacher forcing: (B, M), (B,), (B, N) -> scores (B, N, V)."""
        return self.decode(tgt_in, self.encode(src, src_lengths), src_lengths)

    def max_steps(self, src_lengths: torch.Tensor) -> int:
        return min(int(src_lengths.max()) + 6, self.decoder.max_len)


def _no_specials(scores: torch.Tensor) -> torch.Tensor:
    scores = scores.clone()
    scores[..., PAD] = float("-inf")
    scores[..., UNK] = float("-inf")
    scores[..., BOS] = float("-inf")
    return scores


@torch.inference_mode()
def greedy_decode(model: Lemmatizer, src: torch.Tensor, src_lengths: torch.Tensor, *, max_steps: int | None = None) -> list[list[int]]:
    """The most likely next symbol at every step, with cached keys and values; (B,) lists of ids (no EOS)."""
    b = src.shape[0]
    memory = model.encode(src, src_lengths)
    cache = model.decoder.new_cache()
    steps = max_steps or model.max_steps(src_lengths)
    prev = torch.full((b, 1), BOS, dtype=torch.long)
    out = torch.zeros(b, 0, dtype=torch.long)
    done = torch.zeros(b, dtype=torch.bool)
    for _ in range(steps):
        scores = _no_specials(model.decode(prev, memory, src_lengths, cache)[:, -1])  # (B, V)
        nxt = scores.argmax(dim=-1).masked_fill(done, EOS)
        out = torch.cat([out, nxt[:, None]], dim=1)
        done |= nxt == EOS
        if bool(done.all()):
            break
        prev = nxt[:, None]
    return [_until_eos(row) for row in out.tolist()]


def _until_eos(ids: list[int]) -> list[int]:
    return ids[: ids.index(EOS)] if EOS in ids else ids


@torch.inference_mode()
def beam_decode(model: Lemmatizer, src: torch.Tensor, src_lengths: torch.Tensor, *, beam: int = 4,
                max_steps: int | None = None) -> list[list[int]]:
    """Beam search with cached keys and values: the highest total log-probability among
    ``beam`` hypotheses kept per word; a finished hypothesis keeps its score. (B,) lists of ids."""
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    b, k = src.shape[0], beam
    memory = model.encode(src, src_lengths)  # (B, M, D)
    rows = torch.arange(b).repeat_interleave(k)  # (B*K,) source row of each hypothesis
    memory, lengths = memory.index_select(0, rows), src_lengths.index_select(0, rows)
    cache = model.decoder.new_cache()
    steps = max_steps or model.max_steps(src_lengths)
    score = torch.full((b, k), float("-inf"))
    score[:, 0] = 0.0  # one live hypothesis per word at the start
    seqs = torch.zeros(b * k, 0, dtype=torch.long)
    done = torch.zeros(b * k, dtype=torch.bool)
    prev = torch.full((b * k, 1), BOS, dtype=torch.long)
    for _ in range(steps):
        logp = torch.log_softmax(_no_specials(model.decode(prev, memory, lengths, cache)[:, -1]), dim=-1)  # (B*K, V)
        v = logp.shape[-1]
        # a finished hypothesis continues only with EOS, at no cost
        finished = torch.full_like(logp, float("-inf"))
        finished[:, EOS] = 0.0
        logp = torch.where(done[:, None], finished, logp)
        total = (score.view(b * k, 1) + logp).view(b, k * v)  # (B, K*V)
        score, flat = total.topk(k, dim=-1)  # (B, K)
        origin = (flat // v) + torch.arange(b)[:, None] * k  # (B, K) rows of the kept hypotheses
        symbol = (flat % v).view(-1)
        origin = origin.view(-1)
        seqs = torch.cat([seqs.index_select(0, origin), symbol[:, None]], dim=1)
        done = done.index_select(0, origin) | (symbol == EOS)
        cache.reorder(origin)
        if bool(done.all()):
            break
        prev = symbol[:, None]
    best = score.argmax(dim=-1)  # (B,)
    chosen = seqs.view(b, k, -1)[torch.arange(b), best]
    return [_until_eos(row) for row in chosen.tolist()]


def predict_lemmas(model: Lemmatizer, vocab: LemmaVocab, pairs: Sequence[tuple[str, str]], *,
                   beam: int = 1, batch_size: int = 512, table: "LemmaTable | None" = None) -> list[str]:
    """The lemma of each (form, UPOS) pair, each distinct pair decoded once.

    Without a ``table``: the model's lemma; forms longer than ``max_chars`` (not read) and
    empty predictions give the form itself. With a ``table``: pairs seen in training take
    the table's lemma and are not decoded; the others take the model's; where the model
    gives none, the lemma of the form in the table (when the form was seen), else the form.
    """
    seen = table.pairs if table is not None else {}
    forms = table.forms if table is not None else {}
    todo = {p for p in pairs if p not in seen and len(p[0]) <= model.config.max_chars}
    decoded = _decode_pairs(model, vocab, todo, beam, batch_size)
    return [seen.get(p) or decoded.get(p) or forms.get(p[0]) or p[0] for p in pairs]


def _decode_pairs(model: Lemmatizer, vocab: LemmaVocab, pairs, beam: int, batch_size: int) -> dict[tuple[str, str], str]:
    """{(form, UPOS): decoded lemma (may be empty)} for distinct pairs of forms of at most max_chars."""
    was_training = model.training
    model.eval()
    max_chars = model.config.max_chars
    distinct = sorted(pairs, key=lambda p: (len(p[0]), p))
    found: dict[tuple[str, str], str] = {}
    try:
        for start in range(0, len(distinct), batch_size):
            chunk = distinct[start: start + batch_size]
            src, lengths = pad_rows([vocab.source(f, u, max_chars) for f, u in chunk])
            ids = greedy_decode(model, src, lengths) if beam == 1 else beam_decode(model, src, lengths, beam=beam)
            for p, row in zip(chunk, ids):
                found[p] = vocab.text(row)
    finally:
        model.train(was_training)
    return found


# -- baseline and scores ---------------------------------------------------------------

def _most_frequent(items) -> dict:
    """key -> the value seen most often with it (ties: the value seen first)."""
    counts: dict = defaultdict(Counter)
    for key, value in items:
        counts[key][value] += 1
    return {key: c.most_common(1)[0][0] for key, c in counts.items()}


class LemmaTable:
    """The lemmas of the training file: (form, UPOS) -> the lemma seen most often with the
    pair (``pairs``: what the hybrid answers without the model), and form -> the lemma seen
    most often with the form under any UPOS (``forms``: the fallback where the model gives
    no answer, and the baseline).

    ``lookup(form, upos)`` gives the pair's lemma, or None (a question for the model). A
    form seen only with other tags goes to the model too: on EWT dev the model is right on
    85.2% of those 311 tokens, the form's most frequent lemma on 52.1%.
    """

    def __init__(self, pairs: dict[tuple[str, str], str], forms: dict[str, str]):
        self.pairs, self.forms = pairs, forms

    @classmethod
    def build(cls, triples: Sequence[tuple[str, str, str]]) -> "LemmaTable":
        return cls(_most_frequent(((f, u), l) for f, u, l in triples), _most_frequent((f, l) for f, _, l in triples))

    def __contains__(self, form: str) -> bool:
        """Whether the form occurs in the training file."""
        return form in self.forms

    def lookup(self, form: str, upos: str) -> str | None:
        return self.pairs.get((form, upos))

    def to_json(self) -> dict:
        """{"pairs": {UPOS: {form: lemma}}, "forms": {form: lemma}}, sorted (one line per entry)."""
        by_tag: dict[str, dict[str, str]] = defaultdict(dict)
        for (form, upos), lemma in sorted(self.pairs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            by_tag[upos][form] = lemma
        return {"format": LOOKUP_FORMAT, "pairs": dict(by_tag), "forms": dict(sorted(self.forms.items()))}

    @classmethod
    def from_json(cls, obj: dict) -> "LemmaTable":
        if obj.get("format") != LOOKUP_FORMAT:
            raise ValueError(f"not a lemma table (format {obj.get('format')!r}, expected {LOOKUP_FORMAT!r})")
        pairs, forms = obj.get("pairs"), obj.get("forms")
        if not (isinstance(pairs, dict) and isinstance(forms, dict)
                and all(isinstance(m, dict) and all(isinstance(v, str) for v in m.values()) for m in pairs.values())
                and all(isinstance(v, str) for v in forms.values())):
            raise ValueError("a lemma table holds {\"pairs\": {UPOS: {form: lemma}}, \"forms\": {form: lemma}}")
        return cls({(f, u): l for u, m in pairs.items() for f, l in m.items()}, dict(forms))


class LemmaBaseline:
    """The lemma seen most often with this exact form in training, else the form itself."""

    def __init__(self, triples: Sequence[tuple[str, str, str]] = (), *, table: LemmaTable | None = None):
        self.table = (table if table is not None else LemmaTable.build(triples)).forms

    def __contains__(self, form: str) -> bool:
        return form in self.table

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[str]:
        return [self.table.get(form, form) for form, _ in pairs]


def score_lemmas(gold: Sequence[str], predicted: Sequence[str], unknown: Sequence[bool]) -> dict:
    """Exact-match accuracy over all tokens, the known ones and the unknown ones."""
    if not (len(gold) == len(predicted) == len(unknown)):
        raise ValueError("gold, predicted and unknown must have the same length")
    right = [g == p for g, p in zip(gold, predicted)]
    n_unk = sum(unknown)
    n_known = len(gold) - n_unk
    return {
        "tokens": len(gold),
        "accuracy": sum(right) / len(gold) if gold else 0.0,
        "known_tokens": n_known,
        "known_accuracy": sum(r for r, u in zip(right, unknown) if not u) / n_known if n_known else 0.0,
        "unknown_tokens": n_unk,
        "unknown_accuracy": sum(r for r, u in zip(right, unknown) if u) / n_unk if n_unk else 0.0,
    }


# -- model directories -----------------------------------------------------------------

@dataclass
class LoadedLemmatizer:
    model: Lemmatizer
    vocab: LemmaVocab
    record: dict
    table: LemmaTable | None  # None: a directory saved before lookup tables were stored

    def lemmatize(self, pairs: Sequence[tuple[str, str]], *, beam: int = 1, lookup: bool = True) -> list[str]:
        """The lemma of each (form, UPOS) pair: the lookup table's for pairs seen in training and
        the model's for the others (``predict_lemmas``); ``lookup=False``: the model's for all."""
        if lookup and self.table is None:
            raise CheckpointError("this model directory has no lookup table (saved before tables were stored): "
                                  "add it with add_lookup_table(directory) or use lookup=False")
        return predict_lemmas(self.model, self.vocab, pairs, beam=beam, table=self.table if lookup else None)


def save_lemmatizer(directory, model: Lemmatizer, vocab: LemmaVocab, extra: dict | None = None,
                    table: LemmaTable | None = None) -> None:
    save_task_model(directory, TASK, model, vocab.to_json(), extra,
                    {LOOKUP: table.to_json()} if table is not None else None)


def load_lemmatizer(directory) -> LoadedLemmatizer:
    model, _, vocab, files = load_task_model(directory, TASK, "seq2seq lemmatizer", Seq2seqConfig.from_json,
                                             LemmaVocab.from_json, lambda c, v: Lemmatizer(c, len(v)))
    stored = read_model_json(directory, files.config, LOOKUP, "lemma lookup table")
    try:
        table = LemmaTable.from_json(stored) if stored is not None else None
    except ValueError as exc:
        raise CheckpointError(f"{Path(directory) / LOOKUP}: {exc}") from None
    return LoadedLemmatizer(model, vocab, files.config, table)


def add_lookup_table(directory, train_path=None) -> LemmaTable:
    """Store the lookup table in a model directory saved without one, built from ``train_path``
    or else from the training file its config.json records."""
    from ..data.conllu import read_conllu

    loaded = load_lemmatizer(directory)
    train_path = train_path or (loaded.record.get("data") or {}).get("train")
    if not train_path:
        raise CheckpointError(f"{Path(directory) / 'config.json'}: no training file recorded to build the lookup table from")
    if not Path(train_path).is_file():
        raise FileNotFoundError(f"{train_path}: training file of {directory} not found (needed for its lookup table)")
    table = LemmaTable.build(lemma_triples(read_conllu(train_path)))
    add_model_json(directory, LOOKUP, table.to_json())
    return table


def evaluate_lemmatizer(model_dir, sentences: Sequence, *, source: str, beam: int = 1, baseline: bool = True,
                        lookup: bool = True, store_lookup: bool = False, log=None) -> dict:
    """Exact match overall / on known / on unknown forms of gold ``sentences`` (read from
    ``source``) of: the lookup table for seen (form, UPOS) pairs + the model for the others
    (the main ``score``, unless ``lookup`` is False), the model alone (``model_only``; the main
    score with ``lookup`` False) and the baseline. Known = the form occurs in training.
    ``log`` hears about a lookup table built for this run only."""
    loaded = load_lemmatizer(model_dir)
    table, table_source = _lookup_table(loaded, model_dir, store_lookup, log)
    triples = lemma_triples(sentences)
    pairs = [(f, u) for f, u, _ in triples]
    gold = [l for _, _, l in triples]
    unknown = [f not in table for f, _ in pairs]
    result = {"model": str(model_dir), "file": str(source), "task": TASK, "beam": beam, "lookup": lookup}
    if lookup:
        hybrid = predict_lemmas(loaded.model, loaded.vocab, pairs, beam=beam, table=table)
        result["score"] = score_lemmas(gold, hybrid, unknown)
        result["table"] = {"source": table_source, "pairs": len(table.pairs), "forms": len(table.forms),
                           "tokens_answered": sum(table.lookup(f, u) is not None for f, u in pairs)}
    alone = predict_lemmas(loaded.model, loaded.vocab, pairs, beam=beam)
    result["model_only" if lookup else "score"] = score_lemmas(gold, alone, unknown)
    if baseline:
        result["baseline"] = {"name": "most frequent lemma of the form in training, else the form",
                              "score": score_lemmas(gold, LemmaBaseline(table=table).predict(pairs), unknown)}
    return result


def _lookup_table(loaded: LoadedLemmatizer, model_dir, store: bool, log) -> tuple[LemmaTable, str]:
    """The model directory's lookup table and where it came from; a directory saved without
    one gets it built from its recorded training file (and stored when ``store``)."""
    from ..data.conllu import read_conllu
    from .base import recorded_data

    if loaded.table is not None:
        return loaded.table, "stored in the model directory"
    if store:
        return add_lookup_table(model_dir), "built from the training file, now stored"
    train_path, _ = recorded_data(loaded.record, model_dir, "the lookup table of a model saved without one")
    if not train_path.is_file():
        raise FileNotFoundError(f"{train_path}: training file of {model_dir} not found (the model directory has "
                                "no lookup table, so it is built from this file)")
    table = LemmaTable.build(lemma_triples(read_conllu(train_path)))
    if log is not None:
        log(f"{model_dir}: no lookup table stored (saved before tables were); built it from {train_path}")
    return table, f"not stored; built from {train_path} for this run (--store-lookup keeps it)"


# -- training --------------------------------------------------------------------------

@dataclass
class Seq2seqBatch:
    src: torch.Tensor  # (B, M)
    src_lengths: torch.Tensor  # (B,)
    tgt_in: torch.Tensor  # (B, N): BOS + lemma
    tgt_out: torch.Tensor  # (B, N): lemma + EOS, PAD after
    tokens: int  # source + target symbols
    units: int  # target symbols: the loss is their mean


class Seq2seqTask:
    """Lemmatization for ``attnlab.train.train``: distinct training triples, dev exact match."""

    def __init__(self, model: Lemmatizer, vocab: LemmaVocab, train: Sequence, dev: Sequence, *, beam: int = 1):
        self.vocab, self.beam = vocab, beam
        max_chars = model.config.max_chars
        triples = lemma_triples(train)
        distinct = list(dict.fromkeys(t for t in triples if len(t[0]) <= max_chars and len(t[2]) <= max_chars))
        self.src = [vocab.source(f, u, max_chars) for f, u, _ in distinct]
        self.tgt = [vocab.target(l) for _, _, l in distinct]
        self.dev = lemma_triples(dev)
        self.table = LemmaTable.build(triples)  # all of them, long forms included

    def lengths(self) -> list[int]:
        return [len(s) + len(t) + 1 for s, t in zip(self.src, self.tgt)]

    def make_batch(self, indices: Sequence[int]) -> Seq2seqBatch:
        src, src_lengths = pad_rows([self.src[i] for i in indices])
        tgt_in, _ = pad_rows([[BOS, *self.tgt[i]] for i in indices])
        tgt_out, tgt_lengths = pad_rows([[*self.tgt[i], EOS] for i in indices])
        return Seq2seqBatch(src, src_lengths, tgt_in, tgt_out, int(src_lengths.sum() + tgt_lengths.sum()),
                            int(tgt_lengths.sum()))

    def loss(self, model: Lemmatizer, batch: Seq2seqBatch) -> torch.Tensor:
        scores = model(batch.src, batch.src_lengths, batch.tgt_in)  # (B, N, V)
        return F.cross_entropy(scores.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=PAD,
                               label_smoothing=model.config.label_smoothing)

    def evaluate(self, model: Lemmatizer) -> float:
        """Exact-match accuracy of the model alone (no lookup table) over the dev tokens."""
        pred = predict_lemmas(model, self.vocab, [(f, u) for f, u, _ in self.dev], beam=self.beam)
        return sum(p == l for p, (_, _, l) in zip(pred, self.dev)) / max(len(self.dev), 1)

    def save_model(self, directory, model: Lemmatizer, extra: dict) -> None:
        save_lemmatizer(directory, model, self.vocab, extra, self.table)
