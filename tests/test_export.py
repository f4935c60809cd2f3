"""Compact model directories (float16, int8 with per-row scales): round trips, size, refusals,
and `attnlab export`."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from attnlab.checkpoint import CheckpointError, load_model_dir, read_model_json, save_model_dir
from attnlab.cli import main
from attnlab.compact import compare_storages, differing_share, export_model, model_bytes
from attnlab.data.conllu import parse_conllu
from attnlab.errors import UserError
from attnlab.tasks.tagging import load_tagger, predict_tags
from attnlab.tasks.tagging_demo import toy_corpus
from attnlab.weight_storage import SCALE, decode_weights, dequantize_rows, encode_weights, quantize_rows
from tiny_models import tiny_tagger_dir

pytestmark = pytest.mark.usefixtures("one_thread")

INT8_AGREEMENT = 0.97  # share of toy-corpus tags the int8 copy of the tiny tagger must keep


def _corpus():
    return toy_corpus(60, seed=7)


def _tags(directory, sentences):
    loaded = load_tagger(directory)
    return predict_tags(loaded.model, loaded.encoder(), loaded.vocabs, [s.forms for s in sentences]).tags


@pytest.fixture(scope="module")
def tagger():
    return tiny_tagger_dir(steps=40, xpos_weight=0.5)


@pytest.fixture
def plain_dir(tmp_path):
    """A model directory with one large matrix (so that headers do not matter), a bias, an
    integer buffer and a further JSON file."""
    torch.manual_seed(0)
    state = {"embed.weight": torch.randn(2000, 64), "head.bias": torch.randn(64),
             "positions": torch.arange(10), "zero.weight": torch.zeros(3, 4)}
    return save_model_dir(tmp_path / "plain", state, {"task": "demo"}, {"words": ["a"]}, {"lookup.json": {"a": "b"}})


# -- the codec -------------------------------------------------------------------------

def test_quantize_rows_error_is_at_most_half_a_step_per_row():
    torch.manual_seed(1)
    w = torch.randn(50, 3, 7) * torch.logspace(-3, 1, 50)[:, None, None]  # rows of very different sizes
    q, scale = quantize_rows(w)
    assert q.dtype == torch.int8 and q.shape == w.shape and scale.shape == (50,)
    assert int(q.abs().max()) == 127
    error = (dequantize_rows(q, scale) - w).abs().reshape(50, -1).amax(dim=1)
    assert bool((error <= scale / 2 * (1 + 1e-5)).all())
    assert torch.allclose(scale, w.abs().reshape(50, -1).amax(dim=1) / 127)


def test_zero_row_has_zero_scale_and_decodes_to_zero():
    q, scale = quantize_rows(torch.zeros(2, 5))
    assert scale.tolist() == [0.0, 0.0] and torch.equal(dequantize_rows(q, scale), torch.zeros(2, 5))


def test_empty_matrices_round_trip():
    state = {"none.weight": torch.zeros(0, 4), "flat.weight": torch.zeros(3, 0)}
    back = decode_weights(encode_weights(state, "int8"), "int8")
    assert {n: tuple(t.shape) for n, t in back.items()} == {"none.weight": (0, 4), "flat.weight": (3, 0)}


def test_encode_keeps_vectors_in_float16_and_integers_as_they_are(plain_dir):
    state = load_model_dir(plain_dir).state
    int8 = encode_weights(state, "int8")
    assert int8["embed.weight"].dtype == torch.int8 and int8["embed.weight" + SCALE].dtype == torch.float32
    assert int8["head.bias"].dtype == torch.float16 and torch.equal(int8["positions"], torch.arange(10))
    assert all(t.dtype == torch.float16 for n, t in encode_weights(state, "float16").items() if n != "positions")


def test_encode_refuses_what_float16_cannot_hold():
    with pytest.raises(UserError, match="big.weight has values beyond float16"):
        encode_weights({"big.weight": torch.tensor([1e6])}, "float16")
    with pytest.raises(UserError, match="nan.weight holds values that are not finite"):
        encode_weights({"nan.weight": torch.tensor([[float("nan")]])}, "int8")


# -- round trips and size ------------------------------------------------------------------

# int8: 1 byte per weight plus a 4-byte scale per row of 64, i.e. 4 * 64 / 68 times smaller than float32
@pytest.mark.parametrize("storage, factor, tolerance", [("float16", 2, 2 ** -11), ("int8", 4 * 64 / 68, 1 / 254)])
def test_round_trip_error_and_size(plain_dir, tmp_path, storage, factor, tolerance):
    out = export_model(plain_dir, tmp_path / storage, storage)
    before, after = load_model_dir(plain_dir), load_model_dir(out)
    for name, w in before.state.items():
        back = after.state[name]
        assert back.dtype == w.dtype and back.shape == w.shape
        if w.is_floating_point():  # relative to each element (float16) or to its row's largest (int8)
            size = w.abs() if storage == "float16" or w.dim() < 2 else w.abs().amax(dim=1, keepdim=True)
            assert bool(((back - w).abs() <= tolerance * size + 1e-7).all()), name
        else:
            assert torch.equal(back, w)
    ratio = model_bytes(plain_dir)["weights"] / model_bytes(out)["weights"]
    assert factor * 0.98 < ratio <= factor * 1.01  # the headers differ a little
    assert after.config["weight_storage"] == storage and after.config["task"] == "demo"
    assert read_model_json(out, after.config, "lookup.json", "lookup") == {"a": "b"}
    assert after.config["exported_from"]["weight_storage"] == "float32"


def test_float16_tagger_predicts_exactly_as_float32(tagger, tmp_path):
    out = export_model(tagger, tmp_path / "f16", "float16")
    assert _tags(out, _corpus()) == _tags(tagger, _corpus())
    assert model_bytes(out)["weights"] < 0.6 * model_bytes(tagger)["weights"]


def test_int8_tagger_keeps_nearly_every_tag(tagger, tmp_path):
    out = export_model(tagger, tmp_path / "i8", "int8")
    share = differing_share(_tags(tagger, _corpus()), _tags(out, _corpus()))
    assert set(share) == {"upos", "xpos", "any"}
    assert share["any"] <= 1 - INT8_AGREEMENT
    # rows of 12 to 32 weights: the 4-byte scales and the names in the header weigh here
    assert model_bytes(out)["weights"] < 0.5 * model_bytes(tagger)["weights"]


def test_reexporting_a_compact_model_starts_from_its_float32_weights(tagger, tmp_path):
    int8 = export_model(tagger, tmp_path / "i8", "int8")
    again = export_model(int8, tmp_path / "f16", "float16")
    assert load_model_dir(again).config["exported_from"]["weight_storage"] == "int8"
    assert _tags(again, _corpus()) == _tags(int8, _corpus())


def test_training_state_is_left_behind(tagger, tmp_path):
    source = tmp_path / "trained"
    shutil.copytree(tagger, source)
    (source / "checkpoints" / "step-0000001").mkdir(parents=True)
    (source / "checkpoints" / "step-0000001" / "optimizer.safetensors").write_bytes(b"x")
    out = export_model(source, tmp_path / "out", "int8")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "vocab.json"]


# -- refusals ------------------------------------------------------------------------------

def _rewrite(directory, change_state=None, change_config=None):
    """Save ``directory`` again with its stored tensors / config changed (valid checksums)."""
    from attnlab.checkpoint import read_tensors

    files_config = json.loads((directory / "config.json").read_text())
    state = read_tensors(directory / "model.safetensors")
    config = {k: v for k, v in files_config.items() if k not in ("format", "files")}
    vocab = json.loads((directory / "vocab.json").read_text())
    if change_state:
        change_state(state)
    if change_config:
        change_config(config)
    save_model_dir(directory, state, config, vocab)


@pytest.mark.parametrize("change_state, change_config, message", [
    (lambda s: s.pop("embed.weight" + SCALE), None, r"int8 weight embed.weight has no scale \(embed.weight#scale is missing\)"),
    (lambda s: s.update({"embed.weight#scale": s["embed.weight#scale"][:-1]}), None,
     r"scale embed.weight#scale is float32 \(1999,\), expected float32 \(2000,\)"),
    (lambda s: s.update({"embed.weight#scale": s["embed.weight#scale"].half()}), None, "is float16 \\(2000,\\), expected float32"),
    (lambda s: s["embed.weight#scale"].__setitem__(3, -1.0), None, "negative or non-finite"),
    (lambda s: s.update({"head.bias#scale": torch.ones(64)}), None, "head.bias has a scale but is stored as float16"),
    (lambda s: s.update({"gone#scale": torch.ones(2)}), None, "scale gone#scale belongs to no weight"),
    (lambda s: s.update({"head.bias": s["head.bias"].float()}), None, "head.bias is float32; int8 storage keeps floats in float16"),
    (None, lambda c: c.pop("weight_storage"), "int8 weights or scales .* but config.json declares no weight_storage"),
    (None, lambda c: c.update(weight_storage="float16"), r"weight \S+ is int8 but config.json declares float16 storage"),
    (None, lambda c: c.update(weight_storage="int4"), "weight_storage 'int4' is not one of float32, float16, int8"),
])
def test_inconsistent_compact_files_are_refused_in_one_line(plain_dir, tmp_path, change_state, change_config, message):
    out = export_model(plain_dir, tmp_path / "i8", "int8")
    _rewrite(out, change_state, change_config)
    with pytest.raises(CheckpointError, match=message) as err:
        load_model_dir(out)
    assert "\n" not in str(err.value) and str(err.value).startswith(str(out))


def test_a_tampered_scale_fails_the_checksum(plain_dir, tmp_path):
    out = export_model(plain_dir, tmp_path / "i8", "int8")
    path = out / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # inside the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_model_dir(out)


def test_export_refuses_bad_targets_before_reading(plain_dir, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(UserError, match="full: already exists and is not empty"):
        export_model(plain_dir, tmp_path / "full", "int8")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="file: is a file; choose a new directory"):
        export_model(plain_dir, tmp_path / "file", "int8")
    with pytest.raises(UserError, match="plain: is the input; choose a new directory"):
        export_model(plain_dir, plain_dir, "float16")
    with pytest.raises(UserError, match="expected one of float16, int8"):
        export_model(plain_dir, tmp_path / "new", "int4")
    assert not (tmp_path / "new").exists()


# -- the command ---------------------------------------------------------------------------

def _gold_file(tmp_path):
    lines = []
    for sentence in _corpus()[:20]:
        for i, (form, upos, xpos) in enumerate(zip(sentence.forms, sentence.upos, sentence.xpos), 1):
            lines.append(f"{i}\t{form}\t_\t{upos}\t{xpos}\t_\t0\tdep\t_\t_")
        lines.append("")
    path = tmp_path / "gold.conllu"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_writes_a_model_that_tags(tagger, tmp_path, capsys):
    out = tmp_path / "en-int8"
    assert main(["export", "--model", str(tagger), "--out", str(out), "--weights", "int8", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out}: int8 weights, ") and "smaller" in printed
    assert json.loads((out / "config.json").read_text())["weight_storage"] == "int8"
    assert main(["eval", "--model", str(out), str(_gold_file(tmp_path)), "--json"]) == 0


def test_cli_compare_prints_size_accuracy_and_differences(tagger, tmp_path, capsys):
    gold = _gold_file(tmp_path)
    assert main(["export", "--model", str(tagger), "--compare", str(gold), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["storage"] for r in rows] == ["float32", "float16", "int8"]
    assert rows[0]["differ"]["any"] == 0.0 and rows[1]["differ"]["any"] == 0.0
    assert rows[0]["bytes"]["weights"] > rows[1]["bytes"]["weights"] > rows[2]["bytes"]["weights"]
    words = sum(len(s.forms) for s in _corpus()[:20])
    assert rows[1]["scores"] == rows[0]["scores"] and rows[0]["scores"]["words"] == words
    assert main(["export", "--model", str(tagger), "--compare", str(gold)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:5] == ["weights", "file", "MB", "dir", "MB"] and table[3].startswith("int8")


@pytest.mark.parametrize("argv, message", [
    ([], "nothing to do: give --out DIR --weights"),
    (["--out", "{tmp}/o"], "--out and --weights go together"),
    (["--weights", "int8"], "--out and --weights go together"),
    (["--out", "{model}", "--weights", "int8"], "is the input; choose a new directory"),
    (["--compare", "{tmp}/missing.conllu"], "missing.conllu: no such file"),
    (["--compare", "-", "--batch-size", "0"], "argument --batch-size: expected an integer >= 1, got '0'"),
])
def test_cli_refuses_bad_arguments_before_any_work(tagger, tmp_path, capsys, monkeypatch, argv, message):
    import attnlab.compact

    monkeypatch.setattr(attnlab.compact, "load_model_dir", lambda *a: pytest.fail("read the model"))
    argv = [a.format(tmp=tmp_path, model=tagger) for a in argv]
    assert main(["export", "--model", str(tagger), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("attnlab export: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_cli_refuses_a_missing_model_and_a_non_tagger_compare(plain_dir, tmp_path, capsys):
    assert main(["export", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--weights", "int8"]) == 2
    assert "nope: no such model directory" in capsys.readouterr().err
    assert main(["export", "--model", str(plain_dir), "--compare", str(_gold_file(tmp_path))]) == 2
    assert "--compare measures taggers; this model's task is 'demo'" in capsys.readouterr().err


def test_compare_library_rows_match_the_stored_model(tagger, tmp_path):
    gold = parse_conllu(_gold_file(tmp_path).read_text())
    rows = compare_storages(tagger, gold)
    assert rows[2]["differ"]["any"] <= 1 - INT8_AGREEMENT
    assert rows[0]["scores"]["UPOS"]["accuracy"] > 0.5  # the tiny tagger has learnt something
