"""Build and load the native kernels (``cpu.cpp``), and say when they cannot serve a call.

``cpu.cpp`` (next to this file) is compiled once per machine with the system C++
compiler (``$CXX`` or ``c++``; ``-O3 -march=native -fopenmp``) into
``$ATTNLAB_CACHE`` (default ``~/.cache/attnlab``) and loaded with ctypes. It links the
OpenMP runtime that PyTorch has already loaded, so both share one thread pool.

The compiled file is named by a hash of everything it was built from: the source, the
compiler and its flags, the CPU's feature flags (``-march=native``) and the PyTorch
version, so a changed source or toolchain builds a new file instead of loading a stale
one. It is written with the process umask, like any other file.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import secrets
import shutil
import subprocess
import threading
from pathlib import Path

import torch

from . import paths

log = logging.getLogger("attnlab.kernels")

SOURCE = Path(__file__).with_name("cpu.cpp")
FLAGS = ("-O3", "-march=native", "-fopenmp", "-std=c++17", "-shared", "-fPIC")
DTYPES = {torch.float32: 0, torch.float64: 1}

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_why_not: str | None = None
_loaded = False


def cache_dir() -> Path:
    """Where attnlab keeps what it builds on first use: ``$ATTNLAB_CACHE`` or ``~/.cache/attnlab``."""
    return Path(os.environ.get("ATTNLAB_CACHE") or Path.home() / ".cache" / "attnlab")


def _cpu_flags() -> str:
    """The compiled file depends on the CPU (-march=native): its feature flags."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return ""


def build_key(source: bytes, compiler: str, flags: tuple[str, ...] = FLAGS) -> str:
    """16 hex digits naming a build of ``source`` with ``compiler`` and ``flags`` on this
    CPU for this PyTorch version."""
    key = hashlib.sha256(source)
    for part in (" ".join(flags), compiler, _cpu_flags(), torch.__version__):
        key.update(b"\0" + part.encode())
    return key.hexdigest()[:16]


def build(compiler: str, source: Path = SOURCE, flags: tuple[str, ...] = FLAGS) -> Path:
    """The shared library built from ``source``: reused from the cache when a build of
    the same key exists, else compiled (atomically: a concurrent build wins or loses)."""
    target = cache_dir() / f"attnlab_kernels_{build_key(source.read_bytes(), compiler, flags)}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # a fresh name that the compiler creates itself, so the file gets the umask's mode
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        proc = subprocess.run(
            [compiler, *flags, "-o", str(tmp), str(source)], capture_output=True, text=True, timeout=300
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def _declare(lib: ctypes.CDLL) -> None:
    i64, f64, u64, ptr, i32 = ctypes.c_int64, ctypes.c_double, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_int
    lib.attnlab_attention_forward.argtypes = [
        i32, ptr, ptr, ptr, i64, i64, i64, ptr, i64, ptr, ptr, i64, i64, i64, i64, f64, i64, i64, f64, u64,
    ]
    lib.attnlab_attention_backward.argtypes = [
        i32, ptr, ptr, ptr, i64, i64, i64, ptr, i64, ptr, i64, ptr, ptr, i64, ptr, i64, ptr, i64, ptr,
        i64, i64, i64, i64, f64, i64, i64, f64, u64,
    ]
    lib.attnlab_dropout.argtypes = [i32, ptr, ptr, i64, f64, u64, ptr]
    lib.attnlab_relu_dropout_.argtypes = [i32, ptr, i64, f64, u64]
    lib.attnlab_relu_dropout_backward.argtypes = [i32, ptr, ptr, ptr, i64, f64]
    lib.attnlab_transpose.argtypes = [i32, ptr, i64, i64, i64, ptr]
    for fn in (lib.attnlab_attention_forward, lib.attnlab_attention_backward, lib.attnlab_dropout,
               lib.attnlab_relu_dropout_, lib.attnlab_relu_dropout_backward, lib.attnlab_transpose):
        fn.restype = ctypes.c_int


def compiler() -> str | None:
    """The C++ compiler that builds the kernels: ``$CXX``, else ``c++`` or ``g++`` on the PATH."""
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")


def current_build_key() -> str:
    """The build key of the kernels this process loads (``"none"`` without a compiler)."""
    cxx = compiler()
    return build_key(SOURCE.read_bytes(), cxx) if cxx else "none"


def _open() -> tuple[ctypes.CDLL | None, str | None]:
    if os.environ.get("ATTNLAB_KERNELS", "1") == "0":
        return None, "ATTNLAB_KERNELS=0"
    compiler_ = compiler()
    if not compiler_:
        return None, "no C++ compiler found (set CXX)"
    try:
        lib = ctypes.CDLL(str(build(compiler_)))
        _declare(lib)
    except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as exc:
        return None, f"could not build the native kernels: {exc}"
    return lib, None


def load() -> ctypes.CDLL | None:
    """The compiled library, building it if needed; None (reason logged once) if unavailable."""
    global _lib, _why_not, _loaded
    if not _loaded:
        with _lock:
            if not _loaded:
                _lib, _why_not = _open()
                if _lib is None:
                    log.info("native kernels unavailable (%s): using the pure-PyTorch paths", _why_not)
                _loaded = True
    return _lib


def available() -> bool:
    """True when the native kernels are built and loaded (whatever ``disabled()`` says)."""
    return load() is not None


def unavailable_reason() -> str | None:
    """Why the native kernels could not be loaded, or None."""
    load()
    return _why_not


def native_unsupported_reason(*tensors: torch.Tensor) -> str | None:
    """None when the native kernels can take these tensors, else why not."""
    if load() is None:
        return _why_not
    off = paths.switched_off(paths.NATIVE)
    if off:
        return off
    first = tensors[0]
    for t in tensors:
        if t.device.type != "cpu":
            return f"tensors on {t.device} (the kernels run on CPU)"
        if t.dtype not in DTYPES:
            return f"dtype {t.dtype} (the kernels take float32 and float64)"
        if t.dtype != first.dtype:
            return f"mixed dtypes {first.dtype} and {t.dtype}"
    return None


def call(name: str, *args) -> None:
    """Call a kernel; the profiler shows it as attnlab::<name>."""
    with torch.profiler.record_function(f"attnlab::{name}"):
        rc = getattr(load(), f"attnlab_{name}")(*args)
    if rc:
        raise RuntimeError(f"attnlab_{name} failed with code {rc}")


def seed() -> int:
    """A kernel seed drawn from PyTorch's generator (``torch.manual_seed`` repeats it)."""
    return int(torch.randint(0, 2**62, (1,)).item())


def ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def transposed(x: torch.Tensor) -> torch.Tensor:
    """x (rows, cols) -> a contiguous (cols, rows) copy of x^T: register tiles on every
    core when the native kernels are available, else ``x.t().contiguous()``."""
    if x.dim() != 2 or x.stride(1) != 1 or native_unsupported_reason(x) is not None:
        return x.t().contiguous()
    out = x.new_empty((x.shape[1], x.shape[0]))
    call("transpose", DTYPES[x.dtype], ptr(x), x.shape[0], x.shape[1], x.stride(0), ptr(out))
    return out
