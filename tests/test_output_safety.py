"""Writing files: one writer (``attnlab.output``) for every command. Regular files atomically;
devices, FIFOs and stdout in place; never over a command's own input; model directories never
into other data; a file name a model's config.json gives stays inside the model directory;
write errors as one line.

Devices are made with mknod in a temporary directory (root); the machine's own /dev/null is
never the target of a test that could replace it."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from attnlab.checkpoint import CheckpointError, load_model_dir
from attnlab.cli import main
from attnlab.errors import UserError
from attnlab.output import check_new_directory, write_output
from tiny_models import tiny_tagger_dir
from tiny_tasks import demo_slices

pytestmark = pytest.mark.usefixtures("one_thread")

GOLD = "1\tI\tI\tPRON\tPRP\t_\t2\tnsubj\t_\t_\n2\tsaw\tsee\tVERB\tVBD\t_\t0\troot\t_\t_\n\n"
TINY = ["--hidden", "16", "--layers", "1", "--heads", "2", "--d-ff", "32", "--word-dim", "16", "--char-filters", "8",
        "--batch-tokens", "300", "--warmup", "5", "--no-progress", "--threads", "1", "--epochs", "1",
        "--segmenter-minutes", "0"]


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _char_device(directory: Path, minor: int = 3) -> Path:
    """A character device in ``directory``: /dev/null's (minor 3) or /dev/full's (minor 7)."""
    path = directory / ("null" if minor == 3 else "full")
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except (PermissionError, AttributeError):
        pytest.skip("cannot make a device node here (not root)")
    return path


def _fifo_reader(fifo: Path) -> tuple[threading.Thread, list]:
    got: list[bytes] = []

    def read():
        with open(fifo, "rb") as f:
            got.append(f.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, got


@pytest.fixture(scope="module")
def model():
    return tiny_tagger_dir(steps=5)


@pytest.fixture
def gold(tmp_path):
    path = tmp_path / "gold.conllu"
    path.write_text(GOLD, encoding="utf-8")
    return path


# -- the writer ------------------------------------------------------------------------------

def test_a_regular_file_is_replaced_atomically_and_a_symlink_to_it_stays(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    write_output(link, "new\n")
    assert link.is_symlink() and target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt", "out.txt"]  # no temporary left


def test_a_character_device_is_written_in_place_not_replaced(tmp_path):
    device = _char_device(tmp_path)
    write_output(device, "x" * 100)
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    link = tmp_path / "link"
    link.symlink_to(device)
    write_output(link, b"y")
    assert link.is_symlink() and stat.S_ISCHR(os.lstat(device).st_mode)


def test_a_fifo_gets_the_data_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    thread, got = _fifo_reader(fifo)
    write_output(fifo, "through the pipe\n")
    thread.join(10)
    assert got == [b"through the pipe\n"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_dash_is_stdout(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_output("-", "to stdout\n")
    write_output(Path("-"), b"bytes too\n")
    assert capsys.readouterr().out == "to stdout\nbytes too\n"
    assert not (tmp_path / "-").exists()


def test_an_input_is_never_the_output_by_name_symlink_or_hard_link(tmp_path, gold):
    link, hard, sub = tmp_path / "link.conllu", tmp_path / "hard.conllu", tmp_path / "sub"
    link.symlink_to(gold)
    os.link(gold, hard)
    sub.mkdir()
    for out in (gold, link, hard, sub / ".." / "gold.conllu"):
        with pytest.raises(UserError, match="the input") as err:
            write_output(out, "tagged", inputs=[gold])
        assert str(err.value).startswith(f"{out}: is ")
    with pytest.raises(UserError, match="is the same file as the input"):
        write_output(gold, "tagged", inputs=[link])
    assert gold.read_text() == GOLD and link.is_symlink() and os.stat(gold).st_nlink == 2


def test_block_devices_sockets_and_directories_are_refused(tmp_path):
    block = tmp_path / "block"
    try:
        os.mknod(block, stat.S_IFBLK | 0o600, os.makedev(7, 255))
    except PermissionError:
        pytest.skip("cannot make a device node here (not root)")
    with pytest.raises(UserError, match="block: is a block device; attnlab writes regular files"):
        write_output(block, "x")
    assert stat.S_ISBLK(os.lstat(block).st_mode)
    with pytest.raises(UserError, match="is a directory"):
        write_output(tmp_path, "x")


def test_write_errors_name_the_path(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match=f"{tmp_path / 'file'}: is not a directory"):
        write_output(tmp_path / "file" / "sub" / "out.txt", "x")
    if Path("/sys").is_dir():
        with pytest.raises(UserError, match="/sys/attnlab-test.txt: cannot write"):
            write_output("/sys/attnlab-test.txt", "x")
    full = _char_device(tmp_path, minor=7)
    with pytest.raises(UserError, match=f"{full}: cannot write \\(No space left on device\\)"):
        write_output(full, "x")

    _read_only_file_system(monkeypatch)
    with pytest.raises(UserError, match=f"{tmp_path / 'ro.txt'}: cannot write \\(Read-only file system\\)"):
        write_output(tmp_path / "ro.txt", "x")


@pytest.mark.parametrize("write", ["conllu", "vocab", "figure", "explorer"])
def test_the_library_writers_keep_a_device_a_device(tmp_path, write):
    device = _char_device(tmp_path)
    if write == "conllu":
        from attnlab.data.conllu import parse_conllu, write_conllu

        write_conllu(parse_conllu(GOLD, "gold"), device)
    elif write == "vocab":
        from attnlab.data.vocab import Vocab

        Vocab.build(["a", "b"]).save(device)
    elif write == "figure":
        from attnlab.viz.figure import pyplot, save_figure

        save_figure(pyplot().figure(), device)
    else:
        from attnlab.viz.notebook import Explorer

        Explorer("<html></html>").save(device)
    assert stat.S_ISCHR(os.lstat(device).st_mode)


# -- attnlab tag -----------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["same path", "symlink", "hard link", "model file"])
def test_tag_never_writes_over_its_input(model, gold, tmp_path, capsys, how):
    if how == "symlink":
        out = tmp_path / "link.conllu"
        out.symlink_to(gold)
    elif how == "hard link":
        out = tmp_path / "hard.conllu"
        os.link(gold, out)
    else:
        out = gold
    if how == "model file":
        copy = tmp_path / "model"
        shutil.copytree(model, copy)
        model, out = copy, copy / "model.safetensors"
    before = _sha(out)
    assert main(["tag", "--model", str(model), str(gold), "-o", str(out)]) == 2
    assert f"{out}: is " in _one_line_error(capsys)
    assert _sha(out) == before and gold.read_text() == GOLD


def test_tag_never_writes_over_the_file_on_stdin(model, gold, capsys, monkeypatch):
    with open(gold, encoding="utf-8") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        assert main(["tag", "--model", str(model), "-o", str(gold)]) == 2
    assert "is the same file as the input stdin" in _one_line_error(capsys)
    assert gold.read_text() == GOLD


def test_tag_writes_a_device_a_fifo_and_stdout_in_place(model, gold, tmp_path, capsys, monkeypatch):
    device = _char_device(tmp_path)
    assert main(["tag", "--model", str(model), str(gold), "-o", str(device)]) == 0
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    thread, got = _fifo_reader(fifo)
    assert main(["tag", "--model", str(model), str(gold), "-o", str(fifo)]) == 0
    thread.join(10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and got and got[0].decode().count("\n") == 3
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["tag", "--model", str(model), str(gold), "-o", "-"]) == 0
    assert capsys.readouterr().out.count("\t") == 18 and not (tmp_path / "-").exists()


def test_tag_to_a_full_device_or_into_sys_is_one_line(model, gold, tmp_path, capsys, monkeypatch):
    full = _char_device(tmp_path, minor=7)
    assert main(["tag", "--model", str(model), str(gold), "-o", str(full)]) == 2
    assert f"{full}: cannot write (No space left on device)" in _one_line_error(capsys)
    assert stat.S_ISCHR(os.lstat(full).st_mode)
    if Path("/sys").is_dir():
        assert main(["tag", "--model", str(model), str(gold), "-o", "/sys/attnlab-out.conllu"]) == 2
        assert "/sys/attnlab-out.conllu: cannot write" in _one_line_error(capsys)
    stdout = io.TextIOWrapper(open(full, "wb"))  # stdout on a full disk: `attnlab tag > /dev/full`
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["tag", "--model", str(model), str(gold)]) == 2
    assert _one_line_error(capsys) == "attnlab: error: cannot write to stdout (No space left on device)"


def test_stdout_on_a_full_disk_is_one_line_for_any_command(tmp_path):
    full = _char_device(tmp_path, minor=7)
    with open(full, "wb") as stdout:
        r = subprocess.run([sys.executable, "-m", "attnlab", "steps"], stdout=stdout, stderr=subprocess.PIPE,
                           text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr == "attnlab: error: cannot write to stdout (No space left on device)\n"


# -- model files named by config.json ----------------------------------------------------------

def _with_file_entry(model: Path, directory: Path, name: str, content: bytes = b'{"a": 1}\n') -> Path:
    """A copy of ``model`` whose config.json names ``name`` (relative to the copy) with the right checksum."""
    copy = directory / "model"
    shutil.copytree(model, copy)
    target = copy / name
    if Path(os.path.abspath(target)).is_relative_to(directory) and name not in ("", ".."):  # never made elsewhere
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    config = json.loads((copy / "config.json").read_text())
    config["files"][name] = _sha(target) if target.is_file() else "0" * 64
    (copy / "config.json").write_text(json.dumps(config))
    return copy


@pytest.mark.parametrize("name", ["../escape.json", "../../../../../../../../../etc/passwd", "/etc/passwd",
                                  "sub/x.json", "..", ""])
def test_a_file_name_outside_the_model_directory_is_refused_on_load(model, tmp_path, name):
    copy = _with_file_entry(model, tmp_path, name)
    with pytest.raises(CheckpointError, match="which is not a plain file name in the model directory"):
        load_model_dir(copy)
    import attnlab

    with pytest.raises(CheckpointError, match="not a plain file name"):
        attnlab.load(copy)


def test_export_never_writes_outside_out(model, tmp_path, capsys):
    copy = _with_file_entry(model, tmp_path, "../escape.json")
    (tmp_path / "exports").mkdir()
    out = tmp_path / "exports" / "int8"
    assert main(["export", "--model", str(copy), "--out", str(out), "--weights", "int8"]) == 2
    assert "'../escape.json', which is not a plain file name" in _one_line_error(capsys)
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == []


def test_export_takes_a_shipped_models_name(model, tmp_path, capsys, monkeypatch):
    import attnlab.api

    shipped = tmp_path / "models"
    shutil.copytree(model, shipped / "tiny")
    monkeypatch.setattr(attnlab.api, "MODELS_DIR", shipped)
    monkeypatch.chdir(tmp_path)  # no directory named "tiny" here
    assert main(["export", "--model", "tiny", "--out", str(tmp_path / "tiny-int8"), "--weights", "int8"]) == 0
    assert load_model_dir(tmp_path / "tiny-int8").config["weight_storage"] == "int8"


def test_export_leaves_no_model_the_loader_refuses(model, tmp_path, capsys):
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    config = json.loads((copy / "config.json").read_text())
    config["model"]["encoder_config"]["heads"] = 3  # 16 is not divisible by 3: every loader refuses it
    (copy / "config.json").write_text(json.dumps(config))
    (tmp_path / "exports").mkdir()
    out = tmp_path / "exports" / "int8"
    assert main(["export", "--model", str(copy), "--out", str(out), "--weights", "int8"]) == 2
    err = _one_line_error(capsys)
    assert f"{out}: not written: the copy would not load ({copy / 'config.json'}" in err and "divisible" in err
    assert list((tmp_path / "exports").iterdir()) == []  # neither --out nor the staging directory


@pytest.mark.parametrize("where", ["under a file", "sys", "fifo", "data"])
def test_export_out_that_cannot_or_must_not_be_written_is_one_line(model, tmp_path, capsys, where):
    (tmp_path / "file").write_text("x")
    out = {"under a file": tmp_path / "file" / "m", "sys": Path("/sys/attnlab-model"), "fifo": tmp_path / "fifo",
           "data": tmp_path}[where]
    if where == "fifo":
        os.mkfifo(out)
    if where == "sys" and not Path("/sys").is_dir():
        pytest.skip("no /sys")
    before = sorted(os.listdir(tmp_path))
    assert main(["export", "--model", str(model), "--out", str(out), "--weights", "int8"]) == 2
    err = _one_line_error(capsys)
    expected = {"under a file": f"{tmp_path / 'file'}: is not a directory", "sys": "/sys/attnlab-model: cannot write",
                "fifo": f"{out}: is a FIFO; choose a new directory", "data": f"{tmp_path}: already exists and is not empty"}
    assert expected[where] in err
    assert sorted(os.listdir(tmp_path)) == before


# -- model directories -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def treebank(tmp_path_factory):
    root = tmp_path_factory.mktemp("tb")
    for split, path in demo_slices(root, train=40, dev=10, test=10).items():
        path.rename(root / f"tiny-{split}.conllu")
    return root


def test_train_refuses_the_treebank_directory_and_other_data(treebank, tmp_path, capsys):
    before = sorted(os.listdir(treebank))
    assert main(["train", "--treebank", str(treebank), "--out", str(treebank), *TINY]) == 2
    assert f"{treebank}: is the input; choose a new directory" in _one_line_error(capsys)
    assert sorted(os.listdir(treebank)) == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["train", "--treebank", str(treebank), "--out", str(other), *TINY]) == 2
    assert f"{other}: already exists and is not empty (notes.txt)" in _one_line_error(capsys)
    assert os.listdir(other) == ["notes.txt"]
    train_file = treebank / "tiny-train.conllu"
    assert main(["train", "--train", str(train_file), "--dev", str(train_file), "--out", str(train_file), *TINY]) == 2
    assert f"{train_file}: is a file; choose a new directory" in _one_line_error(capsys)


def test_train_out_that_cannot_be_written_fails_before_training(treebank, tmp_path, capsys, monkeypatch):
    import attnlab.train

    monkeypatch.setattr(attnlab.train, "train", lambda *a, **k: pytest.fail("trained"))
    (tmp_path / "file").write_text("x")
    assert main(["train", "--treebank", str(treebank), "--out", str(tmp_path / "file" / "m"), *TINY]) == 2
    assert f"{tmp_path / 'file'}: is not a directory" in _one_line_error(capsys)
    if Path("/sys").is_dir():
        assert main(["train", "--treebank", str(treebank), "--out", "/sys/attnlab-model", *TINY]) == 2
        assert "/sys/attnlab-model: cannot write" in _one_line_error(capsys)
    _read_only_file_system(monkeypatch)
    assert main(["train", "--treebank", str(treebank), "--out", str(tmp_path / "ro"), *TINY]) == 2
    assert f"{tmp_path / 'ro'}: cannot write (Read-only file system)" in _one_line_error(capsys)


def test_check_new_directory_takes_new_and_empty_directories_only(tmp_path):
    check_new_directory(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_new_directory(tmp_path / "empty")
    (tmp_path / "empty" / "x").write_text("x")
    with pytest.raises(UserError, match="already exists and is not empty"):
        check_new_directory(tmp_path / "empty")


def test_the_demo_replaces_its_models_but_not_other_data(tmp_path):
    from attnlab.tasks.tagging_demo import run_demo

    mine = tmp_path / "attention-tagger" / "mine.txt"
    mine.parent.mkdir()
    mine.write_text("keep")
    with pytest.raises(UserError, match="attention-tagger: already exists and is not empty"):
        run_demo(tmp_path, epochs=1, progress=False, say=lambda m: None)
    assert mine.read_text() == "keep"


# -- other commands ---------------------------------------------------------------------------

def test_explain_never_draws_over_a_model_file(tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_tagger_dir(steps=5), model)
    image = tmp_path / "vocab.png"
    os.link(model / "vocab.json", image)  # a hard link with an image's name
    before = _sha(model / "vocab.json")
    assert main(["explain", "--model", str(model), "I saw a saw", "--out", str(image)]) == 2
    assert f"{image}: is the same file as the input {model / 'vocab.json'}" in _one_line_error(capsys)
    assert _sha(model / "vocab.json") == before


def test_bench_json_output_is_checked_before_the_benchmark_runs(tmp_path, capsys):
    assert main(["bench", "attention", "--quick", "--json", str(tmp_path)]) == 2
    assert f"argument --json: {tmp_path}: is a directory" in capsys.readouterr().err


def test_experiment_out_that_cannot_be_written_fails_before_the_experiment(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["experiment", "speed", "--quick", "--no-progress", "--out", str(tmp_path / "file" / "res")]) == 2
    assert f"{tmp_path / 'file'}: is not a directory" in _one_line_error(capsys)


def test_export_into_an_empty_directory_or_a_link_to_one(model, tmp_path):
    from attnlab.compact import export_model

    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    export_model(model, tmp_path / "link", "float16")
    assert (tmp_path / "link").is_symlink()
    assert load_model_dir(tmp_path / "empty").config["weight_storage"] == "float16"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "link"]  # no staging directory left


def test_train_out_set_to_the_pretrained_checkpoint_is_the_input_not_a_model(treebank, tmp_path, capsys):
    pytest.importorskip("tokenizers")
    checkpoint = tmp_path / "bert"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text('{"model_type": "bert"}')
    assert main(["train", "--treebank", str(treebank), "--pretrained", str(checkpoint), "--out", str(checkpoint), *TINY]) == 2
    assert f"{checkpoint}: is the input; choose a new directory" in _one_line_error(capsys)
    assert os.listdir(checkpoint) == ["config.json"]


def test_a_symlink_loop_is_one_line(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(UserError, match="a: cannot write"):
        write_output(tmp_path / "a", "x")
    assert (tmp_path / "a").is_symlink()


def _read_only_file_system(monkeypatch) -> None:
    """Make every file creation fail as on a read-only file system (EROFS)."""
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)


def test_a_models_own_files_are_inputs_but_an_earlier_output_beside_them_is_not(tmp_path, capsys):
    import shutil

    from tiny_models import tiny_pipeline_dir

    model = tmp_path / "model"
    shutil.copytree(tiny_pipeline_dir(), model)
    src = tmp_path / "in.txt"
    src.write_text("I see a idea.\n", encoding="utf-8")
    for _ in range(2):  # the second run replaces the first one's output, which is no file of the model
        assert main(["tag", "--model", str(model), str(src), "-o", str(model / "out.conllu")]) == 0
    for own in ("config.json", "vocab.json", "segmenter/model.safetensors", "segmenter/multiword.json"):
        before = (model / own).read_bytes()
        assert main(["tag", "--model", str(model), str(src), "-o", str(model / own)]) == 2
        assert "is the input" in _one_line_error(capsys) and (model / own).read_bytes() == before
