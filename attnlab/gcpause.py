"""``paused_gc``: no cyclic garbage collection while a block builds many small objects."""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def paused_gc():
    """No cyclic garbage collection inside: code that builds many small lists and objects (one per
    word: tagging, scoring) would otherwise have each full collection walk them all again (measured:
    0.25-0.36 s pauses tagging one English test set; scoring EWT's training file against itself
    took 6.9 s instead of 2.7 s)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
