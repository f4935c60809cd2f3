"""Property tests of the checkpoint validator: random config.json values and texts, random
shard indexes and random model descriptions never make a loader raise anything but attnlab's
own error types, build an encoder beyond the stated parameter limit, or open a file outside
the checkpoint directory."""

from __future__ import annotations

import builtins
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings

from attnlab.checkpoint import CONFIG, MAX_LAYERS, MAX_VOCAB, MAX_WIDTH, WEIGHTS, CheckpointError
from attnlab.errors import UserError
from attnlab.hf import HFEncoder, load_encoder, parse_config
from attnlab.hf.config import MAX_PARAMETERS, parameter_count
from attnlab.hf.weights import INDEX
from tiny_hf import hf_model, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

BASES = [
    {"model_type": "bert", "hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 2,
     "intermediate_size": 16, "vocab_size": 10, "max_position_embeddings": 12, "type_vocab_size": 2},
    {"model_type": "roberta", "hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1,
     "intermediate_size": 16, "vocab_size": 10, "max_position_embeddings": 12, "pad_token_id": 1},
    {"model_type": "electra", "hidden_size": 8, "embedding_size": 4, "num_attention_heads": 4,
     "num_hidden_layers": 1, "intermediate_size": 8, "vocab_size": 10, "max_position_embeddings": 12},
    {"model_type": "distilbert", "dim": 8, "n_heads": 2, "n_layers": 1, "hidden_dim": 16, "vocab_size": 10,
     "max_position_embeddings": 12, "activation": "gelu"},
]
KEYS = sorted({k for base in BASES for k in base} | {
    "hidden_act", "layer_norm_eps", "hidden_dropout_prob", "dropout", "position_embedding_type", "is_decoder",
    "add_cross_attention", "pad_token_id", "type_vocab_size", "embedding_size"})

EDGES = [-(2**63), -32, -1, 0, 1, 2, 3, 4, 8, 64, 65, 4096, MAX_WIDTH, MAX_WIDTH + 1, MAX_VOCAB, MAX_VOCAB + 1,
         10**8, 10**9, 2**63, 10**30]
scalars = (st.none() | st.booleans() | st.sampled_from(EDGES) | st.integers()
           | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([32.9, 8.0, -1.0, 1e-12, 1e300])
           | st.text(max_size=8) | st.sampled_from(["bert", "gelu", "absolute", "relu", "distilbert", "8"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


@st.composite
def hf_configs(draw):
    """A valid tiny config with a few keys replaced by hostile values or left out."""
    raw = dict(draw(st.sampled_from(BASES)))
    for key in draw(st.lists(st.sampled_from(KEYS) | st.text(max_size=6), max_size=4)):
        if draw(st.booleans()) and key in raw:
            del raw[key]
        else:
            raw[key] = draw(json_values)
    return raw


def only_our_errors(call):
    """``call()``'s result, or None when it raised a one-line UserError (CheckpointError is one);
    any other exception fails the property."""
    try:
        result = call()
    except UserError as error:
        assert "\n" not in str(error), str(error)
        event("refused")
        return None
    event("accepted")
    return result


@FUZZ
@given(hf_configs())
def test_a_config_is_refused_with_our_error_or_within_the_limits(raw):
    config = only_our_errors(lambda: parse_config(raw, "ckpt/config.json"))
    if config is None:
        return
    assert parameter_count(config) <= MAX_PARAMETERS
    for value, high in [(config.vocab_size, MAX_VOCAB), (config.width, MAX_WIDTH), (config.layers, MAX_LAYERS),
                        (config.d_ff, MAX_WIDTH), (config.max_positions, MAX_WIDTH), (config.embedding_size, MAX_WIDTH)]:
        assert type(value) is int and 1 <= value <= high
    assert 0 < config.layer_norm_eps <= 1 and math.isfinite(config.layer_norm_eps) and 0 <= config.dropout < 1
    assert config.longest >= 1 and 0 <= config.pad_token_id < config.vocab_size
    with torch.device("meta"):
        model = HFEncoder(config)
    assert parameter_count(config) == sum(t.numel() for t in model.state_dict().values())


def deep(n: int) -> str:
    return "[" * n + "]" * n


config_texts = (hf_configs().map(json.dumps) | json_values.map(json.dumps)
                | st.integers(1, 200_000).map(deep)
                | st.binary(max_size=64).map(lambda b: b.decode("latin-1")))


@pytest.fixture
def built(monkeypatch):
    """Every HFEncoder built off the meta device, by its parameter count; building one beyond
    10 million parameters (far above the tiny tests, far below the limit) fails at once."""
    counts = []
    real_init = HFEncoder.__init__

    def init(self, config):
        if str(torch.get_default_device()) != "meta":
            counts.append(parameter_count(config))
            assert counts[-1] <= 10_000_000, f"an encoder of {counts[-1]:,} parameters was built"
        real_init(self, config)

    monkeypatch.setattr(HFEncoder, "__init__", init)
    return counts


@FUZZ
@given(text=config_texts)
def test_config_json_texts_never_escape_our_errors_nor_build_anything(built, text):
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, CONFIG).write_text(text, encoding="utf-8", errors="surrogatepass")
        assert only_our_errors(lambda: load_encoder(tmp)) is None  # there are no weights
    assert built == []


# -- shard indexes -----------------------------------------------------------------------

SHARDS = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A tiny BERT checkpoint split over two shards, and the true weight map."""
    from safetensors.torch import load_file, save_file

    single = save_checkpoint(hf_model("bert"), tmp_path_factory.mktemp("single"))
    root = tmp_path_factory.mktemp("sharded")
    shutil.copy(single / CONFIG, root / CONFIG)
    tensors = load_file(str(single / WEIGHTS))
    names = sorted(tensors)
    weight_map = {}
    for i, shard in enumerate(SHARDS):
        save_file({n: tensors[n] for n in names[i::2]}, str(root / shard))
        weight_map.update({n: shard for n in names[i::2]})
    (root / INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (root.parent / "outside.safetensors").write_bytes((root / SHARDS[0]).read_bytes())
    return root, weight_map


files = st.sampled_from([*SHARDS, "../outside.safetensors", "/etc/passwd", "sub/x.safetensors", "", ".", "..",
                         "a\x00b", "config.json", INDEX, "missing.safetensors", "..\\outside.safetensors"]) | json_values


@st.composite
def index_texts(draw, weight_map):
    kind = draw(st.sampled_from(["edited", "edited", "edited", "value", "deep", "bytes"]))
    if kind == "value":
        return json.dumps(draw(json_values))
    if kind == "deep":
        return '{"weight_map": ' * draw(st.integers(1, 5000)) + "1"
    if kind == "bytes":
        return draw(st.binary(max_size=64)).decode("latin-1")
    entries = dict(weight_map)
    for name in draw(st.lists(st.sampled_from(sorted(weight_map)) | st.text(max_size=8), max_size=4)):
        entries[name] = draw(files)
    return json.dumps({"metadata": draw(json_values), "weight_map": entries})


@pytest.fixture(scope="module")
def opened_paths():
    """Every path opened through builtins.open, io.open, os.open and safetensors.safe_open
    while the list is switched on (``recording[0] = True``)."""
    import safetensors

    paths, recording = [], [False]
    real = {"open": builtins.open, "io": io.open, "os": os.open, "st": safetensors.safe_open}

    def wrap(fn):
        def opener(path, *args, **kwargs):
            if recording[0] and isinstance(path, (str, bytes, os.PathLike)):
                paths.append(os.fsdecode(path))
            return fn(path, *args, **kwargs)
        return opener

    builtins.open, io.open, os.open, safetensors.safe_open = (wrap(real[k]) for k in ("open", "io", "os", "st"))
    try:
        yield paths, recording
    finally:
        builtins.open, io.open, os.open, safetensors.safe_open = real["open"], real["io"], real["os"], real["st"]


def test_index_files_never_escape_our_errors_nor_the_directory(template, opened_paths, built):
    root, weight_map = template
    load_encoder(root)  # the untouched copy loads (and every import is done)
    paths, recording = opened_paths

    @FUZZ
    @given(text=index_texts(weight_map))
    def check(text):
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp) / "ckpt"
            shutil.copytree(root, directory)
            shutil.copy(root.parent / "outside.safetensors", Path(tmp) / "outside.safetensors")
            (directory / INDEX).write_text(text, encoding="utf-8", errors="surrogatepass")
            paths.clear()
            recording[0] = True
            try:
                only_our_errors(lambda: load_encoder(directory))
            finally:
                recording[0] = False
            outside = [p for p in paths if Path(p).parent != directory]
            assert outside == [], outside

    check()
    assert all(count <= parameter_count(parse_config(json.loads((root / CONFIG).read_text()))) for count in built)


# -- attnlab's own model descriptions ----------------------------------------------------

@pytest.fixture(scope="module")
def tagger_config():
    from tiny_models import tiny_tagger_dir

    directory = tiny_tagger_dir(steps=40)
    return directory, json.loads((directory / CONFIG).read_text())


def paths_in(obj, prefix=()):
    """Every key path of the nested dictionary ``obj``."""
    for key, value in obj.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from paths_in(value, (*prefix, key))


@FUZZ
@given(data=st.data())
def test_model_descriptions_never_escape_our_errors(tagger_config, data):
    from attnlab.tasks.tagging import load_tagger

    source, config = tagger_config
    edited = json.loads(json.dumps(config))
    for path in data.draw(st.lists(st.sampled_from(sorted(paths_in(config["model"]))), min_size=1, max_size=3)):
        node = edited["model"]
        for key in path[:-1]:
            node = node[key] if isinstance(node.get(key), dict) else {}
        node[path[-1]] = data.draw(json_values)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "tagger"
        shutil.copytree(source, directory)
        (directory / CONFIG).write_text(json.dumps(edited))
        only_our_errors(lambda: load_tagger(directory))
