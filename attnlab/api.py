"""Tagging from Python: load a model, tag text, token lists or CoNLL-U, get objects back.

    >>> import attnlab
    >>> tagger = attnlab.load("en")                        # a shipped model, or a model directory
    >>> doc = tagger("Dr. Smith didn't stay. He left.")    # raw text -> a Document
    >>> print(doc)                                         # CoNLL-U
    >>> tagger.tag([["I", "saw", "a", "saw", "."]])         # pre-tokenized, batched
    >>> tagger.tag_conllu("in.conllu")                     # a path or CoNLL-U text

Raw text is split into sentences, tokens and multiword tokens by the model's segmenter
(``attnlab.tasks.segmenter``). A ``Document`` holds ``TaggedSentence`` objects; a sentence
has its ``tokens`` (``Token``: the surface form, its character offsets into the text, and
the syntactic words of a multiword token) and its ``words`` (``TaggedWord``: form, upos,
xpos, feats, lemma, and the probability of each predicted tag). ``str(doc)`` and
``str(sentence)`` are CoNLL-U. They are named apart from ``attnlab.data.conllu.Sentence`` /
``Token``, which are the columns of a file as strings.

Arguments are checked before any work, with the ranges of the command line
(``attnlab.options``): a value of the wrong type raises TypeError (``True`` is not an
integer here), one out of range ValueError, each naming the argument. Input is held to the
limits of ``attnlab.data.conllu``: a sentence of more than ``MAX_SENTENCE_WORDS`` words, or
text holding a lone surrogate (which UTF-8 cannot write), raises ValueError naming where.

A ``Tagger`` may be shared by threads (its models stay in eval mode; nothing is locked) and
pickles by its model (its name or directory), so it can go to other processes: each loads the
model again. ``tagger.pipe(texts, n_process=2)`` tags an iterable in processes of its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence, overload

if TYPE_CHECKING:
    from .data.conllu import Sentence as ConlluSentence
    from .tasks.tagging import LoadedTagger

# Models that ship with the package: ``MODELS_DIR/<name>/`` (config.json + model.safetensors, as
# ``attnlab train`` writes them). ``load(name)`` and every ``--model`` of the CLI look here first.
MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = "en"  # what `attnlab tag` uses without --model, when it ships

LAYERS = ("upos", "xpos", "feats", "lemma")  # the annotation layers a tagger can predict
# words per forward pass: larger batches are no faster on CPU and hold more memory (the FEATS
# and LEMMA heads score every word against thousands of values)
BATCH_TOKENS = 2048


@dataclass
class TaggedWord:
    """One syntactic word with its predicted tags.

    probs   the probability of each predicted tag, by layer: {"upos": 0.97, "xpos": 0.91}
    top     with ``top_k``: the k most probable tags per layer as (tag, probability), best first
    feats   the features as a dict ({} for none); lemma None when unknown. A model without a
            FEATS or LEMMA layer leaves the CoNLL-U input's values there.
    """

    id: int
    form: str
    upos: str
    xpos: str | None  # None: the model has no XPOS head
    feats: dict[str, str] = field(default_factory=dict)
    lemma: str | None = None
    probs: dict[str, float] = field(default_factory=dict)
    top: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    def column(self, layer: str) -> str:
        """The value of ``layer`` (upos, xpos, feats or lemma) as a CoNLL-U column writes it:
        features as ``Name=Value|...``, ``_`` for none."""
        if layer == "feats":
            return "|".join(k if v == "" else f"{k}={v}" for k, v in self.feats.items()) or "_"
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}; the layers are {', '.join(LAYERS)}")
        value = getattr(self, layer)
        return "_" if value is None else value


@dataclass
class Token:
    """A surface token: its form, the offsets of ``text[start:end]`` into the tagged text (None
    for pre-tokenized input or CoNLL-U without ``TokenRange``), and its syntactic words (several
    for a multiword token such as ``didn't`` -> ``did`` + ``n't``)."""

    form: str
    start: int | None
    end: int | None
    words: list[TaggedWord]

    @property
    def multiword(self) -> bool:
        return len(self.words) > 1


def _token_range(misc: str) -> tuple[int | None, int | None]:
    for item in misc.split("|"):
        if item.startswith("TokenRange="):
            start, _, end = item[len("TokenRange="):].partition(":")
            if start.isdigit() and end.isdigit():
                return int(start), int(end)
    return None, None


@dataclass
class TaggedSentence:
    """A tagged sentence: its ``words`` (iterating over the sentence gives them) and its
    surface ``tokens``; ``str()`` / ``to_conllu()`` give CoNLL-U (a CoNLL-U input's lines with
    only the predicted columns replaced)."""

    words: list[TaggedWord]
    source: ConlluSentence = field(repr=False)  # the untagged sentence: its lines are written back
    layers: tuple[str, ...] = ("upos",)  # the columns the tagger filled in

    @property
    def tokens(self) -> list[Token]:
        """The surface tokens, from the sentence's lines: a multiword token's range line
        groups its words; every other word is a token of its own."""
        out, i = [], 0
        for surface in self.source.surface_tokens:
            words = self.words[i:i + len(surface.words)]
            i += len(surface.words)
            out.append(Token(surface.form, *_token_range(surface.misc), words))
        return out

    @property
    def text(self) -> str | None:
        return self.source.text

    @property
    def sent_id(self) -> str | None:
        return self.source.sent_id

    @property
    def forms(self) -> list[str]:
        return [t.form for t in self.words]

    @property
    def upos(self) -> list[str]:
        return [t.upos for t in self.words]

    @property
    def xpos(self) -> list[str | None]:
        return [t.xpos for t in self.words]

    def column(self, layer: str) -> list[str]:
        """Every word's value of ``layer`` as its CoNLL-U column says it (``TaggedWord.column``)."""
        return [t.column(layer) for t in self.words]

    def __len__(self) -> int:
        return len(self.words)

    def __iter__(self) -> Iterator[TaggedWord]:
        return iter(self.words)

    def __getitem__(self, i: int) -> TaggedWord:
        return self.words[i]

    def to_conllu(self) -> str:
        """This sentence as CoNLL-U, ended by a blank line; "" for a sentence without words,
        which CoNLL-U cannot hold (``tagger("")``), so that the ``str()`` of any list of
        sentences, joined, is CoNLL-U that ``attnlab.data.conllu`` reads back."""
        from .data.conllu import format_conllu

        if not self.words:
            return ""
        columns = {layer: [self.column(layer)] for layer in self.layers}
        return format_conllu([self.source], **columns)

    def __str__(self) -> str:
        return self.to_conllu()


@dataclass
class Document:
    """A tagged text: its ``sentences`` (iterating over the document gives them) and the
    ``text`` they were cut from; ``str()`` / ``to_conllu()`` give CoNLL-U."""

    sentences: list[TaggedSentence]
    text: str = ""

    @property
    def words(self) -> list[TaggedWord]:
        return [w for s in self.sentences for w in s.words]

    @property
    def tokens(self) -> list[Token]:
        return [t for s in self.sentences for t in s.tokens]

    def to_conllu(self) -> str:
        return "".join(s.to_conllu() for s in self.sentences)

    def __str__(self) -> str:
        return self.to_conllu()

    def __len__(self) -> int:
        return len(self.sentences)

    def __iter__(self) -> Iterator[TaggedSentence]:
        return iter(self.sentences)

    def __getitem__(self, i: int) -> TaggedSentence:
        return self.sentences[i]


TaggedToken = TaggedWord  # the name before raw text was segmented: a word


class NoSegmenterError(ValueError):
    """Raw text given to a model that has no segmenter."""


class Tagger:
    """A loaded tagger (``load``): call it on text, ``tag`` token lists, ``tag_conllu`` files."""

    def __init__(self, loaded: LoadedTagger, *, name: str = "", batch_tokens: int = BATCH_TOKENS,
                 segmenter: tuple | None = None, source: str | None = None, device: str = "cpu"):
        from .options import positive_int

        self.loaded = loaded
        self.segmenter = segmenter  # (Segmenter, SegmenterVocab), or None: no raw text
        self.name = name
        self.source = source  # what ``load`` was given (a shipped name or an absolute directory): pickling
        self.device = device
        self.batch_tokens = positive_int.check(batch_tokens, "batch_tokens")
        loaded.model.eval()  # for good: predictions never switch it, so threads share the model
        if segmenter is not None:
            segmenter[0].eval()

    def __reduce__(self):
        """Pickled as the model it was loaded from (``load`` runs again where it is unpickled), so
        that a tagger goes to worker processes without its weights."""
        if self.source is None:
            raise TypeError("this Tagger was not made by attnlab.load, so it cannot be pickled by its model")
        return _load_pickled, (self.source, self.batch_tokens, self.device, self.precision)

    def __repr__(self) -> str:
        return f"Tagger({self.name!r})"

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers this model predicts, in the order of ``LAYERS``: ("upos",), ("upos", "xpos"),
        ("upos", "xpos", "feats", "lemma"), ..."""
        return tuple(self.loaded.model.layers)

    @property
    def precision(self) -> str:
        """The number format the products run in: "fp32" or "bf16" (``load``'s ``precision``)."""
        return self.loaded.precision

    @property
    def can_segment(self) -> bool:
        """Whether the model has a segmenter, so that it takes raw text."""
        return self.segmenter is not None

    # a str is also a Sequence[str]: the first overload wins for it, as intended
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, text: str, *, top_k: int = 0, presegmented: bool = False) -> Document: ...

    @overload
    def __call__(self, text: Sequence[str], *, top_k: int = 0, presegmented: bool = False) -> list[Document]: ...

    def __call__(self, text: str | Sequence[str], *, top_k: int = 0,
                 presegmented: bool = False) -> Document | list[Document]:
        """Tag raw text: the model's segmenter cuts it into sentences, tokens and multiword
        tokens (a blank line ends a paragraph, and so a sentence), and the tagger tags the words.
        Returns a ``Document`` (a list of them for a list of texts); token offsets index the
        text. ``presegmented``: every non-blank line is one sentence (the segmenter still finds
        its tokens). A model without a segmenter raises ``NoSegmenterError``: give it words
        (``tag``) or CoNLL-U (``tag_conllu``)."""
        from .data.conllu import check_encodable
        from .data.rawtext import conllu_sentences
        from .tasks.segmenter import segment

        if isinstance(text, str):
            check_encodable(text, "text")
            return self([text], top_k=top_k, presegmented=presegmented)[0]
        if not isinstance(text, Sequence) or not all(isinstance(t, str) for t in text):
            raise TypeError(f"{type(self).__name__}() takes a str (raw text) or a list of str; "
                            "for token lists call tagger.tag(list of token lists)")
        _check_top_k(top_k)
        for i, t in enumerate(text, 1):
            check_encodable(t, f"text {i}")
        if self.segmenter is None:
            raise NoSegmenterError(f"model {self.name or '?'} has no segmenter, so it cannot cut raw text into "
                                   "sentences and words: give it words (tagger.tag, or attnlab tag --input "
                                   "pretokenized) or CoNLL-U")
        model, vocab = self.segmenter
        docs = []
        for t in text:
            paragraphs = segment(model, vocab, t, lines=presegmented, precision=self.precision)
            docs.append(Document(self._tag(conllu_sentences(t, paragraphs), top_k), t))
        return docs

    def tag(self, sentences: Sequence[Sequence[str]], *, top_k: int = 0,
            probabilities: bool = True) -> list[TaggedSentence]:
        """Tag pre-tokenized sentences, in batches: ``tagger.tag([["I", "saw", "a", "saw", "."]])``.
        ``probabilities=False`` leaves each word's ``probs`` empty (a little faster)."""
        from .data.conllu import Sentence

        _check_top_k(top_k)
        _check_token_lists(sentences)
        return self._tag([Sentence.from_words(list(words)) for words in sentences], top_k, probabilities)

    def tag_conllu(self, source: str | os.PathLike[str], *, top_k: int = 0,
                   name: str | None = None) -> list[TaggedSentence]:
        """Tag the words of CoNLL-U: a path, or the text itself (a str holding a line break, or
        any str when ``name`` is given). Every other line and column is kept; the input's values
        of a layer the model does not predict fill that attribute (e.g. ``feats``, ``lemma``).
        Malformed input raises ``ConlluError`` (a ValueError) naming file:line, the file being
        the path, ``name`` (e.g. "<stdin>") or "<string>"; so does input past the limits of
        ``attnlab.data.conllu.read_text`` (a path is read in pieces: an endless stream is
        refused, not read to its end) or text holding a lone surrogate."""
        from .data.conllu import check_encodable, parse_conllu, read_text

        _check_top_k(top_k)
        if isinstance(source, str) and (name is not None or "\n" in source):
            text, name = source, name or "<string>"
            check_encodable(text, name)
        elif isinstance(source, (str, os.PathLike)):
            text, name = read_text(Path(source))
        else:
            raise TypeError(f"tag_conllu() takes a path or CoNLL-U text, not {type(source).__name__}")
        return self._tag(parse_conllu(text, name), top_k)

    def pipe(self, items: Iterable[str | Sequence[str]], *, batch_size: int = 64, n_process: int = 1,
             top_k: int = 0, presegmented: bool = False) -> Iterator[Document | TaggedSentence]:
        """Tag an iterable, in its order, as a generator: a str is raw text (a ``Document``, as
        ``tagger(text)`` gives it), a list of str one pre-tokenized sentence (a
        ``TaggedSentence``, as ``tagger.tag`` gives it). Items are tagged ``batch_size`` at a
        time; ``n_process`` > 1 tags batches in that many processes (-1: one per usable core),
        each with its own copy of the model and one torch thread, at most two batches ahead per
        process, so an endless iterable is read as it is tagged."""
        from .corpus import Workers
        from .options import positive_int

        positive_int.check(batch_size, "batch_size")
        if not isinstance(n_process, int) or isinstance(n_process, bool) or (n_process < 1 and n_process != -1):
            raise ValueError(f"n_process must be an integer >= 1, or -1 for one per usable core, not {n_process!r}")
        if n_process == -1:
            n_process = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        _check_top_k(top_k)
        if isinstance(items, str):
            raise TypeError("pipe() takes an iterable of texts (or of token lists); for one text call tagger(text)")

        def calls() -> Iterator[tuple[tuple, dict]]:
            batch: list = []
            for item in items:
                if not isinstance(item, (str, Sequence)):
                    raise TypeError(f"pipe() takes texts (str) and token lists (list of str), not {type(item).__name__}")
                batch.append(item)
                if len(batch) == batch_size:
                    yield (batch, top_k, presegmented), {}
                    batch = []
            if batch:
                yield (batch, top_k, presegmented), {}

        with Workers(self, n_process) as workers:
            for done in workers.map_calls("_pipe_batch", calls()):
                yield from done

    def _pipe_batch(self, batch: list, top_k: int, presegmented: bool) -> list:
        """One batch of ``pipe``: texts and token lists, each tagged with its own kind, in order."""
        texts = [i for i, x in enumerate(batch) if isinstance(x, str)]
        lists = [i for i, x in enumerate(batch) if not isinstance(x, str)]
        out: list = [None] * len(batch)
        if texts:
            for i, doc in zip(texts, self([batch[i] for i in texts], top_k=top_k, presegmented=presegmented)):
                out[i] = doc
        if lists:
            for i, sentence in zip(lists, self.tag([batch[i] for i in lists], top_k=top_k)):
                out[i] = sentence
        return out

    def _tag(self, sentences: list[ConlluSentence], top_k: int, probabilities: bool = True) -> list[TaggedSentence]:
        """``sentences`` tagged; without ``probabilities`` the words' ``probs`` stay empty (CoNLL-U
        and TSV output do not show them: normalising every layer's scores costs ~5%)."""
        from .data.conllu import check_sentence_length
        from .tasks.tag_io import tag_sentences
        from .tasks.tagging import paused_gc

        for i, s in enumerate(sentences):
            where = f"{s.source}:{s.start_line}" if s.start_line else f"sentence {i + 1}"
            check_sentence_length(len(s.tokens), where, i)
        if not any(s.tokens for s in sentences):  # nothing for the model to do
            return [TaggedSentence([], s, self.layers) for s in sentences]
        tagged = tag_sentences(self.loaded, sentences, batch_tokens=self.batch_tokens,
                               probabilities=probabilities or top_k > 0, top_k=top_k)
        with paused_gc():  # one object per word: see paused_gc
            return self._sentences(sentences, tagged, top_k)

    def _conllu(self, sentences: list[ConlluSentence]) -> tuple[str, int, int]:
        """``sentences`` tagged, straight to CoNLL-U (the same text as ``_tag``'s sentences'
        ``to_conllu``, without a Python object per word), with the number of words and of
        sentences written (those without words are left out)."""
        from .data.conllu import check_sentence_length, format_conllu
        from .tasks.tag_io import tag_sentences

        for i, s in enumerate(sentences):
            where = f"{s.source}:{s.start_line}" if s.start_line else f"sentence {i + 1}"
            check_sentence_length(len(s.tokens), where, i)
        kept = [s for s in sentences if s.tokens]
        if not kept:
            return "", 0, 0
        found = tag_sentences(self.loaded, kept, batch_tokens=self.batch_tokens).tags
        return (format_conllu(kept, **{layer: found[layer] for layer in self.layers}),
                sum(len(s.tokens) for s in kept), len(kept))

    def _sentences(self, sentences: list[ConlluSentence], tagged, top_k: int) -> list[TaggedSentence]:
        """``TaggedSentence`` objects of ``sentences`` from ``tag_sentences``' predictions."""
        from .data.conllu import parse_feats

        found, probs = tagged.tags, tagged.probs or {}
        out = []
        for i, sentence in enumerate(sentences):
            tokens = []
            for j, word in enumerate(sentence.tokens):
                feats = found["feats"][i][j] if "feats" in found else word.feats
                lemma = found["lemma"][i][j] if "lemma" in found else word.lemma
                tokens.append(TaggedWord(
                    id=word.id, form=word.form, upos=found["upos"][i][j],
                    xpos=found["xpos"][i][j] if "xpos" in found else None,
                    feats=parse_feats(feats), lemma=None if lemma == "_" else lemma,
                    probs={layer: probs[layer][i][j] for layer in probs},
                    top={layer: tagged.top[layer][i][j] for layer in found} if top_k and tagged.top else {},
                ))
            out.append(TaggedSentence(tokens, sentence, self.layers))
        return out


def _check_top_k(top_k: object) -> None:
    from .options import non_negative_int

    non_negative_int.check(top_k, "top_k")


def _check_token_lists(sentences: object) -> None:
    """TypeError with a hint unless ``sentences`` is a list of lists of str; ValueError naming the
    token that holds a lone surrogate (``check_encodable``)."""
    from .data.conllu import check_encodable, is_encodable

    if isinstance(sentences, str):
        raise TypeError("tag() takes a list of token lists; for raw text call tagger(text)")
    if not isinstance(sentences, Sequence):
        raise TypeError(f"tag() takes a list of token lists, not {type(sentences).__name__}")
    for i, words in enumerate(sentences, 1):
        if isinstance(words, str):
            raise TypeError(f"tag() takes a list of token lists, and sentence {i} is a str ({words!r}); "
                            "wrap one sentence in a list: tagger.tag([tokens]); for raw text call tagger(text)")
        if not isinstance(words, Sequence):
            raise TypeError(f"tag(): sentence {i} is a {type(words).__name__}, not a list of str tokens")
        for j, word in enumerate(words, 1):
            if not isinstance(word, str):
                raise TypeError(f"tag(): sentence {i}, token {j} is a {type(word).__name__} ({word!r}), not a str")
        if not is_encodable("".join(words)):  # one look per sentence; then find the token
            for j, word in enumerate(words, 1):
                check_encodable(word, f"tag(): sentence {i}, token {j}")


def shipped_models() -> dict[str, Path]:
    """The models that ship with the package, by name: each directory ``MODELS_DIR/<name>/``
    holding a config.json. Empty when none is installed."""
    if not MODELS_DIR.is_dir():
        return {}
    return {d.name: d for d in sorted(MODELS_DIR.iterdir()) if d.is_dir() and (d / "config.json").is_file()}


def resolve_model(name_or_dir: str | os.PathLike[str]) -> Path:
    """The directory of a model given by a shipped model's name (``shipped_models``) or a path.

    A plain name (a str without a path separator) that names a shipped model means that model,
    even where a directory of the same name exists (reach that one as ``./name``); anything
    else is a path. Neither a shipped model nor an existing path: FileNotFoundError, one line
    listing the shipped names. A path that is a file: ValueError."""
    if not isinstance(name_or_dir, (str, os.PathLike)):
        raise TypeError(f"a model is a shipped model's name or a directory, not {type(name_or_dir).__name__}")
    key = os.fspath(name_or_dir)
    if isinstance(name_or_dir, str) and key and os.sep not in key and "/" not in key:
        shipped = shipped_models()
        if key in shipped:
            return shipped[key]
    directory = Path(key)
    if not key or not directory.exists():
        names = ", ".join(shipped_models()) or "none"
        raise FileNotFoundError(f"{key or repr(key)}: no such model directory, and no shipped model of that name "
                                f"(shipped models: {names})")
    if not directory.is_dir():
        raise ValueError(f"{key}: is not a model directory")
    return directory


def default_model() -> Path:
    """The shipped model ``DEFAULT_MODEL``, for commands given no model; FileNotFoundError
    naming the shipped models when it is not installed."""
    shipped = shipped_models()
    if DEFAULT_MODEL not in shipped:
        names = ", ".join(shipped) or "none"
        raise FileNotFoundError(f"no --model given and the default model {DEFAULT_MODEL!r} is not installed; give "
                                f"--model a model directory or a shipped model's name (shipped models: {names})")
    return shipped[DEFAULT_MODEL]


def load(name_or_dir: str | os.PathLike[str], *, batch_tokens: int = BATCH_TOKENS, threads: int | None = None,
         device: str = "cpu", precision: str = "auto") -> Tagger:
    """A ``Tagger`` from a shipped model's name (``shipped_models``: ``load("en")``) or a model
    directory (``attnlab train --out``), as ``resolve_model`` finds it.

    A name that is neither raises FileNotFoundError listing the shipped names; a directory that
    is not a tagger, or is damaged, raises ``attnlab.checkpoint.CheckpointError`` (a ValueError)
    naming the file. ``batch_tokens`` (words per forward pass, an integer >= 1) is checked
    first: TypeError or ValueError naming it. ``threads``: torch's threads for this process
    (``torch.set_num_threads``, which is process-wide; None leaves torch's choice).
    ``device``: "cpu", or "cuda" / "cuda:N" where torch sees a GPU (ValueError otherwise).
    ``precision``: "auto" (bf16 where the CPU has it natively, fp32 elsewhere), "fp32" or
    "bf16" (matrix products in bfloat16: about twice as fast on a CPU with AVX-512 BF16 or
    AMX; on six treebanks every layer's accuracy on gold tokens within 0.04 points of fp32,
    RESULTS.md);
    see ``attnlab.precision``."""
    from .options import positive_int
    from .precision import resolve
    from .tasks.segmenter import DIRECTORY, load_segmenter
    from .tasks.tagging import load_tagger

    if not isinstance(name_or_dir, (str, os.PathLike)):
        raise TypeError(f"load() takes a model name or directory, not {type(name_or_dir).__name__}")
    positive_int.check(batch_tokens, "batch_tokens")
    if threads is not None:
        positive_int.check(threads, "threads")
    dev = _device(device)
    runs_in = resolve(precision, str(dev))
    directory = resolve_model(name_or_dir)
    shipped = isinstance(name_or_dir, str) and shipped_models().get(name_or_dir) == directory
    source = os.fspath(name_or_dir) if shipped else str(directory.resolve())
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    segmenter = load_segmenter(directory / DIRECTORY) if (directory / DIRECTORY / "config.json").exists() else None
    loaded = load_tagger(directory)
    loaded.precision = runs_in
    if dev.type != "cpu":
        loaded.model.to(dev)
        if segmenter is not None:
            segmenter[0].to(dev)
    return Tagger(loaded, name=os.fspath(name_or_dir), batch_tokens=batch_tokens, segmenter=segmenter,
                  source=source, device=str(dev))


def _device(device: object):
    """``device`` as a torch.device the tagger can run on: ValueError naming it otherwise."""
    import torch

    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str such as 'cpu' or 'cuda', not {type(device).__name__}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {device!r} is not a device torch knows (use 'cpu' or 'cuda')") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: torch sees no CUDA GPU on this machine (torch.cuda.is_available() "
                         "is False); use device='cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: attnlab runs on 'cpu' and 'cuda'")
    return dev


def _load_pickled(source: str, batch_tokens: int, device: str, precision: str) -> Tagger:
    return load(source, batch_tokens=batch_tokens, device=device, precision=precision)
