"""CoNLL-U written compactly in tests: one row per word, columns separated by spaces."""

from __future__ import annotations


def conllu(*rows: str) -> str:
    """CoNLL-U text: each row is "ID FORM LEMMA UPOS XPOS FEATS" separated by spaces (a "~" in a
    form is a space; columns left out are "_"); "" ends a sentence."""
    lines = []
    for row in rows:
        if not row:
            lines.append("")
            continue
        cols = row.split(" ")
        cols[1] = cols[1].replace("~", " ")
        lines.append("\t".join(cols + ["_"] * (10 - len(cols))))
    return "\n".join(lines) + "\n\n"
