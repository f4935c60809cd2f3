"""What attnlab reads from a checkpoint's ``config.json``, and what it refuses.

Five families share one shape: learned absolute positions, post-norm layers, GELU. Any
configuration outside that shape is refused by name, in one line, before a weight is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

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


@dataclass(frozen=True)
class HFConfig:
    """One encoder's shape. ``embedding_size`` differs from ``width`` only in ELECTRA (which
    then projects the embeddings); ``type_vocab_size`` is 0 when there are no token types."""

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

    @property
    def longest(self) -> int:
        """The most word pieces one sequence may have."""
        return self.max_positions - self.position_offset


def read_config(directory: str | Path) -> HFConfig:
    """Parse ``directory/config.json``; raise UserError for anything attnlab cannot run exactly."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise UserError(f"{directory}: no config.json (a Hugging Face checkpoint directory has config.json and model.safetensors)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a JSON object")
    return parse_config(raw, str(path))


def parse_config(raw: dict, where: str = "config.json") -> HFConfig:
    """``config.json``'s dictionary -> HFConfig, refusing unsupported settings by name."""
    model_type = raw.get("model_type")
    if model_type not in FAMILIES:
        raise UserError(
            f"{where}: model_type {model_type!r} is not supported; attnlab.hf loads {', '.join(FAMILIES)}"
        )
    refuse_unsupported(raw, where)
    distil = FAMILIES[model_type] == "distilbert"

    def field(name: str, distil_name: str | None = None, default=None):
        key = distil_name if distil and distil_name else name
        if key not in raw and default is None:
            raise UserError(f"{where}: {key!r} is missing")
        return raw.get(key, default)

    width = int(field("hidden_size", "dim"))
    pad = int(raw.get("pad_token_id") or 0)
    return HFConfig(
        model_type=model_type,
        layout=FAMILIES[model_type],
        vocab_size=int(field("vocab_size")),
        width=width,
        heads=int(field("num_attention_heads", "n_heads")),
        layers=int(field("num_hidden_layers", "n_layers")),
        d_ff=int(field("intermediate_size", "hidden_dim")),
        max_positions=int(field("max_position_embeddings")),
        type_vocab_size=0 if distil else int(field("type_vocab_size", default=2)),
        embedding_size=int(raw.get("embedding_size") or width),
        layer_norm_eps=1e-12 if distil else float(field("layer_norm_eps", default=1e-12)),
        pad_token_id=pad,
        position_offset=pad + 1 if model_type in PADDING_OFFSET_POSITIONS else 0,
        dropout=float(field("hidden_dropout_prob", "dropout", default=0.1)),
    )


def refuse_unsupported(raw: dict, where: str) -> None:
    """UserError naming the first setting attnlab's encoder does not compute."""
    position_type = raw.get("position_embedding_type") or "absolute"
    if position_type != "absolute":
        raise UserError(f"{where}: position_embedding_type {position_type!r} is not supported (only 'absolute')")
    activation = raw.get("activation" if raw.get("model_type") == "distilbert" else "hidden_act", "gelu")
    if activation not in ACTIVATIONS:
        raise UserError(f"{where}: activation {activation!r} is not supported (only 'gelu')")
    for flag in ("is_decoder", "add_cross_attention"):
        if raw.get(flag):
            raise UserError(f"{where}: {flag}=true is a decoder configuration; attnlab.hf loads encoders only")
