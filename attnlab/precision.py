"""The number format a model runs in at inference: ``"fp32"``, ``"bf16"`` or ``"auto"``.

``"bf16"`` runs the matrix products in bfloat16 (torch's autocast: weights and inputs of
each linear layer and of attention are rounded to bfloat16, products accumulate in fp32;
layer norms, softmaxes and the scores that choose a tag stay fp32). On a CPU with native
bfloat16 instructions (AVX-512 BF16 or AMX-BF16) those products run about twice as fast as
in fp32; without them they are emulated and slower, so ``"auto"`` takes bfloat16 only where
the CPU has them, and an explicit ``"bf16"`` there logs that it will be slow.

What it costs in accuracy is measured, per treebank and layer, in RESULTS.md ("Tagging in
bfloat16").
"""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path

PRECISIONS = ("fp32", "bf16", "auto")
_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX-512 BF16"}

log = logging.getLogger("attnlab.precision")


@functools.lru_cache(maxsize=1)
def native_bf16() -> tuple[bool, str]:
    """Whether this CPU multiplies bfloat16 natively, and how that was told (the flags of
    /proc/cpuinfo; elsewhere no claim is made)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False, "no /proc/cpuinfo to read the CPU's flags from"
    return bf16_from_cpuinfo(text)


def bf16_from_cpuinfo(text: str) -> tuple[bool, str]:
    """``native_bf16`` for the text of /proc/cpuinfo."""
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    found = [name for flag, name in _FLAGS.items() if flag in flags]
    if found:
        return True, f"the CPU has {' and '.join(found)}"
    return False, "the CPU has neither AVX-512 BF16 nor AMX-BF16 (no avx512_bf16 / amx_bf16 in /proc/cpuinfo)"


def resolve(precision: str, device: str = "cpu") -> str:
    """``precision`` as it will run: "fp32" or "bf16" ("auto": bf16 where the CPU has native
    bfloat16, or on a GPU; fp32 elsewhere). ValueError for an unknown name."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is unknown; choose one of {', '.join(PRECISIONS)}")
    on_cpu = str(device).startswith("cpu")
    native, why = native_bf16() if on_cpu else (True, "a GPU")
    if precision == "auto":
        return "bf16" if native else "fp32"
    if precision == "bf16" and not native:
        log.warning("precision bf16: %s, so bfloat16 products are emulated and slower than fp32", why)
    return precision


def autocast(precision: str, device_type: str = "cpu"):
    """The context a forward pass runs in for a resolved ``precision``."""
    if precision != "bf16":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type, dtype=torch.bfloat16)
