"""The gold files (and stdin) `attnlab eval` and `attnlab export --compare` read; every problem
is a one-line error that names the file. (Every output is written by ``attnlab.output``.)

    gold, name = read_gold(path)         # CoNLL-U with at least one sentence
"""

from __future__ import annotations

from pathlib import Path


def read_gold(file: str | Path) -> tuple[list, str]:
    """(the sentences of the CoNLL-U file ``file`` or ``-``, its name); none at all is an error."""
    from ..data.conllu import parse_conllu, read_text

    text, name = read_text(file)
    return parse_conllu(text, name), name
