"""`attnlab tag` on a Dask cluster (attnlab.distributed): a LocalCluster of 2 worker processes
(one thread each) writes the same bytes as one process, for raw text, CoNLL-U and a directory;
each worker loads the model once; a block whose task fails, or whose worker dies, is tagged
again, never lost or written twice; an error in the input reads as in one process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the 'cluster' extra is not installed: pip install 'attnlab[cluster]'")

import cloudpickle  # noqa: E402  (comes with distributed)

import attnlab.corpus as corpus  # noqa: E402
from attnlab.cli import main  # noqa: E402
from attnlab.distributed import (  # noqa: E402
    ClusterWorkers, ModelRef, connect, model_ref, tag_on_cluster, tag_task, worker_stats,
)
from attnlab.errors import UserError  # noqa: E402
from attnlab.tasks.tagging_demo import toy_corpus  # noqa: E402
from tiny_models import tiny_pipeline_dir, toy_raw_conllu  # noqa: E402

# The failing tasks below are made here and sent to the workers by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

BLOCK = 3000  # characters a block (--block-chars): the inputs below are several blocks each
CONLLU_BLOCK = BLOCK // corpus.CONLLU_BLOCK_FACTOR  # the same blocks of CoNLL-U (its blocks are longer)


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes, one thread each, as `--scheduler local:2` starts it."""
    with connect("local:2") as c:
        yield c


@pytest.fixture(scope="module")
def address(client):
    return client.scheduler.address


@pytest.fixture(scope="module")
def model():
    return tiny_pipeline_dir()


def raw_text(n: int, seed: int) -> str:
    """``n`` toy sentences as raw text, three to a paragraph."""
    sentences = [" ".join(s.forms[:-1]) + s.forms[-1] for s in toy_corpus(n, seed=seed)]
    return "\n\n".join(" ".join(sentences[i:i + 3]) for i in range(0, n, 3)) + "\n"


def blocks_of(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in corpus.BlockReader(f, str(path), block_chars=CONLLU_BLOCK if path.suffix == ".conllu" else BLOCK))


def one_process(model, source, out, *options) -> bytes:
    assert main(["tag", "--model", str(model), str(source), "-o", str(out), "--workers", "1", "--threads", "1",
                 "--block-chars", str(BLOCK), *options]) == 0
    return Path(out).read_bytes()


def failing_once(index: int, marker: Path, how: str):
    """A block task that fails the first time it meets block ``index`` (whichever worker runs it
    first creates ``marker``): ``raise`` an error, or ``exit`` (the worker process dies)."""
    def task(ref, block, fmt):
        if block.index == index:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                if how == "exit":
                    os._exit(1)
                raise RuntimeError("failed on purpose")
        return tag_task(ref, block, fmt)
    return task


def counting(log: Path):
    """A block task that notes each block it is given in ``log`` (one line: its index)."""
    def task(ref, block, fmt):
        with open(log, "a") as f:
            f.write(f"{block.index}\n")
        return tag_task(ref, block, fmt)
    return task


def test_raw_text_is_tagged_into_the_bytes_of_one_process(address, model, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text(raw_text(450, seed=3), encoding="utf-8")
    assert blocks_of(src) >= 4
    expected = one_process(model, src, tmp_path / "one.conllu")
    totals = tag_on_cluster(model, src, tmp_path / "cluster.conllu", scheduler=address,
                            block_chars=BLOCK)
    assert (tmp_path / "cluster.conllu").read_bytes() == expected
    assert totals.sentences == expected.count(b"# sent_id = ") == 450
    assert not (tmp_path / "cluster.conllu.part").exists()


def test_conllu_and_json_lines_are_tagged_into_the_bytes_of_one_process(address, model, tmp_path):
    src = tmp_path / "in.conllu"
    src.write_text(toy_raw_conllu(150, seed=4), encoding="utf-8")
    assert blocks_of(src) >= 4
    expected = one_process(model, src, tmp_path / "one.conllu")
    tag_on_cluster(model, src, tmp_path / "cluster.conllu", scheduler=address, block_chars=CONLLU_BLOCK)
    assert (tmp_path / "cluster.conllu").read_bytes() == expected
    text = tmp_path / "in.txt"
    text.write_text(raw_text(300, seed=5), encoding="utf-8")
    expected = one_process(model, text, tmp_path / "one.jsonl", "--format", "json")
    tag_on_cluster(model, text, tmp_path / "cluster.jsonl", scheduler=address, fmt="json",
                   block_chars=BLOCK)
    assert (tmp_path / "cluster.jsonl").read_bytes() == expected
    assert expected.count(b'{"sent_id": "') == 300


def test_a_directory_is_tagged_file_by_file_as_one_process_does(address, model, tmp_path, capsys):
    corpus_dir = tmp_path / "corpus"
    (corpus_dir / "sub").mkdir(parents=True)
    (corpus_dir / "a.txt").write_text(raw_text(240, seed=6), encoding="utf-8")  # several blocks
    (corpus_dir / "sub" / "b.conllu").write_text(toy_raw_conllu(60, seed=7), encoding="utf-8")
    (corpus_dir / "sub" / "c.txt").write_text(raw_text(4, seed=8), encoding="utf-8")  # one block
    (corpus_dir / "d.txt").write_bytes(b"I saw a saw.\n\x00\n")  # not text: fails alone
    (corpus_dir / "e.txt").write_text(raw_text(7, seed=9), encoding="utf-8")
    codes, trees, errors = [], [], []
    for name, how in (("one", ["--workers", "1", "--threads", "1"]),
                      ("cluster", ["--scheduler", address])):
        capsys.readouterr()
        codes.append(main(["tag", "--model", str(model), str(corpus_dir), "-o", str(tmp_path / name),
                           "--block-chars", str(BLOCK), *how]))
        errors.append(capsys.readouterr().err)
        trees.append({str(p.relative_to(tmp_path / name)): p.read_bytes()
                      for p in sorted((tmp_path / name).rglob("*")) if p.is_file()})
    assert codes == [1, 1]
    assert errors[0] == errors[1] == (f"error: {corpus_dir / 'd.txt'}:2: NUL byte at column 1 (binary data, not "
                                      "text)\n4 files tagged, 0 skipped as already complete, 1 failed\n")
    assert sorted(trees[1]) == ["a.txt.conllu", "e.txt.conllu", "sub/b.conllu", "sub/c.txt.conllu"]
    assert trees[0] == trees[1]


def test_each_worker_loads_the_model_once_and_tags_each_block_once(client, model, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text(raw_text(600, seed=10), encoding="utf-8")
    n = blocks_of(src)
    before = client.run(worker_stats)
    tag_on_cluster(model, src, tmp_path / "out.conllu", scheduler=client, block_chars=BLOCK)
    after = client.run(worker_stats)
    assert len(after) == 2 and n >= 5
    assert sorted(s["loads"] for s in after.values()) == [1, 1]  # one model, loaded once by each process
    assert sum(after[w]["blocks"] - before.get(w, {"blocks": 0})["blocks"] for w in after) == n
    assert len({s["pid"] for s in after.values()}) == 2
    # local:N starts its workers without Dask's MALLOC_TRIM_THRESHOLD_, which slows tagging 1.5 times
    assert [s["malloc_trim_threshold"] for s in after.values()] == [None, None]


def test_a_worker_that_cannot_load_the_model_stops_the_run_in_one_line(client, tmp_path):
    missing = ModelRef(str(tmp_path / "nowhere"), "nowhere")
    with pytest.raises(UserError) as caught:
        ClusterWorkers(client, missing)
    message = str(caught.value)
    assert message.startswith("Dask worker tcp://127.0.0.1:")
    assert (f"cannot load the model {tmp_path / 'nowhere'} (every worker must see it at that path): "
            f"{tmp_path / 'nowhere'}: no such model directory") in message
    assert "\n" not in message


def test_an_error_in_the_input_reads_as_in_one_process_and_is_not_retried(address, client, model, tmp_path,
                                                                          capsys):
    good = toy_raw_conllu(120, seed=11)
    lines = good.splitlines(keepends=True)
    bad_line = next(i for i, line in enumerate(lines) if i > len(lines) // 2 and line[:1].isdigit())
    lines[bad_line] = "x\tbroken\n"
    src = tmp_path / "in.conllu"
    src.write_text("".join(lines), encoding="utf-8")
    errors = []
    for how in (["--workers", "1"], ["--scheduler", address]):
        capsys.readouterr()
        assert main(["tag", "--model", str(model), str(src), "-o", str(tmp_path / "out.conllu"),
                     "--block-chars", str(BLOCK), *how]) == 2
        errors.append(capsys.readouterr().err)
    assert errors[0] == errors[1]
    assert errors[1].startswith(f"attnlab tag: error: {src}:{bad_line + 1}: ") and errors[1].count("\n") == 1
    log = tmp_path / "tasks.log"
    ref = model_ref(model)
    workers = ClusterWorkers(client, ref, task=counting(log))
    with pytest.raises(Exception) as caught:
        corpus.tag_stream(ref, str(src), tmp_path / "again.conllu", workers=workers, block_chars=CONLLU_BLOCK)
    assert f"{src}:{bad_line + 1}: " in str(caught.value)
    bad_block = next(b.index for b in corpus.BlockReader(open(src, "rb"), str(src), block_chars=CONLLU_BLOCK)
                     if b.first_line <= bad_line + 1 < b.first_line + b.text.count("\n"))
    assert log.read_text().split().count(str(bad_block)) == 1  # tagged once: not retried


def test_a_block_whose_task_fails_is_retried_and_the_output_is_the_same(client, model, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text(raw_text(300, seed=12), encoding="utf-8")
    expected = one_process(model, src, tmp_path / "one.conllu")
    marker = tmp_path / "failed"
    ref = model_ref(model)
    workers = ClusterWorkers(client, ref, task=failing_once(2, marker, "raise"))
    totals = corpus.tag_stream(ref, str(src), tmp_path / "cluster.conllu", workers=workers, block_chars=BLOCK)
    assert marker.exists()  # block 2 failed once
    assert (tmp_path / "cluster.conllu").read_bytes() == expected
    assert totals.sentences == 300


def test_a_block_whose_worker_dies_is_tagged_by_another_and_the_output_is_the_same(client, model, tmp_path):
    """Last in the module: a worker process is killed (the nanny starts a new one)."""
    src = tmp_path / "in.txt"
    src.write_text(raw_text(300, seed=13), encoding="utf-8")
    expected = one_process(model, src, tmp_path / "one.conllu")
    marker = tmp_path / "died"
    pids = {s["pid"] for s in client.run(worker_stats).values()}
    ref = model_ref(model)
    workers = ClusterWorkers(client, ref, task=failing_once(1, marker, "exit"))
    totals = corpus.tag_stream(ref, str(src), tmp_path / "cluster.conllu", workers=workers, block_chars=BLOCK)
    assert marker.exists()  # block 1's first worker died
    assert (tmp_path / "cluster.conllu").read_bytes() == expected
    assert totals.sentences == 300
    client.wait_for_workers(2, timeout=60)
    assert len({s["pid"] for s in client.run(worker_stats).values()} - pids) == 1  # a new worker process


def test_the_command_line_starts_a_local_cluster(model, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text(raw_text(90, seed=14), encoding="utf-8")
    expected = one_process(model, src, tmp_path / "one.tsv", "--format", "tsv")
    capsys.readouterr()
    assert main(["tag", "--model", str(model), str(src), "-o", str(tmp_path / "cluster.tsv"), "--format", "tsv",
                 "--block-chars", str(BLOCK), "--scheduler", "local:1", "--stats"]) == 0
    assert (tmp_path / "cluster.tsv").read_bytes() == expected
    assert capsys.readouterr().err.startswith("tagged 90 sentences, ")


@pytest.mark.parametrize("options, message", [
    (["--scheduler", "local:0"], "local:0: local:N starts N worker processes on this machine; N is an integer >= 1"),
    (["--scheduler", "somewhere"], "'somewhere': not a Dask scheduler's address (tcp://HOST:PORT, e.g. "
                                   "tcp://10.0.0.1:8786; or local:N for N worker processes on this machine)"),
    (["--scheduler", "local:2", "--workers", "2"],
     "--workers and --scheduler: give one (--scheduler local:N starts N worker processes here)"),
])
def test_a_bad_scheduler_is_one_line_before_any_work(options, message, tmp_path, capsys):
    missing = tmp_path / "no-model"  # checked after the scheduler: its error would come first otherwise
    assert main(["tag", "--model", str(missing), "in.txt", *options]) == 2
    assert capsys.readouterr().err == f"attnlab tag: error: {message}\n"


def test_a_scheduler_that_does_not_answer_is_one_line():
    with pytest.raises(UserError) as caught:
        with connect("tcp://127.0.0.1:9", timeout=1):
            pass
    assert str(caught.value).startswith("tcp://127.0.0.1:9: no Dask scheduler answers there in 1 s (")
    assert "\n" not in str(caught.value)
