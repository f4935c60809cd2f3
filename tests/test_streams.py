"""Bounded input: endless or binary streams, giant lines and giant sentences are refused early
with the place named (never read to their end, never a hang); the tokenizer's time is linear in
its input; text that holds what UTF-8 cannot write (a lone surrogate) is refused where it is
read, so whatever is read can be written back; a sentence without words writes as nothing."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import attnlab
import attnlab.data.conllu as conllu
from attnlab.cli import main
from attnlab.data.conllu import (
    MAX_LINE_BYTES, MAX_SENTENCE_WORDS, ConlluError, SentenceTooLong, parse_conllu, read_text,
)
from attnlab.data.tokenize import tokenize
from tiny_models import tiny_pipeline_dir, tiny_tagger_dir

ROOT = Path(__file__).resolve().parents[1]


class Endless:
    """A byte stream that never ends: ``head`` once, then ``fill`` for ever, at most ``piece``
    bytes per read (as a pipe gives them); counts what was read and refuses to read "all"."""

    def __init__(self, fill: bytes, head: bytes = b"", piece: int = 1 << 20):
        self.fill, self.pending, self.piece, self.read_bytes = fill, head, piece, 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            raise AssertionError("read the whole of an endless stream")
        while len(self.pending) < min(size, self.piece):
            self.pending += self.fill * max(1, min(size, self.piece) // len(self.fill))
        out, self.pending = self.pending[:min(size, self.piece)], self.pending[min(size, self.piece):]
        self.read_bytes += len(out)
        return out


def _refused(stream, match: str):
    with pytest.raises(ConlluError, match=match):
        read_text("-", stdin=stream)
    return stream.read_bytes


def test_an_endless_stream_of_nul_bytes_is_refused_in_its_first_megabyte():
    assert _refused(Endless(b"\0"), r"^<stdin>:1: NUL byte at column 1 \(binary data, not text\)$") <= 2**20


def test_an_endless_line_is_refused_once_it_passes_the_line_limit():
    read = _refused(Endless(b"a", head=b"first line\n"), rf"^<stdin>:2: a line of more than {MAX_LINE_BYTES:,} bytes, "
                                                         "the most attnlab reads in one line$")
    assert read <= 2**20 + MAX_LINE_BYTES


def test_endless_bytes_that_are_not_utf8_are_refused_in_the_first_piece():
    assert _refused(Endless(b"\xff", head=b"ok\n"), r"^<stdin>:2: not valid UTF-8 \(byte 0xff at column 1\)$") <= 2**20


def test_endless_short_lines_are_refused_at_the_input_limit(monkeypatch):
    monkeypatch.setattr(conllu, "MAX_INPUT_BYTES", 4 * 2**20)
    read = _refused(Endless(b"y\n"), r"^<stdin>: more than 4 MiB, the most attnlab reads from one file or stream; "
                                     "split it into smaller files$")
    assert read <= 5 * 2**20


def test_dev_zero_is_refused_at_once_by_read_text_and_tag_conllu():
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    with pytest.raises(ConlluError, match=r"^/dev/zero:1: NUL byte at column 1"):
        read_text("/dev/zero")
    with pytest.raises(ConlluError, match=r"^/dev/zero:1: NUL byte at column 1"):
        attnlab.load(tiny_tagger_dir()).tag_conllu(Path("/dev/zero"))


def test_export_compare_reads_a_stream_by_the_same_rules(model, capsys):
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    assert main(["export", "--model", str(model), "--compare", "/dev/zero"]) == 2
    assert capsys.readouterr().err == "attnlab export: error: /dev/zero:1: NUL byte at column 1 (binary data, not text)\n"


def test_the_line_limit_counts_across_pieces_and_names_the_line(monkeypatch):
    monkeypatch.setattr(conllu, "MAX_LINE_BYTES", 10)
    ok = b"0123456789\n" * 3  # lines of exactly the limit
    stream = io.BytesIO(ok + b"abcdefghijk\n")
    with pytest.raises(ConlluError, match=r"^<stdin>:4: a line of more than 10 bytes"):
        read_text("-", stdin=_Trickle(stream, 3))
    assert read_text("-", stdin=_Trickle(io.BytesIO(ok), 3)) == (ok.decode(), "<stdin>")


class _Trickle:
    """A stream that gives at most ``n`` bytes per read, as a slow pipe does."""

    def __init__(self, inner, n):
        self.inner, self.n = inner, n

    def read(self, size=-1):
        return self.inner.read(min(size, self.n) if size >= 0 else self.n)


def test_characters_split_between_pieces_decode_as_one():
    text = "naïve café — 東京 😀\n" * 50
    assert read_text("-", stdin=_Trickle(io.BytesIO(text.encode()), 1)) == (text, "<stdin>")


def test_a_file_with_a_giant_line_is_refused_with_its_line(tmp_path):
    path = tmp_path / "giant.txt"
    path.write_text("a short line\n" + "x.y " * 250_000 + "\n")
    start = time.perf_counter()
    with pytest.raises(ConlluError, match=rf"^{path}:2: a line of more than 100,000 bytes"):
        read_text(path)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("text", ["x.y" * 333_334, "-" * 1_000_000, "a@" * 500_000, "ab " * 333_334],
                         ids=["dots", "hyphens", "ats", "words"])
def test_the_tokenizer_takes_linear_time_on_a_million_characters(text):
    start = time.perf_counter()
    words = tokenize(text)
    assert len(words) > 1 and time.perf_counter() - start < 10  # was about 45 minutes for "x.y" and "-"


def test_the_tokenizer_still_keeps_e_mail_addresses_and_urls_whole():
    assert tokenize("mail john.doe+x@mail.example.com or https://x.org/a?b, e.g. don't") == [
        "mail", "john.doe+x@mail.example.com", "or", "https://x.org/a?b,", "e.g.", "do", "n't"]


# -- sentences longer than the limit -----------------------------------------------------------

def _conllu_sentence(n: int) -> str:
    return "".join(f"{i}\tw\t_\t_\t_\t_\t_\t_\t_\t_\n" for i in range(1, n + 1)) + "\n"


def test_a_conllu_sentence_over_the_word_limit_is_refused_with_its_first_line():
    assert len(parse_conllu(_conllu_sentence(MAX_SENTENCE_WORDS))[0]) == MAX_SENTENCE_WORDS
    with pytest.raises(SentenceTooLong, match=rf"^x.conllu:{MAX_SENTENCE_WORDS + 2}: a sentence of 5,001 words, more "
                                              "than the limit of 5,000 words per sentence$"):
        parse_conllu(_conllu_sentence(MAX_SENTENCE_WORDS) + _conllu_sentence(MAX_SENTENCE_WORDS + 1), "x.conllu")


@pytest.fixture(scope="module")
def model():
    return tiny_pipeline_dir()


@pytest.fixture(scope="module")
def tagger(model):
    return attnlab.load(model)


def test_the_api_refuses_a_sentence_over_the_word_limit(tagger):
    words = ["w"] * (MAX_SENTENCE_WORDS + 1)
    with pytest.raises(SentenceTooLong, match=r"^sentence 1: a sentence of 5,001 words"):
        tagger.tag([words])
    doc = tagger(" ".join(words))  # raw text: the segmenter never makes a sentence that long
    assert len(doc.words) == MAX_SENTENCE_WORDS + 1 and max(len(s) for s in doc) <= 250


def test_tag_names_the_line_of_text_over_the_word_limit(model, tmp_path, capsys):
    path = tmp_path / "in.txt"
    path.write_text("I saw a saw\n" + "w " * (MAX_SENTENCE_WORDS + 1) + "\n")
    assert main(["tag", "--model", str(model), str(path), "--input", "pretokenized"]) == 2
    err = capsys.readouterr().err
    assert err == (f"attnlab tag: error: {path}:2: a sentence of 5,001 words, more than the limit of 5,000 words per "
                   "sentence\n")


def test_tag_reads_a_million_character_line_of_raw_text_in_windows(model, tmp_path):
    from attnlab.data.rawtext import rebuild_text

    path = tmp_path / "in.txt"
    text = "I saw a saw\n" + "x.y " * 250_000 + "\n"
    path.write_text(text)
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "attnlab", "tag", "--model", str(model), str(path), "--threads", "1"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    sentences = conllu.parse_conllu(r.stdout)
    assert rebuild_text(sentences) == text  # nothing cut off
    assert max(len(s) for s in sentences) <= 250 and time.perf_counter() - start < 240


# -- what is read can be written -------------------------------------------------------------

@pytest.mark.parametrize("call, where", [
    (lambda t: t("I \ud800 saw"), r"^text: a lone surrogate \(U\+D800\) at column 3, which is not a character"),
    (lambda t: t(["ok", "x \udcff"]), r"^text 2: a lone surrogate \(U\+DCFF\) at column 3"),
    (lambda t: t.tag([["I", "s\ud83daw"]]), r"^tag\(\): sentence 1, token 2: a lone surrogate \(U\+D83D\) at column 2"),
    (lambda t: t.tag_conllu("1\tI\t_\t_\t_\t_\t_\t_\t_\t_\n2\tsa\udfffw\t_\t_\t_\t_\t_\t_\t_\t_\n\n"),
     r"^<string>:2: a lone surrogate \(U\+DFFF\) at column 5"),
])
def test_a_lone_surrogate_is_refused_where_it_is_read(tagger, call, where):
    with pytest.raises(ValueError, match=where):
        call(tagger)


def test_a_surrogate_pair_written_as_one_character_is_text(tagger):
    doc = tagger("I saw 😀")
    assert doc.words[-1].form == "😀" and str(doc).encode("utf-8")


def test_a_text_only_stdin_keeps_the_rules_of_bytes(model, capsys, monkeypatch):
    for text, message in (("I saw\nthe \udcff saw\n", "<stdin>:2: not valid UTF-8 (byte 0xff at column 5)"),
                          ("I saw\nthe \ud800 saw\n", "<stdin>:2: not valid UTF-8 (byte 0xed at column 5)")):
        monkeypatch.setattr(sys, "stdin", io.StringIO(text))
        assert main(["tag", "--model", str(model)]) == 2
        assert capsys.readouterr().err == f"attnlab tag: error: {message}\n"


def test_explain_refuses_command_line_bytes_that_are_not_utf8(model):
    # as in a UTF-8 locale (en_US.UTF-8): stdout refuses what is not a character
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8:strict"}
    r = subprocess.run([sys.executable.encode(), b"-m", b"attnlab", b"explain", b"--model", bytes(model), b"I \xff saw",
                        b"--steps"], capture_output=True, timeout=120, env=env)
    assert r.returncode == 2 and r.stdout == b""
    assert r.stderr == (b"attnlab explain: error: the sentence: a lone surrogate (U+DCFF) at column 3, which is not a "
                        b"character and cannot be written as UTF-8\n")


def test_a_sentence_without_words_writes_as_nothing_and_reads_back(tagger):
    empty = tagger("")
    assert len(empty) == 0 and str(empty) == ""
    assert parse_conllu(str(empty), require_sentences=False) == []
    tagged = tagger(["I saw a saw", "", "   ", "they saw"])
    assert [len(doc) for doc in tagged] == [1, 0, 0, 1]
    back = parse_conllu("".join(map(str, tagged)))
    assert [s.forms for s in back] == [["I", "saw", "a", "saw"], ["they", "saw"]]
    nothing = tagger.tag([[]])[0]
    assert len(nothing) == 0 and str(nothing) == ""  # a sentence without words writes as nothing
