"""Scoring a tagger: accuracy, accuracy on unknown words, per-tag P/R/F1, confusions.

Everything here works on plain lists of tag strings, so it can score any tagger
(or a file of predictions against a gold file):

    >>> report = score_tags([["PRON", "VERB"]], [["PRON", "NOUN"]])
    >>> report.accuracy
    0.5

A token is *unknown* when the caller says so; for the taggers in this project that
means its lowercased form never occurs in the training data.

``score_conllu`` / ``score_conllu_files`` score a predicted CoNLL-U file against a gold one
with the same words, layer by layer (UPOS, XPOS, UFeats, AllTags, Lemmas), by the definitions
of the CoNLL 2018 shared task (see ``score_word_layers``); ``attnlab.evaluate_text`` scores a
system whose tokenization differs from the gold's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

from .data.conllu import ConlluError, check_tags, read_conllu


@dataclass(frozen=True)
class TagScore:
    """Precision, recall and F1 of one tag; ``support`` = gold count, ``predicted`` = predicted count."""

    tag: str
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


@dataclass(frozen=True)
class Confusion:
    """``count`` tokens whose gold tag is ``gold`` were tagged ``predicted``."""

    gold: str
    predicted: str
    count: int


@dataclass(frozen=True)
class TaggingReport:
    tokens: int
    correct: int
    unknown_tokens: int
    unknown_correct: int
    per_tag: tuple[TagScore, ...]
    confusions: tuple[Confusion, ...]

    @property
    def accuracy(self) -> float:
        return self.correct / self.tokens if self.tokens else 0.0

    @property
    def unknown_accuracy(self) -> float | None:
        """Accuracy on unknown tokens, or None when there are none."""
        return self.unknown_correct / self.unknown_tokens if self.unknown_tokens else None

    @property
    def macro_f1(self) -> float:
        scored = [s.f1 for s in self.per_tag if s.support > 0]
        return sum(scored) / len(scored) if scored else 0.0

    def to_json(self) -> dict:
        return {
            "tokens": self.tokens,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "unknown_tokens": self.unknown_tokens,
            "unknown_correct": self.unknown_correct,
            "unknown_accuracy": self.unknown_accuracy,
            "macro_f1": self.macro_f1,
            "per_tag": [asdict(s) for s in self.per_tag],
            "confusions": [asdict(c) for c in self.confusions],
        }

    def format(self, title: str = "UPOS") -> str:
        """A readable multi-line table."""
        unk = self.unknown_accuracy
        lines = [
            f"{title} accuracy    {100 * self.accuracy:6.2f}%  ({self.correct:,} / {self.tokens:,} tokens)",
            f"unknown words    "
            + (f"{100 * unk:6.2f}%  ({self.unknown_correct:,} / {self.unknown_tokens:,} tokens)" if unk is not None
               else "   n/a  (no unknown tokens)"),
            f"macro F1         {100 * self.macro_f1:6.2f}%",
            "",
            f"{'tag':<8} {'precision':>9} {'recall':>8} {'F1':>8} {'gold':>8} {'predicted':>9}",
        ]
        for s in self.per_tag:
            lines.append(
                f"{s.tag:<8} {100 * s.precision:8.2f}% {100 * s.recall:7.2f}% {100 * s.f1:7.2f}% "
                f"{s.support:8,} {s.predicted:9,}"
            )
        if self.confusions:
            lines += ["", "most confused (gold -> predicted)"]
            for c in self.confusions:
                lines.append(f"  {c.gold:<6} -> {c.predicted:<6} {c.count:6,}")
        return "\n".join(lines)


def score_tags(
    gold: Sequence[Sequence[str]],
    predicted: Sequence[Sequence[str]],
    unknown: Sequence[Sequence[bool]] | None = None,
    *,
    top_confusions: int = 10,
) -> TaggingReport:
    """Score ``predicted`` against ``gold`` (one list of tags per sentence).

    ``unknown`` marks the tokens counted in the unknown-word accuracy.
    Per-tag scores cover every tag seen in gold or predictions, sorted by gold count
    (then name); a tag never predicted has precision 0, a tag never in gold recall 0.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"gold has {len(gold)} sentences but predictions have {len(predicted)}")
    if unknown is not None and len(unknown) != len(gold):
        raise ValueError(f"gold has {len(gold)} sentences but unknown flags have {len(unknown)}")
    tokens = correct = unk_tokens = unk_correct = 0
    gold_count: Counter[str] = Counter()
    pred_count: Counter[str] = Counter()
    hit_count: Counter[str] = Counter()
    confused: Counter[tuple[str, str]] = Counter()
    for i, (g_sent, p_sent) in enumerate(zip(gold, predicted)):
        if len(g_sent) != len(p_sent):
            raise ValueError(f"sentence {i + 1}: {len(g_sent)} gold tags but {len(p_sent)} predicted")
        u_sent = unknown[i] if unknown is not None else None
        if u_sent is not None and len(u_sent) != len(g_sent):
            raise ValueError(f"sentence {i + 1}: {len(g_sent)} gold tags but {len(u_sent)} unknown flags")
        for j, (g, p) in enumerate(zip(g_sent, p_sent)):
            tokens += 1
            gold_count[g] += 1
            pred_count[p] += 1
            ok = g == p
            if ok:
                correct += 1
                hit_count[g] += 1
            else:
                confused[(g, p)] += 1
            if u_sent is not None and u_sent[j]:
                unk_tokens += 1
                unk_correct += ok

    per_tag = []
    for tag in sorted(set(gold_count) | set(pred_count), key=lambda t: (-gold_count[t], t)):
        hits = hit_count[tag]
        precision = hits / pred_count[tag] if pred_count[tag] else 0.0
        recall = hits / gold_count[tag] if gold_count[tag] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_tag.append(TagScore(tag, precision, recall, f1, gold_count[tag], pred_count[tag]))
    worst = sorted(confused.items(), key=lambda kv: (-kv[1], kv[0]))[:top_confusions]
    return TaggingReport(
        tokens=tokens,
        correct=correct,
        unknown_tokens=unk_tokens,
        unknown_correct=unk_correct,
        per_tag=tuple(per_tag),
        confusions=tuple(Confusion(g, p, n) for (g, p), n in worst),
    )


# -- word-level layers, scored as the CoNLL 2018 shared task does -----------------------

# The universal feature names of UD v2 that the CoNLL 2018 evaluation compares; any other name
# (a language-specific feature, a layered one such as ``Number[psor]``) is left out of UFeats.
UNIVERSAL_FEATURES = frozenset({
    "PronType", "NumType", "Poss", "Reflex", "Foreign", "Abbr", "Gender", "Animacy", "Number", "Case",
    "Definite", "Degree", "VerbForm", "Mood", "Tense", "Aspect", "Voice", "Evident", "Polarity", "Person",
    "Polite",
})
WORD_LAYERS = ("UPOS", "XPOS", "UFeats", "AllTags", "Lemmas")
_COLUMNS = {"UPOS": "upos", "XPOS": "xpos", "UFeats": "feats", "Lemmas": "lemma"}
_TAG_LAYERS = ("UPOS", "XPOS", "UFeats")  # what AllTags joins


@lru_cache(maxsize=1 << 16)
def universal_features(feats: str) -> frozenset[str]:
    """The ``Name=Value`` pairs of a FEATS field whose name is universal; ``_`` is the empty set."""
    from .data.conllu import parse_feats

    return frozenset(f"{name}={value}" for name, value in parse_feats(feats).items() if name in UNIVERSAL_FEATURES)


@dataclass(frozen=True)
class LayerScore:
    """Accuracy of one layer over the syntactic words. ``status`` is ``"scored"``, ``"absent"``
    (the gold has no such layer: every value ``_``) or ``"not predicted"``; only scored layers
    have an accuracy."""

    layer: str
    status: str
    words: int
    correct: int
    unknown_words: int
    unknown_correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.words if self.status == "scored" and self.words else None

    @property
    def unknown_accuracy(self) -> float | None:
        return self.unknown_correct / self.unknown_words if self.status == "scored" and self.unknown_words else None


@dataclass(frozen=True)
class WordLevelReport:
    """UPOS, XPOS, UFeats, AllTags and Lemmas accuracy (``WORD_LAYERS``), overall and on unknown words."""

    words: int
    unknown_words: int
    layers: tuple[LayerScore, ...]

    def __getitem__(self, layer: str) -> LayerScore:
        for score in self.layers:
            if score.layer == layer:
                return score
        raise KeyError(layer)

    def to_json(self) -> dict:
        """``{"words": .., "unknown_words": .., "UPOS": {"status", "accuracy", ...}, "XPOS": ..., ...}``."""
        obj: dict = {"words": self.words, "unknown_words": self.unknown_words}
        for s in self.layers:
            obj[s.layer] = {"status": s.status, "accuracy": s.accuracy, "correct": s.correct,
                            "unknown_accuracy": s.unknown_accuracy, "unknown_correct": s.unknown_correct}
        return obj

    def format(self) -> str:
        """One line per layer: accuracy and unknown-word accuracy, "–" where there is none."""
        def pct(x: float | None) -> str:
            return f"{100 * x:6.2f}%" if x is not None else "     –"

        lines = [f"{'layer':<8} {'accuracy':>9} {'unknown':>9}   ({self.words:,} words, {self.unknown_words:,} unknown)"]
        for s in self.layers:
            note = "" if s.status == "scored" else f"   ({s.status})"
            lines.append(f"{s.layer:<8} {pct(s.accuracy):>9} {pct(s.unknown_accuracy):>9}{note}")
        return "\n".join(lines)


def _matches(layer: str, gold: str, predicted: str) -> bool:
    if layer == "UFeats":
        return universal_features(gold) == universal_features(predicted)
    if layer == "Lemmas":
        return gold == "_" or gold == predicted
    return gold == predicted


def layer_hits(gold_words: Mapping[str, Sequence[str]], gold: Mapping[str, Sequence[str]],
               predicted: Mapping[str, Sequence[str]]) -> tuple[dict[str, str], dict[str, list[bool]]]:
    """The status of each layer of ``WORD_LAYERS`` and, for each scored one, which compared words it
    gets right (the definitions are ``score_word_layers``'s).

    ``gold_words`` holds every gold word's value per column (``"upos"``, ``"xpos"``, ``"feats"``,
    ``"lemma"``): a layer other than UPOS whose values are all ``_`` is ``"absent"``. ``gold`` and
    ``predicted`` hold the values of the word pairs compared, one list per column; a column left out
    of ``predicted`` is ``"not predicted"``. AllTags joins the tag layers the gold has.
    """
    status: dict[str, str] = {}
    hits: dict[str, list[bool]] = {}
    for layer, column in _COLUMNS.items():
        if layer != "UPOS" and all(v == "_" for v in gold_words[column]):
            status[layer] = "absent"
        elif column not in predicted:
            status[layer] = "not predicted"
        else:
            status[layer] = "scored"
            hits[layer] = [_matches(layer, g, p) for g, p in zip(gold[column], predicted[column])]
    joined = [layer for layer in _TAG_LAYERS if status[layer] != "absent"]
    status["AllTags"] = "scored" if all(status[layer] == "scored" for layer in joined) else "not predicted"
    if status["AllTags"] == "scored":
        hits["AllTags"] = [all(row) for row in zip(*(hits[layer] for layer in joined))]
    return status, hits


def filled_columns(words: Sequence) -> set[str]:
    """The columns a system's words (``Token``\\ s) fill: UPOS always, any other when a value is not ``_``."""
    return {"upos"} | {c for c in _COLUMNS.values() if any(getattr(t, c) != "_" for t in words)}


def _unknown_flags(sentences: Sequence, known) -> list[bool]:
    if known is None:
        return [False] * sum(len(s.tokens) for s in sentences)
    is_known = known if callable(known) else known.__contains__
    return [not is_known(t.form) for s in sentences for t in s.tokens]


def score_word_layers(gold: Sequence, predicted: Mapping[str, Sequence[Sequence[str]]], known=None) -> WordLevelReport:
    """Score predicted layers against gold ``Sentence``\\ s by the CoNLL 2018 shared task's definitions
    (Zeman et al. 2018, "CoNLL 2018 Shared Task: Multilingual Parsing from Raw Text to Universal
    Dependencies", section on evaluation metrics), on gold tokenization:

    - every syntactic word counts once, punctuation included; multiword-token lines (``3-4``)
      and empty nodes (``8.1``) are not words and are not scored;
    - UPOS, XPOS: the tag strings are equal;
    - UFeats: the *sets* of universal features are equal (``UNIVERSAL_FEATURES``; order does not
      matter, ``_`` is the empty set);
    - AllTags: UPOS, XPOS and UFeats all correct;
    - Lemmas: the LEMMA strings are equal, and a gold lemma ``_`` matches any predicted lemma.

    ``predicted`` maps a column (``"upos"``, ``"xpos"``, ``"feats"``, ``"lemma"``) to one list of values
    per gold sentence; a column left out is "not predicted". A layer whose gold values are all ``_``
    is "absent" (not 100%); AllTags then joins the layers the gold has. ``known`` (a set of forms or
    a predicate on a form) defines the unknown words, whose accuracy is reported per layer.
    Gold UPOS must be UD tags (``check_tags``).
    """
    check_tags(gold)
    flat_gold = {c: [getattr(t, c) for s in gold for t in s.tokens] for c in _COLUMNS.values()}
    flat_pred = {}
    for column, rows in predicted.items():
        if column not in flat_gold:
            raise ValueError(f"unknown column {column!r} (expected one of {', '.join(flat_gold)})")
        if len(rows) != len(gold) or any(len(r) != len(s.tokens) for r, s in zip(rows, gold)):
            raise ValueError(f"predicted {column} does not have one value per gold word")
        flat_pred[column] = [v for r in rows for v in r]
    unknown = _unknown_flags(gold, known)
    words = len(unknown)
    status, hits = layer_hits(flat_gold, flat_gold, flat_pred)
    scores = []
    for layer in WORD_LAYERS:
        ok = hits.get(layer, [False] * words)
        scores.append(LayerScore(layer, status[layer], words, sum(ok), sum(unknown),
                                 sum(o for o, u in zip(ok, unknown) if u)))
    return WordLevelReport(words, sum(unknown), tuple(scores))


def _check_same_words(gold: Sequence, predicted: Sequence) -> None:
    """Raise ``ConlluError`` at the first word where the two files' word sequences differ."""
    gold_words = [(s, t) for s in gold for t in s.tokens]
    pred_words = [(s, t) for s in predicted for t in s.tokens]
    for (gs, gt), (ps, pt) in zip(gold_words, pred_words):
        if gt.form != pt.form:
            raise ConlluError(f"{ps.source}:{pt.line}: word {pt.form!r} differs from the gold word {gt.form!r} "
                              f"({gs.source}:{gt.line}); scoring needs the gold tokenization")
    if len(gold_words) != len(pred_words):
        n = len(pred_words)
        if n < len(gold_words):
            gs, gt = gold_words[n]
            where = predicted[-1].source if predicted else "predictions"
            raise ConlluError(f"{gs.source}:{gt.line}: gold word {gt.form!r} is missing from {where} "
                              f"(it has {n} words, the gold {len(gold_words)})")
        ps, pt = pred_words[len(gold_words)]
        raise ConlluError(f"{ps.source}:{pt.line}: word {pt.form!r} is not in the gold "
                          f"(the gold has {len(gold_words)} words, the predictions {n})")


def score_conllu(gold: Sequence, predicted: Sequence, known=None) -> WordLevelReport:
    """Score predicted CoNLL-U ``Sentence``\\ s against gold ones with the same words (as in
    ``score_word_layers``, every layer the predictions fill counts as predicted). Sentence
    boundaries may differ; the words, read in order, must not: the first difference raises
    ``ConlluError`` as ``path:line: reason``.
    """
    _check_same_words(gold, predicted)
    flat = [t for s in predicted for t in s.tokens]
    predicted_layers: dict[str, list[list[str]]] = {}
    for column in filled_columns(flat):
        values = [getattr(t, column) for t in flat]
        rows, start = [], 0
        for s in gold:
            rows.append(values[start:start + len(s.tokens)])
            start += len(s.tokens)
        predicted_layers[column] = rows
    return score_word_layers(gold, predicted_layers, known)


def score_conllu_files(gold: str | Path, predicted: str | Path, known=None) -> WordLevelReport:
    """``score_conllu`` of two CoNLL-U files."""
    return score_conllu(read_conllu(gold), read_conllu(predicted), known)
