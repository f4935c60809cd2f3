"""Scoring a tagger: accuracy, accuracy on unknown words, per-tag P/R/F1, confusions.

Everything here works on plain lists of tag strings, so it can score any tagger
(or a file of predictions against a gold file):

    >>> report = score_tags([["PRON", "VERB"]], [["PRON", "NOUN"]])
    >>> report.accuracy
    0.5

A token is *unknown* when the caller says so; for the taggers in this project that
means its lowercased form never occurs in the training data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Sequence


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
