"""Scoring a system's CoNLL-U whose tokenization may differ from the gold's, e.g. the output of a
pipeline that started from raw text, by the CoNLL 2018 shared task's definitions (Zeman et al. 2018,
"CoNLL 2018 Shared Task: Multilingual Parsing from Raw Text to Universal Dependencies"):

    >>> report = score_text_files("gold.conllu", "system.conllu")   # doctest: +SKIP
    >>> report["Words"].f1, report["UPOS"].f1                        # doctest: +SKIP

- **Characters.** Each file's text is the concatenation of its surface tokens' forms (a multiword
  token's line, or a word outside one) with the space characters (Unicode category Zs) left out.
  The gold and the system must have the same characters; the first difference raises
  ``ConlluError`` naming both files' lines. Every surface token is then a span of characters,
  and the words of a multiword token share its span.
- **Tokens**: gold and system tokens with the same span. **Sentences**: sentences with the same
  span (from their first token's start to their last token's end).
- **Words**: a word outside multiword tokens (on both sides) is aligned to the word with the same
  span. Where either side has a multiword token, the words of the smallest region that holds
  every multiword token overlapping it (on both sides) are aligned by the longest common
  subsequence of their lowercased forms.
- **UPOS, XPOS, UFeats, AllTags, Lemmas**: an aligned word whose layer is right
  (``attnlab.evaluate.layer_hits``: UFeats compares the sets of universal features, a gold lemma
  ``_`` matches any lemma) is correct. For every metric, precision = correct / system count, recall
  = correct / gold count, F1 = their harmonic mean; for the word layers, the aligned accuracy =
  correct / aligned words (the accuracy on the words the tokenization got right).

As in ``score_word_layers``, a layer the gold lacks (every value ``_``) is reported absent and left
out of AllTags, and one the system does not fill (every value ``_``) is not predicted; the official
script instead compares those columns as they are, which gives the same AllTags whenever the system
leaves the gold's missing columns ``_``. A system without a sentence scores 0 (the official script
refuses it as a text that differs from the gold's).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .data.conllu import COLUMNS, ConlluError, Sentence, Token, check_tags, read_conllu
from .evaluate import WORD_LAYERS, filled_columns, layer_hits
from .gcpause import paused_gc

TEXT_METRICS = ("Tokens", "Sentences", "Words") + WORD_LAYERS


@dataclass(frozen=True)
class MetricScore:
    """One metric's counts: ``correct`` of ``gold`` gold and ``system`` system units; ``aligned`` is the
    number of aligned words for the word layers (None for Tokens, Sentences and Words). ``status`` is
    ``"scored"``, ``"absent"`` or ``"not predicted"`` (as in ``LayerScore``); only a scored metric has
    precision, recall, F1 and aligned accuracy."""

    metric: str
    status: str
    gold: int
    system: int
    correct: int
    aligned: int | None = None

    @property
    def scored(self) -> bool:
        return self.status == "scored"

    @property
    def precision(self) -> float | None:
        return (self.correct / self.system if self.system else 0.0) if self.scored else None

    @property
    def recall(self) -> float | None:
        return (self.correct / self.gold if self.gold else 0.0) if self.scored else None

    @property
    def f1(self) -> float | None:
        total = self.gold + self.system
        return (2 * self.correct / total if total else 0.0) if self.scored else None

    @property
    def aligned_accuracy(self) -> float | None:
        if not self.scored or self.aligned is None:
            return None
        return self.correct / self.aligned if self.aligned else 0.0

    def to_json(self) -> dict:
        return {"status": self.status, "precision": self.precision, "recall": self.recall, "f1": self.f1,
                "aligned_accuracy": self.aligned_accuracy, "gold": self.gold, "system": self.system,
                "correct": self.correct, "aligned": self.aligned}


@dataclass(frozen=True)
class TextReport:
    """Tokens, Sentences, Words, UPOS, XPOS, UFeats, AllTags and Lemmas (``TEXT_METRICS``)."""

    metrics: tuple[MetricScore, ...]

    def __getitem__(self, metric: str) -> MetricScore:
        for score in self.metrics:
            if score.metric == metric:
                return score
        raise KeyError(metric)

    def to_json(self) -> dict:
        """``{"Tokens": {"status", "precision", "recall", "f1", "aligned_accuracy", "gold", "system",
        "correct", "aligned"}, "Sentences": ..., ...}``."""
        return {s.metric: s.to_json() for s in self.metrics}

    def format(self) -> str:
        """The official script's table (in percent), "–" for a metric that is not scored."""
        lines = ["Metric     | Precision |    Recall |  F1 Score | AligndAcc",
                 "-----------+-----------+-----------+-----------+-----------"]
        for s in self.metrics:
            if s.scored:
                cells = [f"{100 * (x or 0.0):10.2f}" for x in (s.precision, s.recall, s.f1)]
                acc = f"{100 * s.aligned_accuracy:10.2f}" if s.aligned_accuracy is not None else ""
                lines.append(f"{s.metric:<11}|{cells[0]} |{cells[1]} |{cells[2]} |{acc}")
            else:
                dash = f"{'–':>10}"
                lines.append(f"{s.metric:<11}|{dash} |{dash} |{dash} |{dash}   ({s.status})")
        words = self["Words"]
        lines.append(f"({words.gold:,} gold words, {words.system:,} system words, {words.correct:,} aligned)")
        return "\n".join(lines)


@dataclass(slots=True)
class _Word:
    token: Token
    start: int  # its surface token's span of characters
    end: int
    multiword: bool  # inside a multiword token
    key: str  # the form compared by the longest common subsequence (lowercased)


@dataclass
class _Text:
    """One file's characters, with the spans of its tokens, words and sentences."""

    chars: str
    tokens: list[tuple[int, int]]
    token_places: list[tuple[Sentence, int, int]]  # each token's sentence, its number and the token's line
    words: list[_Word]
    sentences: list[tuple[int, int]]


def _no_spaces(form: str) -> str:
    """``form`` without its space characters (Unicode category Zs)."""
    if form.isascii() and " " not in form:
        return form
    return "".join(c for c in form if unicodedata.category(c) != "Zs")


def _where(sentence: Sentence, number: int, line: int) -> str:
    return f"{sentence.source}:{line}" if line else f"{sentence.source}: sentence {number}"


def _text(sentences: Sequence[Sentence]) -> _Text:
    chars: list[str] = []
    text = _Text("", [], [], [], [])
    at = 0
    for number, sentence in enumerate(sentences, 1):
        first = at
        for token in sentence.surface_tokens:
            form = _no_spaces(token.form)
            if not form:
                raise ConlluError(f"{_where(sentence, number, token.line)}: token {token.form!r} is empty "
                                  "without its spaces (nothing to align)")
            chars.append(form)
            start, at = at, at + len(form)
            text.tokens.append((start, at))
            text.token_places.append((sentence, number, token.line))
            for word in token.words:
                # Words inside a multiword token keep their spaces, as the official script compares them.
                key = (word.form if token.multiword else form).lower()
                text.words.append(_Word(word, start, at, token.multiword, key))
        text.sentences.append((first, at))
    text.chars = "".join(chars)
    return text


def _token_at(text: _Text, index: int) -> str:
    """``path:line`` of the token holding character ``index`` (the last token past the end)."""
    lo, hi = 0, len(text.tokens) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if text.tokens[mid][1] <= index:
            lo = mid + 1
        else:
            hi = mid
    return _where(*text.token_places[lo])


def _check_same_characters(gold: _Text, system: _Text) -> None:
    """Raise ``ConlluError`` at the first character where the two texts differ (the system has tokens)."""
    if gold.chars == system.chars:
        return
    index = next((i for i, (g, s) in enumerate(zip(gold.chars, system.chars)) if g != s),
                 min(len(gold.chars), len(system.chars)))
    before = gold.chars[max(0, index - 15):index]

    def shown(chars: str) -> str:
        rest = chars[index:index + 15]
        return repr(rest + "…") if len(chars) > index + 15 else (repr(rest) if rest else "the end")

    where = _token_at(system, index)
    gold_where = _token_at(gold, index) if gold.tokens else "the gold"
    raise ConlluError(f"{where}: the system's text differs from the gold's ({gold_where}) at character {index + 1} "
                      f"(spaces left out), after {before!r}: gold {shown(gold.chars)}, system {shown(system.chars)} "
                      "(tokens without spaces must spell the same text)")


def _multiword_region(gold: list[_Word], system: list[_Word], g: int, s: int) -> tuple[int, int, int, int]:
    """The words of both sides in the region that starts at ``gold[g]`` / ``system[s]`` (one of them
    inside a multiword token) and ends where no multiword token of either side crosses its end:
    ``(g_first, s_first, g_stop, s_stop)``. The region starts at the first multiword token; a plain
    word of the other side that starts before it is left out. Words join in the order of their start
    (gold first on ties) while either side's next word is inside: a multiword token's word starting
    before the end (which moves the end to its token's end), or another word ending by it."""
    sides, at = (gold, system), [g, s]
    lead = 0 if gold[g].multiword else 1
    first, other = sides[lead][at[lead]], sides[1 - lead][at[1 - lead]]
    if not other.multiword and other.start < first.start:
        at[1 - lead] += 1
    start = tuple(at)
    end = first.end

    def inside(side: int) -> bool:
        if at[side] >= len(sides[side]):
            return False
        word = sides[side][at[side]]
        return word.start < end if word.multiword else word.end <= end

    while inside(0) or inside(1):
        take = 0 if at[0] < len(gold) and (at[1] >= len(system) or gold[at[0]].start <= system[at[1]].start) else 1
        word = sides[take][at[take]]
        if word.multiword:
            end = max(end, word.end)
        at[take] += 1
    return start[0], start[1], at[0], at[1]


def _lcs_pairs(gold: Sequence[_Word], system: Sequence[_Word]) -> list[tuple[_Word, _Word]]:
    """Gold and system words paired by the longest common subsequence of their forms (a gold word is
    skipped rather than a system word when both keep the longest length)."""
    n, m = len(gold), len(system)
    longest = [[0] * (m + 1) for _ in range(n + 1)]  # longest[i][j]: of gold[i:] and system[j:]
    for i in range(n - 1, -1, -1):
        row, below = longest[i], longest[i + 1]
        for j in range(m - 1, -1, -1):
            row[j] = below[j + 1] + 1 if gold[i].key == system[j].key else max(below[j], row[j + 1])
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if gold[i].key == system[j].key:
            pairs.append((gold[i], system[j]))
            i, j = i + 1, j + 1
        elif longest[i][j] == longest[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


def _align_words(gold: list[_Word], system: list[_Word]) -> list[tuple[_Word, _Word]]:
    """The aligned (gold, system) word pairs, in order (see the module's documentation)."""
    pairs: list[tuple[_Word, _Word]] = []
    g = s = 0
    while g < len(gold) and s < len(system):
        gw, sw = gold[g], system[s]
        if gw.multiword or sw.multiword:
            g0, s0, g, s = _multiword_region(gold, system, g, s)
            pairs.extend(_lcs_pairs(gold[g0:g], system[s0:s]))
        elif (gw.start, gw.end) == (sw.start, sw.end):
            pairs.append((gw, sw))
            g, s = g + 1, s + 1
        elif gw.start <= sw.start:
            g += 1
        else:
            s += 1
    return pairs


def _same_spans(gold: list[tuple[int, int]], system: list[tuple[int, int]]) -> int:
    return len(set(gold) & set(system))


def score_text(gold: Sequence[Sentence], system: Sequence[Sentence]) -> TextReport:
    """Score ``system`` sentences against ``gold`` ones with the same characters but any tokenization,
    sentence split and multiword tokens (see the module's documentation); gold UPOS must be UD tags
    (``check_tags``). Different characters raise ``ConlluError`` as ``path:line: reason``.
    """
    with paused_gc():  # one object per word: see paused_gc
        return _score_text(gold, system)


def _score_text(gold: Sequence[Sentence], system: Sequence[Sentence]) -> TextReport:
    check_tags(gold)
    gold_text = _text(gold)
    system_text = _text(system)
    if system_text.tokens:
        _check_same_characters(gold_text, system_text)
    pairs = _align_words(gold_text.words, system_text.words)
    gold_words = [w.token for w in gold_text.words]
    system_words = [w.token for w in system_text.words]
    columns = tuple(COLUMNS)  # lemma, upos, xpos, feats
    filled = filled_columns(system_words) if system_words else set(columns)  # nothing predicted: 0 on every layer
    status, hits = layer_hits(
        {c: [getattr(t, c) for t in gold_words] for c in columns},
        {c: [getattr(g.token, c) for g, _ in pairs] for c in columns},
        {c: [getattr(s.token, c) for _, s in pairs] for c in filled},
    )
    n_gold, n_system = len(gold_words), len(system_words)
    metrics = [
        MetricScore("Tokens", "scored", len(gold_text.tokens), len(system_text.tokens),
                    _same_spans(gold_text.tokens, system_text.tokens)),
        MetricScore("Sentences", "scored", len(gold_text.sentences), len(system_text.sentences),
                    _same_spans(gold_text.sentences, system_text.sentences)),
        MetricScore("Words", "scored", n_gold, n_system, len(pairs)),
    ]
    for layer in WORD_LAYERS:
        metrics.append(MetricScore(layer, status[layer], n_gold, n_system, sum(hits.get(layer, ())), len(pairs)))
    return TextReport(tuple(metrics))


def score_text_files(gold: str | Path, system: str | Path) -> TextReport:
    """``score_text`` of two CoNLL-U files (``-``: standard input); the system file may be empty."""
    return score_text(read_conllu(gold), read_conllu(system, require_sentences=False))
