"""Context encoders for sequence labeling: one interface, five ways to see context.

Every encoder is a ``torch.nn.Module`` with

    forward(x, lengths) -> y
        x        (B, N, D_in)   one input vector per token, batch first, padded
        lengths  (B,)           real tokens per sequence; positions >= length are padding
        y        (B, N, out_dim) one output vector per token; padding rows are zero
    out_dim      int            the width of y

and no output at a real position ever depends on padding. The encoders differ only in
which tokens each output may look at:

    none       each vector alone through fully connected layers (no context at all: the
               two "saw" in "I saw a saw" get the same output)
    window     fully connected layers over the concatenated vectors of tokens i-k .. i+k
    cnn        stacked 1-D convolutions with residual connections (receptive field grows
               by kernel-1 per layer)
    bilstm     a bidirectional LSTM (the RNN); out_dim = 2 * hidden
    attention  the packed Transformer encoder (every token sees the whole sentence);
               internally the batch is packed to (T, D) tokens + cu_seqlens so no work
               is spent on padding

Build one with ``build_encoder(name, d_in, EncoderConfig(...))``. The padded interface
is the one all five share; the attention encoder converts to the packed layout inside.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from ..config import JsonConfig, check_fraction, check_positive

if TYPE_CHECKING:  # the command line reads ENCODERS without loading torch
    from .attention import AttentionEncoder
    from .bilstm import BiLSTMEncoder
    from .cnn import ConvEncoder
    from .feedforward import NoContextEncoder, WindowEncoder

    # the classes of _CLASSES
    Encoder: TypeAlias = NoContextEncoder | WindowEncoder | ConvEncoder | BiLSTMEncoder | AttentionEncoder

# name -> (module in this package, class): the one place that lists the encoders.
_CLASSES = {
    "none": ("feedforward", "NoContextEncoder"),
    "window": ("feedforward", "WindowEncoder"),
    "cnn": ("cnn", "ConvEncoder"),
    "bilstm": ("bilstm", "BiLSTMEncoder"),
    "attention": ("attention", "AttentionEncoder"),
}
ENCODERS = tuple(_CLASSES)


@dataclass(frozen=True)
class EncoderConfig(JsonConfig):
    """Sizes of an encoder; each encoder reads the fields it needs.

    hidden   output width (bilstm: per direction, so its out_dim is 2 * hidden)
    layers   fully connected layers (none, window), conv blocks (cnn),
             LSTM layers (bilstm) or Transformer layers (attention)
    heads, d_ff, positions, normalize   attention only
    window   k of the +-k window (window)
    kernel   convolution width (cnn)
    dropout  dropout inside the encoder
    """

    hidden: int = 256
    layers: int = 2
    heads: int = 4
    d_ff: int = 1024
    window: int = 2
    kernel: int = 3
    dropout: float = 0.1
    positions: str = "rotary"
    normalize: str = "softmax"

    def __post_init__(self):
        check_positive(self, ("hidden", "layers", "heads", "d_ff", "kernel"), "encoder ")
        if self.window < 0:
            raise ValueError(f"encoder window must be >= 0, got {self.window}")
        if self.kernel % 2 == 0:
            raise ValueError(f"encoder kernel must be odd (centred on the token), got {self.kernel}")
        check_fraction(self, ("dropout",), "encoder ")


def build_encoder(name: str, d_in: int, config: EncoderConfig | None = None) -> Encoder:
    """The encoder called ``name`` (one of ENCODERS) for inputs of width ``d_in``."""
    if name not in _CLASSES:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    module, cls = _CLASSES[name]
    return getattr(importlib.import_module(f".{module}", __name__), cls)(d_in, config or EncoderConfig())


__all__ = ["ENCODERS", "EncoderConfig", "build_encoder"]
