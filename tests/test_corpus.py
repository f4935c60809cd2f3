"""Tagging a corpus in blocks (attnlab.corpus): the same output however the input is cut, read
or shared among processes; bounded blocks; resuming a stopped run; directories of files."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnlab import corpus
from attnlab.cli import main
from attnlab.data.conllu import parse_conllu
from attnlab.data.rawtext import rebuild_text

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    from tiny_models import tiny_pipeline_dir

    return tiny_pipeline_dir()


@pytest.fixture(scope="module")
def tagger(model):
    import attnlab

    return attnlab.load(model)


def _raw_text(paragraphs: int) -> str:
    """Paragraphs of toy sentences, separated by blank lines (one with CRLF, one with tabs)."""
    from tiny_models import toy_raw_conllu

    texts = [s.text for s in parse_conllu(toy_raw_conllu(3 * paragraphs, seed=5))]
    pars = [" ".join(texts[i:i + 3]) for i in range(0, len(texts), 3)]
    return "\n\n".join(pars[:-2]) + "\r\n\r\n" + pars[-2] + "\n \t\n" + pars[-1] + "\n"


def _stream(tagger, path: Path, fmt="conllu", kind="auto", **kw) -> str:
    out = path.with_name(path.name + f".{fmt}.out")
    corpus.tag_stream(tagger, str(path), out, fmt=fmt, kind=kind, **kw)
    return out.read_text(encoding="utf-8")


def test_raw_text_cut_into_blocks_gives_the_output_of_one_block(tagger, tmp_path):
    text = _raw_text(60)
    path = tmp_path / "in.txt"
    path.write_text(text, encoding="utf-8", newline="")
    whole = _stream(tagger, path, block_chars=10**9)
    blocks = list(corpus.BlockReader(open(path, "rb"), "in.txt", block_chars=400))
    assert len(blocks) > 8 and "".join(b.text for b in blocks) == text
    assert [b.offset for b in blocks] == [sum(len(b.text) for b in blocks[:i]) for i in range(len(blocks))]
    for fmt in ("conllu", "json", "tsv"):
        assert _stream(tagger, path, fmt=fmt, block_chars=400) == _stream(tagger, path, fmt=fmt, block_chars=10**9)
    sentences = parse_conllu(whole)
    assert [s.sent_id for s in sentences] == [str(i) for i in range(1, len(sentences) + 1)]
    assert rebuild_text(sentences) == text  # offsets and white space: no character lost or invented
    assert sum(s.lines[0] == "# newdoc" for s in sentences) == 1
    assert sum("# newpar" in s.lines for s in sentences) == 60


def test_conllu_in_blocks_keeps_the_file_and_names_lines_of_later_blocks(tagger, tmp_path):
    from tiny_models import toy_raw_conllu

    text = toy_raw_conllu(200, seed=3)
    path = tmp_path / "in.conllu"
    path.write_text(text, encoding="utf-8")
    assert _stream(tagger, path, block_chars=500) == "".join(s.to_conllu() for s in tagger.tag_conllu(text))
    lines = text.splitlines()
    bad = len(lines) - 3
    lines[bad] = lines[bad].replace("\t", " ", 1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"in.conllu:{bad + 1}: expected 10 tab-separated CoNLL-U columns, found 9"):
        _stream(tagger, path, block_chars=500)


def test_bad_bytes_far_into_the_input_are_named_by_line_and_column(tagger, tmp_path):
    text = _raw_text(40)
    path = tmp_path / "in.txt"
    line = text.count("\n") + 1
    path.write_bytes(text.encode() + b"ab\xe9cd\n")
    with pytest.raises(ValueError, match=rf"in.txt:{line}: not valid UTF-8 \(byte 0xe9 at column 3\)"):
        _stream(tagger, path, block_chars=300)
    path.write_bytes(text.encode() + b"abc\0\n")
    with pytest.raises(ValueError, match=rf"in.txt:{line}: NUL byte at column 4"):
        _stream(tagger, path, block_chars=300)
    assert not (tmp_path / "in.txt.conllu.out").exists() and not list(tmp_path.glob("*.part"))


def test_a_paragraph_without_end_is_cut_where_a_sentence_ends(tagger, tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "MAX_BLOCK_CHARS", 2000)
    text = " ".join(_raw_text(120).split())  # no line break at all
    assert len(text) > 6000
    path = tmp_path / "in.txt"
    path.write_text(text, encoding="utf-8")
    blocks = list(corpus.BlockReader(open(path, "rb"), "in.txt", block_chars=500))
    assert len(blocks) >= 3 and "".join(b.text for b in blocks) == text
    assert all(b.text.rstrip()[-1] == "." and b.text.endswith(" ") for b in blocks[:-1])
    assert [b.new_paragraph for b in blocks] == [True] + [False] * (len(blocks) - 1)
    sentences = parse_conllu(_stream(tagger, path, block_chars=500))
    assert rebuild_text(sentences) == text
    assert sum("# newpar" in s.lines for s in sentences) == 1
    nothing = "x" * 10000  # no white space: cut at MAX_BLOCK_CHARS, between characters, to the end
    cut = list(corpus.BlockReader(__import__("io").BytesIO(nothing.encode()), "x", block_chars=500))
    assert [len(b.text) for b in cut] == [2000] * 5


def test_a_sentence_per_line_without_blank_lines_is_read_in_blocks_of_about_the_block_size(monkeypatch):
    """A common corpus file: no paragraph break at all. Its blocks end at line ends after a full
    stop, near the block size, to the input's end (not one block of all that follows the last
    cut: memory stays bounded)."""
    import io

    lines = [f"Sentence number {i} is here{'.' if i % 3 else ''}\n" for i in range(3000)]
    text = "".join(lines)
    blocks = list(corpus.BlockReader(io.BytesIO(text.encode()), "x", kind="text", block_chars=1000))
    assert "".join(b.text for b in blocks) == text
    sizes = [len(b.text) for b in blocks]
    assert len(blocks) > 60 and max(sizes) < 1100 and min(sizes[:-1]) > 1000
    assert all(b.text.endswith(".\n") for b in blocks[:-1])


def test_a_stopped_run_resumes_to_the_same_bytes(tagger, tmp_path, monkeypatch):
    text = _raw_text(60)
    path = tmp_path / "in.txt"
    path.write_text(text, encoding="utf-8")
    whole = _stream(tagger, path, block_chars=600)
    out = tmp_path / "out.conllu"
    real = corpus.tag_block
    calls = []

    def failing(tagger, block, fmt="conllu"):
        calls.append(block.index)
        if block.index == 4:
            raise OSError(28, "No space left on device")
        return real(tagger, block, fmt)

    monkeypatch.setattr(corpus, "tag_block", failing)
    with pytest.raises(OSError):
        corpus.tag_stream(tagger, str(path), out, block_chars=600)
    part, state = corpus.part_paths(out)
    assert not out.exists() and part.exists() and state.exists()
    written = part.read_text(encoding="utf-8")
    assert written.endswith("\n\n") and whole.startswith(written)  # whole sentences, the first four blocks
    assert json.loads(state.read_text())["reader"]["index"] == 4
    monkeypatch.setattr(corpus, "tag_block", real)
    with part.open("ab") as f:  # a kill inside the last write: resuming cuts it back
        f.write(b"# sent_id = 99\n1\tha")
    corpus.tag_stream(tagger, str(path), out, block_chars=600, resume=True)
    assert out.read_text(encoding="utf-8") == whole and not part.exists() and not state.exists()


def test_resume_refuses_a_changed_input_in_one_line(tagger, tmp_path, monkeypatch):
    path = tmp_path / "in.txt"
    path.write_text(_raw_text(30), encoding="utf-8")
    out = tmp_path / "out.conllu"
    real = corpus.tag_block
    monkeypatch.setattr(corpus, "tag_block", lambda t, b, f="conllu": (_ for _ in ()).throw(KeyboardInterrupt)
                        if b.index == 2 else real(t, b, f))
    with pytest.raises(KeyboardInterrupt):
        corpus.tag_stream(tagger, str(path), out, block_chars=600)
    monkeypatch.setattr(corpus, "tag_block", real)
    path.write_text(_raw_text(31), encoding="utf-8")
    with pytest.raises(corpus.UserError, match=r"out.conllu: cannot resume: mtime_ns, size changed since the stopped run"):
        corpus.tag_stream(tagger, str(path), out, block_chars=600, resume=True)
    with pytest.raises(corpus.UserError, match="--resume needs an input file and an output file"):
        corpus.tag_stream(tagger, str(path), "-", resume=True)


def _cli(*args, stdin=None, env=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "attnlab", *args], capture_output=True, env=env, input=stdin)


def test_two_workers_write_what_one_process_writes_and_stdin_too(model, tmp_path):
    path = tmp_path / "in.txt"
    path.write_text(_raw_text(80), encoding="utf-8")
    one = _cli("tag", "--model", str(model), str(path), "--block-chars", "800", "--workers", "1")
    two = _cli("tag", "--model", str(model), str(path), "--block-chars", "800", "--workers", "2", "--stats")
    piped = _cli("tag", "--model", str(model), "--block-chars", "800", stdin=path.read_bytes())
    assert one.returncode == two.returncode == piped.returncode == 0, two.stderr
    assert one.stdout == two.stdout == piped.stdout and one.stdout.count(b"# sent_id") == 240
    assert b"tagged 240 sentences" in two.stderr


def test_sigterm_leaves_whole_sentences_and_resume_completes_identically(model, tmp_path):
    path = tmp_path / "in.txt"
    path.write_text(_raw_text(400), encoding="utf-8")
    out = tmp_path / "out.conllu"
    args = ["tag", "--model", str(model), str(path), "-o", str(out), "--block-chars", "500", "--workers", "1"]
    expected = _cli("tag", "--model", str(model), str(path), "--block-chars", "500").stdout
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "attnlab", *args], env=env, stderr=subprocess.PIPE)
    part = corpus.part_paths(out)[0]
    deadline = time.monotonic() + 60
    while (not part.exists() or part.stat().st_size < 20_000) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1].decode()
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be stopped")
    assert proc.returncode == 128 + signal.SIGTERM and "--resume goes on from there" in err
    written = part.read_bytes()
    assert 0 < len(written) < len(expected) and expected.startswith(written) and written.endswith(b"\n\n")
    done = _cli(*args, "--resume")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == expected


def test_a_directory_is_mirrored_and_complete_outputs_skipped_and_errors_reported(model, tmp_path, capsys):
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "one.txt").write_text(_raw_text(3), encoding="utf-8")
    (src / "a" / "b" / "two.txt").write_text(_raw_text(4), encoding="utf-8")
    (src / "a" / "bad.txt").write_bytes(b"caf\xe9\n")
    (src / ".hidden.txt").write_text("skip me", encoding="utf-8")
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["tag", "--model", str(model), str(src), "-o", str(out), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{src / 'a' / 'bad.txt'}:1: not valid UTF-8 (byte 0xe9 at column 4)" in err
    assert "2 files tagged, 0 skipped as already complete, 1 failed" in err
    got = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert got == ["a/b/two.txt.conllu", "one.txt.conllu"]
    single = tmp_path / "single.conllu"
    assert main(["tag", "--model", str(model), str(src / "one.txt"), "-o", str(single)]) == 0
    assert (out / "one.txt.conllu").read_bytes() == single.read_bytes()
    (src / "a" / "bad.txt").write_text("Fixed now.\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["tag", "--model", str(model), str(tmp_path / "src" / "**" / "*.txt"), "-o", str(out)]) == 0
    assert "1 files tagged, 2 skipped as already complete, 0 failed" in capsys.readouterr().err
    assert (out / "a" / "bad.txt.conllu").is_file()
    assert main(["tag", "--model", str(model), str(src), "-o", str(src / "out")]) == 2
    assert f"{src / 'out'}: is inside the input directory {src}" in capsys.readouterr().err
    assert not (src / "out").exists()


def test_pipe_keeps_order_in_processes_and_the_tagger_pickles(tagger):
    texts = [s.text for s in parse_conllu(__import__("tiny_models").toy_raw_conllu(12, seed=9))]
    items = [t if i % 3 else t.rstrip(".").split() for i, t in enumerate(texts)]
    one = [str(x) for x in tagger.pipe(items, batch_size=5)]
    assert one == [str(tagger(x)) if isinstance(x, str) else str(tagger.tag([x])[0]) for x in items]
    assert [str(x) for x in tagger.pipe(iter(items), batch_size=2, n_process=2)] == one
    again = pickle.loads(pickle.dumps(tagger))
    assert again.source == tagger.source and str(again(texts[0])) == str(tagger(texts[0]))
    with pytest.raises(ValueError, match="n_process must be an integer >= 1, or -1"):
        list(tagger.pipe(items, n_process=0))
    with pytest.raises(TypeError, match="pipe\\(\\) takes an iterable of texts"):
        list(tagger.pipe("one text"))


def test_threads_share_a_tagger_without_a_lock(tagger):
    from concurrent.futures import ThreadPoolExecutor

    texts = [s.text for s in parse_conllu(__import__("tiny_models").toy_raw_conllu(40, seed=11))]
    alone = [str(tagger(t)) for t in texts]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda t: str(tagger(t)), texts)) == alone


def test_load_checks_threads_and_device(model):
    import attnlab

    with pytest.raises(ValueError, match="device 'tpu' is not a device torch knows|attnlab runs on 'cpu' and 'cuda'"):
        attnlab.load(model, device="tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA GPU on this machine"):
            attnlab.load(model, device="cuda")
    with pytest.raises(ValueError, match="threads"):
        attnlab.load(model, threads=0)
    before = torch.get_num_threads()
    try:
        assert attnlab.load(model, threads=1).device == "cpu" and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
