"""CoNLL-U, as Universal Dependencies defines it (https://universaldependencies.org/format.html).

A file is a sequence of sentences; a sentence is comment lines (``# key = value``) and
token lines, ended by one blank line. A token line has ten tab-separated columns:

    ID  FORM  LEMMA  UPOS  XPOS  FEATS  HEAD  DEPREL  DEPS  MISC

ID is an integer for a *syntactic word* (1, 2, ...), a range ``3-4`` for a multiword
token (the surface token "don't" over the words "do" and "n't") or a decimal ``8.1``
for an empty node of the enhanced graph. Taggers label the syntactic words only, so
``Sentence.forms`` / ``upos`` / ``xpos`` list those; range lines and empty nodes are kept
as they are and written back unchanged.

Each ``Sentence`` keeps its original lines, so writing a file back is byte-identical
to the input (for files in UD's layout: LF line ends, one blank line after each
sentence); ``format_conllu(..., upos=, xpos=)`` replaces only column 4 (and 5) of the
word lines, which is what the official evaluation script expects of a tagger.

Malformed input raises ``ConlluError`` (a ``ValueError``) as ``path:line: reason``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

_WORD_ID = re.compile(r"[1-9][0-9]*\Z")
_RANGE_ID = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)\Z")
_EMPTY_ID = re.compile(r"(0|[1-9][0-9]*)\.([1-9][0-9]*)\Z")
_COMMENT_KV = re.compile(r"#\s*([^=]+?)\s*=\s?(.*)\Z")


class ConlluError(ValueError):
    """Malformed CoNLL-U: the message is ``path:line: reason``."""


@dataclass
class Token:
    """One syntactic word (integer ID) with its ten columns, as strings."""

    id: int
    form: str
    lemma: str
    upos: str
    xpos: str
    feats: str
    head: str
    deprel: str
    deps: str
    misc: str
    line: int  # 1-based line number in the source (0 for sentences built in memory)
    index: int  # position of its line in ``Sentence.lines``

    @property
    def space_after(self) -> bool:
        return "SpaceAfter=No" not in self.misc.split("|")


@dataclass
class Sentence:
    """One sentence: its raw lines and its syntactic words."""

    lines: list[str]  # every line of the sentence (comments, tokens), without line ends
    tokens: list[Token]  # the syntactic words, in order
    start_line: int = 0  # line number of the first line in the source
    source: str = "<memory>"
    comments: dict[str, str] = field(default_factory=dict)  # "# key = value" comments

    @property
    def forms(self) -> list[str]:
        return [t.form for t in self.tokens]

    @property
    def words(self) -> list[str]:
        return self.forms

    @property
    def upos(self) -> list[str]:
        return [t.upos for t in self.tokens]

    @property
    def xpos(self) -> list[str]:
        return [t.xpos for t in self.tokens]

    @property
    def lemmas(self) -> list[str]:
        return [t.lemma for t in self.tokens]

    @property
    def sent_id(self) -> str | None:
        return self.comments.get("sent_id")

    @property
    def text(self) -> str | None:
        return self.comments.get("text")

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def from_words(cls, words: Sequence[str], *, text: str | None = None, sent_id: str | None = None) -> "Sentence":
        """A sentence of plain word forms (untagged columns are ``_``), e.g. for tagging raw text."""
        lines: list[str] = []
        comments: dict[str, str] = {}
        if sent_id is not None:
            lines.append(f"# sent_id = {sent_id}")
            comments["sent_id"] = sent_id
        if text is not None:
            lines.append(f"# text = {text}")
            comments["text"] = text
        tokens = []
        for i, w in enumerate(words, 1):
            if not w or any(c in w for c in "\t\n\r"):
                raise ValueError(f"word {i} ({w!r}) is empty or holds a tab or line break")
            tokens.append(Token(i, w, "_", "_", "_", "_", "_", "_", "_", "_", 0, len(lines)))
            lines.append("\t".join([str(i), w] + ["_"] * 8))
        return cls(lines, tokens, 0, "<memory>", comments)


def _parse_sentence(lines: list[str], start: int, source: str) -> Sentence:
    tokens: list[Token] = []
    comments: dict[str, str] = {}
    expected = 1  # the next syntactic word ID
    range_end = 0  # last word covered by the latest multiword token
    seen_token = False
    for k, line in enumerate(lines):
        lineno = start + k
        where = f"{source}:{lineno}"
        if line.startswith("#"):
            if seen_token:
                raise ConlluError(f"{where}: comment line inside a sentence's token lines")
            m = _COMMENT_KV.match(line)
            if m:
                comments.setdefault(m.group(1), m.group(2))
            continue
        seen_token = True
        cols = line.split("\t")
        if len(cols) != 10:
            raise ConlluError(f"{where}: expected 10 tab-separated CoNLL-U columns, found {len(cols)}")
        ident = cols[0]
        if _WORD_ID.match(ident):
            n = int(ident)
            if n != expected:
                raise ConlluError(f"{where}: word ID {n} out of order (expected {expected})")
            expected += 1
            if not cols[1]:
                raise ConlluError(f"{where}: empty FORM")
            tokens.append(Token(n, *cols[1:], line=lineno, index=k))
        elif m := _RANGE_ID.match(ident):
            a, b = int(m.group(1)), int(m.group(2))
            if a != expected or b <= a:
                raise ConlluError(f"{where}: bad multiword token range {ident} (next word is {expected})")
            range_end = b
        elif m := _EMPTY_ID.match(ident):
            if int(m.group(1)) != expected - 1:
                raise ConlluError(f"{where}: empty node {ident} out of place (after word {expected - 1})")
        else:
            raise ConlluError(f"{where}: bad token ID {ident!r}")
    if not tokens:
        raise ConlluError(f"{source}:{start}: sentence without words")
    if range_end >= expected:
        raise ConlluError(f"{source}:{start}: a multiword token covers word {range_end}, but the sentence has {expected - 1} words")
    return Sentence(lines, tokens, start, source, comments)


def _iter_lines(lines: Iterable[str], source: str) -> Iterator[Sentence]:
    block: list[str] = []
    start = 0
    lineno = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        if line.endswith("\r"):
            line = line[:-1]
        if lineno == 1 and line.startswith("\ufeff"):
            line = line[1:]
        if line.strip():
            if not block:
                start = lineno
            block.append(line)
        elif line:
            raise ConlluError(f"{source}:{lineno}: line of only whitespace (a blank line must be empty)")
        elif block:
            yield _parse_sentence(block, start, source)
            block = []
    if block:
        yield _parse_sentence(block, start, source)


def parse_conllu(text: str, source: str = "<string>") -> list[Sentence]:
    """The sentences of CoNLL-U text; ``source`` names it in error messages."""
    return list(_iter_lines(text.splitlines(), source))


def iter_conllu(path: str | Path) -> Iterator[Sentence]:
    """Sentences of a CoNLL-U file, one at a time."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            yield from _iter_lines(f, str(path))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConlluError(f"{path}: is a directory, not a CoNLL-U file") from None
    except UnicodeDecodeError as exc:
        raise ConlluError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None


def read_conllu(path: str | Path) -> list[Sentence]:
    """Every sentence of a CoNLL-U file."""
    return list(iter_conllu(path))


def format_conllu(
    sentences: Sequence[Sentence], *, upos: Sequence[Sequence[str]] | None = None,
    xpos: Sequence[Sequence[str]] | None = None,
) -> str:
    """CoNLL-U text of ``sentences``, with UPOS (and XPOS) of the words replaced when given."""
    out: list[str] = []
    for i, sent in enumerate(sentences):
        lines = list(sent.lines)
        for column, tags in ((3, upos), (4, xpos)):
            if tags is None:
                continue
            if len(tags[i]) != len(sent.tokens):
                raise ValueError(f"sentence {i + 1}: {len(tags[i])} tags for {len(sent.tokens)} words")
            for token, tag in zip(sent.tokens, tags[i]):
                cols = lines[token.index].split("\t")
                cols[column] = tag
                lines[token.index] = "\t".join(cols)
        out.extend(lines)
        out.append("")
    return "\n".join(out) + ("\n" if out else "")


def write_conllu(
    sentences: Sequence[Sentence], path: str | Path, *, upos: Sequence[Sequence[str]] | None = None,
    xpos: Sequence[Sequence[str]] | None = None,
) -> None:
    """Write ``format_conllu(...)`` to ``path`` atomically (readers never see half a file)."""
    from ..checkpoint import atomic_write_bytes

    atomic_write_bytes(path, format_conllu(sentences, upos=upos, xpos=xpos).encode("utf-8"))


def check_tags(sentences: Sequence[Sentence], column: str = "upos") -> None:
    """Raise ``ConlluError`` at the first word without a tag in ``column`` (``_`` or empty)."""
    for sent in sentences:
        for token in sent.tokens:
            tag = getattr(token, column)
            if tag in ("", "_"):
                raise ConlluError(f"{sent.source}:{token.line}: word {token.form!r} has no {column.upper()} tag")
