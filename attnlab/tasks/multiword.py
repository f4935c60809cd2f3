"""Multiword tokens: a surface token split into the syntactic words a treebank writes for it
(French ``du`` -> ``de le``, ``au`` -> ``à le``; English ``didn't`` -> ``did n't``; Greek
``στην`` -> ``σ την``; Turkish ``yoktu`` -> ``yok tu``).

Learned from a treebank's multiword tokens (``MultiwordTable.build``):

* a **table** of the forms seen as multiword tokens: each form's most frequent split, and how
  often the form was a multiword token at all (``share``: French ``des`` is ``de les`` or a
  determiner, so the segmenter's context decides; ``du`` always splits);
* **rules** for forms never seen: an edit of the token's end, as the lemma layer edits a word's
  end. Each training split is written as (the token's ending after the part it shares with its
  first word) -> (what that first word has there instead, the further words): ``didn't`` ->
  ``n't`` => ("", ["n't"]); ``du`` -> ``u`` => ("e", ["le"]); ``önemli`` -> ``li`` =>
  ("", ["li"]). An unseen token takes the rule of the longest ending it has (seen at least
  ``MIN_RULE_COUNT`` times) unless a shorter ending of it was seen over ``RULE_SHARE`` times as
  often (Turkish ``-deki`` forms split as ``-de`` + ``ki``, the common rule, not by a rare
  ``-eki`` one). Casing follows the token: a capitalised token gives a
  capitalised first word, an upper-case one upper-case words.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

MIN_RULE_COUNT = 2
MAX_ENDING = 8  # characters: the longest token ending a rule is keyed on
RULE_SHARE = 4  # the longest matching ending wins unless a shorter one was seen over 4 times as often


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def split_rule(form: str, words: Sequence[str]) -> tuple[str, str, tuple[str, ...]]:
    """(ending, first word's replacement for it, further words), all lowercased: the edit that
    turns ``form`` into ``words`` (see the module docstring)."""
    low, first = form.lower(), words[0].lower()
    keep = min(_common_prefix(low, first), len(low) - 1)  # the rule keys on at least one character
    return low[keep:], first[keep:], tuple(w.lower() for w in words[1:])


def _recase(form: str, words: Sequence[str]) -> list[str]:
    """``words`` (as written in lowercase) cased like ``form``."""
    if len(form) > 1 and form.isupper():
        return [w.upper() for w in words]
    if form[:1].isupper():
        return [words[0][:1].upper() + words[0][1:], *words[1:]]
    return list(words)


@dataclass
class MultiwordTable:
    """Splits of multiword tokens learned from a treebank (see the module docstring).

    forms   form (as written) -> [its most frequent split, as the treebank writes the words;
            the share of the form's occurrences that were multiword tokens]
    rules   lowercased ending -> [first-word replacement, further words..., count]
    """

    forms: dict[str, list] = field(default_factory=dict)
    rules: dict[str, list] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lower: dict[str, str] = {}
        for form in self.forms:
            self._lower.setdefault(form.lower(), form)

    @classmethod
    def build(cls, tokens: Iterable[tuple[str, Sequence[str]]]) -> "MultiwordTable":
        """From (surface form, words) of every token of the training data, multiword or not."""
        splits: dict[str, Counter] = {}
        seen: Counter = Counter()
        rules: Counter = Counter()
        for form, words in tokens:
            seen[form] += 1
            if len(words) > 1:
                splits.setdefault(form, Counter())[tuple(words)] += 1
                ending, first, rest = split_rule(form, words)
                if len(ending) <= MAX_ENDING:
                    rules[(ending, first, rest)] += 1
        forms = {}
        for form, counter in sorted(splits.items(), key=lambda kv: -sum(kv[1].values())):
            words, _ = counter.most_common(1)[0]
            forms[form] = [list(words), round(sum(counter.values()) / seen[form], 4)]
        best: dict[str, list] = {}
        for (ending, first, rest), n in rules.most_common():
            if n >= MIN_RULE_COUNT and ending not in best:
                best[ending] = [first, *rest, n]
        return cls(forms, best)

    def _entry(self, form: str) -> tuple[list, bool] | None:
        """(table entry, exact) for ``form``: as written, else in another case."""
        if form in self.forms:
            return self.forms[form], True
        other = self._lower.get(form.lower())
        return (self.forms[other], False) if other is not None else None

    def known(self, form: str) -> float | None:
        """The share of ``form``'s training occurrences that were multiword tokens; None
        when the form was never seen as one (it may still have been seen as one word)."""
        found = self._entry(form)
        return None if found is None else float(found[0][1])

    def split(self, form: str) -> list[str]:
        """The words of ``form`` as a multiword token: the table's split (cased like the
        token when the table has it in another case), else the rule of its ending (the longest
        one, unless a shorter one is ``RULE_SHARE`` times as common); a form no rule fits stays
        one word."""
        found = self._entry(form)
        if found is not None:
            entry, exact = found
            return list(entry[0]) if exact else _recase(form, [w.lower() for w in entry[0]])
        low = form.lower()
        matches = [(size, rule) for size in range(min(MAX_ENDING, len(low) - 1), 0, -1)
                   if (rule := self.rules.get(low[-size:])) is not None]
        if not matches:
            return [form]
        most = max(int(rule[-1]) for _, rule in matches)
        size, rule = next((s, r) for s, r in matches if RULE_SHARE * int(r[-1]) >= most)
        rest = [str(w) for w in rule[1:-1]]
        if form.isupper() and len(form) > 1:
            rest = [w.upper() for w in rest]
        return [form[: len(form) - size] + str(rule[0]), *rest]

    def to_json(self) -> dict:
        return {"forms": self.forms, "rules": self.rules}

    @classmethod
    def from_json(cls, obj: dict) -> "MultiwordTable":
        forms = {str(k): [[str(w) for w in v[0]], float(v[1])] for k, v in obj.get("forms", {}).items()}
        rules = {str(k): [*(str(w) for w in v[:-1]), int(v[-1])] for k, v in obj.get("rules", {}).items()}
        return cls(forms, rules)
