"""Where a treebank lives: a directory given on the command line or in ``$ATTNLAB_DATA``,
holding one ``*train.conllu``, ``*dev.conllu`` and ``*test.conllu`` (UD's own names,
``en_ewt-ud-train.conllu``, and plain ``train.conllu`` both match)."""

from __future__ import annotations

import os
from pathlib import Path

ENV = "ATTNLAB_DATA"
SPLITS = ("train", "dev", "test")


def resolve_treebank(directory: str | Path | None = None) -> Path:
    """``directory`` if given, else ``$ATTNLAB_DATA``; it must exist."""
    if directory is None:
        value = os.environ.get(ENV, "").strip()
        if not value:
            raise ValueError(f"no treebank given: pass --treebank DIR (or --train/--dev) or set {ENV} "
                             "(attnlab data get ud-english-ewt --dest DIR downloads one)")
        directory, origin = Path(value), f" (from ${ENV})"
    else:
        directory, origin = Path(directory), ""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}{origin}: no such treebank directory")
    return directory


def find_split(directory: str | Path, split: str) -> Path:
    """The one ``*<split>.conllu`` file of a treebank directory."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    directory = Path(directory)
    found = sorted(p for p in directory.glob(f"*{split}.conllu") if p.is_file())
    if not found:
        raise FileNotFoundError(f"{directory}: no *{split}.conllu file")
    if len(found) > 1:
        raise ValueError(f"{directory}: several *{split}.conllu files ({', '.join(p.name for p in found)})")
    return found[0]


def treebank_from_env() -> Path | None:
    """``$ATTNLAB_DATA`` as a directory with a train split, or None (for tests and benchmarks that skip)."""
    value = os.environ.get(ENV, "").strip()
    if not value or not Path(value).is_dir():
        return None
    try:
        find_split(value, "train")
    except (FileNotFoundError, ValueError):
        return None
    return Path(value)
