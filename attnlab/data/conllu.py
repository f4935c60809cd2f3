"""CoNLL-U, as Universal Dependencies defines it (https://universaldependencies.org/format.html).

A file is a sequence of sentences; a sentence is comment lines (``# key = value``) and
token lines, ended by one blank line. A token line has ten tab-separated columns:

    ID  FORM  LEMMA  UPOS  XPOS  FEATS  HEAD  DEPREL  DEPS  MISC

ID is an integer for a *syntactic word* (1, 2, ...), a range ``3-4`` for a multiword
token (the surface token "don't" over the words "do" and "n't") or a decimal ``8.1``
for an empty node of the enhanced graph. Taggers label the syntactic words only, so
``Sentence.forms`` / ``upos`` / ``xpos`` list those; range lines and empty nodes are kept
as they are and written back unchanged. ``Sentence.surface_tokens`` lists the tokens of the
text: each multiword token with its words, each other word alone. IDs must come in UD's order: words 1, 2, ...;
a range right before its first word, not overlapping another; empty nodes ``n.1``,
``n.2``, ... right after word ``n``.

Lines end at "\\n" only (``split_lines``): U+2028, NEL or a form feed inside a field is
text, not a line end. Bytes, from a file or standard input, become text by one rule
(``decode_text``, ``read_text``): UTF-8 without NUL bytes.

Input is bounded: ``read_text`` reads at most ``MAX_INPUT_BYTES`` from one file or stream and
lines of at most ``MAX_LINE_BYTES``; a sentence has at most ``MAX_SENTENCE_WORDS`` words (the
cost of attention grows with the square of a sentence's length). Input beyond a limit is
refused as soon as it is read, naming where (``path:line``), never read to its end: an endless
stream (``/dev/zero``, a pipe) is refused in its first megabyte, or when it passes the limit.
Text that comes as ``str`` (from Python) may hold what no file can: a lone surrogate
(U+D800 to U+DFFF), which UTF-8 cannot write; ``check_encodable`` refuses it where it is read,
so that whatever is read can be written back.

Each ``Sentence`` keeps its original lines, so writing a file back is byte-identical
to the input (for files in UD's layout: LF line ends, one blank line after each
sentence); ``format_conllu(..., upos=, xpos=)`` replaces only column 4 (and 5) of the
word lines, which is what the official evaluation script expects of a tagger.

Malformed input raises ``ConlluError`` (a ``ValueError``) as ``path:line: reason``; so
does a file without sentences (``path: no sentences``) unless ``require_sentences=False``,
and, through ``check_tags``, a gold file whose UPOS is ``_`` or not one of ``UPOS_TAGS``.
"""

from __future__ import annotations

import codecs
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, NamedTuple, Sequence

_WORD_ID = re.compile(r"[1-9][0-9]*\Z")
_RANGE_ID = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)\Z")
_EMPTY_ID = re.compile(r"(0|[1-9][0-9]*)\.([1-9][0-9]*)\Z")
_COMMENT_KV = re.compile(r"#\s*([^=]+?)\s*=\s?(.*)\Z")

# The 17 universal part-of-speech tags (https://universaldependencies.org/u/pos/).
UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
             "SCONJ", "SYM", "VERB", "X")


MAX_INPUT_BYTES = 256 * 2**20  # bytes read from one file or stream (UD's largest files are under 100 MB)
MAX_LINE_BYTES = 100_000  # bytes in one line (UTF-8)
MAX_SENTENCE_WORDS = 5_000  # words in one sentence (UD's longest sentences have a few hundred)
_CHUNK = 2**20  # input is read in pieces of this many bytes, and checked piece by piece


class ConlluError(ValueError):
    """Malformed CoNLL-U: the message is ``path:line: reason``."""


class SentenceTooLong(ConlluError):
    """A sentence of more than ``MAX_SENTENCE_WORDS`` words; ``index`` is its position (from 0)
    among the sentences checked, ``reason`` the message without the place."""

    def __init__(self, where: str, reason: str, index: int = 0):
        super().__init__(f"{where}: {reason}")
        self.where, self.reason, self.index = where, reason, index

    def __reduce__(self):  # pickled whole, so that it comes back from a worker process as it was raised
        return type(self), (self.where, self.reason, self.index)


def check_sentence_length(words: int, where: str, index: int = 0) -> None:
    """``SentenceTooLong`` naming ``where`` when a sentence has more than ``MAX_SENTENCE_WORDS`` words."""
    if words > MAX_SENTENCE_WORDS:
        raise SentenceTooLong(where, f"a sentence of {words:,} words, more than the limit of "
                                     f"{MAX_SENTENCE_WORDS:,} words per sentence", index)


_SURROGATE = re.compile("[\ud800-\udfff]")
_NEWLINE = "\n"


def is_encodable(text: str) -> bool:
    """Whether UTF-8 can write ``text``: it holds no lone surrogate (U+D800 to U+DFFF)."""
    return _SURROGATE.search(text) is None


def check_encodable(text: str, name: str) -> None:
    """``ConlluError`` naming ``name`` (and the line, for text of several lines) when ``text``
    holds a lone surrogate (U+D800 to U+DFFF): not a character, and UTF-8 cannot write it."""
    found = _SURROGATE.search(text)
    if found is None:
        return
    at = found.start()
    where = f"{name}:{text.count(_NEWLINE, 0, at) + 1}" if _NEWLINE in text else name
    raise ConlluError(f"{where}: a lone surrogate (U+{ord(found.group()):04X}) at column "
                      f"{at - text.rfind(_NEWLINE, 0, at)}, which is not a character and cannot be written as UTF-8")


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


class SurfaceToken(NamedTuple):
    """A token of the text: a multiword token (a ``3-4`` line) or a word outside one."""

    form: str
    words: tuple[Token, ...]  # its syntactic words (one for a word outside a multiword token)
    line: int  # 1-based line number of its line (0 for sentences built in memory)
    multiword: bool  # a multiword-token line
    misc: str = "_"  # the MISC column of its line

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
    def feats(self) -> list[str]:
        return [t.feats for t in self.tokens]

    @property
    def sent_id(self) -> str | None:
        return self.comments.get("sent_id")

    @property
    def text(self) -> str | None:
        return self.comments.get("text")

    @property
    def surface_tokens(self) -> list[SurfaceToken]:
        """The tokens of the text, in order: each multiword token with its words, each other word alone."""
        ranges: dict[int, tuple[int, str, int]] = {}  # first word -> (last word, form, index in lines)
        for k, line in enumerate(self.lines):
            tab = line.find("\t")
            if line.find("-", 0, tab) > 0 and (m := _RANGE_ID.match(line, 0, tab)):
                ranges[int(m.group(1))] = (int(m.group(2)), line.split("\t", 2)[1], k)
        out: list[SurfaceToken] = []
        i = 0
        while i < len(self.tokens):
            word = self.tokens[i]
            if word.id in ranges:
                last, form, k = ranges[word.id]
                words = tuple(self.tokens[i:i + last - word.id + 1])
                misc = self.lines[k].rsplit("\t", 1)[-1]
                out.append(SurfaceToken(form, words, self.start_line + k if self.start_line else 0, True, misc))
            else:
                words = (word,)
                out.append(SurfaceToken(word.form, words, word.line, False, word.misc))
            i += len(words)
        return out

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


class _IdOrder:
    """The order UD requires of the IDs in a sentence: words 1, 2, 3, ...; a multiword token
    ``a-b`` right before its first word ``a``, never overlapping the previous one; empty nodes
    ``n.1``, ``n.2``, ... right after word ``n`` (``0.1`` before word 1)."""

    def __init__(self) -> None:
        self.words = 0  # syntactic words so far
        self.next_word = "1"  # the ID the next word must have
        self.range = ""  # the latest multiword token ("a-b"), "" before the first one
        self.range_end = 0  # its last word
        self.range_where = ""  # its "path:line"
        self.range_waiting = False  # its line was read, its first word not yet
        self.next_empty = 1  # the next empty node after word ``words`` is ``words.next_empty``

    def word(self) -> None:
        self.words += 1
        self.next_word = str(self.words + 1)
        self.range_waiting = False
        self.next_empty = 1

    def other(self, ident: str, where: str) -> None:
        """Check a line whose ID is not the next word's."""
        if self.range_waiting:
            raise ConlluError(f"{where}: multiword token {self.range} must be followed by its first word {self.words + 1}")
        if m := _RANGE_ID.match(ident):
            a, b = int(m.group(1)), int(m.group(2))
            if a <= self.range_end:
                raise ConlluError(f"{where}: multiword token {ident} overlaps {self.range}")
            if a != self.words + 1 or b <= a:
                raise ConlluError(f"{where}: bad multiword token range {ident} (next word is {self.words + 1})")
            self.range, self.range_end, self.range_where, self.range_waiting = ident, b, where, True
        elif m := _EMPTY_ID.match(ident):
            if int(m.group(1)) != self.words:
                raise ConlluError(f"{where}: empty node {ident} out of place (after word {self.words})")
            if int(m.group(2)) != self.next_empty:
                raise ConlluError(f"{where}: empty node {ident} out of order (expected {self.words}.{self.next_empty})")
            self.next_empty += 1
        elif _WORD_ID.match(ident):
            raise ConlluError(f"{where}: word ID {ident} out of order (expected {self.next_word})")
        else:
            raise ConlluError(f"{where}: bad token ID {ident!r}")

    def end(self) -> None:
        """Check that the last multiword token ends within the sentence."""
        if self.range_end > self.words:
            raise ConlluError(f"{self.range_where}: multiword token {self.range} covers word {self.range_end}, "
                              f"but the sentence has {self.words} words")


def _parse_sentence(lines: list[str], start: int, source: str) -> Sentence:
    """One sentence from its lines (no blank line among them); ``start`` is the first one's number."""
    tokens: list[Token] = []
    comments: dict[str, str] = {}
    ids = _IdOrder()
    seen_token = False
    for k, line in enumerate(lines):
        if line.startswith("#"):
            if seen_token:
                raise ConlluError(f"{source}:{start + k}: comment line inside a sentence's token lines")
            if m := _COMMENT_KV.match(line):
                comments.setdefault(m.group(1), m.group(2))
            continue
        seen_token = True
        cols = line.split("\t")
        if len(cols) != 10:
            raise ConlluError(f"{source}:{start + k}: expected 10 tab-separated CoNLL-U columns, found {len(cols)}")
        if cols[0] != ids.next_word:
            ids.other(cols[0], f"{source}:{start + k}")
            continue
        if not cols[1]:
            raise ConlluError(f"{source}:{start + k}: empty FORM")
        ids.word()
        tokens.append(Token(ids.words, *cols[1:], line=start + k, index=k))  # type: ignore[misc, arg-type]  # 9 columns
    if not tokens:
        raise ConlluError(f"{source}:{start}: sentence without words")
    check_sentence_length(len(tokens), f"{source}:{start}")
    ids.end()
    return Sentence(lines, tokens, start, source, comments)


def _sentences(lines: Iterable[str], source: str, first_line: int = 1) -> Iterator[Sentence]:
    """Sentences from lines without line ends (the first is line ``first_line``): blank lines end them."""
    block: list[str] = []
    start = 0
    for lineno, line in enumerate(lines, first_line):
        if line and not line.isspace():
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


def parse_feats(column: str) -> dict[str, str]:
    """A CoNLL-U FEATS column as a dict: ``Case=Nom|Number=Sing`` -> {"Case": "Nom", ...}; ``_`` -> {}."""
    if column in ("", "_"):
        return {}
    return {name: value for name, _, value in (item.partition("=") for item in column.split("|"))}


def split_lines(text: str) -> list[str]:
    """The lines of ``text``, split at "\\n" only, without their line ends.

    Unlike ``str.splitlines``, which also splits at U+2028, U+2029, NEL (U+0085), form feed,
    vertical tab and \\x1c-\\x1e, characters a CoNLL-U field (or a line of text) may hold.
    A CR before the LF is dropped, as is a byte-order mark at the start; a final line end
    does not open another line.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if "\r" in text:
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    return lines


def _line_and_column(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and character column of byte ``offset`` (the bytes before it are valid UTF-8)."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def decode_text(data: bytes, name: str) -> str:
    """``data`` (a file's or standard input's bytes) as text: UTF-8 without NUL bytes.

    Anything else is refused as ``name:line: reason``, e.g. ``x.conllu:3: not valid UTF-8
    (byte 0xe9 at column 7)``; a NUL byte marks binary data (a model file, an image),
    which is refused the same way even when it happens to be valid UTF-8.
    """
    nul = data.find(b"\0")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if nul < 0 or exc.start < nul:
            line, column = _line_and_column(data, exc.start)
            raise ConlluError(f"{name}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {column})") from None
    if nul >= 0:
        line, column = _line_and_column(data, nul)
        raise ConlluError(f"{name}:{line}: NUL byte at column {column} (binary data, not text)")
    return text


def read_text(source: str | Path, *, stdin: BinaryIO | None = None, line_limit: bool = True) -> tuple[str, str]:
    """(text, name) of a file, or of standard input when ``source`` is "-", by ``decode_text``,
    within the limits of ``read_bounded`` (``line_limit`` False: lines of any length, as raw
    text, which the segmenter reads in windows, may have).

    ``name`` is the path, or ``<stdin>``, for error messages; ``stdin`` defaults to
    ``sys.stdin.buffer``. Split the text with ``split_lines``.
    """
    if str(source) == "-":
        stream = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
        return read_bounded(stream if stream is not None else _TextAsBytes(sys.stdin), "<stdin>", line_limit), "<stdin>"
    path, name = Path(source), str(source)
    try:
        with open(path, "rb") as f:
            return read_bounded(f, name, line_limit), name
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConlluError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise ConlluError(f"{path}: cannot read ({exc.strerror or exc})") from None


class _TextAsBytes:
    """A text-only stdin (a replaced ``sys.stdin``) read as the bytes it stands for, so that the
    same rules apply: surrogate escapes become their bytes again, other lone surrogates bytes
    that ``decode_text`` refuses where they stand."""

    def __init__(self, stream):
        self.stream = stream

    def read(self, size: int) -> bytes:
        text = self.stream.read(size)
        try:
            return text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return text.encode("utf-8", "surrogatepass")


def read_bounded(stream: BinaryIO | _TextAsBytes, name: str, line_limit: bool = True) -> str:
    """The text of the byte stream ``stream`` (``name`` in messages) by ``decode_text``, read in
    pieces and refused at the first piece that holds a NUL byte or bytes that are not UTF-8, a
    line of more than ``MAX_LINE_BYTES`` bytes (with ``line_limit``), or passes
    ``MAX_INPUT_BYTES`` in all."""
    chunks: list[bytes] = []
    size, lines, line_bytes = 0, 1, 0
    decoder = codecs.getincrementaldecoder("utf-8")()
    while chunk := stream.read(_CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError:
            decode_text(b"".join(chunks), name)  # names the first bad byte
        if b"\0" in chunk:
            decode_text(b"".join(chunks), name)  # names the first NUL byte
        if line_limit:
            lines, line_bytes = _check_lines(chunk, name, lines, line_bytes, MAX_LINE_BYTES)
        if size > MAX_INPUT_BYTES:
            raise ConlluError(f"{name}: more than {MAX_INPUT_BYTES // 2**20} MiB, the most attnlab reads from one "
                              "file or stream; split it into smaller files")
    return decode_text(b"".join(chunks), name)


def _check_lines(chunk: bytes, name: str, line: int, line_bytes: int, max_line: int) -> tuple[int, int]:
    """Refuse a line longer than ``max_line`` bytes in ``chunk``, the piece of input after
    ``line_bytes`` bytes of line ``line``; the line number and bytes of the line it ends in."""
    pieces = chunk.split(b"\n")
    lengths = [line_bytes + len(pieces[0]), *map(len, pieces[1:])]
    if max(lengths) > max_line:
        too_long = next(i for i, n in enumerate(lengths) if n > max_line)
        raise ConlluError(f"{name}:{line + too_long}: a line of more than {max_line:,} bytes, the most "
                          "attnlab reads in one line")
    return line + len(pieces) - 1, lengths[-1]


def _no_sentences(source: str) -> ConlluError:
    return ConlluError(f"{source}: no sentences")


def parse_conllu(text: str, source: str = "<string>", *, require_sentences: bool = True,
                 first_line: int = 1) -> list[Sentence]:
    """The sentences of CoNLL-U text; ``source`` names it in error messages, ``first_line`` is
    the number of the text's first line there (a block of a longer file: ``attnlab.corpus``).

    Text without a sentence (empty, or only blank lines) raises ``source: no sentences``
    unless ``require_sentences`` is false.
    """
    sentences = list(_sentences(split_lines(text), source, first_line))
    if require_sentences and not sentences:
        raise _no_sentences(source)
    return sentences


def iter_conllu(path: str | Path, *, require_sentences: bool = True) -> Iterator[Sentence]:
    """Sentences of a CoNLL-U file, one at a time (the file is decoded by ``read_text``)."""
    text, name = read_text(path)
    found = False
    for sentence in _sentences(split_lines(text), name):
        found = True
        yield sentence
    if require_sentences and not found:
        raise _no_sentences(name)


def read_conllu(path: str | Path, *, require_sentences: bool = True) -> list[Sentence]:
    """Every sentence of a CoNLL-U file (``path: no sentences`` when it has none, unless
    ``require_sentences`` is false)."""
    return list(iter_conllu(path, require_sentences=require_sentences))


COLUMNS = {"lemma": 2, "upos": 3, "xpos": 4, "feats": 5}  # the predicted columns, by 0-based position


def format_conllu(
    sentences: Sequence[Sentence], *, upos: Sequence[Sequence[str]] | None = None,
    xpos: Sequence[Sequence[str]] | None = None, feats: Sequence[Sequence[str]] | None = None,
    lemma: Sequence[Sequence[str]] | None = None,
) -> str:
    """CoNLL-U text of ``sentences``, with the UPOS, XPOS, FEATS and LEMMA of the words
    replaced where given (one list of values per sentence); every other line and column kept."""
    given = [(COLUMNS[name], name, values) for name, values in
             (("lemma", lemma), ("upos", upos), ("xpos", xpos), ("feats", feats)) if values is not None]
    out: list[str] = []
    for i, sent in enumerate(sentences):
        lines = list(sent.lines)
        for _, name, values in given:
            if len(values[i]) != len(sent.tokens):
                raise ValueError(f"sentence {i + 1}: {len(values[i])} {name} values for {len(sent.tokens)} words")
        if given:
            for j, token in enumerate(sent.tokens):  # each word's line split and joined once
                cols = lines[token.index].split("\t")
                for column, _, values in given:
                    cols[column] = values[i][j]
                lines[token.index] = "\t".join(cols)
        out.extend(lines)
        out.append("")
    return "\n".join(out) + ("\n" if out else "")


def write_conllu(sentences: Sequence[Sentence], path: str | Path, **columns: Sequence[Sequence[str]] | None) -> None:
    """Write ``format_conllu(sentences, **columns)`` to ``path`` (``attnlab.output.write_output``: a
    file atomically, so readers never see half of it; a device, FIFO or ``-`` by plain writes)."""
    from ..output import write_output

    write_output(path, format_conllu(sentences, **columns))


def check_tags(sentences: Sequence[Sentence], column: str = "upos") -> None:
    """Check gold tags: raise ``ConlluError`` at the first word whose tag in ``column`` is
    missing (``_`` or empty) or, for UPOS, not one of UD's 17 tags (``UPOS_TAGS``).

    The message names the word's line: ``path:line: unknown UPOS 'NOUNS' (UD has ADJ ...)``,
    ``path:line: UPOS is '_' (no gold tag)``.
    """
    known = frozenset(UPOS_TAGS) if column == "upos" else None
    name = column.upper()
    for s, sent in enumerate(sentences, 1):
        for token in sent.tokens:
            tag = getattr(token, column)
            if tag not in ("", "_") and (known is None or tag in known):
                continue
            where = f"{sent.source}:{token.line}" if token.line else f"{sent.source}: sentence {s}, word {token.id}"
            if tag == "_":
                raise ConlluError(f"{where}: {name} is '_' (no gold tag)")
            if not tag:
                raise ConlluError(f"{where}: {name} is empty (no gold tag)")
            raise ConlluError(f"{where}: unknown {name} {tag!r} (UD has {' '.join(UPOS_TAGS)})")
