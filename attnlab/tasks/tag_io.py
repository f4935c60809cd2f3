"""What `attnlab tag` reads and writes: raw text or CoNLL-U in; CoNLL-U, TSV or JSON lines out.

    tagger = attnlab.load("en")
    kind = detect_input(text, "in.txt")             # "conllu" or "text"
    tagged = tagger.tag_conllu(text)                # attnlab.api.TaggedSentence objects
    out = format_output(tagged, tagger.layers, "tsv")

Reading, tagging and writing a whole input in blocks is ``attnlab.corpus``.

Raw text is cut into sentences, tokens and multiword tokens by the model's segmenter
(``--input text``, what ``auto`` picks for anything but CoNLL-U), or taken a sentence per line
(``presegmented``: the segmenter still finds the words) or as words separated by spaces, a
sentence per line (``pretokenized``: no segmenter needed), as UDPipe offers them. CoNLL-U
keeps every line and column except the words' columns the model predicts (UPOS, XPOS,
FEATS, LEMMA), which the tagger fills in. ``tag_sentences`` is the step below the Python
API: every layer's predictions for parsed sentences.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Sequence

from ..data.conllu import read_text, split_lines
from ..errors import UserError

INPUTS = ("auto", "text", "presegmented", "pretokenized", "conllu")
OUTPUTS = ("conllu", "tsv", "json")
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


def tag_sentences(loaded, sentences, *, batch_tokens: int = 8192, probabilities: bool = False, top_k: int = 0):
    """Every layer the tagger predicts for every word of ``sentences`` (``predict_tags``), as a
    ``TagPredictions`` with one row per sentence (an empty one for a sentence without words)."""
    from .tagging import TagPredictions, predict_tags

    filled = [i for i, s in enumerate(sentences) if s.tokens]
    found = predict_tags(loaded.model, loaded.encoder(), loaded.vocabs, [sentences[i].forms for i in filled],
                         batch_tokens=batch_tokens, probabilities=probabilities, top_k=top_k,
                         precision=loaded.precision)

    def spread(by_layer):  # back to one row per sentence, empty ones included
        if by_layer is None:
            return None
        out = {}
        for layer, rows in by_layer.items():
            out[layer] = [[] for _ in sentences]
            for i, row in zip(filled, rows):
                out[layer][i] = row
        return out

    return TagPredictions(spread(found.tags), spread(found.probs), spread(found.top))


def format_output(tagged: Sequence, layers: Sequence[str], fmt: str) -> str:
    """``tagged`` (``attnlab.api.TaggedSentence`` objects) as CoNLL-U (each input's lines with
    the predicted columns put in), TSV (the word, then each of ``layers``; a blank line after
    each sentence) or JSON lines (one object per sentence, empty ones included: ``words``, and
    each of ``layers`` with the probability of each value as ``<layer>_prob``, and, for raw
    text, ``tokens``: each token's form, offsets and the indices of its words). CoNLL-U and
    TSV leave out sentences without words."""
    if fmt == "json":
        lines = [json.dumps(_json_object(s, layers), ensure_ascii=False) for s in tagged]
        return "\n".join(lines) + ("\n" if lines else "")
    kept = [s for s in tagged if len(s)]
    if fmt == "conllu":
        return "".join(s.to_conllu() for s in kept)
    lines = []
    for sentence in kept:
        lines.extend("\t".join([t.form] + [t.column(layer) for layer in layers]) for t in sentence)
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


def _json_object(sentence, layers: Sequence[str]) -> dict:
    obj = {"sent_id": sentence.sent_id} if sentence.sent_id else {}
    obj["words"] = sentence.forms
    tokens = sentence.tokens  # read from the sentence's lines: once
    if tokens and any(t.start is not None for t in tokens):
        obj["text"] = sentence.text
        obj["tokens"], i = [], 0
        for t in tokens:
            obj["tokens"].append({"form": t.form, "start": t.start, "end": t.end,
                                  "words": list(range(i, i + len(t.words)))})
            i += len(t.words)
    for layer in layers:
        obj[layer] = sentence.column(layer)
        obj[layer + "_prob"] = [round(t.probs[layer], 4) for t in sentence]
    return obj
