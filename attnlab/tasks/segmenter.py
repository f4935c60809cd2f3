"""The segmenter: raw text -> sentences of tokens (and multiword tokens), learned from a treebank.

The seed's N -> N at the level of characters. Every character of a paragraph gets

* a boundary label: inside a token (or a space), the last character of a token, or the last
  character of a sentence's last token (``attnlab.data.rawtext.BOUNDARY``);
* on a token's last character, whether the token is a multiword token (its words then come
  from ``attnlab.tasks.multiword.MultiwordTable``).

The model (``Segmenter``): an embedding of each character and of its Unicode category (so an
unseen letter or digit still reads as one), a convolution over 7 characters, then self-attention
layers over characters. The attention is local (``attnlab.attention.local``): a character sees
its block of ``block`` characters, and every other layer shifts the blocks by half a block so
that information crosses every cut; a paragraph of any length costs time linear in its length,
and rotary positions tell near from far. Long texts
are read in overlapping chunks (``CHUNK`` characters and ``CONTEXT`` on each side, more than
the layers can see), so no text is ever cut short or left unread.

Decoding (``Segmenter.segment``): a token ends where the boundary label says so, and always
before a line break or tab; spaces end a token unless the training data had tokens with
spaces (Vietnamese ``bắt chuyện``); a paragraph (text between blank lines) ends a sentence; a
sentence longer than ``MAX_SENTENCE_TOKENS`` tokens is cut at its most likely sentence end so
that the tagger never gets an unbounded sentence.

Shape letters: B chunks, N characters, D width, H heads, d head width.
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attention.local import block_attention
from ..config import JsonConfig, check_fraction, check_positive
from ..data.rawtext import CHUNK, CONTEXT, CONTEXT_CHARS, INSIDE, SENTENCE_END, TOKEN_END, LabeledText, labeled_text
from ..data.vocab import Vocab
from .multiword import MultiwordTable

TASK = "segmenter"
DIRECTORY = "segmenter"  # a tagger's model directory holds its segmenter here
MWT_FILE = "multiword.json"

# CHUNK characters read at once, CONTEXT more on each side, CONTEXT_CHARS around a block (data.rawtext)
MAX_SENTENCE_TOKENS = 250
MIN_STEPS = 600  # a small treebank still gets this many training steps (best state on dev kept)
RARE_SENTENCE_END = 0.2  # an abbreviation that ended fewer of its sentences than this does not end one
_BREAKS = frozenset("\n\r\t\v\f\x1c\x1d\x1e\x85\u2028\u2029")  # never inside a token
_PARAGRAPH = re.compile(r"\n[^\S\n]*\n\s*")  # a blank line (only whitespace on it) and what follows

# Unicode general categories, and two of our own: a line break and any other white space
CATEGORIES = ("<pad>", "break", "space", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc",
              "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn")
_CATEGORY = {name: i for i, name in enumerate(CATEGORIES)}


def is_space(ch: str) -> bool:
    """White space, and a byte-order mark: what lies between tokens."""
    return ch.isspace() or ch == "\ufeff"


def char_category(ch: str) -> int:
    if ch in _BREAKS:
        return _CATEGORY["break"]
    if is_space(ch):
        return _CATEGORY["space"]
    return _CATEGORY.get(unicodedata.category(ch), _CATEGORY["Cn"])


@dataclass(frozen=True)
class SegmenterConfig(JsonConfig):
    """Sizes of the segmenter: ``dim`` wide, ``layers`` block-local attention layers of
    ``heads`` heads over blocks of ``block`` characters, a ``conv_width`` convolution first."""

    dim: int = 64
    heads: int = 2
    layers: int = 2
    block: int = 64
    d_ff: int = 192
    conv_width: int = 7
    char_dim: int = 64
    dropout: float = 0.1
    rotary: bool = True  # rotary positions in the attention (else the convolution alone tells order)

    def __post_init__(self) -> None:
        check_positive(self, ("dim", "heads", "layers", "block", "d_ff", "conv_width", "char_dim"), "segmenter ")
        if self.conv_width // 2 + self.layers * (self.block - 1) >= CONTEXT:
            raise ValueError(f"a segmenter of {self.layers} layers of blocks of {self.block} sees farther than the "
                             f"{CONTEXT} characters of context each chunk is read with")
        check_fraction(self, ("dropout",), "segmenter ")
        if self.dim % self.heads or (self.dim // self.heads) % 2:
            raise ValueError(f"segmenter dim {self.dim} must split into {self.heads} heads of an even width")
        if self.conv_width % 2 == 0:
            raise ValueError(f"segmenter conv_width must be odd, got {self.conv_width}")


@dataclass
class SegmenterVocab:
    """The characters the segmenter knows, and what it learned about the treebank's tokens."""

    chars: Vocab
    spaces_in_tokens: bool = False  # the training data has tokens holding a space (Vietnamese)
    multiword: MultiwordTable = field(default_factory=MultiwordTable)
    # tokens of the training data that end in a full stop ("Dr.", "p.m.", "etc."), seen at least
    # twice: the share of their occurrences that ended a sentence
    abbreviations: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"chars": self.chars.to_json(), "spaces_in_tokens": self.spaces_in_tokens,
                "abbreviations": self.abbreviations}

    @classmethod
    def from_json(cls, obj: dict) -> "SegmenterVocab":
        abbreviations = {str(k): float(v) for k, v in obj.get("abbreviations", {}).items()}
        return cls(Vocab.from_json(obj["chars"]), bool(obj.get("spaces_in_tokens", False)),
                   abbreviations=abbreviations)

    def ends_sentence(self, form: str) -> bool:
        """False for an abbreviation that rarely ended a sentence in training ("Dr.": the
        segmenter's sentence end after it is taken back); True otherwise."""
        return self.abbreviations.get(form, 1.0) >= RARE_SENTENCE_END

    def split_abbreviation(self, form: str) -> int:
        """Where to cut a token never seen whole that is a known abbreviation followed by
        punctuation only ("p.m.!" -> "p.m." + "!"): the length of the abbreviation, else 0."""
        if form in self.abbreviations:
            return 0
        for cut in range(len(form) - 1, 1, -1):
            if form[:cut] in self.abbreviations and all(unicodedata.category(c)[0] == "P" for c in form[cut:]):
                return cut
        return 0

    def encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(character ids, category ids) of ``text``, each (N,)."""
        stoi, cache = self.chars.stoi, {}  # type: dict[str, int], dict[str, tuple[int, int]]
        ids, cats = [], []
        for ch in text:
            got = cache.get(ch)
            if got is None:
                got = cache[ch] = (stoi.get(ch, Vocab.UNK), char_category(ch))
            ids.append(got[0])
            cats.append(got[1])
        return torch.tensor(ids, dtype=torch.long), torch.tensor(cats, dtype=torch.long)


def rotary_tables(n: int, d: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (n, 1, d/2) of the angles p * theta_i (theta_i = 10000^(-2i/d)) for positions p < n."""
    theta = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float32, device=device) / d)
    angles = torch.arange(n, dtype=torch.float32, device=device)[:, None] * theta
    return angles.cos()[:, None], angles.sin()[:, None]


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary positions on (B, N, H, d): the pair (x_i, x_{i+d/2}) turned by angle p * theta_i
    (``attnlab.positions.RotaryPositions`` pairs neighbours instead; the same rotation)."""
    x1, x2 = x.contiguous().chunk(2, -1)  # a strided x makes every product below many times slower
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


class LocalAttentionLayer(nn.Module):
    """Pre-norm block self-attention (``attnlab.attention.local``; odd layers shift the blocks by
    half a block) and a feed-forward block, each with a residual."""

    def __init__(self, config: SegmenterConfig, shift: int = 0):
        super().__init__()
        self.heads, self.block, self.shift, self.dropout = config.heads, config.block, shift, config.dropout
        self.norm1 = nn.LayerNorm(config.dim)
        self.qkv = nn.Linear(config.dim, 3 * config.dim)
        self.out = nn.Linear(config.dim, config.dim)
        self.norm2 = nn.LayerNorm(config.dim)
        self.ff = nn.Sequential(nn.Linear(config.dim, config.d_ff), nn.GELU(), nn.Linear(config.d_ff, config.dim))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, N, 3, self.heads, D // self.heads).unbind(2)  # (B, N, H, d)
        if rotary is not None:
            q, k = rotate(q, *rotary), rotate(k, *rotary)
        att = block_attention(q, k, v, self.block, self.shift, lengths,
                              dropout=self.dropout if self.training else 0.0)
        x = x + F.dropout(self.out(att.reshape(B, N, D)), self.dropout, self.training)
        return x + F.dropout(self.ff(self.norm2(x)), self.dropout, self.training)


class Segmenter(nn.Module):
    """Characters -> boundary scores (B, N, 3) and multiword scores (B, N, 2)."""

    def __init__(self, config: SegmenterConfig, vocab: SegmenterVocab):
        super().__init__()
        self.config = config
        self.chars = nn.Embedding(len(vocab.chars), config.char_dim, padding_idx=0)
        self.categories = nn.Embedding(len(CATEGORIES), config.char_dim, padding_idx=0)
        self.conv = nn.Conv1d(config.char_dim, config.dim, config.conv_width, padding=config.conv_width // 2)
        self.layers = nn.ModuleList(LocalAttentionLayer(config, (i % 2) * (config.block // 2))
                                    for i in range(config.layers))
        self.norm = nn.LayerNorm(config.dim)
        self.boundary = nn.Linear(config.dim, 3)
        self.multiword = nn.Linear(config.dim, 2)

    def forward(self, ids: torch.Tensor, cats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.chars(ids) + self.categories(cats)  # (B, N, char_dim)
        x = F.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)  # (B, N, D)
        x = F.dropout(x, self.config.dropout, self.training)
        rotary = rotary_tables(x.shape[1], self.config.dim // self.config.heads, x.device) if self.config.rotary else None
        for layer in self.layers:
            x = layer(x, lengths, rotary)
        x = self.norm(x)
        return self.boundary(x), self.multiword(x)


# -- reading a text -----------------------------------------------------------------------------

@dataclass
class Scores:
    """Per character of a text: log-probabilities of the boundary labels (N, 3) and the
    probability that a token ending there is a multiword token (N,)."""

    boundary: torch.Tensor
    multiword: torch.Tensor


def _chunks(n: int, origin: int = 0) -> list[tuple[int, int, int, int]]:
    """(read_start, read_end, keep_start, keep_end) windows covering 0..n: each chunk keeps the
    characters up to the next multiple of CHUNK (counted from ``origin``, the position of the
    text's start in a longer input, so that a piece of an input is read in the same windows as
    the whole) and reads CONTEXT more on each side."""
    cuts = [0, *range(CHUNK - origin % CHUNK, n, CHUNK), n]
    return [(max(0, a - CONTEXT), min(n, b + CONTEXT), a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


@torch.no_grad()
def score_texts(model: Segmenter, vocab: SegmenterVocab, texts: Sequence[str], *, batch_chars: int = 8192,
                origin: int = 0, precision: str = "fp32") -> list[Scores]:
    """The segmenter's scores for every character of each text (paragraphs, say), read in
    overlapping chunks batched by length, about ``batch_chars`` characters a forward pass (two
    windows: a larger batch is no faster and holds ~2 KB of activations per character) (``_chunks``; ``origin``: where the texts start in a
    longer input; ``precision``: "fp32" or "bf16", as ``attnlab.precision``)."""
    from ..precision import autocast

    model.eval()
    pieces: list[tuple[int, int, int, int, int]] = []  # (text index, read_start, read_end, keep_start, keep_end)
    encoded = [vocab.encode(t) for t in texts]
    for i, t in enumerate(texts):
        pieces.extend((i, *c) for c in _chunks(len(t), origin))
    boundary = [torch.empty(len(t), 3) for t in texts]
    multiword = [torch.empty(len(t)) for t in texts]
    order = sorted(range(len(pieces)), key=lambda j: pieces[j][1] - pieces[j][2])  # longest first
    start = 0
    while start < len(order):
        width = pieces[order[start]][2] - pieces[order[start]][1]
        take = max(1, batch_chars // max(width, 1))
        group = [pieces[j] for j in order[start:start + take]]
        start += take
        longest = max(p[2] - p[1] for p in group)
        ids = torch.zeros(len(group), longest, dtype=torch.long)
        cats = torch.zeros(len(group), longest, dtype=torch.long)
        lengths = torch.tensor([p[2] - p[1] for p in group])
        for row, (i, r0, r1, _, _) in enumerate(group):
            ids[row, : r1 - r0] = encoded[i][0][r0:r1]
            cats[row, : r1 - r0] = encoded[i][1][r0:r1]
        device = model.chars.weight.device
        with autocast(precision, device.type):
            b, m = model(ids.to(device), cats.to(device), lengths.to(device))
        b, m = b.float().log_softmax(-1).cpu(), m.float().softmax(-1)[..., 1].cpu()
        for row, (i, r0, _, k0, k1) in enumerate(group):
            boundary[i][k0:k1] = b[row, k0 - r0:k1 - r0]
            multiword[i][k0:k1] = m[row, k0 - r0:k1 - r0]
    return [Scores(b, m) for b, m in zip(boundary, multiword)]


@dataclass
class SegmentedToken:
    """A token of the text: ``text[start:end]`` is its form; ``words`` its syntactic words
    (one, or several for a multiword token)."""

    start: int
    end: int
    form: str
    words: list[str]


def _trimmed(text: str, spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """``spans`` of ``text`` without their leading and trailing white space; empty ones left out."""
    out = []
    for a, b in spans:
        while a < b and is_space(text[a]):
            a += 1
        while b > a and is_space(text[b - 1]):
            b -= 1
        if a < b:
            out.append((a, b))
    return out


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each paragraph of ``text``: stretches between blank lines, holding at
    least one character that is not white space; leading and trailing white space left out."""
    cuts = [0, *(x for m in _PARAGRAPH.finditer(text) for x in (m.start(), m.end())), len(text)]
    return _trimmed(text, zip(cuts[::2], cuts[1::2]))


def line_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line of ``text`` that holds more than white space, trimmed."""
    starts = [0, *(m.end() for m in re.finditer("\n", text))]
    return _trimmed(text, ((a, (text.find("\n", a) + 1 or len(text) + 1) - 1) for a in starts))


def decode(text: str, scores: Scores, vocab: SegmenterVocab, offset: int = 0) -> list[list[SegmentedToken]]:
    """Sentences of tokens of one paragraph ``text`` from its scores (see the module docstring);
    offsets are ``offset`` + positions in ``text``."""
    labels = scores.boundary.argmax(-1).tolist()
    sentence_logp = scores.boundary[:, SENTENCE_END].tolist()
    mwt = scores.multiword.tolist()
    sentences: list[list[SegmentedToken]] = [[]]
    ends: list[float] = []  # log-probability of a sentence end after each token of the open sentence
    start = None
    n = len(text)
    for i, ch in enumerate(text):
        space = is_space(ch)
        if start is None:
            if space:
                continue
            start = i
        if space and (ch in _BREAKS or not vocab.spaces_in_tokens):
            end, label = i, TOKEN_END  # white space ends the token before it
        elif i == n - 1 or labels[i] != INSIDE:
            end, label = i + 1, (SENTENCE_END if i == n - 1 else labels[i])
        else:
            continue
        while end > start and is_space(text[end - 1]):
            end -= 1
        if end > start:
            token_end = end - 1
            if label == TOKEN_END and labels[token_end] == SENTENCE_END:
                label = SENTENCE_END
            form = text[start:end]
            cut = vocab.split_abbreviation(form)
            if cut:  # "p.m." + "!"
                sentences[-1].append(SegmentedToken(offset + start, offset + start + cut, form[:cut], [form[:cut]]))
                ends.append(float("-inf"))
                start, form = start + cut, form[cut:]
            if label == SENTENCE_END and not vocab.ends_sentence(form):
                label = TOKEN_END
            sentences[-1].append(SegmentedToken(offset + start, offset + end, form, _words(form, mwt[token_end], vocab)))
            ends.append(sentence_logp[token_end])
            if label == SENTENCE_END and len(sentences[-1]):
                sentences.append([])
                ends = []
            elif len(sentences[-1]) >= MAX_SENTENCE_TOKENS:
                _cut(sentences, ends)
        start = None
    if not sentences[-1]:
        sentences.pop()
    return sentences


def _cut(sentences: list[list[SegmentedToken]], ends: list[float]) -> None:
    """Split the open (too long) sentence after its most likely sentence end in its second half."""
    tokens = sentences[-1]
    half = len(tokens) // 2
    cut = max(range(half, len(tokens)), key=lambda j: ends[j]) + 1
    sentences[-1] = tokens[:cut]
    sentences.append(tokens[cut:])
    del ends[:cut]


def _words(form: str, p_multiword: float, vocab: SegmenterVocab) -> list[str]:
    """The syntactic words of a token: a form the training data always (never) split is
    (is not) split; otherwise the segmenter's context decides; ``MultiwordTable.split`` splits."""
    share = vocab.multiword.known(form)
    if share is not None and share >= 0.99:
        split = True
    elif share is not None and share > 0.01:
        split = p_multiword > 0.5
    else:
        split = p_multiword > 0.5 and share is None
    if not split:
        return [form]
    words = vocab.multiword.split(form)
    return words if all(words) and len(words) > 1 else [form]


def segment(model: Segmenter, vocab: SegmenterVocab, text: str, *, lines: bool = False,
            before: str = "", after: str = "", offset: int = 0, precision: str = "fp32") -> list[list[list[SegmentedToken]]]:
    """Paragraphs of sentences of tokens of ``text``; offsets index ``text``. With ``lines``,
    every non-blank line is one sentence (and a paragraph of its own). The whole text is scored
    at once (in chunks), so that every paragraph is read with what follows it, and the text's end
    with a line end after it, as the treebank's raw text always has in training.

    A block of a longer input (``attnlab.corpus``) starting at character ``offset`` gives the
    text ``before`` and ``after`` it (CONTEXT_CHARS of each are enough; an ``after`` shorter than
    that is the input's end): they are read in the windows the whole input would be read in, so
    the scores are those of the whole input, but not segmented. ``precision``: as ``score_texts``."""
    spans = line_spans(text) if lines else paragraph_spans(text)
    if not spans:
        return []
    before = before[len(before) - min(len(before), offset % CHUNK + CONTEXT):]
    needed = -(offset + len(text)) % CHUNK + CONTEXT
    tail = after[:needed] + ("\n" if len(after) < needed else "")
    scores = score_texts(model, vocab, [before + text + tail], origin=offset - len(before), precision=precision)[0]
    a0 = len(before)
    found = [decode(text[a:b], Scores(scores.boundary[a0 + a:a0 + b], scores.multiword[a0 + a:a0 + b]), vocab, a)
             for a, b in spans]
    if lines:
        return [[[t for sentence in par for t in sentence]] for par in found]
    return found


# -- training ---------------------------------------------------------------------------------

@dataclass
class SegmenterTraining:
    """How to train: windows of ``window`` characters, ``batch`` of them a step, at most
    ``steps`` steps or ``minutes`` minutes; dev scored every ``eval_every`` steps, the best kept."""

    def step_count(self, chars: int) -> int:
        if self.steps:
            return self.steps
        return int(min(3000, max(MIN_STEPS, self.passes * chars / (self.window * self.batch))))

    window: int = 512
    batch: int = 32
    steps: int = 0  # 0: enough for ``passes`` passes over the training text, MIN_STEPS to 3000
    passes: float = 10.0
    minutes: float = 5.0
    lr: float = 2e-3
    eval_every: int = 250
    seed: int = 1
    newline_rate: float = 0.03  # share of spaces shown as line breaks (hard-wrapped text)


def build_vocab(train: Sequence) -> tuple[SegmenterVocab, LabeledText]:
    labeled = labeled_text(train)
    chars = Vocab.build(labeled.text.replace("\n", " "), min_count=2)
    spaces = any(is_space(ch) for a, b, _ in labeled.tokens for ch in labeled.text[a:b])
    table = MultiwordTable.build((t.form, [w.form for w in t.words]) for s in train for t in s.surface_tokens)
    return SegmenterVocab(chars, spaces, table, abbreviation_table(train)), labeled


def abbreviation_table(train: Sequence) -> dict[str, float]:
    """Tokens of ``train`` that end in a full stop after a letter, seen at least twice: the share
    of their occurrences that were the last token of a sentence."""
    from collections import Counter

    seen: Counter = Counter()
    final: Counter = Counter()
    for sentence in train:
        tokens = sentence.surface_tokens
        for i, token in enumerate(tokens):
            form = token.form
            if len(form) >= 2 and form.endswith(".") and any(c.isalpha() for c in form):
                seen[form] += 1
                final[form] += i == len(tokens) - 1
    return {form: round(final[form] / n, 3) for form, n in sorted(seen.items()) if n >= 2}


def _targets(labeled: LabeledText) -> tuple[torch.Tensor, torch.Tensor]:
    boundary = torch.tensor(labeled.boundary, dtype=torch.long)
    multiword = torch.tensor(labeled.multiword, dtype=torch.long)
    multiword[boundary == INSIDE] = -100  # the multiword flag is learned on token ends only
    return boundary, multiword


def boundary_f1(gold: LabeledText, scores: Scores, vocab: SegmenterVocab) -> dict[str, float]:
    """Token and sentence F1 of the decoded ``scores`` against ``gold``'s boundaries (by spans)."""
    found = decode(gold.text, scores, vocab)
    tokens = {(t.start, t.end) for s in found for t in s}
    sents = {(s[0].start, s[-1].end) for s in found}
    gold_tokens = {(a, b) for a, b, _ in gold.tokens}
    gold_sents, start = set(), None
    for (a, b, _), label in zip(gold.tokens, (gold.boundary[b - 1] for _, b, _ in gold.tokens)):
        start = a if start is None else start
        if label == SENTENCE_END:
            gold_sents.add((start, b))
            start = None

    def f1(system: set, reference: set) -> float:
        return 2 * len(system & reference) / max(len(system) + len(reference), 1)

    return {"tokens": f1(tokens, gold_tokens), "sentences": f1(sents, gold_sents)}


def train_segmenter(train: Sequence, dev: Sequence, config: SegmenterConfig | None = None,
                    training: SegmenterTraining | None = None, *, log=None) -> tuple[Segmenter, SegmenterVocab, dict]:
    """A segmenter trained on the raw text of ``train`` (CoNLL-U sentences), the state with the
    best dev score (token F1 + sentence F1) kept. Returns (model, vocab, record)."""
    config, training = config or SegmenterConfig(), training or SegmenterTraining()
    torch.manual_seed(training.seed)
    generator = torch.Generator().manual_seed(training.seed)
    vocab, labeled = build_vocab(train)
    dev_labeled = labeled_text(dev) if dev else None
    ids, cats = vocab.encode(labeled.text)
    boundary, multiword = _targets(labeled)
    labeled_multiword = bool(multiword.eq(1).any())  # a treebank without multiword tokens has nothing to learn
    space_id, break_id = vocab.chars.stoi.get(" ", Vocab.UNK), vocab.chars.stoi.get("\n", Vocab.UNK)
    model = Segmenter(config, vocab)
    optimizer = torch.optim.AdamW(model.parameters(), lr=training.lr, weight_decay=0.01)
    window = min(training.window, len(ids))
    steps = training.step_count(len(ids))
    started, best, best_state, history = time.perf_counter(), -1.0, None, []
    stop, step = "steps", 0
    for step in range(1, steps + 1):
        lr = training.lr * min(1.0, step / 100) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        starts = torch.randint(0, len(ids) - window + 1, (training.batch,), generator=generator)
        rows = starts[:, None] + torch.arange(window)
        x, c = ids[rows], cats[rows]
        wrap = (c == _CATEGORY["space"]) & (torch.rand(c.shape, generator=generator) < training.newline_rate)
        x, c = x.masked_fill(wrap, break_id), c.masked_fill(wrap, _CATEGORY["break"])
        model.train()
        b, m = model(x, c, torch.full((training.batch,), window))
        loss = F.cross_entropy(b.flatten(0, 1), boundary[rows].flatten())
        if labeled_multiword:
            loss = loss + F.cross_entropy(m.flatten(0, 1), multiword[rows].flatten(), ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        elapsed = (time.perf_counter() - started) / 60
        last = step == steps or elapsed >= training.minutes
        if dev_labeled is not None and (step % training.eval_every == 0 or last):
            scores = score_texts(model, vocab, [dev_labeled.text])[0]
            f1 = boundary_f1(dev_labeled, scores, vocab)
            history.append({"step": step, "loss": round(loss.item(), 4), **{k: round(100 * v, 2) for k, v in f1.items()}})
            if log:
                log(f"segmenter step {step}: loss {loss.item():.4f}, dev tokens F1 {100 * f1['tokens']:.2f}, "
                    f"sentences F1 {100 * f1['sentences']:.2f} ({elapsed:.1f} min)")
            if f1["tokens"] + f1["sentences"] > best:
                best = f1["tokens"] + f1["sentences"]
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if elapsed >= training.minutes and step < steps:
            stop = "time"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    record = {"steps": step, "stopped_by": stop, "minutes": round((time.perf_counter() - started) / 60, 2),
              "history": history, "rebuilt_sentences": labeled.rebuilt}
    return model, vocab, record


# -- model directory ----------------------------------------------------------------------------

def save_segmenter(directory: str | Path, model: Segmenter, vocab: SegmenterVocab, record: dict | None = None) -> Path:
    from ..checkpoint import save_task_model

    return save_task_model(directory, TASK, model, vocab.to_json(), {"training": record or {}},
                           extra_json={MWT_FILE: vocab.multiword.to_json()})


def load_segmenter(directory: str | Path) -> tuple[Segmenter, SegmenterVocab]:
    from ..checkpoint import CONFIG, CheckpointError, load_task_model, read_model_json

    model, _, vocab, files = load_task_model(directory, TASK, "segmenter", SegmenterConfig.from_json,
                                             SegmenterVocab.from_json, Segmenter)
    table = read_model_json(directory, files.config, MWT_FILE, "multiword table")
    try:
        vocab.multiword = MultiwordTable.from_json(table or {})
    except (TypeError, ValueError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"{Path(directory) / CONFIG}: malformed {MWT_FILE} ({exc})") from None
    return model, vocab

