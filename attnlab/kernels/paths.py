"""Which fast paths may run, and which ran.

* ``disabled()``: a context manager that turns the native kernels and oneDNN off in
  its block (callers take their plain-PyTorch paths, exactly as without a compiler);
* ``record()``: a context manager that collects the names of the fast paths that ran
  in its block (``"native attention"``, ``"native dropout"``, ``"onednn linear"``), so
  a test can assert what it measured.

Outside these blocks the checks cost one global read per call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

NATIVE, ONEDNN = "native", "onednn"

_off: set[str] = set()  # fast paths switched off by disabled()
_ran: list[set[str]] = []  # one set per open record() block


@contextmanager
def disabled(*, native: bool = True, onednn: bool = True) -> Iterator[None]:
    """Inside the block the native kernels (``native``) and oneDNN linear layers
    (``onednn``) are not used; every caller takes its plain-PyTorch path."""
    added = {name for name, off in ((NATIVE, native), (ONEDNN, onednn)) if off and name not in _off}
    _off.update(added)
    try:
        yield
    finally:
        _off.difference_update(added)


def switched_off(name: str) -> str | None:
    """Why the fast path ``name`` may not run ("switched off ..."), or None."""
    return "switched off by attnlab.kernels.disabled()" if name in _off else None


@contextmanager
def record() -> Iterator[set[str]]:
    """Yields a set that collects the names of the fast paths that run in the block."""
    ran: set[str] = set()
    _ran.append(ran)
    try:
        yield ran
    finally:
        _ran.remove(ran)


@contextmanager
def unrecorded() -> Iterator[None]:
    """Inside the block nothing is noted by the open ``record()`` blocks (the timing runs of
    ``attnlab.kernels.calibrate`` are not the caller's work)."""
    saved = _ran[:]
    _ran.clear()
    try:
        yield
    finally:
        _ran[:] = saved


def ran(name: str) -> None:
    """Note that the fast path ``name`` ran (only while a ``record()`` block is open)."""
    for seen in _ran:
        seen.add(name)
