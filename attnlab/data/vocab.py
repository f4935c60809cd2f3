"""A vocabulary: strings <-> integer ids, with padding and unknown ids fixed at 0 and 1."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence


class Vocab:
    """Ids of strings. ``PAD`` (0) fills padding, ``UNK`` (1) stands for unseen strings.

    >>> v = Vocab.build(["saw", "a", "saw"])
    >>> v.encode(["saw", "hammer"]), v.decode([2, 3])
    ([2, 1], ['saw', 'a'])
    """

    PAD, UNK = 0, 1
    SPECIALS = ("<pad>", "<unk>")

    def __init__(self, itos: Sequence[str]):
        itos = list(itos)
        if tuple(itos[:2]) != self.SPECIALS:
            raise ValueError(f"a vocabulary starts with {list(self.SPECIALS)}, got {itos[:2]}")
        self.itos = itos
        self.stoi = {s: i for i, s in enumerate(itos)}
        if len(self.stoi) != len(itos):
            dup = next(s for s, n in Counter(itos).items() if n > 1)
            raise ValueError(f"vocabulary lists {dup!r} twice")

    @classmethod
    def build(cls, items: Iterable[str], *, min_count: int = 1, max_size: int | None = None) -> "Vocab":
        """Most frequent first (ties in first-seen order); strings seen < ``min_count`` times are left out."""
        counts = Counter(items)
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])  # stable: ties keep first-seen order
        kept = [s for s, n in ranked if n >= min_count and s not in cls.SPECIALS]
        if max_size is not None:
            kept = kept[: max(max_size - len(cls.SPECIALS), 0)]
        return cls([*cls.SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, item: str) -> bool:
        return item in self.stoi and self.stoi[item] > self.UNK

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocab({len(self)} entries)"

    def encode(self, items: Iterable[str]) -> list[int]:
        get, unk = self.stoi.get, self.UNK
        return [get(s, unk) for s in items]

    def decode(self, ids: Iterable[int]) -> list[str]:
        n = len(self.itos)
        out = []
        for i in ids:
            if not 0 <= i < n:
                raise ValueError(f"id {i} is outside the vocabulary (size {n})")
            out.append(self.itos[i])
        return out

    def to_json(self) -> dict:
        return {"itos": list(self.itos)}

    @classmethod
    def from_json(cls, obj) -> "Vocab":
        if not isinstance(obj, dict) or not isinstance(obj.get("itos"), list) or not all(isinstance(s, str) for s in obj["itos"]):
            raise ValueError('a vocabulary is {"itos": [strings]}')
        return cls(obj["itos"])

    def save(self, path: str | Path) -> None:
        from ..checkpoint import json_bytes
        from ..output import write_output

        write_output(path, json_bytes(self.to_json()))

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        path = Path(path)
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such file") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a JSON vocabulary ({exc})") from None
        try:
            return cls.from_json(obj)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
