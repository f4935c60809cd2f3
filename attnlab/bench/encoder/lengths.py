"""Sentence lengths for the batches: from a treebank's train file, or the shipped EWT histogram."""

from __future__ import annotations

import json
import os
from pathlib import Path


def conllu_lengths(path: str | Path) -> list[int]:
    """Sentence lengths in syntactic words (multiword ranges and empty nodes left out) of a CoNLL-U file."""
    from ...data.conllu import iter_conllu

    lengths = [len(s) for s in iter_conllu(path)]
    if not lengths:
        raise ValueError(f"{path}: no sentences found")
    return lengths


def shipped_lengths() -> tuple[list[int], str]:
    """The EWT train length histogram in ``attnlab/data/lengths_ewt.json``, and where it came from."""
    path = Path(__file__).resolve().parents[2] / "data" / "lengths_ewt.json"
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    lengths = [int(n) for n, count in doc["counts"].items() for _ in range(int(count))]
    return lengths, f"shipped histogram {path.name} ({doc['treebank']} {doc['split']}, {len(lengths)} sentences)"


def find_train_file(directory: str | Path) -> Path:
    directory = Path(directory)
    if directory.is_file():
        return directory
    if not directory.is_dir():
        raise FileNotFoundError(f"treebank directory {directory} does not exist")
    found = sorted(directory.glob("*train*.conllu"))
    if not found:
        raise FileNotFoundError(f"no *train*.conllu in {directory}")
    return found[0]


def length_source(treebank: str | None) -> tuple[list[int], str]:
    """(lengths, a description of their source): ``treebank``, else $ATTNLAB_DATA, else the shipped histogram."""
    directory = treebank or os.environ.get("ATTNLAB_DATA")
    if directory:
        path = find_train_file(directory)
        lengths = conllu_lengths(path)
        return lengths, f"{path} ({len(lengths)} sentences)"
    return shipped_lengths()
