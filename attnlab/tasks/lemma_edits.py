"""Lemmas as classified edits (N -> N): each word's lemma is the word with a small edit applied.

A lemma is predicted as one class per word, like a tag. The class is an *edit script* that
turns the form into the lemma, learned from training pairs:

* **casing** apart from spelling: the edit works on the lowercased form and lowercased lemma,
  and a casing rule puts the capitals back — ``lower`` (all small), ``form`` (the capitals of the
  form at the same positions: "McDonald" -> "McDonald"), ``title`` (first letter capital),
  ``upper`` (all capitals: "I" -> "I"), or ``keep`` when none of those gives the lemma (the
  edit then holds the lemma's own letters);
* **spelling**: cut ``a`` characters from the front and ``b`` from the end of the lowercased
  form, then add a prefix and a suffix — the longest common substring of form and lemma is
  kept, so "studying" -> "study" is ``cut 3 from the end, add "y"``, shared by every
  "-ying" verb, and "ran" -> "run" is a whole-word rewrite ``=run``.

    >>> script = edit_script("Studies", "study")
    >>> script, apply_edit("Carries", script)
    ('lower|0||3|y', 'carry')

Scripts are strings (``casing|a|prefix|b|suffix``, or ``casing|=lemma``), so they go in an
ordinary ``Vocab``. ``apply_edit`` returns None when a script cannot apply (cuts more
characters than the form has).
"""

from __future__ import annotations

import functools

CASINGS = ("lower", "form", "title", "upper")


def _lower(text: str) -> str:
    """Lowercase, one character for one: "İ" (dotted capital I) becomes "i", not "i" plus a
    combining dot as ``str.lower`` makes it, so positions in form and lemma stay aligned."""
    return text.replace("İ", "i").lower()


def _longest_common_substring(a: str, b: str) -> tuple[int, int, int]:
    """(start in a, start in b, length) of the longest common substring (first found on ties)."""
    best = (0, 0, 0)
    previous = [0] * (len(b) + 1)
    for i in range(1, len(a) + 1):
        current = [0] * (len(b) + 1)
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                current[j] = previous[j - 1] + 1
                if current[j] > best[2]:
                    best = (i - current[j], j - current[j], current[j])
        previous = current
    return best


def _spelling(form: str, lemma: str) -> str:
    """The spelling part of a script: lowercased ``form`` -> ``lemma`` (already cased as wanted)."""
    i, j, n = _longest_common_substring(form, lemma)
    if n == 0:
        return "=" + lemma
    return f"{i}|{lemma[:j]}|{len(form) - i - n}|{lemma[j + n:]}"


def _recase(form: str, text: str, casing: str) -> str:
    if casing == "lower":
        return text
    if casing == "upper":
        return text.upper()
    if casing == "title":
        return text[:1].upper() + text[1:]
    # "form": the form's capitals at the same positions
    return "".join(c.upper() if k < len(form) and form[k].isupper() else c for k, c in enumerate(text))


@functools.lru_cache(maxsize=1 << 16)
def edit_script(form: str, lemma: str) -> str:
    """The script that turns ``form`` into ``lemma`` (``apply_edit(form, script) == lemma``).
    Cached: a training set repeats its (form, lemma) pairs, and the vocabulary and the
    training batches both ask for them."""
    low_form, low_lemma = _lower(form), _lower(lemma)
    spelling = _spelling(low_form, low_lemma)
    for casing in CASINGS:
        if _recase(form, _apply_spelling(low_form, spelling) or "", casing) == lemma:
            return f"{casing}|{spelling}"
    return f"keep|{_spelling(low_form, lemma)}"


def _apply_spelling(form: str, spelling: str) -> str | None:
    if spelling.startswith("="):
        return spelling[1:]
    front, prefix, back, suffix = spelling.split("|")
    a, b = int(front), int(back)
    if a + b > len(form):
        return None
    return prefix + form[a:len(form) - b] + suffix


def apply_edit(form: str, script: str) -> str | None:
    """``form`` with ``script`` applied; None when the script does not fit the form."""
    casing, _, spelling = script.partition("|")
    text = _apply_spelling(_lower(form), spelling)
    if text is None or (text == "" and form != ""):
        return None
    return text if casing == "keep" else _recase(form, text, casing)
