"""Peak memory of one call, two ways.

``peak_memory_bytes``: the allocations and frees of torch's CPU allocator during the call
(``torch.profiler`` with ``profile_memory=True``); the peak of their running sum is the extra
memory the call needs on top of its inputs (its output included). Memory outside torch's
allocator is not counted.

``peak_resident_extra``: the process's peak resident set during the call (VmHWM, reset through
/proc/self/clear_refs) minus its resident set before it; Linux only. Everything the process
ever touched counts, so it is measured in a fresh process (``run_probe``: ``python -m`` a
module whose main builds the inputs, calls this and prints).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

MIB = 1024 * 1024


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Hide what is written to file descriptor 2 (the profiler prints start/stop lines there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory_bytes(fn: Callable[[], object]) -> int:
    """Peak of the running sum of torch CPU allocations minus frees during one call of ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
        del out
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    running = peak = 0
    for e in events:
        running += e.nbytes()
        peak = max(peak, running)
    return peak


# -- resident set, in a fresh process -------------------------------------------------------

def resident_peak_supported() -> bool:
    return Path("/proc/self/clear_refs").exists()


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024  # "VmRSS:   1234 kB"
    raise RuntimeError(f"/proc/self/status has no {key}")


def peak_resident_extra(fn: Callable[[], T]) -> tuple[int, T]:
    """(peak resident bytes during one call of ``fn`` beyond those before it, its output)."""
    base = _status_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident set
    out = fn()
    return _status_bytes("VmHWM") - base, out


def run_probe(module: str, args: list[str], what: str, timeout: float = 1800) -> str:
    """Standard output of ``python -m module args...`` in a fresh process; RuntimeError
    naming ``what`` was probed if it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe for {what} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return proc.stdout


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning large blocks to the
    system (as PyTorch's CPU tuning guides do with jemalloc or tcmalloc): otherwise every
    large temporary is page-faulted in afresh. Process-wide; True if glibc agreed."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False
