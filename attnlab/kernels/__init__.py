"""Fast CPU paths: native kernels (packed attention, counter-based dropout) compiled on
first use, and linear layers through oneDNN. One module per concern:

* ``native``: build and load ``cpu.cpp`` into ``$ATTNLAB_CACHE``;
  ``native_unsupported_reason(*tensors)`` says why the kernels cannot take a call
  (None = they can); ``transposed(x)``;
* ``packed_attention``: ``attention(q, k, v, cu_seqlens, ...)`` / ``attention_qkv(qkv, ...)``,
  softmax attention of every packed sequence over itself, autograd-aware;
* ``dropout``: ``dropout_add``, ``relu_dropout_``, and ``residual_dropout`` /
  ``activation_dropout`` that choose between them and PyTorch;
* ``onednn``: ``linear(x, weight, bias, activation=..., dropout=..., residual=...)``
  through oneDNN; ``onednn_unsupported_reason(*tensors)``;
* ``calibrate``: which of the native kernel and the bucketed SDPA path packed attention
  takes under ``impl="auto"``, from a table timed on this CPU and cached beside the build;
* ``paths``: ``disabled()`` turns the fast paths off in a block, ``record()`` collects
  the names of those that ran.

Nothing here is required: when no compiler is found, the build fails, the tensors
are of an unsupported kind, or ``ATTNLAB_KERNELS=0`` / ``ATTNLAB_ONEDNN=0`` is set,
callers use their pure-PyTorch path, and the reason is logged once (logger
``attnlab.kernels``).

Shape letters: T packed tokens, B sequences, H heads, d head width.
"""

from .packed_attention import attention, attention_qkv
from .dropout import ACTIVATIONS, activation_dropout, dropout_add, relu_dropout_, residual_dropout
from .onednn import linear, onednn_unsupported_reason
from .native import available, cache_dir, load, native_unsupported_reason, transposed, unavailable_reason
from .paths import disabled, record
from . import calibrate

__all__ = [
    "ACTIVATIONS", "activation_dropout", "attention", "attention_qkv", "available", "cache_dir", "calibrate", "disabled",
    "dropout_add", "linear", "load", "native_unsupported_reason", "onednn_unsupported_reason",
    "record", "relu_dropout_", "residual_dropout", "transposed", "unavailable_reason",
]
