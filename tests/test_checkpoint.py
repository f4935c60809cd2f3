"""Model directories and optimizer state: round trips, and clear errors for broken files."""

from __future__ import annotations

import json

import pytest
import torch

from attnlab.checkpoint import (
    CheckpointError, atomic_write_bytes, load_model_dir, load_state_into, optimizer_from_files,
    optimizer_to_files, read_tensors, save_model_dir, tensors_bytes,
)
from attnlab.cli import main


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
