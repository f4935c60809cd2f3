"""Word pieces with a checkpoint's own ``tokenizer.json``, through the ``tokenizers`` library."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..errors import UserError, require_extra
from ..packing import cu_seqlens_from_lengths


@dataclass
class Pieces:
    """One sentence in word pieces: ``ids``, their ``tokens`` (strings, special ones included)
    and ``word_ids`` (the word each piece comes from; None for [CLS], [SEP], <s>, ...)."""

    ids: list[int]
    tokens: list[str]
    word_ids: list[int | None]

    def first_pieces(self) -> list[int]:
        """The index of every word's first piece, one per word, in word order."""
        first: dict[int, int] = {}
        for index, word in enumerate(self.word_ids):
            if word is not None and word not in first:
                first[word] = index
        return [first[w] for w in sorted(first)]


class WordPieces:
    """A ``tokenizers.Tokenizer`` seen as text (or words) -> ``Pieces`` and back."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def encode(self, text: str | Sequence[str]) -> Pieces:
        """A string, or a sentence already split into words (``word_ids`` then index them)."""
        words = not isinstance(text, str)
        encoding = self.tokenizer.encode(list(text) if words else text, is_pretokenized=words)
        return Pieces(list(encoding.ids), list(encoding.tokens), list(encoding.word_ids))

    def decode(self, ids: Sequence[int]) -> str:
        """Word-piece ids -> text, special pieces left out."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def pack(self, sentences: Sequence[str | Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentences -> packed ids (T,) and cu_seqlens (B + 1,), ready for ``forward_packed``."""
        encoded = [self.encode(s).ids for s in sentences]
        ids = torch.tensor([i for e in encoded for i in e], dtype=torch.long)
        return ids, cu_seqlens_from_lengths([len(e) for e in encoded])


def load_tokenizer(directory: str | Path) -> WordPieces:
    """The word-piece tokenizer of ``directory/tokenizer.json`` (needs the ``hf`` extra), read
    as every checkpoint file is (a regular file of at most 64 MiB, ``attnlab.checkpoint``)."""
    require_extra("hf", ["tokenizers"])
    from tokenizers import Tokenizer

    from ..checkpoint import MAX_JSON_BYTES, read_bytes

    path = Path(directory) / "tokenizer.json"
    if not path.exists() and not path.is_symlink():
        raise UserError(f"{directory}: no tokenizer.json (attnlab reads the fast tokenizer's file only)")
    data = read_bytes(path, "tokenizer", limit=MAX_JSON_BYTES)
    try:
        return WordPieces(Tokenizer.from_str(data.decode("utf-8")))
    except Exception as error:  # tokenizers raises its own exception type for bad files
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{path}: not a readable tokenizer.json ({message})") from None
