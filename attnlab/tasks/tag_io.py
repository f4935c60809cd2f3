"""What `attnlab tag` reads and writes: raw text or CoNLL-U in; CoNLL-U, TSV or JSON lines out.

    sentences = read_input("-", "auto", "simple")   # stdin; a file path otherwise
    tagged = tag_sentences(load_tagger(directory), sentences)
    text = format_output(sentences, tagged, "tsv")

Raw text is one sentence per line, split into words by ``attnlab.data.tokenize``. CoNLL-U
keeps every line and column except UPOS and XPOS of the words, which the tagger fills in.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..data.tokenize import tokenize

INPUTS = ("auto", "text", "conllu")
OUTPUTS = ("conllu", "tsv", "json")


def looks_like_conllu(text: str) -> bool:
    """Whether the first non-blank line is a comment or a token line (``1\\t...``)."""
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            return True
        return bool(re.match(r"^\d+(-\d+|\.\d+)?\t", line))
    return False


def read_text(file: str) -> tuple[str, str]:
    """(the text of ``file``, its name in messages); ``-`` is stdin."""
    if file == "-":
        return sys.stdin.read(), "<stdin>"
    path = Path(file)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_input(file: str, kind: str = "auto", tokenizer: str = "simple") -> list:
    """The sentences to tag (``attnlab.data.conllu.Sentence``) of ``file`` (``-``: stdin), read
    as ``kind``: text, conllu, or auto (conllu for *.conllu files and text that looks like it)."""
    from ..data.conllu import Sentence, parse_conllu

    text, name = read_text(file)
    if kind == "auto":
        kind = "conllu" if name.endswith(".conllu") or looks_like_conllu(text) else "text"
    if kind == "conllu":
        return parse_conllu(text, name)
    sentences = []
    for line in text.splitlines():
        words = tokenize(line, tokenizer)
        if words:
            sentences.append(Sentence.from_words(words, text=line.strip()))
    return sentences


@dataclass
class Tagged:
    upos: list[list[str]]  # per sentence
    xpos: list[list[str]] | None  # None: the model has no XPOS head
    seconds: float

    def stats(self) -> str:
        n = sum(len(u) for u in self.upos)
        return (f"tagged {len(self.upos):,} sentences, {n:,} tokens in {self.seconds:.2f} s "
                f"({n / max(self.seconds, 1e-9):,.0f} tokens/s)")


def tag_sentences(loaded, sentences, *, batch_tokens: int = 8192) -> Tagged:
    """UPOS (and XPOS) of every word of ``sentences`` with a loaded tagger."""
    from .tagging import predict

    start = time.perf_counter()
    upos, xpos = predict(loaded.model, loaded.encoder(), loaded.vocabs, [s.forms for s in sentences],
                         batch_tokens=batch_tokens)
    return Tagged(upos, xpos, time.perf_counter() - start)


def format_output(sentences, tagged: Tagged, fmt: str) -> str:
    """CoNLL-U (the input's lines with the tags put in), TSV (word, UPOS, XPOS; a blank line
    after each sentence) or JSON lines (one object per sentence)."""
    from ..data.conllu import format_conllu

    if fmt == "conllu":
        return format_conllu(sentences, upos=tagged.upos, xpos=tagged.xpos)
    lines = []
    for i, s in enumerate(sentences):
        x = tagged.xpos[i] if tagged.xpos is not None else None
        if fmt == "tsv":
            for j, w in enumerate(s.forms):
                lines.append(f"{w}\t{tagged.upos[i][j]}" + (f"\t{x[j]}" if x is not None else ""))
            lines.append("")
        else:
            obj = {"words": list(s.forms), "upos": tagged.upos[i]}
            if x is not None:
                obj["xpos"] = x
            if s.sent_id:
                obj = {"sent_id": s.sent_id, **obj}
            lines.append(json.dumps(obj, ensure_ascii=False))
    return "\n".join(lines) + ("\n" if lines else "")
