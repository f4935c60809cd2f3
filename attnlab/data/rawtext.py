"""A treebank's raw text, and what a segmenter learns from it.

A CoNLL-U file keeps the text it was cut from: each sentence's ``# text``, the surface tokens
(a multiword-token range line such as ``3-4 du``, or a word outside any range) with
``SpaceAfter=No`` where no space followed, and ``# newpar`` / ``# newdoc`` where a paragraph or
document starts. From these:

* ``sentence_text(sentence)``    ``# text``, or the forms joined as ``SpaceAfter`` says
* ``paragraphs(sentences)``      sentences grouped by ``# newpar`` / ``# newdoc`` (a file with
                                  neither is one paragraph)
* ``document_text(sentences)``   the file as plain text, the shape of the CoNLL 2018 shared
                                  task's raw-text input: a paragraph's sentences joined by one
                                  space, paragraphs separated by a blank line
* ``labeled_text(sentences)``    that text with a label per character (``BOUNDARY``: nothing, a
                                  token ends here, a sentence ends here) and a multiword flag on
                                  the last character of each multiword token: what the
                                  segmenter (``attnlab.tasks.segmenter``) is trained on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from .conllu import Sentence, SurfaceToken

INSIDE, TOKEN_END, SENTENCE_END = 0, 1, 2  # a character's boundary label
# The segmenter (attnlab.tasks.segmenter) reads text in these windows; here, without torch, so
# that attnlab.corpus cuts blocks with their context in a process that never loads a model.
CHUNK = 4096  # characters read at once (plus CONTEXT on each side)
CONTEXT = 192  # > what the layers see (conv_width // 2 + layers * (block - 1): 129 for the defaults)
CONTEXT_CHARS = CHUNK + CONTEXT  # text around a block that puts it in the windows of the whole input
BOUNDARY = ("inside", "token end", "sentence end")


def rebuilt_text(tokens: Sequence[SurfaceToken]) -> str:
    """The text the tokens stand for: forms, a space after each unless ``SpaceAfter=No``."""
    parts = []
    for i, token in enumerate(tokens):
        parts.append(token.form)
        if token.space_after and i + 1 < len(tokens):
            parts.append(" ")
    return "".join(parts)


def sentence_text(sentence: Sentence) -> str:
    """The sentence's ``# text``, or, where it has none, its tokens' text (``rebuilt_text``)."""
    return sentence.text if sentence.text is not None else rebuilt_text(sentence.surface_tokens)


def starts_paragraph(sentence: Sentence) -> bool:
    return any(line.startswith(("# newpar", "# newdoc")) for line in sentence.lines)


def paragraphs(sentences: Sequence[Sentence]) -> list[list[Sentence]]:
    """Sentences grouped into paragraphs at ``# newpar`` and ``# newdoc``; a file that marks
    neither is one paragraph."""
    out: list[list[Sentence]] = []
    for sentence in sentences:
        if not out or starts_paragraph(sentence):
            out.append([])
        out[-1].append(sentence)
    return out


def document_text(sentences: Sequence[Sentence]) -> str:
    """The plain text of a CoNLL-U file: each paragraph's ``sentence_text`` joined by one space,
    paragraphs separated by a blank line, a line end at the end."""
    return "\n\n".join(" ".join(sentence_text(s) for s in par) for par in paragraphs(sentences)) + "\n"


def _align(text: str, tokens: Sequence[SurfaceToken]) -> list[tuple[int, int]] | None:
    """The (start, end) of each token's form in ``text``, in order, with only whitespace
    between them; None when the forms do not spell the text."""
    spans, p = [], 0
    for token in tokens:
        while p < len(text) and text[p].isspace():
            p += 1
        if not text.startswith(token.form, p):
            return None
        spans.append((p, p + len(token.form)))
        p += len(token.form)
    return spans if not text[p:].strip() else None


@dataclass
class LabeledText:
    """A text with a label per character: ``boundary`` (INSIDE, TOKEN_END, SENTENCE_END on a
    token's last character) and ``multiword`` (1 on the last character of a multiword token).
    ``tokens`` lists every token's span and words; ``rebuilt`` counts sentences whose ``# text``
    did not match their forms (their text was rebuilt from the forms)."""

    text: str
    boundary: list[int]
    multiword: list[int]
    tokens: list[tuple[int, int, tuple[str, ...]]] = field(default_factory=list)
    rebuilt: int = 0


def labeled_text(sentences: Sequence[Sentence]) -> LabeledText:
    """``document_text`` of ``sentences`` with its labels (see ``LabeledText``)."""
    parts: list[str] = []
    out = LabeledText("", [], [])
    offset = 0

    def add(piece: str) -> None:
        nonlocal offset
        parts.append(piece)
        out.boundary.extend([INSIDE] * len(piece))
        out.multiword.extend([0] * len(piece))
        offset += len(piece)

    for k, par in enumerate(paragraphs(sentences)):
        if k:
            add("\n\n")
        for i, sentence in enumerate(par):
            if i:
                add(" ")
            tokens = sentence.surface_tokens
            text = sentence_text(sentence)
            spans = _align(text, tokens)
            if spans is None:
                out.rebuilt += 1
                text = rebuilt_text(tokens)
                spans = _align(text, tokens)
                assert spans is not None
            base = offset
            add(text)
            for j, ((start, end), token) in enumerate(zip(spans, tokens)):
                last = base + end - 1
                out.boundary[last] = SENTENCE_END if j == len(tokens) - 1 else TOKEN_END
                out.multiword[last] = int(token.multiword)
                out.tokens.append((base + start, base + end, tuple(w.form for w in token.words)))
    add("\n")
    out.text = "".join(parts)
    return out


# -- raw text -> CoNLL-U ----------------------------------------------------------------------
# A segmented text becomes CoNLL-U that loses nothing: ``# text`` holds each sentence's characters
# (line breaks shown as spaces, since a comment is one line); each token's MISC has
# ``TokenRange=start:end`` (character offsets into the input, end exclusive, as UDPipe writes
# them), ``SpaceAfter=No`` where no white space follows, and ``SpacesAfter=`` / ``SpacesBefore=``
# (UDPipe's names) where what follows (or, for a document's first token, what precedes) is not
# one space, with white space escaped (``\s`` space, ``\t``, ``\n``, ``\r``, ``\\``). So the
# input is ``rebuild_text(sentences)`` exactly. HEAD and DEPREL hold a placeholder tree (word 1
# the root, every other word attached to it as ``dep``) so that UD's evaluation script, which
# requires a tree, reads the file; they are not a parse.

_ESCAPES = {"\\": "\\\\", " ": "\\s", "\t": "\\t", "\n": "\\n", "\r": "\\r", "|": "\\p"}
_UNESCAPE = re.compile(r"\\(.)")


def escape_spaces(text: str) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def unescape_spaces(value: str) -> str:
    back = {v[1]: k for k, v in _ESCAPES.items()}
    return _UNESCAPE.sub(lambda m: back.get(m.group(1), m.group(1)), value)


def _misc(start: int, end: int, before: str | None, after: str) -> str:
    items = []
    if before:
        items.append(f"SpacesBefore={escape_spaces(before)}")
    if after == "":
        items.append("SpaceAfter=No")
    elif after != " ":
        items.append(f"SpacesAfter={escape_spaces(after)}")
    items.append(f"TokenRange={start}:{end}")
    return "|".join(items)


def placeholder_head(word: int) -> tuple[str, str]:
    """HEAD and DEPREL of word ``word`` (1-based) in the placeholder tree."""
    return ("0", "root") if word == 1 else ("1", "dep")


def conllu_sentences(text: str, paragraphs: Sequence[Sequence[Sequence]], *, first_id: int = 1, offset: int = 0,
                     new_document: bool = True, new_paragraph: bool = True) -> list[Sentence]:
    """CoNLL-U sentences of ``text`` cut into ``paragraphs`` of sentences of tokens (objects
    with ``start``, ``end``, ``form`` and ``words``; offsets index ``text``), numbered from
    ``first_id``; the first starts a document (``# newdoc``), each paragraph's first ``# newpar``.

    When ``text`` is a block of a longer input starting at character ``offset``
    (``attnlab.corpus``): TokenRange is counted from the input's start, ``new_document`` False
    leaves out the ``# newdoc`` (and the white space before the first token, which the previous
    block's last token holds), ``new_paragraph`` False the first ``# newpar`` (the block
    continues a paragraph)."""
    from .conllu import Token

    flat = [(p, s) for p, par in enumerate(paragraphs) for s in par if s]
    out: list[Sentence] = []
    for n, (p, tokens) in enumerate(flat):
        lines: list[str] = ["# newdoc"] if n == 0 and new_document else []
        if (n == 0 and new_paragraph) or (n > 0 and flat[n - 1][0] != p):
            lines.append("# newpar")
        sent_text = text[tokens[0].start:tokens[-1].end].replace("\r\n", "  ").replace("\n", " ").replace("\r", " ")
        comments = {"sent_id": str(first_id + n), "text": sent_text}
        lines += [f"# sent_id = {first_id + n}", f"# text = {sent_text}"]
        words: list[Token] = []
        for k, token in enumerate(tokens):
            nxt = tokens[k + 1].start if k + 1 < len(tokens) else (
                flat[n + 1][1][0].start if n + 1 < len(flat) else len(text))
            before = text[:token.start] if n == 0 and k == 0 and new_document else None
            misc = _misc(offset + token.start, offset + token.end, before, text[token.end:nxt])
            first = len(words) + 1
            if len(token.words) > 1:
                lines.append("\t".join([f"{first}-{first + len(token.words) - 1}", token.form] + ["_"] * 7 + [misc]))
            for j, form in enumerate(token.words):
                ident = first + j
                head, deprel = placeholder_head(ident)
                word_misc = misc if len(token.words) == 1 else "_"
                cols = [str(ident), form, "_", "_", "_", "_", head, deprel, "_", word_misc]
                words.append(Token(ident, form, "_", "_", "_", "_", head, deprel, "_", word_misc, 0, len(lines)))
                lines.append("\t".join(cols))
        out.append(Sentence(lines, words, 0, "<text>", comments))
    return out


def rebuild_text(sentences: Sequence[Sentence]) -> str:
    """The text CoNLL-U written by ``conllu_sentences`` came from: every token's form with the
    white space its MISC records before and after it."""
    parts: list[str] = []
    for sentence in sentences:
        for form, misc in ((t.form, t.misc) for t in sentence.surface_tokens):
            items = dict(item.split("=", 1) for item in misc.split("|") if "=" in item)
            if "SpacesBefore" in items:
                parts.append(unescape_spaces(items["SpacesBefore"]))
            parts.append(form)
            if "SpacesAfter" in items:
                parts.append(unescape_spaces(items["SpacesAfter"]))
            elif items.get("SpaceAfter") != "No":
                parts.append(" ")
    return "".join(parts)
