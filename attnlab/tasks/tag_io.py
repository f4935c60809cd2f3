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
import time
from dataclasses import dataclass

from ..data.conllu import read_text, split_lines
from ..data.tokenize import tokenize
from ..errors import UserError

INPUTS = ("auto", "text", "conllu")
OUTPUTS = ("conllu", "tsv", "json")
TSV_LAYERS = ("upos", "xpos", "feats", "lemma")  # the TSV columns after the word, those the model predicts
_TOKEN_ID = re.compile(r"[0-9]+([-.][0-9]+)?\Z")  # a word, a multiword range or an empty node


def detect_input(text: str, name: str) -> str:
    """``conllu`` for *.conllu files and text with a CoNLL-U word line (an ID and 9 more
    tab-separated columns), else ``text``. A line that starts like a word line (an ID and a
    tab) without 10 columns, in text with no real one, is an error that points to --input."""
    if name.endswith(".conllu"):
        return "conllu"
    broken = None
    for lineno, line in enumerate(split_lines(text), 1):
        cols = line.split("\t")
        if len(cols) > 1 and _TOKEN_ID.match(cols[0]):
            if len(cols) == 10:
                return "conllu"
            broken = broken or (lineno, len(cols))
    if broken:
        raise UserError(f"{name}:{broken[0]}: looks like a CoNLL-U word line but has {broken[1]} tab-separated "
                        "columns, not 10; give --input conllu to read it as CoNLL-U or --input text to tag it as text")
    return "text"


def read_input(file: str, kind: str = "auto", tokenizer: str = "simple") -> list:
    """The sentences to tag (``attnlab.data.conllu.Sentence``) of ``file`` (``-``: stdin), read
    as ``kind``: text, conllu, or auto (``detect_input``). Text gives one sentence per line,
    a blank line an empty one (so that JSON lines out match the lines in)."""
    from ..data.conllu import ConlluError, Sentence, parse_conllu

    text, name = read_text(file)
    detected = detect_input(text, name) if kind == "auto" else kind
    if detected == "conllu":
        try:
            sentences = parse_conllu(text, name)
        except ConlluError as exc:
            if kind == "auto" and not name.endswith(".conllu"):
                raise UserError(f"{exc} (read as CoNLL-U for its tab-separated word lines; --input text tags it "
                                "as text)") from None
            raise
    else:
        sentences = [Sentence.from_words(tokenize(line, tokenizer), text=line.strip()) for line in split_lines(text)]
    if not any(s.tokens for s in sentences):
        raise UserError(f"{name}: no sentences to tag")
    return sentences


@dataclass
class Tagged:
    """Predictions per layer, one list per sentence (empty for a sentence without words), and
    the seconds they took: ``layers["upos"]``, and ``xpos``, ``feats``, ``lemma`` when the model
    predicts them; with probabilities, the probability of each choice (``probs``); with top-k,
    each word's k most probable values as (value, probability) (``top``)."""

    layers: dict[str, list[list[str]]]
    probs: dict[str, list[list[float]]] | None
    seconds: float
    top: dict[str, list[list[list[tuple[str, float]]]]] | None = None

    @property
    def upos(self) -> list[list[str]]:
        return self.layers["upos"]

    @property
    def xpos(self) -> list[list[str]] | None:
        return self.layers.get("xpos")

    def stats(self) -> str:
        n = sum(len(u) for u in self.upos)
        sentences = sum(1 for u in self.upos if u)
        return (f"tagged {sentences:,} sentences, {n:,} tokens in {self.seconds:.2f} s "
                f"({n / max(self.seconds, 1e-9):,.0f} tokens/s)")


def tag_sentences(loaded, sentences, *, batch_tokens: int = 8192, probabilities: bool = False, top_k: int = 0) -> Tagged:
    """Every layer the tagger predicts for every word of ``sentences`` (``predict_tags``)."""
    from .tagging import predict_tags

    filled = [i for i, s in enumerate(sentences) if s.tokens]
    start = time.perf_counter()
    found = predict_tags(loaded.model, loaded.encoder(), loaded.vocabs, [sentences[i].forms for i in filled],
                         batch_tokens=batch_tokens, probabilities=probabilities, top_k=top_k)
    seconds = time.perf_counter() - start

    def spread(by_layer):  # back to one row per sentence, empty ones included
        if by_layer is None:
            return None
        out = {}
        for layer, rows in by_layer.items():
            out[layer] = [[] for _ in sentences]
            for i, row in zip(filled, rows):
                out[layer][i] = row
        return out

    return Tagged(spread(found.tags), spread(found.probs), seconds, spread(found.top))


def format_output(sentences, tagged: Tagged, fmt: str) -> str:
    """CoNLL-U (the input's lines with the tags put in), TSV (word, UPOS, XPOS; a blank line
    after each sentence) or JSON lines (one object per sentence, empty ones included; with the
    probability of each tag when ``tagged`` has them). CoNLL-U and TSV leave out sentences
    without words."""
    from ..data.conllu import format_conllu

    if fmt == "json":
        lines = [json.dumps(_json_object(s, tagged, i), ensure_ascii=False) for i, s in enumerate(sentences)]
        return "\n".join(lines) + ("\n" if lines else "")
    kept = [i for i, s in enumerate(sentences) if s.tokens]
    columns = {layer: [rows[i] for i in kept] for layer, rows in tagged.layers.items()}
    if fmt == "conllu":
        return format_conllu([sentences[i] for i in kept], **columns)
    lines = []
    for k, i in enumerate(kept):
        for j, w in enumerate(sentences[i].forms):
            lines.append("\t".join([w] + [columns[layer][k][j] for layer in TSV_LAYERS if layer in columns]))
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


def _json_object(sentence, tagged: Tagged, i: int) -> dict:
    obj = {"sent_id": sentence.sent_id} if sentence.sent_id else {}
    obj["words"] = list(sentence.forms)
    for column, rows in tagged.layers.items():
        obj[column] = rows[i]
        if tagged.probs is not None:
            obj[column + "_prob"] = [round(p, 4) for p in tagged.probs[column][i]]
    return obj
