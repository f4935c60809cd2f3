"""Model directories and optimizer state: round trips, and clear errors for broken files."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
import torch

from attnlab.checkpoint import (
    CheckpointError, atomic_write_bytes, load_model_dir, load_state_into, optimizer_from_files,
    optimizer_to_files, read_tensors, remove_stale_temporaries, save_model_dir, tensors_bytes,
)
from attnlab.cli import main
from attnlab.errors import UserError


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 2))


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "model"
    save_model_dir(d, _model().state_dict(), {"task": "demo", "sizes": [4, 3, 2]}, {"words": ["a", "b"]})
    return d


def test_round_trip(model_dir):
    files = load_model_dir(model_dir)
    assert files.config["task"] == "demo" and files.config["sizes"] == [4, 3, 2]
    assert files.vocab == {"words": ["a", "b"]}
    for name, tensor in _model().state_dict().items():
        assert torch.equal(files.state[name], tensor)
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "model.safetensors", "vocab.json"]


def test_truncated_weights(model_dir):
    path = model_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError) as err:
        load_model_dir(model_dir)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and "truncated or corrupted" in msg and "\n" not in msg


def test_empty_weights_file(model_dir):
    (model_dir / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="model.safetensors: not a valid safetensors file"):
        load_model_dir(model_dir)


def test_flipped_byte_in_weights_is_caught_by_the_checksum(model_dir):
    path = model_dir / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # inside the tensor data: still a well-formed safetensors file
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: checksum mismatch"):
        load_model_dir(model_dir)


def test_truncated_config(model_dir):
    path = model_dir / "config.json"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match=r"config\.json:\d+: model config is not valid JSON .*truncated or corrupted"):
        load_model_dir(model_dir)


def test_vocab_from_another_save(model_dir, tmp_path):
    (model_dir / "vocab.json").write_text(json.dumps({"words": ["a", "c"]}))
    with pytest.raises(CheckpointError, match=r"vocab\.json: checksum mismatch"):
        load_model_dir(model_dir)


def test_missing_files(model_dir, tmp_path):
    with pytest.raises(CheckpointError, match="no such model directory"):
        load_model_dir(tmp_path / "nowhere")
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors: missing model weights"):
        load_model_dir(model_dir)


def test_not_a_model_config(tmp_path):
    (tmp_path / "config.json").write_text('{"hello": 1}')
    with pytest.raises(CheckpointError, match="not an attnlab model config"):
        load_model_dir(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="must hold a JSON object"):
        load_model_dir(tmp_path)


def test_load_state_into_names_the_mismatch():
    model = _model()
    state = dict(model.state_dict())
    state["2.weight"] = torch.zeros(5, 3)
    with pytest.raises(CheckpointError, match=r"m\.safetensors: weight 2\.weight has shape \(5, 3\), the model expects \(2, 3\)"):
        load_state_into(model, state, "m.safetensors")
    del state["2.weight"]
    with pytest.raises(CheckpointError, match=r"missing 2\.weight"):
        load_state_into(model, state, "m.safetensors")


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, None)  # fails while writing
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # the temporary file is gone


def test_optimizer_state_round_trip_without_pickle(tmp_path):
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.9))
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
    tensors, meta = optimizer_to_files(opt)
    path = tmp_path / "optimizer.safetensors"
    path.write_bytes(tensors_bytes(tensors))
    meta = json.loads(json.dumps(meta))  # really JSON

    model2 = _model()
    model2.load_state_dict(model.state_dict())
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1.0)
    optimizer_from_files(opt2, read_tensors(path), meta, str(path))
    assert opt2.param_groups[0]["betas"] == (0.8, 0.9) and opt2.param_groups[0]["lr"] == 1e-2
    # the same next step on both
    x = torch.randn(5, 4)
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).pow(2).sum().backward()
        o.step()
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)


def test_cli_reports_a_corrupted_model_in_one_line(model_dir, tmp_path, capsys):
    (model_dir / "model.safetensors").write_bytes(b"\x00\x01garbage")
    data = tmp_path / "x.conllu"
    data.write_text("1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n\n")
    code = main(["eval", "--model", str(model_dir), str(data)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "model.safetensors" in err and "Traceback" not in err


# -- bad model directories -------------------------------------------------------------

def _edit_config(directory, edit):
    path = directory / "config.json"
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))


def _one_line_error(call, match):
    with pytest.raises(CheckpointError, match=match) as err:
        call()
    assert "\n" not in str(err.value)
    return str(err.value)


def test_files_entry_that_is_not_a_mapping(model_dir):
    _edit_config(model_dir, lambda r: r.update(files="x"))
    _one_line_error(lambda: load_model_dir(model_dir), r'config\.json: "files" must map file names to SHA-256 checksums')


def test_a_model_without_checksums_is_refused(model_dir):
    path = model_dir / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flipped weight bytes nobody could detect without the checksum
    path.write_bytes(bytes(data))
    _edit_config(model_dir, lambda r: r["files"].pop("model.safetensors"))
    _one_line_error(lambda: load_model_dir(model_dir), r"config\.json: the model has no checksum for model\.safetensors")
    _edit_config(model_dir, lambda r: r.pop("files"))
    _one_line_error(lambda: load_model_dir(model_dir), "has no checksum")


def test_weights_that_are_not_a_regular_file(model_dir):
    path = model_dir / "model.safetensors"
    path.unlink()
    path.symlink_to("/dev/zero")  # endless: must not be read
    _one_line_error(lambda: load_model_dir(model_dir), r"model\.safetensors: model weights is not a regular file")
    path.unlink()
    path.mkdir()
    _one_line_error(lambda: load_model_dir(model_dir), "not a regular file")


def test_safetensors_reads_are_bounded_by_the_header(tmp_path):
    data = tensors_bytes({"w": torch.arange(6.0)})
    path = tmp_path / "w.safetensors"
    path.write_bytes((10**12).to_bytes(8, "little") + data[8:])  # a header length beyond the file
    _one_line_error(lambda: read_tensors(path), r"not a valid safetensors file.*header of 1000000000000 bytes in a file of")
    path.write_bytes(data + b"\0" * 4)  # data beyond what the header describes
    _one_line_error(lambda: read_tensors(path), f"the header describes {len(data)} bytes, the file has {len(data) + 4}")
    path.write_bytes(data)
    assert torch.equal(read_tensors(path)["w"], torch.arange(6.0))


@pytest.fixture
def tagger_dir(tmp_path):
    import shutil

    from tiny_models import tiny_tagger_dir

    directory = tmp_path / "tagger"
    shutil.copytree(tiny_tagger_dir(), directory)
    return directory


@pytest.mark.parametrize("section, key, value, match", [
    ("encoder_config", "hidden", 2**20, r"model\.encoder_config\.hidden = 1048576 is out of range \(0 to 65536\)"),
    ("encoder_config", "d_ff", 2**24, r"model\.encoder_config\.d_ff = 16777216 is out of range"),
    ("encoder_config", "layers", 10**6, r"model\.encoder_config\.layers = 1000000 is out of range \(0 to 64\)"),
    ("encoder_config", "dropout", 1.5, r"model\.encoder_config\.dropout = 1\.5 is out of range"),
    ("encoder_config", "hidden", 16.5, r"model\.encoder_config\.hidden must be an integer, found 16\.5"),
    ("encoder_config", "heads", 3, r"malformed model description \(.*divisible"),
    ("features", "char_widths", "abc", r"malformed model description \(invalid literal for int"),
    ("encoder_config", "hidden", 60000, r"model\.safetensors: weight \S+ has shape \([\d, ]+\), the model expects \([\d, ]*(60000|180000)"),
])
def test_model_descriptions_are_checked_before_building(tagger_dir, section, key, value, match):
    from attnlab.tasks.tagging import load_tagger

    _edit_config(tagger_dir, lambda r: r["model"][section].update({key: value}))
    _one_line_error(lambda: load_tagger(tagger_dir), match)


def test_model_description_must_be_an_object(tagger_dir):
    from attnlab.tasks.tagging import load_tagger

    _edit_config(tagger_dir, lambda r: r.update(model=[1]))
    _one_line_error(lambda: load_tagger(tagger_dir), r'config\.json: no model description \("model" must be a JSON object\)')


# -- writing ---------------------------------------------------------------------------

class Killed(BaseException):
    """Stands for kill -9 in the middle of a save."""


def _other_model():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 2))


def test_killed_before_config_json_is_replaced_the_old_model_stays(model_dir, monkeypatch):
    import attnlab.checkpoint as ckpt

    write = ckpt.atomic_write_bytes

    def killed_at_config(path, data):
        if Path(path).name == "config.json":
            raise Killed
        write(path, data)

    monkeypatch.setattr(ckpt, "atomic_write_bytes", killed_at_config)
    with pytest.raises(Killed):
        save_model_dir(model_dir, _other_model().state_dict(), {"task": "demo", "sizes": [9]}, {"words": ["z"]})
    monkeypatch.undo()
    files = load_model_dir(model_dir)  # the old model, whole
    assert files.config["sizes"] == [4, 3, 2] and files.vocab == {"words": ["a", "b"]}
    for name, tensor in _model().state_dict().items():
        assert torch.equal(files.state[name], tensor)
    remove_stale_temporaries(model_dir)  # the uncommitted staged files go
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "model.safetensors", "vocab.json"]
    assert load_model_dir(model_dir).config["sizes"] == [4, 3, 2]


def test_killed_after_config_json_is_replaced_the_new_model_is_read(model_dir, monkeypatch):
    rename = os.replace

    def killed_at_first_rename(src, dst):
        if str(src).endswith(".staged"):
            raise Killed
        rename(src, dst)

    monkeypatch.setattr(os, "replace", killed_at_first_rename)
    with pytest.raises(Killed):
        save_model_dir(model_dir, _other_model().state_dict(), {"task": "demo", "sizes": [9]}, {"words": ["z"]})
    monkeypatch.undo()
    for _ in range(2):  # before and after the renames are finished
        files = load_model_dir(model_dir)
        assert files.config["sizes"] == [9] and files.vocab == {"words": ["z"]}
        for name, tensor in _other_model().state_dict().items():
            assert torch.equal(files.state[name], tensor)
        remove_stale_temporaries(model_dir)
        assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "model.safetensors", "vocab.json"]


def test_stale_temporaries_of_ours_are_removed_and_nothing_else(model_dir):
    ours = [".model.safetensors.a1b2c3d4.tmp", ".config.json.k_9x0z2q.tmp", ".vocab.json.0123456789abcdef.staged"]
    theirs = ["notes.tmp", ".hidden.tmp", "model.safetensors.bak"]
    for name in ours + theirs:
        (model_dir / name).write_bytes(b"x")
    remove_stale_temporaries(model_dir)
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(["config.json", "model.safetensors", "vocab.json", *theirs])


def test_a_full_disk_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(target, b"old")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(UserError) as err:
        atomic_write_bytes(target, b"new")
    assert str(err.value).startswith(f"{tmp_path / 'sub'}: no space left on the device") and "\n" not in str(err.value)
    assert target.read_bytes() == b"old" and [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_a_full_disk_during_a_model_save_keeps_the_old_model(model_dir, monkeypatch):
    import attnlab.checkpoint as ckpt

    write = ckpt.atomic_write_bytes

    def no_space_for_vocab(path, data):  # the weights are staged, then the disk is full
        if Path(path).name.startswith(".vocab.json"):
            raise UserError(f"{Path(path).parent}: no space left on the device")
        write(path, data)

    monkeypatch.setattr(ckpt, "atomic_write_bytes", no_space_for_vocab)
    with pytest.raises(UserError):
        save_model_dir(model_dir, _other_model().state_dict(), {"task": "demo", "sizes": [9]}, {"words": ["z"]})
    monkeypatch.undo()
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "model.safetensors", "vocab.json"]
    assert load_model_dir(model_dir).config["sizes"] == [4, 3, 2]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"data")
        save_model_dir(tmp_path / "m", _model().state_dict(), {"task": "demo"}, {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == mode
    for path in (tmp_path / "m").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == mode, path.name
