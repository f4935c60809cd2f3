"""The files (and stdin) `attnlab tag` and `attnlab eval` read and write; every problem is a
one-line error that names the file.

    gold, name = read_gold(path)         # CoNLL-U with at least one sentence
    check_output(path); write_output(path, text)
    check_new_model_dir(source, out)     # `attnlab export`: a new directory for a model made from another
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError


def read_gold(file: str | Path) -> tuple[list, str]:
    """(the sentences of the CoNLL-U file ``file`` or ``-``, its name); none at all is an error."""
    from ..data.conllu import parse_conllu, read_text

    text, name = read_text(file)
    return parse_conllu(text, name), name


def check_output(path: Path) -> None:
    """Refuse an output path that cannot be written: a directory, or under a file."""
    if path.is_dir():
        raise UserError(f"{path}: is a directory")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{parent}: is not a directory")
            break


def write_output(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (readers see the old file or the new one)."""
    from ..checkpoint import atomic_write_bytes

    check_output(path)
    try:
        atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None


def check_new_model_dir(source: str | os.PathLike[str], out: str | os.PathLike[str]) -> None:
    """Refuse, before any work, a model directory ``source`` that is not one, or an ``out``
    (a model made from ``source``) that is ``source`` itself or already holds files."""
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise UserError(f"{source}: no such model directory")
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"{out}: is a file; choose a new directory")
    if out.resolve() == source.resolve():
        raise UserError(f"{out}: is the model directory itself; choose a new directory")
    if any(out.iterdir()):
        raise UserError(f"{out}: already exists and is not empty; choose a new directory")
