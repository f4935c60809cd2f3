"""Token features for taggers: word embeddings, a character CNN, lowercase and shape.

Shape letters: B sentences, N tokens per sentence (padded), U distinct word forms in
a batch, L characters per form (padded, with begin/end-of-word markers), C char width.

A token's feature vector is the concatenation of

* the embedding of its **lowercased** form (words never seen in training, and during
  training a random ``word_dropout`` share of the others, use the UNK embedding);
* the embedding of its **shape** (``word_shape("McDonald's") == "XxXx'x"``): case,
  digits and punctuation, which tell a lot about unknown words;
* a **character CNN** over the original form: convolutions of several widths, max-pooled
  over the word, so "unfriendliness" gets a vector from its pieces even when the
  word itself is unknown.

Every form is encoded by the character CNN once per batch (``FeatureBatch.chars`` holds
the distinct forms, ``char_index`` points each token at its row), which is what keeps
the character path cheap. At inference the CNN reads tables instead of convolving (the
embedding and the convolution are both linear, so the product of the two is looked up per
character and offset): a form's vector then depends on the form alone, not on the other forms
it is computed with, and ``FeatureEncoder.char_table`` keeps the vectors of forms it has seen.
"""

from __future__ import annotations

import unicodedata
import threading
from dataclasses import dataclass
from typing import Iterable, Sequence, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import JsonConfig, check_fraction, check_positive
from .data.vocab import Vocab

PAD, UNK = Vocab.PAD, Vocab.UNK
BOW, EOW = "<w>", "</w>"  # begin / end of word markers in the character vocabulary


def word_shape(form: str) -> str:
    """Letters -> X / x, digits -> d, punctuation and symbols kept, other -> o; runs collapsed.

    >>> [word_shape(w) for w in ("saw", "Saw", "U.S.", "1,000", "McDonald's", "e-mail")]
    ['x', 'Xx', 'X.X.', 'd,d', "XxXx'x", 'x-x']
    """
    out: list[str] = []
    for ch in form:
        if ch.isalpha():
            c = "X" if ch.isupper() else "x"
        elif ch.isdigit():
            c = "d"
        elif unicodedata.category(ch)[0] in "PS":
            c = ch
        else:
            c = "o"
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)


@dataclass(frozen=True)
class FeatureConfig(JsonConfig):
    """Sizes of the token features.

    word_dim      lowercased-word embedding width
    shape_dim     shape embedding width
    char_dim      character embedding width
    char_filters  filters per convolution width (char CNN output = filters * len(char_widths))
    char_widths   convolution widths of the char CNN
    max_chars     longer forms keep their first and last max_chars / 2 characters
    word_dropout  share of training tokens whose word embedding is replaced by UNK
    dropout       dropout on the concatenated features
    """

    word_dim: int = 128
    shape_dim: int = 16
    char_dim: int = 32
    char_filters: int = 64
    char_widths: tuple[int, ...] = (2, 3, 4, 5)
    max_chars: int = 30
    word_dropout: float = 0.1
    dropout: float = 0.25

    def __post_init__(self):
        object.__setattr__(self, "char_widths", tuple(int(w) for w in self.char_widths))
        check_positive(self, ("word_dim", "shape_dim", "char_dim", "char_filters", "max_chars"), "features ")
        if not self.char_widths or min(self.char_widths) < 1:
            raise ValueError(f"char_widths must be positive, got {self.char_widths}")
        check_fraction(self, ("word_dropout", "dropout"), "features ")

    @property
    def out_dim(self) -> int:
        return self.word_dim + self.shape_dim + self.char_filters * len(self.char_widths)


@dataclass
class FeatureVocabs:
    """The vocabularies the features index: lowercased words, characters, shapes."""

    words: Vocab
    chars: Vocab
    shapes: Vocab

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], *, min_word_count: int = 1) -> "FeatureVocabs":
        """From training sentences (lists of word forms)."""
        sentences = [list(s) for s in sentences]
        forms = [w for s in sentences for w in s]
        words = Vocab.build((w.lower() for w in forms), min_count=min_word_count)
        chars = Vocab.build([BOW, EOW] + [c for w in forms for c in w])
        shapes = Vocab.build(word_shape(w) for w in forms)
        return cls(words=words, chars=chars, shapes=shapes)

    def is_known(self, form: str) -> bool:
        """Whether the lowercased form has its own word embedding (was seen in training)."""
        return self.words.encode([form.lower()])[0] != UNK

    def to_json(self) -> dict:
        return {"words": self.words.to_json(), "chars": self.chars.to_json(), "shapes": self.shapes.to_json()}

    @classmethod
    def from_json(cls, obj: dict) -> "FeatureVocabs":
        return cls(*(Vocab.from_json(obj[k]) for k in ("words", "chars", "shapes")))


@dataclass
class FeatureBatch:
    """Indices for one padded batch; build with ``FeatureEncoder.encode``."""

    words: torch.Tensor  # (B, N) lowercased word ids, PAD after each sentence
    shapes: torch.Tensor  # (B, N) shape ids
    chars: torch.Tensor  # (U, L) char ids of the distinct forms, PAD-filled
    char_index: torch.Tensor  # (B, N) row of ``chars`` (or of ``char_vectors``) for each token (0 at padding)
    lengths: torch.Tensor  # (B,)
    char_vectors: torch.Tensor | None = None  # (U', F) precomputed character vectors, see FeatureEncoder.char_table

    def to(self, device: torch.device) -> "FeatureBatch":
        """The same batch on ``device``."""
        return FeatureBatch(self.words.to(device), self.shapes.to(device), self.chars.to(device),
                            self.char_index.to(device), self.lengths.to(device),
                            None if self.char_vectors is None else self.char_vectors.to(device))


class FeatureEncoder:
    """Turns sentences of word forms into ``FeatureBatch`` index tensors (with a cache)."""

    def __init__(self, vocabs: FeatureVocabs, max_chars: int, cache_size: int = 200_000):
        self.vocabs = vocabs
        self.max_chars = max_chars
        self.cache_size = cache_size
        self._cache: dict[str, tuple[int, int, list[int]]] = {}
        self.vectors = CharVectors()

    def token(self, form: str) -> tuple[int, int, list[int]]:
        """(word id, shape id, char ids with markers) of one form."""
        hit = self._cache.get(form)
        if hit is not None:
            return hit
        chars = form
        if len(chars) > self.max_chars:
            half = self.max_chars // 2
            chars = chars[:half] + chars[len(chars) - (self.max_chars - half):]
        v = self.vocabs
        entry = (
            v.words.encode([form.lower()])[0],
            v.shapes.encode([word_shape(form)])[0],
            v.chars.encode([BOW, *chars, EOW]),
        )
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        self._cache[form] = entry
        return entry

    def char_ids(self, forms: Sequence[str]) -> torch.Tensor:
        """(U, L) character ids of ``forms`` (with word markers), PAD-filled."""
        rows = [self.token(f)[2] for f in forms] or [[]]
        width = max(max(len(c) for c in rows), 1)
        return torch.tensor([c + [PAD] * (width - len(c)) for c in rows], dtype=torch.long).view(len(rows), width)

    def encode(self, sentences: Sequence[Sequence[str]], rows: dict[str, int] | None = None) -> FeatureBatch:
        """Index tensors for a batch. With ``rows`` (form -> row of a character-vector table
        computed once for many batches, see ``char_table``), ``char_index`` points into that
        table and no characters are encoded here."""
        b = len(sentences)
        n = max((len(s) for s in sentences), default=0)
        words = [[PAD] * n for _ in range(b)]
        shapes = [[PAD] * n for _ in range(b)]
        char_index = [[0] * n for _ in range(b)]
        local: dict[str, int] = {}  # distinct forms of this batch in first-seen order
        for i, sent in enumerate(sentences):
            for j, form in enumerate(sent):
                word, shape, _ = self.token(form)
                words[i][j], shapes[i][j] = word, shape
                if rows is not None:
                    char_index[i][j] = rows[form]
                else:
                    char_index[i][j] = local.setdefault(form, len(local))
        return FeatureBatch(
            words=torch.tensor(words, dtype=torch.long).view(b, n),
            shapes=torch.tensor(shapes, dtype=torch.long).view(b, n),
            chars=self.char_ids(list(local)) if rows is None else torch.zeros(0, 1, dtype=torch.long),
            char_index=torch.tensor(char_index, dtype=torch.long).view(b, n),
            lengths=torch.tensor([len(s) for s in sentences], dtype=torch.long),
        )

    @torch.no_grad()
    def char_table(self, features: "TokenFeatures", forms: Sequence[str], chunk: int = 4096) -> tuple[dict[str, int], torch.Tensor]:
        """Character vectors of every distinct form, computed once: (form -> row, (U, F) table).

        Inference over many batches repeats most forms (punctuation, function words); the
        character CNN then runs once per distinct form instead of once per batch, and, while
        the weights stay the same, once per form across calls (``CharVectors``). New forms
        are sorted by length so each chunk pads little.
        """
        cnn = features.char_cnn
        store = self.vectors
        distinct = sorted(set(forms), key=lambda f: (len(f), f))
        with store.lock:  # one store for every thread that tags with this model
            store.check(cnn)
            new = [f for f in distinct if f not in store.rows]
            if store.full(len(new)):
                store.clear()
                new = distinct
            for i in range(0, len(new), chunk):
                store.add(new[i:i + chunk], cnn(self.char_ids(new[i:i + chunk]).to(cnn.embed.weight.device)))
            if not distinct:
                return {}, cnn.embed.weight.new_zeros(0, cnn.out_dim)
            kept = store.table()
            table = kept[torch.tensor([store.rows[f] for f in distinct], dtype=torch.long, device=kept.device)]
        return {f: r for r, f in enumerate(distinct)}, table


class CharVectors:
    """The character vectors of the forms seen so far, for one set of CNN weights (any change
    of the weights empties it), at most ``capacity`` forms (then it starts again). Exact: the
    CNN's tables give a form the same vector whatever it is computed with."""

    def __init__(self, capacity: int = 32768):
        self.capacity = capacity
        self.rows: dict[str, int] = {}
        self._table: torch.Tensor | None = None
        self._weights: tuple = ()
        self.lock = threading.Lock()

    def check(self, cnn: "CharCNN") -> None:
        weights = cnn.weights_key()
        if weights != self._weights:
            self.clear()
            self._weights = weights

    def full(self, more: int) -> bool:
        return len(self.rows) + more > self.capacity

    def clear(self) -> None:
        self.rows, self._table = {}, None

    def add(self, forms: Sequence[str], vectors: torch.Tensor) -> None:
        n = len(self.rows)
        if self._table is None or n + len(forms) > len(self._table):
            grown = vectors.new_empty(max(2 * (n + len(forms)), 1024), vectors.shape[1])
            if self._table is not None:
                grown[:n] = self._table[:n]
            self._table = grown
        self._table[n:n + len(forms)] = vectors
        self.rows.update((f, n + i) for i, f in enumerate(forms))

    def table(self) -> torch.Tensor:
        """(forms kept, F); call with at least one form kept."""
        assert self._table is not None
        return self._table[:len(self.rows)]


class CharCNN(nn.Module):
    """(U, L) char ids -> (U, filters * len(widths)): convolutions max-pooled over the word."""

    def __init__(self, n_chars: int, char_dim: int, filters: int, widths: Sequence[int]):
        super().__init__()
        self.embed = nn.Embedding(n_chars, char_dim, padding_idx=PAD)
        # padding = w - 1 on both sides: every output window overlaps at least one real char
        self.convs = nn.ModuleList(nn.Conv1d(char_dim, filters, w, padding=w - 1) for w in widths)
        self.widths = tuple(widths)
        self.out_dim = filters * len(self.widths)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() and not self.training:
            return self.looked_up(chars)
        lengths = (chars != PAD).sum(dim=1)  # (U,)
        e = self.embed(chars).transpose(1, 2)  # (U, L, C) -> (U, C, L)
        pooled = []
        for w, conv in zip(self.widths, self.convs):
            h = conv(e)  # (U, F, L + w - 1); output j sees chars j-w+1 .. j
            valid = torch.arange(h.shape[-1], device=h.device) < (lengths + w - 1).unsqueeze(1)  # (U, L+w-1)
            h = h.masked_fill(~valid.unsqueeze(1), float("-inf"))
            pooled.append(torch.relu(h.amax(dim=-1)))  # (U, F)
        return torch.cat(pooled, dim=-1)  # (U, F * len(widths))

    def weights_key(self) -> tuple:
        """Changes whenever a weight does (an optimizer step, a load): what cached tables are keyed
        by. A weight made under ``torch.inference_mode`` keeps no version count: its sum stands in."""
        return tuple((p.data_ptr(), p.detach().double().sum().item() if p.is_inference() else p._version)
                     for p in self.parameters())

    def tables(self) -> list[torch.Tensor]:
        """Per width w, (n_chars, w, F): the convolution's tap k applied to each character's
        embedding. The padding character's rows are 0, as its embedding is."""
        if getattr(self, "_tables_key", None) != self.weights_key():
            with torch.no_grad():
                self._tables = [torch.einsum("fck,nc->nkf", conv.weight, self.embed.weight).contiguous()
                                for conv in self.convs]
            self._tables_key = self.weights_key()
        return self._tables

    def looked_up(self, chars: torch.Tensor) -> torch.Tensor:
        """``forward`` by table: output j of width w is bias + sum over taps k of
        table[char at j - w + 1 + k, k], added in the order of k, so each form's vector is the
        same whatever batch or padding it comes in (a convolution's algorithm depends on both)."""
        lengths = (chars != PAD).sum(dim=1)  # (U,)
        pooled = []
        for w, conv, table in zip(self.widths, self.convs, self.tables()):
            padded = F.pad(chars, (w - 1, w - 1), value=PAD)  # (U, L + 2w - 2)
            n = padded.shape[1] - w + 1  # L + w - 1 outputs
            h = table[:, 0][padded[:, :n]]  # (U, n, F)
            for k in range(1, w):
                h += table[:, k][padded[:, k:k + n]]
            h += cast(torch.Tensor, conv.bias)
            valid = torch.arange(n, device=h.device) < (lengths + w - 1).unsqueeze(1)  # (U, n)
            h.masked_fill_(~valid.unsqueeze(-1), float("-inf"))
            pooled.append(torch.relu(h.amax(dim=1)))  # (U, F)
        return torch.cat(pooled, dim=-1)


class TokenFeatures(nn.Module):
    """FeatureBatch -> (B, N, out_dim): [word embedding; shape embedding; char CNN]."""

    def __init__(self, config: FeatureConfig, vocabs: FeatureVocabs):
        super().__init__()
        self.config = config
        self.word_embed = nn.Embedding(len(vocabs.words), config.word_dim, padding_idx=PAD)
        self.shape_embed = nn.Embedding(len(vocabs.shapes), config.shape_dim, padding_idx=PAD)
        self.char_cnn = CharCNN(len(vocabs.chars), config.char_dim, config.char_filters, config.char_widths)
        self.dropout = nn.Dropout(config.dropout)
        self.out_dim = config.out_dim

    def forward(self, batch: FeatureBatch) -> torch.Tensor:
        words = batch.words  # (B, N)
        if self.training and self.config.word_dropout > 0:
            # word dropout: the model must learn to tag from characters and context alone,
            # which is exactly the situation of an unknown word at test time
            drop = (torch.rand(words.shape) < self.config.word_dropout) & (words > UNK)
            words = words.masked_fill(drop, UNK)
        w = self.word_embed(words)  # (B, N, word_dim)
        s = self.shape_embed(batch.shapes)  # (B, N, shape_dim)
        table = batch.char_vectors if batch.char_vectors is not None else self.char_cnn(batch.chars)  # (U, F)
        c = table[batch.char_index]  # (B, N, F)
        return self.dropout(torch.cat([w, s, c], dim=-1))  # (B, N, out_dim)
