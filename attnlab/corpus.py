"""Tagging a corpus: any amount of text, in bounded memory, in input order, on every core.

    reader = BlockReader(open("corpus.txt", "rb"), "corpus.txt", "auto")
    for block in reader:                        # whole paragraphs / sentences, ~BLOCK_CHARS each
        result = tag_block(tagger, block, "conllu")
    tag_stream(tagger, "corpus.txt", "out.conllu", workers=2)   # what `attnlab tag` runs

**Blocks.** The input is read in blocks that can be tagged on their own: raw text is cut at
the first paragraph break (a blank line) past ``BLOCK_CHARS`` characters, a sentence per line
(``presegmented``, ``pretokenized``) at the first line end past it, CoNLL-U at the first blank
line (a sentence's end) past it. Where a block is cut depends only on the text, never on how
it was read (a pipe or a file, a fast or slow disk), so the output is the same however it is
read and however many processes tag it. A block of raw text carries the text before and after
it (``CONTEXT_CHARS``), which the segmenter reads as context, so its scores are those
of the whole input; character offsets (``TokenRange``), line numbers in errors and sentence
numbers (``# sent_id``) count from the start of the input.

The block size (``block_chars``, ``attnlab tag --block-chars``; CoNLL-U blocks are
``CONLLU_BLOCK_FACTOR`` times longer, as its words take that many more characters) changes memory and how soon
output appears, not the output, except in one case: a paragraph of raw text longer than the
block with no paragraph break in the next ``MAX_BLOCK_CHARS`` characters (4 Mi, or twice the
block size if that is more), or before the input ends, is cut where a sentence most likely
ends (where the block has a paragraph break, it ends at its last one instead): at the first line break that follows
``.``, ``!``, ``?`` (or their full-width and other sentence-final forms) within twice
``BLOCK_CHARS`` (a file with a sentence per line), else after the first run of white space that
follows one of them past ``BLOCK_CHARS``, else the first line break, else the first white
space, else (no white space at all) at ``MAX_BLOCK_CHARS``; the next block goes on with the
same paragraph, and the cut ends a sentence. So no length of paragraph is refused or
truncated, and memory stays bounded whatever the input.

**Output.** ``tag_stream`` writes each block's sentences as soon as the blocks before it are
written. To a regular file, the output grows in ``OUT.part`` and is renamed to ``OUT`` when
complete (an earlier ``OUT`` stays until then); ``OUT.part.json`` records, after each block,
how much of the input and of the output is complete, so that a run that was stopped (killed,
a full disk, a power cut) continues with ``resume=True`` (``attnlab tag --resume``) from the
last complete block and writes the same bytes as an uninterrupted run. ``OUT.part`` only ever
ends in a whole block, and so in whole sentences, once the run has stopped (a block is written
with one call; a kill that lands inside the call is undone by the resume, which cuts the file
back to what the state records).

**Processes.** ``workers`` > 1 starts that many processes (``spawn``), each with its own copy
of the model and one torch thread, fed blocks in input order, at most two blocks ahead per
worker (memory stays bounded); their results are written in input order. What tags the
blocks is a ``BlockMapper`` (``submit`` a block, get a future; a ``window`` of blocks in
flight): ``Workers`` on this machine, ``attnlab.distributed.ClusterWorkers`` on a Dask
cluster; reading, numbering and writing are the same code for every one of them. Many files
(``tag_files``) go through it as one stream of blocks, the next file read while the last
blocks of the one before are tagged.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import signal
import sys
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Generator, Iterable, Iterator, Protocol

from .data.conllu import MAX_LINE_BYTES, ConlluError, SentenceTooLong, _check_lines
from .errors import UserError

BLOCK_CHARS = 1 << 15  # a block ends at the first paragraph / sentence / line end past this many characters
CONLLU_BLOCK_FACTOR = 8  # CoNLL-U takes about 8 times the characters of raw text per word: its blocks are this much longer
MAX_BLOCK_CHARS = 1 << 22  # raw text without a paragraph break in this many characters is cut (module docstring)
READ_BYTES = 1 << 20  # bytes read at once
STATE_VERSION = 3
KINDS = ("text", "presegmented", "pretokenized", "conllu")

_PARAGRAPH = re.compile(r"\n[^\S\n]*\n\s*")  # as the segmenter's: a blank line and the white space after it
_LINE_END = re.compile(r"\n")
_SENTENCE_END = re.compile(r"\n\r?\n")  # CoNLL-U: a blank line after a sentence (CRLF files too)
_AFTER_LINE_STOP = re.compile(r"[.!?\u0589\u061f\u06d4\u0964\u0965\u3002\uff01\uff1f\uff0e][\"'\u2019\u201d)\]]*[^\S\n]*\n\s*")
_AFTER_FULL_STOP = re.compile(r"[.!?\u0589\u061f\u06d4\u0964\u0965\u3002\uff01\uff1f\uff0e][\"'\u2019\u201d)\]]*\s+")
_AFTER_LINE = re.compile(r"\n\s*")
_AFTER_SPACE = re.compile(r"\s+")
_SENT_ID = {"conllu": re.compile(r"^# sent_id = ([0-9]+)$", re.M),
            "json": re.compile(r'^\{"sent_id": "([0-9]+)"', re.M)}


@dataclass
class Block:
    """One piece of the input that is tagged on its own (module docstring).

    ``text`` is the block; ``before`` / ``after`` up to CONTEXT_CHARS characters around it (raw text);
    ``offset`` the character offset of ``text`` in the input, ``first_line`` its first line's
    number, ``end_bytes`` the input's bytes up to the block's end; ``new_paragraph`` False when
    the block continues a paragraph that was too long for one block."""

    index: int
    kind: str
    name: str
    text: str
    offset: int = 0
    first_line: int = 1
    end_bytes: int = 0
    before: str = ""
    after: str = ""
    new_paragraph: bool = True


@dataclass
class BlockResult:
    """A tagged block: its output (``text``) and what it holds."""

    index: int
    text: str
    words: int
    sentences: int
    end_bytes: int


# -- reading ---------------------------------------------------------------------------------

class NotText(ConlluError):
    """Input that is not UTF-8 text (bad bytes, a NUL byte), named by file:line."""


@dataclass
class ReaderState:
    """Where a ``BlockReader`` stands between two blocks: enough to go on from there (resume)."""

    index: int = 0
    offset: int = 0  # characters before the next block
    line: int = 1  # the next block's first line
    bytes: int = 0  # input bytes before the next block
    before: str = ""  # the end of the previous block (the segmenter's left context)
    new_paragraph: bool = True
    kind: str = "auto"


class BlockReader:
    """The blocks of a byte stream (``name`` in errors) read as ``kind`` (``auto``: CoNLL-U when
    ``attnlab.tasks.tag_io.detect_input`` finds it in the first block's text, else raw text).

    Refused in one line naming ``name:line``: bytes that are not UTF-8, a NUL byte, a line of
    CoNLL-U of more than MAX_LINE_BYTES bytes, a line of more than MAX_BLOCK_CHARS characters
    where a line is a sentence. ``state`` continues a stream that was read up to that point
    (the stream must be positioned at ``state.bytes``)."""

    def __init__(self, stream: BinaryIO, name: str, kind: str = "auto", *, state: ReaderState | None = None,
                 context: int | None = None, block_chars: int | None = None):
        from .data.rawtext import CONTEXT_CHARS

        if kind not in ("auto", *KINDS):
            raise ValueError(f"unknown input kind {kind!r}; the kinds are auto, {', '.join(KINDS)}")
        self.stream, self.name = stream, name
        self.state = state or ReaderState(kind=kind)
        if state is not None and kind != "auto" and state.kind != kind:
            raise ValueError(f"the reader's state is for {state.kind}, not {kind}")
        self.context = CONTEXT_CHARS if context is None else context
        self.block_chars = BLOCK_CHARS if block_chars is None else block_chars
        self.max_block_chars = max(MAX_BLOCK_CHARS, 2 * self.block_chars)
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buffer = ""
        self._eof = False
        self._lines_read = self.state.line  # the line the next byte read is on
        self._line_bytes = 0  # bytes of that line read so far (CoNLL-U's line limit)
        self._paragraph_ended = True
        self.saved: dict[int, ReaderState] = {}  # the state after each block handed out and not yet written

    def __iter__(self) -> Iterator[Block]:
        return self

    def __next__(self) -> Block:
        cut = self._find_cut()
        while cut is None:
            self._fill()
            cut = self._find_cut()
        if cut == 0:
            raise StopIteration
        text = self._buffer[:cut]
        s = self.state
        raw = s.kind in ("text", "presegmented")
        end_bytes = s.bytes + len(text.encode("utf-8", "surrogatepass"))
        block = Block(s.index, s.kind, self.name, text, s.offset, s.line, end_bytes,
                      before=s.before if raw else "", after=self._buffer[cut:cut + self.context] if raw else "",
                      new_paragraph=s.new_paragraph)
        self._buffer = self._buffer[cut:]
        s.index += 1
        s.offset += len(text)
        s.line += text.count("\n")
        s.bytes = end_bytes
        s.before = (s.before + text)[-self.context:] if raw else ""
        s.new_paragraph = self._paragraph_ended
        self.saved[block.index] = ReaderState(**asdict(s))
        return block

    # where the next block ends: None (read more), 0 (the input is done) or an index into the buffer
    def _find_cut(self) -> int | None:
        buf, eof = self._buffer, self._eof
        self._paragraph_ended = True
        if not buf:
            return 0 if eof else None
        kind = self.state.kind
        block, most = self.block_chars, self.max_block_chars
        if kind == "auto" and not eof and len(buf) < block + self.context:
            return None  # detect_input reads the first block
        if kind == "auto":
            from .tasks.tag_io import detect_input

            kind = detect_input(buf[:block + self.context], self.name) if not eof else detect_input(buf, self.name)
            self.state.kind = kind
        if kind == "conllu":
            block = min(block * CONLLU_BLOCK_FACTOR, most)
        if len(buf) <= block:
            return len(buf) if eof else None
        pattern = {"text": _PARAGRAPH, "conllu": _SENTENCE_END}.get(kind, _LINE_END)
        for m in pattern.finditer(buf, block):
            if eof or m.end() + (self.context if kind in ("text", "presegmented") else 0) < len(buf):
                return m.end()
            return None
        if eof and kind != "text":
            return len(buf)
        if not eof and len(buf) < most + self.context:
            return None
        if kind != "text":
            line = self.state.line + buf.count("\n", 0, block)
            what = "a sentence" if kind != "conllu" else "a CoNLL-U sentence"
            raise UserError(f"{self.name}:{line}: {what} of more than {most:,} characters, the most attnlab "
                            f"reads as one; is the input really {kind}? (--input text reads raw text of any length)")
        # raw text with no paragraph break in the next MAX_BLOCK_CHARS characters (or before the
        # input ends, which may be sooner): the block ends at its last paragraph break, else (one
        # paragraph longer than the block) where a sentence most likely ends
        end = min(most, len(buf))
        last = None
        for last in _PARAGRAPH.finditer(buf, 0, block):
            pass
        if last is not None and last.start() > 0:
            return last.end()
        for forced, until in ((_AFTER_LINE_STOP, min(2 * block, end)), (_AFTER_FULL_STOP, end), (_AFTER_LINE, end),
                              (_AFTER_SPACE, end)):
            found = forced.search(buf, block, until)
            if found and found.end() < until:
                self._paragraph_ended = False
                return found.end()
        if eof and len(buf) <= most:
            return len(buf)
        self._paragraph_ended = False
        return most

    def _fill(self) -> None:
        if self._eof:
            return
        chunk = self.stream.read(READ_BYTES)
        if not chunk:
            self._eof = True
            try:
                self._buffer += self._decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                self._bad_bytes(exc.object, exc.start, "not valid UTF-8 (the input ends inside a character, "
                                                       "at column {column})")
            return
        held = self._decoder.getstate()[0]
        try:
            text = self._decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            self._bad_bytes(exc.object, exc.start, "not valid UTF-8 (byte 0x{byte:02x} at column {column})")
        nul = chunk.find(b"\0")
        if nul >= 0:
            self._bad_bytes(held + chunk, len(held) + nul, "NUL byte at column {column} (binary data, not text)")
        if self.state.kind == "conllu" or (self.state.kind == "auto" and self.name.endswith(".conllu")):
            self._lines_read, self._line_bytes = _check_lines(chunk, self.name, self._lines_read, self._line_bytes,
                                                              MAX_LINE_BYTES)
        else:
            self._lines_read += chunk.count(b"\n")
        self._buffer += text

    def _bad_bytes(self, data: bytes, at: int, what: str) -> None:
        """Refuse the input at byte ``at`` of ``data`` (the bytes being decoded, which follow the
        buffer's text), naming its line and column."""
        line = self.state.line + self._buffer.count("\n") + data.count(b"\n", 0, at)
        start = data.rfind(b"\n", 0, at) + 1
        column = len(data[start:at].decode("utf-8", "replace")) + 1
        if start == 0:
            column += len(self._buffer) - (self._buffer.rfind("\n") + 1)
        raise NotText(f"{self.name}:{line}: {what.format(byte=data[at] if at < len(data) else 0, column=column)}")


# -- tagging ---------------------------------------------------------------------------------

def tag_block(tagger, block: Block, fmt: str = "conllu") -> BlockResult:
    """Tag ``block`` with ``tagger`` (an ``attnlab.api.Tagger``) and format it as ``fmt``
    (conllu, tsv or json; ``attnlab.tasks.tag_io.format_output``). Raw text is numbered from
    sentence 1 (``renumber`` moves it on); errors name the input's file and line."""
    from .data.conllu import SentenceTooLong, Sentence, parse_conllu, split_lines
    from .tasks.tag_io import format_output

    probabilities = fmt == "json"  # the only format that writes them
    if block.kind == "conllu":
        sentences = parse_conllu(block.text, block.name, require_sentences=False, first_line=block.first_line)
    elif block.kind == "pretokenized":
        numbered = [(n, line.split()) for n, line in enumerate(split_lines(block.text), block.first_line)
                    if line.strip()]
        try:
            tagged = tagger.tag([words for _, words in numbered], probabilities=probabilities)
        except SentenceTooLong as exc:  # sentence i is the i-th non-blank line
            raise UserError(f"{block.name}:{numbered[exc.index][0]}: {exc.reason}") from None
        sentences = None
    else:
        sentences = segment_block(tagger, block)
    if sentences is not None and fmt == "conllu":  # the fast way: no Python object per word
        text, words, count = tagger._conllu(sentences)
        return BlockResult(block.index, text, words, count, block.end_bytes)
    if sentences is not None:
        tagged = tagger._tag(sentences, 0, probabilities)
    kept = [s for s in tagged if len(s)]
    return BlockResult(block.index, format_output(tagged, tagger.layers, fmt), sum(len(s) for s in kept), len(kept),
                       block.end_bytes)


def segment_block(tagger, block: Block) -> list:
    """The CoNLL-U sentences (untagged) of a block of raw text, by the tagger's segmenter."""
    from .data.rawtext import conllu_sentences
    from .tasks.segmenter import segment

    if not tagger.can_segment:
        raise UserError(f"{block.name}: model {tagger.name} has no segmenter, so it cannot read raw text; give "
                        "--input pretokenized (words separated by spaces, a sentence per line) or CoNLL-U")
    model, vocab = tagger.segmenter
    paragraphs = segment(model, vocab, block.text, lines=block.kind == "presegmented", before=block.before,
                         after=block.after, offset=block.offset, precision=tagger.precision)
    return conllu_sentences(block.text, paragraphs, offset=block.offset, new_document=block.index == 0,
                            new_paragraph=block.new_paragraph or block.kind == "presegmented")


def renumber(text: str, fmt: str, kind: str, before: int) -> str:
    """Block output with its sentences numbered on from ``before`` sentences of the input
    (``sent_id`` is written by attnlab for raw text only; CoNLL-U input keeps its own)."""
    if before == 0 or kind not in ("text", "presegmented") or fmt not in _SENT_ID:
        return text
    return _SENT_ID[fmt].sub(lambda m: m.group(0).replace(m.group(1), str(int(m.group(1)) + before)), text)


# -- processes -------------------------------------------------------------------------------

class BlockMapper(Protocol):
    """Where blocks are tagged: ``submit(block, fmt)`` starts tagging one and returns a future
    (``result()`` gives its ``BlockResult`` or raises its error; ``cancel()``), and ``window`` is
    how many blocks may be in flight at once (memory stays bounded). ``tag_stream`` and
    ``tag_files`` take one as ``workers``: ``Workers`` (this process, or processes on this
    machine) and ``attnlab.distributed.ClusterWorkers`` (a Dask cluster)."""

    @property
    def window(self) -> int: ...

    def submit(self, block: Block, fmt: str) -> Any: ...


class WorkersLost(UserError):
    """The processes that tag are gone (a broken process pool, a lost cluster): nothing more
    can be tagged in this run."""


_WORKER_TAGGER = None


def _start_worker(tagger) -> None:
    """A worker process: one torch thread, and the tagger (unpickled: loaded from its model),
    or an ``attnlab.distributed.ModelRef`` that the first block loads (so a damaged model
    is said by that block's error, not by a broken pool)."""
    import torch

    global _WORKER_TAGGER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent stops the pool
    torch.set_num_threads(1)
    _WORKER_TAGGER = tagger


def _worker_tagger():
    global _WORKER_TAGGER
    if hasattr(_WORKER_TAGGER, "load_tagger"):  # a ModelRef (not imported here: it imports this module)
        _WORKER_TAGGER = _WORKER_TAGGER.load_tagger(threads=1)
    return _WORKER_TAGGER


def _worker_tag(block: Block, fmt: str) -> BlockResult:
    return tag_block(_worker_tagger(), block, fmt)


def _worker_call(method: str, args: tuple, kwargs: dict):
    return getattr(_worker_tagger(), method)(*args, **kwargs)


def _done(function: Callable, *args) -> Future:
    """A future that already holds ``function(*args)``: its value or its error."""
    future: Future = Future()
    try:
        future.set_result(function(*args))
    except Exception as exc:
        future.set_exception(exc)
    return future


class Workers:
    """``n`` processes, each with its own copy of ``tagger`` (pickled by its model: see
    ``attnlab.api.Tagger.__reduce__``; or a ``ModelRef``, which spares this process loading a
    model it does not run) and one torch thread; ``n`` = 1 runs in this process (a loaded
    tagger only). A ``BlockMapper``: at most two blocks ahead per process."""

    def __init__(self, tagger, n: int = 1):
        self.tagger, self.n = tagger, n
        self._pool = None
        if n > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_worker, initargs=(tagger,))

    @property
    def window(self) -> int:
        return 1 if self._pool is None else 2 * self.n

    def submit(self, block: Block, fmt: str) -> Future:
        """Tag ``block`` in a worker process (in this process, at once, when ``n`` = 1)."""
        if self._pool is None:
            return _done(tag_block, self.tagger, block, fmt)
        return self._pool.submit(_worker_tag, block, fmt)

    def map_blocks(self, blocks: Iterable[Block], fmt: str) -> Iterator[BlockResult]:
        """Tagged blocks in input order."""
        return map_blocks(self, blocks, fmt)

    def map_calls(self, method: str, calls: Iterable[tuple[tuple, dict]]) -> Iterator:
        """``getattr(tagger, method)(*args, **kwargs)`` for each call, results in order."""
        if self._pool is None:
            return (getattr(self.tagger, method)(*a, **k) for a, k in calls)
        pool = self._pool
        return ordered(lambda c: pool.submit(_worker_call, method, *c), calls, 2 * self.n)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def map_blocks(mapper: BlockMapper, blocks: Iterable[Block], fmt: str) -> Iterator[BlockResult]:
    """``blocks`` tagged by ``mapper``, in input order, at most ``mapper.window`` in flight."""
    return ordered(lambda b: mapper.submit(b, fmt), blocks, mapper.window)


def ordered_futures(submit: Callable, items: Iterable, window: int) -> Generator[tuple[Any, Any], None, None]:
    """``(item, submit(item))`` in the order of ``items``, with at most ``window`` submitted and
    not yet taken (the items are read no faster than the futures are taken); the futures still
    pending when the generator is closed are cancelled."""
    pending: deque = deque()
    try:
        for item in items:
            pending.append((item, submit(item)))
            if len(pending) >= window:
                yield pending.popleft()
        while pending:
            yield pending.popleft()
    finally:
        for _, future in pending:
            future.cancel()


def result_of(future) -> Any:
    """``future.result()``, a broken process pool said in one line (``WorkersLost``)."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return future.result()
    except BrokenProcessPool:
        raise WorkersLost("a worker process died (out of memory, or killed); rerun with fewer --workers "
                          "(and --resume to keep what is done)") from None


def ordered(submit: Callable, items: Iterable, window: int) -> Iterator:
    """Results of ``submit(item)`` futures in the order of ``items``, with at most ``window``
    submitted and not yet taken (the items are read no faster than the results are taken)."""
    futures = ordered_futures(submit, items, window)
    try:
        for _, future in futures:
            yield result_of(future)
    finally:
        futures.close()


def default_workers(size: int | None) -> tuple[int, str]:
    """How many processes to tag ``size`` bytes of input with (None: unknown, e.g. stdin) and
    why: one per usable core, unless the input is small enough that starting the processes
    (about 2 s each: Python, torch and the model) costs more than they save."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores == 1:
        return 1, "one usable CPU core"
    if size is None:
        return 1, "input of unknown size (stdin): give --workers to use more processes"
    if size < SMALL_INPUT_BYTES:
        return 1, f"input under {SMALL_INPUT_BYTES // 2**20} MiB: starting worker processes would cost more than they save"
    return cores, f"one per usable CPU core ({cores})"


SMALL_INPUT_BYTES = 4 << 20


# -- writing ---------------------------------------------------------------------------------

def part_paths(out: Path) -> tuple[Path, Path]:
    """Where the output grows (``OUT.part``) and what records how far it got (``OUT.part.json``)."""
    return out.with_name(out.name + ".part"), out.with_name(out.name + ".part.json")


@dataclass
class RunState:
    """What ``OUT.part.json`` holds: the run it belongs to (``key``) and how far it got."""

    key: dict
    reader: ReaderState
    output_bytes: int = 0
    sentences: int = 0
    words: int = 0


class Sink:
    """Where tagged blocks go: stdout, a device or FIFO (plain writes), or a regular file
    (``OUT.part``, renamed to ``OUT`` by ``finish``; module docstring)."""

    def __init__(self, out, inputs: list, key: dict, *, resume: bool = False):
        from .output import check_output, is_stdout

        check_output(out, inputs)
        self.out, self.key = out, key
        self.state_path: Path | None = None
        self.part: Path | None = None
        self.resumed: RunState | None = None
        self.written = False
        self._file = None
        if is_stdout(out):
            sys.stdout.flush()
            self._file = getattr(sys.stdout, "buffer", None)
            return
        path = Path(out)
        if path.exists() and not path.is_file():  # a device or a FIFO
            self._file = open(path, "ab", buffering=0)
            return
        path = Path(os.path.realpath(path))  # a symbolic link: the part file grows beside the file it names
        self.part, self.state_path = part_paths(path)
        for p in (self.part, self.state_path):
            check_output(p, inputs)
        if resume:
            self.resumed = self._load_state()
        try:
            if self.resumed is not None:
                self._file = open(self.part, "r+b", buffering=0)
                self._file.truncate(self.resumed.output_bytes)
                self._file.seek(self.resumed.output_bytes)
            else:
                self._file = open(self.part, "wb", buffering=0)
        except OSError as exc:
            raise UserError(f"{self.out}: cannot write ({exc.strerror or exc})") from None

    def _load_state(self) -> RunState | None:
        assert self.state_path is not None and self.part is not None
        if not self.state_path.is_file() or not self.part.is_file():
            return None
        try:
            raw = json.loads(self.state_path.read_text(encoding="utf-8"))
            state = RunState(raw["key"], ReaderState(**raw["reader"]), raw["output_bytes"], raw["sentences"],
                             raw["words"])
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"{self.state_path}: not a state attnlab wrote; delete it (and {self.part.name}) to start "
                            "over") from None
        if state.key != self.key:
            changed = sorted(k for k in set(state.key) | set(self.key) if state.key.get(k) != self.key.get(k))
            raise UserError(f"{self.out}: cannot resume: {', '.join(changed)} changed since the stopped run; run "
                            "without --resume to start over")
        if self.part.stat().st_size < state.output_bytes:
            raise UserError(f"{self.part}: shorter than its state records; run without --resume to start over")
        return state

    def write(self, data: str, state: RunState) -> None:
        from .output import is_stdout

        raw = data.encode("utf-8")
        self.written = True
        try:
            if self._file is None:
                sys.stdout.write(data)
                sys.stdout.flush()
            else:
                self._file.write(raw)
                if hasattr(self._file, "flush"):
                    self._file.flush()
        except OSError as exc:
            if is_stdout(self.out):  # the command line reports stdout's errors (and a closed pipe) itself
                raise
            raise UserError(f"{self.out}: cannot write ({exc.strerror or exc})") from None
        if self.state_path is not None:
            from .output import write_output

            state.output_bytes += len(raw)
            write_output(self.state_path, json.dumps({**asdict(state), "reader": asdict(state.reader)}))
        elif self._file is not None:
            state.output_bytes += len(raw)

    def finish(self) -> None:
        """The output is complete: ``OUT.part`` becomes ``OUT``."""
        if self.part is None or self.state_path is None or self._file is None:
            return
        try:
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.part, os.path.realpath(self.out))
            self.state_path.unlink(missing_ok=True)
        except OSError as exc:
            raise UserError(f"{self.out}: cannot write ({exc.strerror or exc})") from None

    def abandon(self) -> None:
        """The run stops before the end: ``OUT.part`` and its state stay for ``--resume`` when they
        hold a block, and are removed when they do not (an error before the first block)."""
        if self.part is not None and self.state_path is not None and self._file is not None and not self._file.closed:
            self._file.close()
            if not self.written and not (self.resumed and self.resumed.output_bytes):
                self.part.unlink(missing_ok=True)
                self.state_path.unlink(missing_ok=True)

    def close(self) -> None:
        if self.part is not None and self._file is not None and not self._file.closed:
            self._file.close()


# -- one input, streamed -----------------------------------------------------------------------

@dataclass
class Totals:
    """What a run tagged: words, sentences, seconds."""

    words: int = 0
    sentences: int = 0
    seconds: float = 0.0
    files: int = 0
    skipped: int = 0
    failed: list = field(default_factory=list)

    @property
    def words_per_s(self) -> float:
        return self.words / max(self.seconds, 1e-9)

    def line(self) -> str:
        return (f"tagged {self.sentences:,} sentences, {self.words:,} words in {self.seconds:.2f} s "
                f"({self.words_per_s:,.0f} words/s)")


def input_key(path: str, tagger, fmt: str, kind: str, block_chars: int = BLOCK_CHARS) -> dict:
    """What a resumed run must share with the stopped one: the input (path, size, time), the
    model, the output format and input kind, and the block rules."""
    st = os.stat(path)
    return {"input": os.path.realpath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "model": str(getattr(tagger, "source", tagger.name)), "format": fmt, "kind": kind,
            "blocks": [block_chars, MAX_BLOCK_CHARS, STATE_VERSION]}


class _Stop(Exception):
    """SIGTERM: stop after the block being written (so that the output ends in whole sentences)."""


class _Run:
    """One input being tagged into one output: its ``Sink``, its ``BlockReader`` (``reader``),
    how far it got and its ``Totals``. ``tag_stream`` runs one; ``tag_files`` has the next
    file's run reading while the blocks of the one before are still being tagged."""

    def __init__(self, tagger, source: str, out, *, fmt: str, kind: str, resume: bool, inputs: list | None = None,
                 progress: bool = False, bar=None, block_chars: int = BLOCK_CHARS):
        from .output import is_stdout

        if resume and (source == "-" or is_stdout(out) or (Path(out).exists() and not Path(out).is_file())):
            raise UserError("--resume needs an input file and an output file (-o FILE), not stdin or stdout")
        self.fmt, self.kind, self.source = fmt, kind, source
        self.name = "<stdin>" if source == "-" else source
        key = input_key(source, tagger, fmt, kind, block_chars) if source != "-" else {}
        self.sink = Sink(out, [source, *(inputs or [])], key, resume=resume)
        self.state = self.sink.resumed or RunState(key, ReaderState(kind=kind))
        self.error: BaseException | None = None  # set when the run failed: its blocks still in flight are dropped
        try:
            self.stream, size = self._open()
        except BaseException:
            self.sink.abandon()
            raise
        self.totals = Totals(words=self.state.words, sentences=self.state.sentences)
        self.bar, self._own_bar = bar, bar is None
        if self._own_bar:
            self.bar = _progress(progress, size, self.state.reader.bytes, self.name)
        elif self.state.reader.bytes:
            bar.update(self.state.reader.bytes)
        self._done_bytes = self.state.reader.bytes
        self.start = time.perf_counter()
        self.reader = BlockReader(self.stream, self.name, kind, state=self.state.reader, block_chars=block_chars)

    def _open(self) -> tuple[Any, int | None]:
        source = self.source
        if source == "-":
            from .data.conllu import _TextAsBytes

            stdin: Any = getattr(sys.stdin, "buffer", None) or _TextAsBytes(sys.stdin)
            return stdin, None
        try:
            stream = open(source, "rb")
        except FileNotFoundError:
            raise UserError(f"{source}: no such file") from None
        except IsADirectoryError:
            raise UserError(f"{source}: is a directory (a directory of files needs -o DIRECTORY)") from None
        except OSError as exc:
            raise UserError(f"{source}: cannot read ({exc.strerror or exc})") from None
        size = os.fstat(stream.fileno()).st_size if os.path.isfile(source) else None
        stream.seek(self.state.reader.bytes)
        return stream, size

    def take(self, result: BlockResult) -> None:
        """Write the next tagged block (blocks come in input order), its sentences numbered on."""
        state, totals = self.state, self.totals
        text = renumber(result.text, self.fmt, self.reader.state.kind, state.sentences)
        state.reader = self.reader.saved.pop(result.index)  # the reader may be blocks ahead
        state.sentences += result.sentences
        state.words += result.words
        self.sink.write(text, state)
        totals.words, totals.sentences = state.words, state.sentences
        if self.bar is not None:
            self.bar.update(result.end_bytes - self._done_bytes)
            self._done_bytes = result.end_bytes
            self.bar.set_postfix_str(f"{totals.words:,} words, "
                                     f"{totals.words / (time.perf_counter() - self.start):,.0f} words/s", refresh=False)

    def finish(self) -> Totals:
        """Every block is written: the output is complete (``Sink.finish``)."""
        if self.totals.words == 0:
            self.sink.abandon()
            raise UserError(f"{self.name}: no sentences to tag")
        self.sink.finish()
        self.totals.seconds = time.perf_counter() - self.start
        return self.totals

    def fail(self, exc: BaseException) -> BaseException:
        """The run stops on ``exc``: what is written stays for ``--resume`` (``Sink.abandon``); the
        error to raise (CoNLL-U that may have been raw text says how to read it as text)."""
        self.error = exc
        self.sink.abandon()
        if (isinstance(exc, ConlluError) and self.kind == "auto" and not self.name.endswith(".conllu")
                and not isinstance(exc, (SentenceTooLong, NotText))):
            return UserError(f"{exc} (read as CoNLL-U for its tab-separated word lines; --input text tags it "
                             "as text)")
        return exc

    def stopped(self) -> SystemExit:
        """SIGTERM: the output ends in whole sentences; the exit to raise."""
        self.sink.abandon()
        print(f"attnlab tag: stopped (SIGTERM) after {self.totals.sentences:,} sentences, which are written whole"
              + ("; attnlab tag --resume goes on from there" if self.sink.part else ""), file=sys.stderr)
        return SystemExit(128 + signal.SIGTERM)

    def close(self) -> None:
        """Close the input (and the progress bar if the run has its own); the output is closed by
        ``finish``, ``fail``, ``stopped`` or ``discard``."""
        if self.bar is not None and self._own_bar:
            self.bar.close()
        if self.source != "-":
            self.stream.close()

    def discard(self) -> None:
        """The run is given up unfinished (an error stopped every file): what it wrote stays for
        ``--resume`` (``Sink.abandon``)."""
        self.sink.abandon()
        self.close()


def tag_stream(tagger, source: str, out, *, fmt: str = "conllu", kind: str = "auto",
               workers: BlockMapper | None = None, resume: bool = False, progress: bool = False,
               inputs: list | None = None, bar=None, block_chars: int = BLOCK_CHARS) -> Totals:
    """Tag the file ``source`` ("-": stdin) block by block into ``out`` ("-": stdout); see the
    module docstring. ``workers`` tag the blocks (a ``BlockMapper``; default: this process);
    ``resume`` goes on from the state a stopped run left beside ``out``."""
    run = _Run(tagger, source, out, fmt=fmt, kind=kind, resume=resume, inputs=inputs, progress=progress, bar=bar,
               block_chars=block_chars)
    stop = _on_sigterm()
    try:
        for result in map_blocks(workers or Workers(tagger, 1), run.reader, fmt):
            run.take(result)
            if stop.requested:
                raise _Stop
        return run.finish()
    except _Stop:
        raise run.stopped() from None
    except BaseException as exc:
        error = run.fail(exc)
        if error is exc:
            raise
        raise error from None
    finally:
        stop.restore()
        run.close()


class _SigTerm:
    def __init__(self):
        self.requested = False
        self._old = None

    def restore(self) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def _on_sigterm() -> _SigTerm:
    stop = _SigTerm()
    try:
        def handler(signum, frame):
            stop.requested = True
        stop._old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        pass
    return stop


def _progress(on: bool, total: int | None, initial: int, name: str):
    if not on:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=Path(name).name,
                file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


# -- many files --------------------------------------------------------------------------------

EXTENSIONS = {"conllu": ".conllu", "tsv": ".tsv", "json": ".jsonl"}
_MAGIC = re.compile(r"[*?\[]")


def expand_inputs(spec: str) -> tuple[list[Path], Path]:
    """The files ``spec`` names and the directory their outputs mirror: a directory (every
    file under it, hidden ones and attnlab's own ``.part`` files left out) or a glob pattern
    (``corpus/**/*.txt``; ``**`` crosses directories)."""
    import glob

    path = Path(spec)
    if path.is_dir():
        base, found = path, [p for p in sorted(path.rglob("*")) if p.is_file()]
    elif _MAGIC.search(spec) and not path.exists():
        parts = Path(spec).parts
        plain = next((i for i, p in enumerate(parts) if _MAGIC.search(p)), len(parts))
        base = Path(*parts[:plain]) if plain else Path(".")
        found = [Path(p) for p in sorted(glob.glob(spec, recursive=True)) if Path(p).is_file()]
    else:
        raise UserError(f"{spec}: no such directory, and no file matches it")
    files = [p for p in found if not any(part.startswith(".") for part in p.relative_to(base).parts)
             and not p.name.endswith((".part", ".part.json"))]
    if not files:
        raise UserError(f"{spec}: no files to tag")
    return files, base


def mirrored(file: Path, base: Path, out_dir: Path, fmt: str) -> Path:
    """Where the output of ``file`` goes: the same place under ``out_dir`` as under ``base``,
    the output format's extension added unless the name already ends in it."""
    rel = file.relative_to(base)
    ext = EXTENSIONS[fmt]
    return out_dir / (rel if rel.suffix == ext else rel.with_name(rel.name + ext))


FILE_ERRORS = (UserError, ConlluError, OSError)  # what fails one file of many (reported; the others go on)
_END = "end"  # tag_files: a file's last block has been read


def tag_files(tagger, files: list[Path], base: Path, out_dir: Path, *, fmt: str = "conllu", kind: str = "auto",
              workers: BlockMapper | None = None, resume: bool = False, progress: bool = False,
              report: Callable[[str], None] = print, block_chars: int = BLOCK_CHARS) -> Totals:
    """Tag ``files`` (under ``base``) into ``out_dir``, mirroring the tree: one output per file,
    written as ``tag_stream`` writes one; an output already complete (there, with no ``.part``
    beside it) is skipped; a file that fails is reported (``report``) and the others go on.
    ``Totals.failed`` lists the failures. The blocks of all the files go through ``workers``
    in one stream (the next file is read while the last blocks of one are being tagged), so
    many small files keep every worker busy."""
    from .output import make_directory

    out_dir = Path(out_dir)
    if out_dir.resolve().is_relative_to(base.resolve()):
        raise UserError(f"{out_dir}: is inside the input directory {base}, so the next run would read its outputs as "
                        "inputs; write them to a directory outside it")
    make_directory(out_dir)
    totals = Totals()
    outputs = [(f, mirrored(f, base, out_dir, fmt)) for f in files]
    todo = []
    for f, out in outputs:
        if out.is_file() and not part_paths(out)[1].exists():
            totals.skipped += 1
        else:
            todo.append((f, out))
    sizes = sum(f.stat().st_size for f, _ in todo)
    bar = _progress(progress, sizes, 0, f"{len(todo)} files")
    mapper = workers or Workers(tagger, 1)
    runs: list[_Run] = []  # open, in input order

    def items() -> Iterator[tuple[Path, _Run | None, Any]]:
        """(file, its run, a block | _END | the error that stopped the file), files in order."""
        for f, out in todo:
            try:
                make_directory(out.parent)
                run = _Run(tagger, str(f), out, fmt=fmt, kind=kind, resume=resume and part_paths(out)[1].exists(),
                           bar=bar, block_chars=block_chars)
            except FILE_ERRORS as exc:
                yield f, None, exc
                continue
            runs.append(run)
            try:
                for block in run.reader:
                    yield f, run, block
                    if run.error is not None:  # an earlier block failed: the file is given up
                        break
            except FILE_ERRORS as exc:
                yield f, run, exc
                continue
            yield f, run, _END

    def submit(item):
        what = item[2]
        return mapper.submit(what, fmt) if isinstance(what, Block) else _done(lambda: None)

    def failed(f: Path, run: _Run | None, exc: BaseException) -> None:
        error = run.fail(exc) if run is not None else exc
        totals.failed.append((f, str(error)))
        report(f"error: {error}" if str(f) in str(error) else f"error: {f}: {error}")
        if run is not None:
            runs.remove(run)
            run.close()

    start = time.perf_counter()
    stop = _on_sigterm()
    stream = ordered_futures(submit, items(), mapper.window)
    try:
        for (f, run, what), future in stream:
            if run is not None and run.error is not None:
                continue  # the rest of a file that failed
            try:
                if isinstance(what, BaseException):
                    raise what
                if isinstance(what, Block):
                    run.take(result_of(future))
                    if stop.requested:
                        raise _Stop
                    continue
                done = run.finish()
            except WorkersLost:
                raise
            except FILE_ERRORS as exc:
                failed(f, run, exc)
                continue
            runs.remove(run)
            run.close()
            totals.files += 1
            totals.words += done.words
            totals.sentences += done.sentences
    except _Stop:
        current = runs.pop(0)
        current.close()
        raise current.stopped() from None
    finally:
        stream.close()
        stop.restore()
        for run in runs:  # opened ahead of a file that stopped the whole run
            run.discard()
        if bar is not None:
            bar.close()
    totals.seconds = time.perf_counter() - start
    return totals
