"""Splitting raw text into words, as ``attnlab tag``, ``explain`` and ``serve`` do."""

from __future__ import annotations

import re

# A small English tokenizer in the style of UD: clitics split off (do|n't, it|'s),
# punctuation separate, abbreviations, numbers, URLs and e-mail addresses kept whole.
# Its time is linear in the text's length: an e-mail address's parts have bounded lengths (64
# characters before the @, 63 per domain label, as RFC 5321 says), so no position of a long
# run of word characters, dots or hyphens is matched against the rest of the run.
_TOKEN = re.compile(
    r"""
      https?://\S+ | www\.\S+ | [\w.+-]{1,64}@[\w-]{1,63}\.[\w.-]+   # URLs, e-mail
    | (?:[A-Za-z]\.){2,}                                      # U.S., e.g.
    | \w+(?=n't\b) | n't\b                                   # do n't, ca n't
    | '(?:s|re|ve|ll|d|m)\b                                   # clitics
    | \d+(?:[.,:/]\d+)*                                       # 1,000  3.5  12:30
    | \w+(?:-\w+)*                                            # words, hyphenated words
    | \.\.\. | -- | \S                                        # punctuation, anything else
    """,
    re.VERBOSE | re.IGNORECASE,
)


TOKENIZERS = ("simple", "whitespace")  # the ways ``tokenize`` knows


def tokenize(text: str, how: str = "simple") -> list[str]:
    """Split a sentence into words: ``whitespace`` or the ``simple`` UD-style tokenizer
    (ValueError for another ``how``, so that a misspelt choice is not silently ``simple``)."""
    if how not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {how!r}; choose one of {', '.join(TOKENIZERS)}")
    if how == "whitespace":
        return text.split()
    return _TOKEN.findall(text)
