"""Bad CoNLL-U input: each mistake is refused as one ``file:line: reason`` line, and the
characters that are legal inside a field (U+2028, NEL, form feed) are read as field text."""

from __future__ import annotations

import io

import pytest

from attnlab.data.conllu import (
    UPOS_TAGS, ConlluError, Sentence, check_tags, decode_text, format_conllu, parse_conllu, read_conllu, read_text, split_lines,
)


def row(ident: str, form: str = "w", upos: str = "NOUN", xpos: str = "_") -> str:
    """One token line: ``ident``, ``form``, ``upos`` and ``xpos``; every other column ``_``."""
    return "\t".join([ident, form, "_", upos, xpos] + ["_"] * 5) + "\n"


def write(tmp_path, text: str | bytes, name: str = "bad.conllu"):
    path = tmp_path / name
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


# -- the order of IDs: multiword tokens and empty nodes --------------------------------

@pytest.mark.parametrize("lines, message", [
    # 2-3 starts inside 1-3
    (["1-3", "1", "2-3", "2", "3"], r"bad.conllu:3: multiword token 2-3 overlaps 1-3"),
    # 1-2 twice, the second before word 1 is even read
    (["1-2", "1-2", "1", "2"], r"bad.conllu:2: multiword token 1-2 must be followed by its first word 1"),
    # a range whose first word never comes: an empty node sits between them
    (["1", "2-3", "1.1", "2", "3"], r"bad.conllu:3: multiword token 2-3 must be followed by its first word 2"),
    # a range running past the last word
    (["1", "2-4", "2", "3"], r"bad.conllu:2: multiword token 2-4 covers word 4, but the sentence has 3 words"),
    # a range as the last line
    (["1", "2-3"], r"bad.conllu:2: multiword token 2-3 covers word 3, but the sentence has 1 words"),
    # empty nodes: misordered, repeated, not starting at .1
    (["1", "1.2", "1.1", "2"], r"bad.conllu:2: empty node 1.2 out of order \(expected 1.1\)"),
    (["1", "1.1", "1.2", "1.1", "2"], r"bad.conllu:4: empty node 1.1 out of order \(expected 1.3\)"),
    (["1", "1.1", "1.1"], r"bad.conllu:3: empty node 1.1 out of order \(expected 1.2\)"),
    (["1", "2", "1.1"], r"bad.conllu:3: empty node 1.1 out of place \(after word 2\)"),
])
def test_misordered_ids_are_refused_at_their_line(tmp_path, lines, message):
    path = write(tmp_path, "".join(row(i) for i in lines) + "\n")
    with pytest.raises(ConlluError, match=message):
        read_conllu(path)


def test_well_ordered_ranges_and_empty_nodes_are_read():
    text = "".join(row(i) for i in ["0.1", "1-2", "1", "2", "2.1", "2.2", "3-4", "3", "4", "4.1", "5"]) + "\n"
    (sent,) = parse_conllu(text, "ok.conllu")
    assert [t.id for t in sent.tokens] == [1, 2, 3, 4, 5]
    assert [t.line for t in sent.tokens] == [3, 4, 8, 9, 11]
    assert format_conllu([sent]) == text


# -- line ends: "\n" only --------------------------------------------------------------

@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c"])
def test_unicode_line_separators_are_field_text(tmp_path, char):
    form = f"a{char}b"
    text = "# text = x\n" + row("1", form) + row("2", "c") + "\n" + row("1", "d") + "\n"
    from_string = parse_conllu(text, "s.conllu")
    from_file = read_conllu(write(tmp_path, text, "s.conllu"))
    for sents in (from_string, from_file):
        assert [s.forms for s in sents] == [[form, "c"], ["d"]]
        assert [t.line for s in sents for t in s.tokens] == [2, 3, 5]
        assert format_conllu(sents) == text  # written back byte for byte
    assert split_lines(f"x{char}y\nz\n") == [f"x{char}y", "z"]


def test_split_lines_splits_on_line_feed_only():
    assert split_lines("") == []
    assert split_lines("a\n\nb") == ["a", "", "b"]
    assert split_lines("\ufeffa\r\nb\r\n") == ["a", "b"]  # a byte-order mark and CR LF line ends are dropped
    assert split_lines("a\rb\n") == ["a\rb"]  # a lone CR is not a line end


def test_crlf_files_read_like_lf_files(tmp_path):
    text = row("1", "a") + row("2", "b") + "\n"
    assert [s.forms for s in read_conllu(write(tmp_path, text.replace("\n", "\r\n")))] == [["a", "b"]]


# -- bytes: one decoder for files and standard input -----------------------------------

@pytest.mark.parametrize("data, message", [
    (b"1\tcaf\xe9" + b"\t_" * 8 + b"\n", r"latin1.conllu:1: not valid UTF-8 \(byte 0xe9 at column 6\)"),
    (row("1").encode() + "2\t\u00e9t\u00e9\xff".encode("latin-1") + b"\n",
     r"latin1.conllu:2: not valid UTF-8 \(byte 0xe9 at column 3\)"),
    (row("1").encode() + row("2", "na\u00efve").encode() + b"3\tx\xed\xa0\x80\n",  # an encoded surrogate
     r"latin1.conllu:3: not valid UTF-8 \(byte 0xed at column 4\)"),
    (row("1").encode() + b"\n" + "2\t\u00e9\u00e9\0".encode() + b"\n", r"latin1.conllu:3: NUL byte at column 5 \(binary data"),
    (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", r"latin1.conllu:1: not valid UTF-8 \(byte 0x89 at column 1\)"),
    (b"\0\x01\x02\xff", r"latin1.conllu:1: NUL byte at column 1"),
])
def test_bad_bytes_are_reported_by_line_and_column(tmp_path, data, message):
    path = write(tmp_path, data, "latin1.conllu")
    with pytest.raises(ConlluError, match=message):
        read_conllu(path)
    with pytest.raises(ConlluError, match=message):
        decode_text(data, str(path))


def test_read_text_treats_stdin_like_a_file(tmp_path):
    good = row("1", "\u00e9t\u00e9") + "\n"
    path = write(tmp_path, good, "ok.conllu")
    assert read_text(path) == (good, str(path))
    assert read_text("-", stdin=io.BytesIO(good.encode())) == (good, "<stdin>")
    with pytest.raises(ConlluError, match=r"<stdin>:1: not valid UTF-8 \(byte 0xff at column 3\)"):
        read_text("-", stdin=io.BytesIO(b"1\t\xff"))
    with pytest.raises(ConlluError, match=r"<stdin>:2: NUL byte at column 1"):
        read_text("-", stdin=io.BytesIO(b"text\n\0"))
    with pytest.raises(ConlluError, match=r"is a directory, not a file"):
        read_text(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"nope.conllu: no such file"):
        read_text(tmp_path / "nope.conllu")


# -- no sentences ----------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "\n", "\n\n\n", "\ufeff"])
def test_a_file_without_sentences_is_an_error(tmp_path, text):
    path = write(tmp_path, text, "empty.conllu")
    with pytest.raises(ConlluError, match=r"^.*empty.conllu: no sentences$"):
        read_conllu(path)
    with pytest.raises(ConlluError, match=r"^<stdin>: no sentences$"):
        parse_conllu(text, "<stdin>")
    assert read_conllu(path, require_sentences=False) == []
    assert parse_conllu(text, require_sentences=False) == []


# -- gold tags -------------------------------------------------------------------------

def test_gold_upos_must_be_a_ud_tag(tmp_path):
    path = write(tmp_path, row("1", "a", "DET") + row("2", "b", "NOTATAG") + "\n", "gold.conllu")
    sents = read_conllu(path)
    with pytest.raises(ConlluError, match=rf"^.*gold.conllu:2: unknown UPOS 'NOTATAG' \(UD has ADJ ADP ADV .* X\)$"):
        check_tags(sents)


@pytest.mark.parametrize("tag, message", [("_", r"UPOS is '_' \(no gold tag\)"), ("", r"UPOS is empty \(no gold tag\)")])
def test_gold_upos_must_be_given(tmp_path, tag, message):
    path = write(tmp_path, "# c\n" + row("1", "a", "DET") + "\n" + row("1", "b", "VERB") + row("2", "c", tag) + "\n")
    with pytest.raises(ConlluError, match=rf"^.*bad.conllu:5: {message}$"):
        check_tags(read_conllu(path))


def test_check_tags_accepts_every_ud_tag_and_any_given_xpos():
    assert len(UPOS_TAGS) == 17 and list(UPOS_TAGS) == sorted(UPOS_TAGS)
    xpos = ["NN", "_"] + ["NOTATAG"] * 15  # XPOS is language-specific: any tag but "_" will do
    sents = parse_conllu("".join(row(str(i), "w", u, x) for i, (u, x) in enumerate(zip(UPOS_TAGS, xpos), 1)) + "\n")
    check_tags(sents)  # every UD tag passes
    with pytest.raises(ConlluError, match=r"^<string>:2: XPOS is '_' \(no gold tag\)$"):
        check_tags(sents, "xpos")
    with pytest.raises(ConlluError, match=r"^<memory>: sentence 1, word 1: UPOS is '_' \(no gold tag\)$"):
        check_tags([Sentence.from_words(["a", "b"])])  # built in memory: no line to name
