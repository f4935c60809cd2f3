"""Hostile checkpoints: every model format attnlab reads (its own model directories, their
compact copies, Hugging Face checkpoints and their shard index) is refused in one line,
naming the file and the key, before anything is built from it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attnlab.checkpoint import (
    CONFIG, MAX_CONFIG_BYTES, MAX_JSON_DEPTH, WEIGHTS, CheckpointError, check_model_description, load_model_dir,
    read_json, read_tensors, save_model_dir,
)
from attnlab.compact import export_model
from attnlab.errors import UserError
from attnlab.hf import HFConfig, HFEncoder, load_encoder, parse_config
from attnlab.hf.config import MAX_PARAMETERS, parameter_count
from attnlab.hf.weights import INDEX
from attnlab.tasks.tagging import load_tagger
from tiny_hf import VOCAB, hf_model, save_checkpoint
from tiny_models import tiny_tagger_dir

pytestmark = pytest.mark.usefixtures("one_thread")

BERT = {"model_type": "bert", "hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1,
        "intermediate_size": 16, "vocab_size": 10, "max_position_embeddings": 12}
DISTILBERT = {"model_type": "distilbert", "dim": 8, "n_heads": 2, "n_layers": 1, "hidden_dim": 16,
              "vocab_size": 10, "max_position_embeddings": 12}


def refused(call, *keys):
    """The one-line CheckpointError ``call()`` raises, checked to name every one of ``keys``."""
    with pytest.raises(CheckpointError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message and all(key in message for key in keys), message
    return message


# -- Hugging Face config.json values ------------------------------------------------------

@pytest.mark.parametrize("base, key, value", [
    (BERT, "model_type", ["bert"]),
    (BERT, "hidden_act", ["gelu"]),
    (DISTILBERT, "activation", {"name": "gelu"}),
    (BERT, "position_embedding_type", ["absolute"]),
    (BERT, "is_decoder", "false"),
    (BERT, "hidden_size", None),
    (BERT, "hidden_size", -32),
    (BERT, "hidden_size", 32.9),
    (BERT, "hidden_size", 32.0),
    (BERT, "hidden_size", True),
    (BERT, "hidden_size", "32"),
    (BERT, "vocab_size", 10**9),
    (BERT, "max_position_embeddings", 10**9),
    (BERT, "num_hidden_layers", 10**5),
    (BERT, "num_hidden_layers", 65),
    (BERT, "num_hidden_layers", 0),
    (BERT, "intermediate_size", 10**8),
    (BERT, "num_attention_heads", 3),
    (BERT, "num_attention_heads", 0),
    (BERT, "type_vocab_size", -1),
    (BERT, "embedding_size", [8]),
    (BERT, "pad_token_id", 10),
    (BERT, "pad_token_id", -1),
    (BERT, "layer_norm_eps", -1),
    (BERT, "layer_norm_eps", 0),
    (BERT, "layer_norm_eps", float("nan")),
    (BERT, "layer_norm_eps", float("inf")),
    (BERT, "layer_norm_eps", "1e-12"),
    (BERT, "hidden_dropout_prob", 1.5),
    (DISTILBERT, "n_layers", 1e5),
    (DISTILBERT, "dim", -8),
])
def test_config_values_of_the_wrong_type_or_range_are_refused_by_key(base, key, value):
    refused(lambda: parse_config({**base, key: value}, "ckpt/config.json"), "ckpt/config.json: ", key)


def test_roberta_padding_id_must_leave_a_position():
    refused(lambda: parse_config({**BERT, "model_type": "roberta", "pad_token_id": 9, "max_position_embeddings": 10}),
            "pad_token_id = 9 leaves no position")


@pytest.mark.parametrize("sizes", [
    {"vocab_size": 1_000_000, "hidden_size": 4096, "num_attention_heads": 64},       # 16 GB of embeddings
    {"hidden_size": 8192, "intermediate_size": 65536, "num_hidden_layers": 64, "num_attention_heads": 64},
])
def test_a_memory_bomb_is_refused_from_the_sizes_before_anything_is_built(tmp_path, sizes, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({**BERT, **sizes}))
    built = []
    monkeypatch.setattr(HFEncoder, "__init__", lambda self, config: built.append(config))
    message = refused(lambda: load_encoder(tmp_path), "config.json: the sizes ask for", f"{MAX_PARAMETERS:,}")
    assert "GB in float32" in message and built == []


def test_the_estimate_is_the_encoders_parameter_count():
    for raw in (BERT, DISTILBERT, {**BERT, "model_type": "electra", "embedding_size": 4, "type_vocab_size": 3},
                {**BERT, "model_type": "roberta", "pad_token_id": 1}):
        config = parse_config(raw)
        with torch.device("meta"):
            model = HFEncoder(config)
        assert parameter_count(config) == sum(t.numel() for t in model.state_dict().values())


def test_an_hfconfig_made_directly_is_checked_too():
    good = parse_config(BERT)
    fields = {**vars(good)}
    with pytest.raises(ValueError, match="layer_norm_eps = -1.0 is out of range"):
        HFConfig(**{**fields, "layer_norm_eps": -1.0})
    with pytest.raises(ValueError, match="position_offset = 5 does not follow"):
        HFConfig(**{**fields, "position_offset": 5})
    with pytest.raises(ValueError, match="hidden_size must be an integer"):
        HFConfig(**{**fields, "width": 8.5})


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, "nested more than"),
    ('{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1), f"nested more than {MAX_JSON_DEPTH} levels"),
    ("[1, 2]", "must hold a JSON object, found list"),
    ('{"model_type": ', "is not valid JSON"),
    ('{"model_type": "bert", "pad": "' + "x" * MAX_CONFIG_BYTES + '"}', f"more than the limit of {MAX_CONFIG_BYTES}"),
])
def test_config_json_is_bounded_in_depth_and_size(tmp_path, text, message):
    (tmp_path / "config.json").write_text(text)
    refused(lambda: load_encoder(tmp_path), "config.json", message)


# -- Hugging Face weights ------------------------------------------------------------------

@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_checkpoint(hf_model("bert"), tmp_path_factory.mktemp("bert"))


def copy_with(source, target, change):
    """A copy of the checkpoint ``source`` whose model.safetensors went through ``change(tensors)``."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    tensors = load_file(str(target / WEIGHTS))
    change(tensors)
    save_file(tensors, str(target / WEIGHTS))
    return target


@pytest.mark.parametrize("name, dtype", [
    ("embeddings.LayerNorm.bias", torch.int64), ("encoder.layer.0.attention.self.query.weight", torch.bool),
    ("encoder.layer.1.output.dense.bias", torch.int32),
])
def test_weights_of_a_non_float_dtype_are_refused(bert_dir, tmp_path, name, dtype):
    def change(tensors):
        tensors[name] = tensors[name].to(dtype)

    copy_with(bert_dir, tmp_path / "ckpt", change)
    refused(lambda: load_encoder(tmp_path / "ckpt"), "model.safetensors", name, str(dtype).removeprefix("torch."))


def test_float16_and_bfloat16_weights_still_load(bert_dir, tmp_path):
    def change(tensors):
        for name in list(tensors)[::2]:
            tensors[name] = tensors[name].to(torch.float16 if len(name) % 2 else torch.bfloat16)

    copy_with(bert_dir, tmp_path / "ckpt", change)
    assert load_encoder(tmp_path / "ckpt").embeddings.word.weight.dtype == torch.float32


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_unless_allowed(bert_dir, tmp_path, value):
    name = "encoder.layer.2.intermediate.dense.weight"

    def change(tensors):
        tensors[name][3, 4] = value

    copy_with(bert_dir, tmp_path / "ckpt", change)
    refused(lambda: load_encoder(tmp_path / "ckpt"), "model.safetensors", name, "NaN or infinite")
    encoder = load_encoder(tmp_path / "ckpt", allow_nonfinite=True)
    assert not torch.isfinite(encoder.encoder.layers[2].ff1.weight).all()


def test_a_weight_the_config_does_not_imply_is_never_read(bert_dir, tmp_path, monkeypatch):
    """Heads and poolers in the file are left out; misshapen weights are refused from the header."""
    import safetensors

    def change(tensors):
        tensors["pooler.dense.weight"] = torch.full((64, 64), float("nan"))
        tensors["embeddings.position_embeddings.weight"] = torch.zeros(4000, 32)

    copy_with(bert_dir, tmp_path / "ckpt", change)
    read = []
    real_open = safetensors.safe_open

    class Recording:
        def __init__(self, path, framework):
            self.f = real_open(path, framework=framework)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

        def get_tensor(self, name):
            read.append(name)
            return self.f.get_tensor(name)

    monkeypatch.setattr(safetensors, "safe_open", Recording)
    refused(lambda: load_encoder(tmp_path / "ckpt"), "embeddings.position_embeddings.weight has shape (4000, 32)")
    assert "embeddings.position_embeddings.weight" not in read and "pooler.dense.weight" not in read


# -- the shard index -----------------------------------------------------------------------

def sharded(bert_dir, target, weight_map=None, *, index_text=None):
    """A copy of ``bert_dir`` whose weights are split over two shards named by an index."""
    from safetensors.torch import load_file, save_file

    target.mkdir()
    shutil.copy(bert_dir / CONFIG, target / CONFIG)
    tensors = load_file(str(bert_dir / WEIGHTS))
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, part in shards.items():
        save_file({n: tensors[n] for n in part}, str(target / file))
    if index_text is None:
        index_text = json.dumps({"metadata": {}, "weight_map": weight_map if weight_map is not None else
                                 {n: file for file, part in shards.items() for n in part}})
    (target / INDEX).write_text(index_text)
    return target


def test_a_sharded_checkpoint_loads_as_the_single_file(bert_dir, tmp_path):
    one, two = load_encoder(bert_dir), load_encoder(sharded(bert_dir, tmp_path / "ckpt"))
    for (name, a), b in zip(one.state_dict().items(), two.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("where", ["../other/model.safetensors", "/etc/passwd", "sub/model.safetensors", "..", "",
                                   7, None, ["model-00001-of-00002.safetensors"]])
def test_index_entries_outside_the_directory_are_refused_unopened(bert_dir, tmp_path, where, monkeypatch):
    first = json.loads(sharded(bert_dir, tmp_path / "probe").joinpath(INDEX).read_text())["weight_map"]
    (tmp_path / "other").mkdir()
    shutil.copy(tmp_path / "probe" / "model-00001-of-00002.safetensors", tmp_path / "other" / WEIGHTS)
    name = next(n for n, f in first.items() if f.startswith("model-00001"))
    target = sharded(bert_dir, tmp_path / "ckpt", {**first, name: where})
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, *a, **k: opened.append(str(path)) or real_open(path, *a, **k))
    refused(lambda: load_encoder(target), INDEX, f"weight_map[{name!r}]", "plain file name")
    assert all(Path(p).parent == target for p in opened), opened


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "must hold a JSON object, found list"),
    ('"model.safetensors"', "must hold a JSON object, found str"),
    ("3", "must hold a JSON object, found int"),
    ('{"weight_map": ', "is not valid JSON"),
    ('{"weight_map": [1]}', '"weight_map" must be a JSON object'),
    ('{"metadata": {}}', '"weight_map" must be a JSON object'),
    ("{" * 50_000, "not valid JSON"),
    ('{"weight_map": ' * 40 + "1" + "}" * 40, "nested more than"),
])
def test_a_malformed_index_is_one_line(bert_dir, tmp_path, text, message):
    target = sharded(bert_dir, tmp_path / "ckpt", index_text=text)
    refused(lambda: load_encoder(target), INDEX, message)


def test_an_index_naming_the_wrong_shard_is_refused(bert_dir, tmp_path):
    weight_map = json.loads(sharded(bert_dir, tmp_path / "probe").joinpath(INDEX).read_text())["weight_map"]
    target = sharded(bert_dir, tmp_path / "ckpt", {n: "model-00001-of-00002.safetensors" for n in weight_map})
    refused(lambda: load_encoder(target), "model-00001-of-00002.safetensors: has no tensor", "the shard index says")


def test_a_fifo_or_a_directory_named_by_the_index_is_refused_unopened(bert_dir, tmp_path):
    target = sharded(bert_dir, tmp_path / "ckpt")
    shard = target / "model-00002-of-00002.safetensors"
    shard.unlink()
    os.mkfifo(shard)
    refused(lambda: load_encoder(target), "model-00002-of-00002.safetensors: safetensors weights is not a regular file")
    shard.unlink()
    shard.mkdir()
    refused(lambda: load_encoder(target), "model-00002-of-00002.safetensors: safetensors weights is not a regular file")


def test_explain_on_a_checkpoint_whose_index_names_a_fifo_exits_at_once(bert_dir, tmp_path):
    """Before, the loader opened the FIFO and waited for a writer (Ctrl-C did not stop it)."""
    target = sharded(bert_dir, tmp_path / "ckpt")
    shard = target / "model-00001-of-00002.safetensors"
    shard.unlink()
    os.mkfifo(shard)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run([sys.executable, "-m", "attnlab", "explain", "--model", str(target), "--steps", "a b"],
                              capture_output=True, text=True, timeout=60, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("attnlab explain hangs on a FIFO named by the shard index")
    assert done.returncode == 2
    assert done.stderr.strip().endswith("model-00001-of-00002.safetensors: safetensors weights is not a regular file")
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_fifo_as_config_json_is_not_waited_for(tmp_path):
    from attnlab.tasks import model_task
    from attnlab.viz.hf_model import is_checkpoint

    os.mkfifo(tmp_path / "config.json")
    assert is_checkpoint(tmp_path) is False and model_task(tmp_path) is None
    refused(lambda: load_encoder(tmp_path), "config.json: Hugging Face config is not a regular file")
    (tmp_path / "config.json").unlink()
    (tmp_path / "config.json").write_text("[" * 100_000)
    assert is_checkpoint(tmp_path) is False and model_task(tmp_path) is None


# -- token types ---------------------------------------------------------------------------

def test_token_type_ids_are_checked_by_name(bert_dir):
    encoder = load_encoder(bert_dir)
    ids, cu = torch.tensor([2, 5, 7, 3]), torch.tensor([0, 4])
    with pytest.raises(ValueError, match=r"token_type_ids must be in \[0, 2\), got 0\.\.5"):
        encoder.forward_packed(ids, cu, token_type_ids=torch.tensor([0, 0, 5, 1]))
    with pytest.raises(ValueError, match=r"token_type_ids must be in \[0, 2\), got -1\.\.0"):
        encoder.forward_packed(ids, cu, token_type_ids=torch.tensor([0, 0, -1, 0]))
    with pytest.raises(ValueError, match=r"token_type_ids must be an integer tensor of input_ids' shape \(4,\)"):
        encoder.forward_packed(ids, cu, token_type_ids=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="token_type_ids must be an integer tensor"):
        encoder.forward_packed(ids, cu, token_type_ids=torch.zeros(4))
    with pytest.raises(ValueError, match=r"token_type_ids must be an integer tensor of input_ids' shape \(1, 4\)"):
        encoder(ids[None], token_type_ids=torch.zeros(2, 4, dtype=torch.long))
    ok = encoder.forward_packed(ids, cu, token_type_ids=torch.tensor([0, 0, 1, 1])).last_hidden_state
    assert torch.isfinite(ok).all()


def test_a_checkpoint_without_token_types_takes_only_zeros(tmp_path):
    encoder = load_encoder(save_checkpoint(hf_model("distilbert"), tmp_path))
    ids, cu = torch.tensor([2, 5]), torch.tensor([0, 2])
    with pytest.raises(ValueError, match=r"token_type_ids must be 0 \(this checkpoint has no token types\)"):
        encoder.forward_packed(ids, cu, token_type_ids=torch.tensor([0, 1]))
    encoder.forward_packed(ids, cu, token_type_ids=torch.zeros(2, dtype=torch.long))


def test_load_encoder_takes_float_dtypes_only(bert_dir):
    with pytest.raises(TypeError, match="dtype must be one of"):
        load_encoder(bert_dir, dtype=torch.int64)
    assert load_encoder(bert_dir, dtype=torch.float16).embeddings.word.weight.dtype == torch.float16


# -- attnlab's own model directories and their compact copies --------------------------------

@pytest.fixture(scope="module")
def tagger():
    return tiny_tagger_dir(steps=40)


def resaved(source, target, change):
    """The model directory ``source`` saved again (fresh checksums) with ``change(stored tensors)``."""
    files = load_model_dir(source)
    stored = read_tensors(Path(source) / WEIGHTS)
    change(stored)
    record = {k: v for k, v in files.config.items() if k not in ("format", "files")}
    return save_model_dir(target, stored, record, files.vocab)


def a_bias(state):
    return next(n for n, t in state.items() if n.endswith(".bias") and t.dim() == 1)


@pytest.mark.parametrize("storage", ["float32", "float16", "int8"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_an_integer_or_bool_bias_is_refused_in_every_storage(tagger, tmp_path, storage, dtype):
    source = tagger if storage == "float32" else export_model(tagger, tmp_path / "compact", storage)
    names = []

    def change(state):
        names.append(a_bias(state))
        state[names[0]] = state[names[0]].to(dtype)

    target = resaved(source, tmp_path / "bad", change)
    refused(lambda: load_tagger(target), "model.safetensors", f"weight {names[0]} is {str(dtype).removeprefix('torch.')}",
            "expects float32")


@pytest.mark.parametrize("storage, value", [("float32", float("nan")), ("float32", float("-inf")),
                                            ("float16", float("inf"))])
def test_non_finite_weights_of_a_tagger_are_refused(tagger, tmp_path, storage, value):
    source = tagger if storage == "float32" else export_model(tagger, tmp_path / "compact", storage)
    names = []

    def change(state):
        names.append(a_bias(state))
        state[names[0]][0] = value

    target = resaved(source, tmp_path / "bad", change)
    refused(lambda: load_tagger(target), "model.safetensors", f"weight {names[0]} holds NaN or infinite values")


def test_a_pretrained_taggers_encoder_description_goes_through_the_same_checks(tmp_path):
    """A stored encoder description is an HFConfig: layer_norm_eps -1 is refused, and XLM-R's
    vocabulary of 250,002 pieces is within the limits (it was refused as a width before)."""
    check_model_description({"encoder": {"vocab_size": 250_002, "width": 768}}, "config.json")
    from attnlab.tasks.piece_tagging import PieceTagger, PieceTaggerConfig, load_piece_tagger
    from attnlab.tasks.tagging import TaggerVocabs
    from attnlab.tasks.tagging_demo import toy_corpus
    from attnlab.checkpoint import save_task_model
    from dataclasses import asdict

    vocabs = TaggerVocabs.build(toy_corpus(5, seed=1))
    model = PieceTagger(PieceTaggerConfig(asdict(parse_config(BERT))), vocabs)
    save_task_model(tmp_path / "tagger", "tagging-pretrained", model, vocabs.to_json())
    config = read_json(tmp_path / "tagger" / CONFIG)
    config["model"]["encoder"]["layer_norm_eps"] = -1.0
    (tmp_path / "tagger" / CONFIG).write_text(json.dumps(config))
    refused(lambda: load_piece_tagger(tmp_path / "tagger"), "config.json: malformed model description",
            "layer_norm_eps = -1.0 is out of range")


def test_checkpoint_errors_are_user_errors():
    """One error type for every checkpoint problem, printed by the command line in one line."""
    assert issubclass(CheckpointError, UserError) and issubclass(CheckpointError, ValueError)


@pytest.mark.parametrize("change", [{"hidden_size": -32}, {"layer_norm_eps": -1}, {"vocab_size": 10**9},
                                    {"model_type": ["bert"]}])
def test_explain_refuses_a_bad_checkpoint_in_one_line(bert_dir, tmp_path, capsys, change):
    from attnlab.cli import main

    shutil.copytree(bert_dir, tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / CONFIG).read_text())
    (tmp_path / "ckpt" / CONFIG).write_text(json.dumps({**config, **change}))
    assert main(["explain", "--model", str(tmp_path / "ckpt"), "--steps", "a b"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("attnlab explain: error: ") and str(tmp_path / "ckpt" / CONFIG) in err
    assert next(iter(change)) in err and len(err.splitlines()) == 1
