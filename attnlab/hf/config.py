"""What attnlab reads from a checkpoint's ``config.json``, and what it refuses.

Five families share one shape: learned absolute positions, post-norm layers, GELU. Any
configuration outside that shape is refused by name, in one line, before a weight is read.

Every value is checked for its type and range before anything is built (an ``HFConfig`` is
checked whenever it is made, also from a tagger's stored description), within these limits
(DistilBERT's names in brackets):

=======================================  ==================================================
config.json key                          accepted
=======================================  ==================================================
model_type                               a string: bert, roberta, xlm-roberta, electra,
                                         distilbert
hidden_act (activation)                  the string "gelu"
position_embedding_type                  the string "absolute" or null
is_decoder, add_cross_attention          false or null
vocab_size                               integer, 1 to 1,048,576
hidden_size (dim)                        integer, 1 to 65,536
num_attention_heads (n_heads)            integer, 1 to hidden_size, dividing it
num_hidden_layers (n_layers)             integer, 1 to 64
intermediate_size (hidden_dim)           integer, 1 to 65,536
max_position_embeddings                  integer, 1 to 65,536
type_vocab_size                          integer, 0 to 65,536 (0: no token types)
embedding_size                           integer, 1 to 65,536, or null (= hidden_size)
pad_token_id                             integer, 0 to vocab_size - 1, or null (= 0);
                                         RoBERTa's first position (pad_token_id + 1) must
                                         leave a position for a word piece
layer_norm_eps                           a finite number, > 0 and <= 1
hidden_dropout_prob (dropout)            a number, 0 <= p < 1
all of them together                     at most 1,000,000,000 parameters (4 GB in float32),
                                         counted from the sizes before anything is built
=======================================  ==================================================

"Integer" means a JSON integer: not true/false, not 32.9, not 32.0. The file itself is read
as every checkpoint file is (``attnlab.checkpoint``): a regular file of at most 4 MiB,
nested at most 32 levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoint import MAX_CONFIG_BYTES, MAX_LAYERS, MAX_VOCAB, MAX_WIDTH, CheckpointError, read_json

# model_type -> the prefix-free name of the layer layout its weights use
FAMILIES = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "electra": "bert",
    "distilbert": "distilbert",
}
# RoBERTa's positions start after the padding id: position = pad_token_id + 1 + index
PADDING_OFFSET_POSITIONS = {"roberta", "xlm-roberta"}
ACTIVATIONS = {"gelu"}  # erf GELU, what "gelu" means in transformers
MAX_PARAMETERS = 1_000_000_000  # float32: 4 GB

# HFConfig field -> its config.json key (BERT layout, DistilBERT layout; None: not in the file)
KEYS = {
    "vocab_size": ("vocab_size", "vocab_size"),
    "width": ("hidden_size", "dim"),
    "heads": ("num_attention_heads", "n_heads"),
    "layers": ("num_hidden_layers", "n_layers"),
    "d_ff": ("intermediate_size", "hidden_dim"),
    "max_positions": ("max_position_embeddings", "max_position_embeddings"),
    "type_vocab_size": ("type_vocab_size", None),
    "embedding_size": ("embedding_size", None),
    "layer_norm_eps": ("layer_norm_eps", None),
    "pad_token_id": ("pad_token_id", "pad_token_id"),
    "dropout": ("hidden_dropout_prob", "dropout"),
}
# integer fields -> (lowest, highest); heads, pad_token_id and position_offset are checked
# further against width, vocab_size and max_positions
INTEGERS = {
    "vocab_size": (1, MAX_VOCAB), "width": (1, MAX_WIDTH), "heads": (1, MAX_WIDTH), "layers": (1, MAX_LAYERS),
    "d_ff": (1, MAX_WIDTH), "max_positions": (1, MAX_WIDTH), "type_vocab_size": (0, MAX_WIDTH),
    "embedding_size": (1, MAX_WIDTH), "pad_token_id": (0, MAX_VOCAB - 1), "position_offset": (0, MAX_WIDTH),
}
# defaults of keys a config.json may leave out (None: the key is required)
DEFAULTS = {"type_vocab_size": 2, "embedding_size": None, "layer_norm_eps": 1e-12, "pad_token_id": 0, "dropout": 0.1}


@dataclass(frozen=True)
class HFConfig:
    """One encoder's shape. ``embedding_size`` differs from ``width`` only in ELECTRA (which
    then projects the embeddings); ``type_vocab_size`` is 0 when there are no token types.

    Every value is checked when an HFConfig is made (the limits of the module's docstring;
    ValueError naming the config.json key)."""

    model_type: str
    layout: str
    vocab_size: int
    width: int
    heads: int
    layers: int
    d_ff: int
    max_positions: int
    type_vocab_size: int
    embedding_size: int
    layer_norm_eps: float
    pad_token_id: int
    position_offset: int
    dropout: float

    def __post_init__(self):
        if not isinstance(self.model_type, str) or FAMILIES.get(self.model_type) != self.layout:
            raise ValueError(f"model_type {self.model_type!r:.40} with layout {self.layout!r:.40} is not supported")
        check_values(vars(self), self.layout)
        offset = self.pad_token_id + 1 if self.model_type in PADDING_OFFSET_POSITIONS else 0
        if self.position_offset != offset:
            raise ValueError(f"position_offset = {self.position_offset} does not follow from model_type "
                             f"{self.model_type} and pad_token_id {self.pad_token_id} ({offset})")
        if self.longest < 1:
            raise ValueError(f"pad_token_id = {self.pad_token_id} leaves no position for a word piece "
                             f"(max_position_embeddings = {self.max_positions}; {self.model_type} positions "
                             "start after the padding id)")
        if parameter_count(self) > MAX_PARAMETERS:
            raise ValueError(f"the sizes ask for {parameter_count(self):,} parameters "
                             f"({4 * parameter_count(self) / 1e9:.1f} GB in float32), more than the limit of "
                             f"{MAX_PARAMETERS:,}")

    @property
    def longest(self) -> int:
        """The most word pieces one sequence may have."""
        return self.max_positions - self.position_offset


def key_of(field: str, layout: str) -> str:
    """The config.json key of an HFConfig ``field`` in ``layout``."""
    keys = KEYS.get(field)
    return (keys[1] if layout == "distilbert" and keys[1] else keys[0]) if keys else field


def check_values(values: dict, layout: str) -> None:
    """ValueError naming the config.json key of the first value (HFConfig field -> value) of the
    wrong type or out of range; fields missing from ``values`` are not checked."""
    for field, (low, high) in INTEGERS.items():
        if field in values:
            _integer(key_of(field, layout), values[field], low, high)
    if "heads" in values and "width" in values and values["width"] % values["heads"]:
        raise ValueError(f"{key_of('heads', layout)} = {values['heads']} does not divide "
                         f"{key_of('width', layout)} = {values['width']}")
    if "pad_token_id" in values and "vocab_size" in values and values["pad_token_id"] >= values["vocab_size"]:
        raise ValueError(f"pad_token_id = {values['pad_token_id']} is not below vocab_size = {values['vocab_size']}")
    if "layer_norm_eps" in values:
        eps = _number("layer_norm_eps", values["layer_norm_eps"])
        if not 0 < eps <= 1:
            raise ValueError(f"layer_norm_eps = {eps} is out of range (> 0 and <= 1)")
    if "dropout" in values:
        p = _number(key_of("dropout", layout), values["dropout"])
        if not 0 <= p < 1:
            raise ValueError(f"{key_of('dropout', layout)} = {p} is out of range (0 <= p < 1)")


def _integer(key: str, value, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} must be an integer, found {value!r:.40}")
    if not low <= value <= high:
        raise ValueError(f"{key} = {value} is out of range ({low} to {high:,})")
    return value


def _number(key: str, value) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, found {value!r:.40}")
    return float(value)


def parameter_count(config: HFConfig) -> int:
    """The number of parameters an HFEncoder of ``config`` has, from its sizes alone."""
    e, w, ff = config.embedding_size, config.width, config.d_ff
    embeddings = (config.vocab_size + config.max_positions + config.type_vocab_size) * e + 2 * e
    project = e * w + w if e != w else 0
    layer = (3 * w * w + 3 * w) + (w * w + w) + (ff * w + ff) + (w * ff + w) + 4 * w
    return embeddings + project + config.layers * layer


def read_config(directory: str | Path) -> HFConfig:
    """Parse ``directory/config.json``; raise CheckpointError (a UserError) for anything attnlab
    cannot run exactly or that is beyond the limits."""
    path = Path(directory) / "config.json"
    if not path.exists() and not path.is_symlink():
        raise CheckpointError(f"{directory}: no config.json (a Hugging Face checkpoint directory has config.json and model.safetensors)")
    return parse_config(read_json(path, "Hugging Face config", limit=MAX_CONFIG_BYTES), str(path))


def parse_config(raw: dict, where: str = "config.json") -> HFConfig:
    """``config.json``'s dictionary -> HFConfig, refusing unsupported settings and values of the
    wrong type or out of range by name (CheckpointError: ``where``, then the key)."""
    try:
        if not isinstance(raw, dict):
            raise ValueError(f"must hold a JSON object, found {type(raw).__name__}")
        return _parse(raw)
    except ValueError as error:
        raise CheckpointError(f"{where}: {error}") from None


def _parse(raw: dict) -> HFConfig:
    model_type = _string(raw, "model_type", None)
    if model_type not in FAMILIES:
        raise ValueError(f"model_type {model_type!r} is not supported; attnlab.hf loads {', '.join(FAMILIES)}")
    refuse_unsupported(raw)
    layout = FAMILIES[model_type]
    values: dict[str, Any] = {}
    for field in KEYS:
        key = key_of(field, layout)
        if layout == "distilbert" and KEYS[field][1] is None:
            continue
        value = raw.get(key, DEFAULTS.get(field))
        if value is None and field not in DEFAULTS:
            raise ValueError(f"{key!r} is missing" if key not in raw else f"{key} must be an integer, found None")
        values[field] = value
    if values.get("embedding_size") is None:
        values["embedding_size"] = values["width"]
    if values.get("pad_token_id") is None:
        values["pad_token_id"] = 0
    if layout == "distilbert":
        values.update(type_vocab_size=0, embedding_size=values["width"], layer_norm_eps=1e-12)
    check_values(values, layout)
    offset = values["pad_token_id"] + 1 if model_type in PADDING_OFFSET_POSITIONS else 0
    return HFConfig(model_type=model_type, layout=layout, position_offset=offset, **values)


def _string(raw: dict, key: str, default):
    value = raw.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be a string, found {value!r:.40}")
    return value


def refuse_unsupported(raw: dict, where: str | None = None) -> None:
    """ValueError (CheckpointError with ``where``) naming the first setting attnlab's encoder
    does not compute, or a setting of the wrong type."""
    try:
        position_type = _string(raw, "position_embedding_type", None) or "absolute"
        if position_type != "absolute":
            raise ValueError(f"position_embedding_type {position_type!r} is not supported (only 'absolute')")
        key = "activation" if raw.get("model_type") == "distilbert" else "hidden_act"
        activation = _string(raw, key, "gelu")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r} is not supported (only 'gelu')")
        for flag in ("is_decoder", "add_cross_attention"):
            if raw.get(flag) is not None and not isinstance(raw[flag], bool):
                raise ValueError(f"{flag} must be true or false, found {raw[flag]!r:.40}")
            if raw.get(flag):
                raise ValueError(f"{flag}=true is a decoder configuration; attnlab.hf loads encoders only")
    except ValueError as error:
        if where is None:
            raise
        raise CheckpointError(f"{where}: {error}") from None
