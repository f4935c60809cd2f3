"""Which packed-attention path ``impl="auto"`` takes on this CPU, chosen by timing both.

The native kernel (``packed_attention``) and the bucketed path over PyTorch's SDPA
(``attnlab.attention.varlen``) compute the same function; which one is faster depends on
the CPU, not only on the shapes: on long single sequences the native kernel was 1.4-1.6x
slower than SDPA on an Intel Xeon with AMX (whose SDPA uses AMX tiles) and faster on AMD
Zen 5. So instead of one fixed rule, ``impl="auto"`` asks ``choice()``, which answers from
a small table measured on this machine:

* an **entry** is (mode, longest-sequence bucket, head-width bucket), e.g.
  ``"training n<=4096 d<=64"``; mode is ``inference`` (no gradient) or ``training``
  (forward + backward); lengths are cut at 64, 256, 1k, 4k, 16k (longer sequences take the
  ``n<=16384`` entry: both paths are in their quadratic regime there), head widths at 32,
  64, 128;
* an entry is measured on a representative batch (``workload``): ragged treebank-like
  sentences up to 256 tokens, one sequence of the bucket's middle length beyond. Both paths
  run in interleaved rounds (the order alternating) after a warm-up call; the medians decide,
  and the other path replaces the fixed rule's only when it is ``MARGIN`` faster, so ties
  keep the fixed rule (native at inference; for training native up to ``NATIVE_MAX_LEN``
  tokens, the buckets beyond);
* the table is kept as JSON in ``cache_dir()`` beside the kernel build, in a file named by
  a hash of the kernel's build key, the CPU model, the PyTorch version, the torch thread
  count and the dtype, so a change of any of them measures again. It is written atomically;
  a file that cannot be read is ignored with a warning and measured again.

Entries are measured lazily, the first time a call needs one (a fraction of a second for
short sequences, a few seconds for the longest bucket), or all at once by
``attnlab bench calibrate``. ``ATTNLAB_CALIBRATE`` says what ``choice()`` may do: unset or
``1`` measure what is missing, ``cached`` use the cached table only (missing entries take
the fixed rule), ``0`` the fixed rule only (the test suite runs so). ``use(table)``
injects a table in a block, whatever the variable says.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch

from . import native, paths

log = logging.getLogger("attnlab.kernels")

PATHS = ("native", "buckets")
MODES = ("inference", "training")
N_BOUNDS = (64, 256, 1024, 4096, 16384)  # longest-sequence buckets; longer ones share the last
D_BOUNDS = (32, 64, 128)  # head-width buckets, then "d>128"
MARGIN = 0.05  # the other path must be this much faster to replace the fixed rule's
NATIVE_MAX_LEN = 256  # the fixed rule: longest sequence the native kernel trains
VERSION = 1  # of the cache file's layout

_lock = threading.RLock()
_tables: dict[str, dict[str, dict]] = {}  # cache file name -> entries, as loaded or measured
_names: dict[tuple, str] = {}  # (dtype, threads, torch version) -> cache file name
_injected: list[Mapping[str, str]] = []  # tables given to use(), innermost last


# -- entries -----------------------------------------------------------------------------------

def n_bucket(longest: int) -> str:
    """The longest-sequence bucket of a batch: ``"n<=64"`` ... ``"n<=16384"`` (also for longer)."""
    return f"n<={next((b for b in N_BOUNDS if longest <= b), N_BOUNDS[-1])}"


def d_bucket(d: int) -> str:
    """The head-width bucket: ``"d<=32"``, ``"d<=64"``, ``"d<=128"`` or ``"d>128"``."""
    bound = next((b for b in D_BOUNDS if d <= b), None)
    return f"d<={bound}" if bound else f"d>{D_BOUNDS[-1]}"


def entry_key(mode: str, longest: int, d: int) -> str:
    """The table entry that serves a call, e.g. ``"training n<=4096 d<=64"``."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is unknown; choose one of {', '.join(MODES)}")
    return f"{mode} {n_bucket(longest)} {d_bucket(d)}"


def all_entries(head_dims: tuple[int, ...] = (64,), modes: tuple[str, ...] = MODES) -> list[str]:
    """Every entry for these head widths and modes, shortest sequences first."""
    return [entry_key(m, n, d) for d in head_dims for m in modes for n in N_BOUNDS]


def entry_order(entry: str) -> tuple:
    """Sort key of entries: by mode, head width, then longest sequence."""
    mode, nb, db = entry.split()
    return MODES.index(mode), db.startswith("d>"), int(db[3:]), int(nb[3:])


def fixed_path(mode: str, longest: int) -> str:
    """The rule used before (and without) calibration: native, except training on
    sequences longer than ``NATIVE_MAX_LEN``."""
    return "buckets" if mode == "training" and longest > NATIVE_MAX_LEN else "native"


def workload(entry: str) -> tuple[list[int], int, int]:
    """The batch that stands for an entry: (sequence lengths, heads H, head width d).

    ``n<=64``: 64 sentences of 5-60 tokens, most short (like a treebank's); ``n<=256``:
    8 of 65-256 tokens; beyond, one sequence of the bucket's geometric middle length
    (512, 2048, 8192) with one head. H = 4 for the ragged batches.
    """
    _, nb, db = entry.split()
    bound = int(nb[3:])
    d = 2 * D_BOUNDS[-1] if db.startswith("d>") else int(db[3:])
    rng = random.Random(bound)
    if bound == 64:
        return [5 + int(55 * rng.random() ** 2) for _ in range(64)], 4, d
    if bound == 256:
        return [rng.randint(65, 256) for _ in range(8)], 4, d
    lower = N_BOUNDS[N_BOUNDS.index(bound) - 1]
    return [int(math.sqrt(lower * bound))], 1, d


# -- timing and choosing -------------------------------------------------------------------------

def time_paths(calls: Mapping[str, Callable[[], object]], rounds: int = 5, *,
               clock: Callable[[], float] = time.perf_counter, min_sample: float = 0.005) -> dict[str, list[float]]:
    """Seconds per call of each callable in every round, timed side by side.

    Each is called once to warm up (that call also sets how many calls make one sample of
    at least ``min_sample`` seconds), then ``rounds`` interleaved rounds run every callable
    once per round, the order reversed every other round so neither always goes first.
    Sample r of every callable comes from round r, so they can be compared in pairs.
    """
    names = list(calls)
    reps = {}
    for name in names:
        start = clock()
        calls[name]()
        reps[name] = max(1, min(100, math.ceil(min_sample / max(clock() - start, 1e-9))))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = clock()
            for _ in range(reps[name]):
                calls[name]()
            samples[name].append((clock() - start) / reps[name])
    return samples


def choose(samples: Mapping[str, list[float]], default: str, margin: float = MARGIN,
           min_wins: float = 0.75) -> tuple[str, str]:
    """(path, why): the path of least median time if its median beats ``default``'s by more
    than ``margin`` and it was faster in at least ``min_wins`` of the rounds (so a burst of
    load on the machine during a few rounds does not decide), else ``default``."""
    times = {name: statistics.median(s) for name, s in samples.items()}
    other = min((o for o in times if o != default), key=lambda o: times[o], default=default)
    gap = times[default] / times[other]  # > 1: the best other path is faster
    wins = sum(a < b for a, b in zip(samples[other], samples[default])) / max(1, len(samples[default]))
    if gap > 1 + margin and wins >= min_wins:
        return other, f"{other} {gap:.2f}x faster than {default} (in {wins:.0%} of the rounds)"
    if gap <= 1.0:
        return default, f"{default} kept ({other} {1 / gap:.2f}x slower)"
    if gap <= 1 + margin:
        return default, f"{default} kept ({other} only {gap:.2f}x faster, within the {margin:.0%} margin)"
    return default, f"{default} kept ({other} {gap:.2f}x faster but only in {wins:.0%} of the rounds: noisy)"


# (qkv (T, 3, H, d), cu_seqlens (B + 1,)) -> a function of impl ("native" | "buckets") that
# returns out (T, H, d): attnlab.attention.varlen.timed_attention (passed in: varlen imports us)
Attention = Callable[[torch.Tensor, torch.Tensor], Callable[[str], torch.Tensor]]


def measure(entry: str, dtype: torch.dtype = torch.float32, rounds: int | None = None, *,
            attention: Attention) -> dict:
    """Time both paths on the entry's workload and choose: the entry's row of the table."""
    return measure_batch(entry.split()[0], *workload(entry), dtype=dtype, rounds=rounds, attention=attention)


def measure_batch(mode: str, lengths: list[int], heads: int, d: int, *, dtype: torch.dtype = torch.float32,
                  rounds: int | None = None, attention: Attention) -> dict:
    """Both paths side by side on qkv (T, 3, H, d) of sequences of ``lengths``, in ``mode``:
    their median ms, the ratio buckets / native, the choice and why."""
    from ..packing import cu_seqlens_from_lengths

    train = mode == "training"
    if rounds is None:
        rounds = 3 if max(lengths) > 4096 else 5
    # tensors of their own (no inference tensors, whatever the caller's mode), timed runs
    # that no record() block of the caller notes
    began = time.perf_counter()
    with torch.inference_mode(False), paths.unrecorded():
        g = torch.Generator().manual_seed(0)
        qkv = torch.randn(sum(lengths), 3, heads, d, generator=g).to(dtype).requires_grad_(train)
        grad = torch.randn(sum(lengths), heads, d, generator=g).to(dtype)
        cu = cu_seqlens_from_lengths(lengths)
        attend = attention(qkv, cu)

        def call(impl: str) -> Callable[[], None]:
            def run() -> None:
                with torch.set_grad_enabled(train):
                    out = attend(impl)
                    if train:
                        out.backward(grad)
                        qkv.grad = None
            return run

        samples = time_paths({p: call(p) for p in PATHS}, rounds)
    times = {name: statistics.median(s) for name, s in samples.items()}
    path, why = choose(samples, fixed_path(mode, max(lengths)))
    shape = f"{len(lengths)} x {min(lengths)}-{max(lengths)}" if len(lengths) > 1 else f"1 x {lengths[0]}"
    return {
        "native_ms": round(times["native"] * 1e3, 4), "buckets_ms": round(times["buckets"] * 1e3, 4),
        "ratio": round(times["buckets"] / times["native"], 3),  # > 1: native faster
        "choice": path, "why": why, "shape": f"{shape} tokens, H={heads}, d={d}", "rounds": rounds,
        "spread": {name: round(max(s) / min(s), 2) for name, s in samples.items()},  # slowest / fastest round
        "seconds": round(time.perf_counter() - began, 2),  # what measuring this entry cost
    }


# -- the cache -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("" when not found)."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((line for line in f if line.startswith("model name")), "")
    except OSError:
        return ""
    return line.partition(":")[2].strip()


def key_parts(dtype: torch.dtype = torch.float32, threads: int | None = None) -> dict[str, str]:
    """What a cached table depends on: kernel build, CPU model, PyTorch, threads, dtype."""
    return {
        "build": _build_key(), "cpu": cpu_model(), "torch": torch.__version__,
        "threads": str(threads or torch.get_num_threads()), "dtype": str(dtype).removeprefix("torch."),
    }


def cache_path(parts: Mapping[str, str]) -> Path:
    """The table's file in ``cache_dir()``, named by a hash of ``parts``."""
    digest = hashlib.sha256(json.dumps(dict(parts), sort_keys=True).encode()).hexdigest()[:16]
    return native.cache_dir() / f"attnlab_calibration_{digest}.json"


_build_keys: list[str] = []


def _build_key() -> str:
    if not _build_keys:
        _build_keys.append(native.current_build_key())
    return _build_keys[0]


def load(parts: Mapping[str, str]) -> dict[str, dict]:
    """The cached entries for ``parts``; {} when there is no file, and when the file cannot
    be read or was written for other parts (a warning says so: it will be measured again)."""
    path = cache_path(parts)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring the calibration file %s (%s): measuring again", path, exc)
        return {}
    ok = (isinstance(data, dict) and data.get("version") == VERSION and data.get("key") == dict(parts)
          and isinstance(data.get("entries"), dict)
          and all(isinstance(e, dict) and e.get("choice") in PATHS for e in data["entries"].values()))
    if not ok:
        log.warning("ignoring the calibration file %s (not a table for this machine): measuring again", path)
        return {}
    return data["entries"]


def save(parts: Mapping[str, str], entries: Mapping[str, dict]) -> Path:
    """Write the table atomically (readers see the old file or the new one)."""
    from ..atomic import atomic_write_bytes

    path = cache_path(parts)
    data = {"version": VERSION, "key": dict(parts), "entries": dict(sorted(entries.items(), key=lambda kv: entry_order(kv[0])))}
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())
    return path


def table(dtype: torch.dtype = torch.float32) -> dict[str, dict]:
    """The entries known for this machine and dtype (loaded once per process and key)."""
    memo = (dtype, torch.get_num_threads(), torch.__version__)  # the parts that can change in a process
    name = _names.get(memo)
    if name is None or name not in _tables:
        with _lock:
            parts = key_parts(dtype)
            name = _names[memo] = cache_path(parts).name
            if name not in _tables:
                _tables[name] = load(parts)
    return _tables[name]


def calibrate(entries: list[str], dtype: torch.dtype = torch.float32, *, attention: Attention,
              log_row: Callable[[str, dict], None] | None = None) -> dict[str, dict]:
    """Measure ``entries`` (again), store them in the table and write it; the new rows."""
    rows = {}
    with _lock:
        known = table(dtype)
        for entry in entries:
            rows[entry] = known[entry] = measure(entry, dtype, attention=attention)
            if log_row:
                log_row(entry, rows[entry])
        _write(dtype, known)
    return rows


def _write(dtype: torch.dtype, entries: Mapping[str, dict]) -> None:
    from ..errors import UserError

    try:
        save(key_parts(dtype), entries)
    except UserError as exc:  # a read-only cache: the table still serves this process
        log.warning("could not keep the calibration table: %s", exc)


# -- the choice ----------------------------------------------------------------------------------

@contextmanager
def use(choices: Mapping[str, str]) -> Iterator[None]:
    """Inside the block ``choice()`` answers from ``choices`` ({entry: "native" | "buckets"};
    entries left out take the fixed rule) and measures nothing."""
    bad = {e: p for e, p in choices.items() if p not in PATHS}
    if bad:
        raise ValueError(f"choices must be one of {', '.join(PATHS)}, got {bad}")
    _injected.append(dict(choices))
    try:
        yield
    finally:
        _injected.pop()


def setting() -> str:
    """``ATTNLAB_CALIBRATE``: "measure" (unset or 1), "cached" or "off" (0)."""
    value = os.environ.get("ATTNLAB_CALIBRATE", "1").strip().lower()
    if value in ("0", "off", "no", "false"):
        return "off"
    return "cached" if value == "cached" else "measure"


def choice(mode: str, longest: int, d: int, dtype: torch.dtype, attention: Attention) -> tuple[str, str]:
    """(path, why) for a call the native kernel can serve: "native" or "buckets"; a missing
    entry is measured with ``attention`` when ``ATTNLAB_CALIBRATE`` allows."""
    entry = entry_key(mode, longest, d)
    fixed = fixed_path(mode, longest)
    if _injected:
        path = _injected[-1].get(entry)
        return (path, f"injected table ({entry})") if path else (fixed, f"fixed rule ({entry} not in the injected table)")
    how = setting()
    if how == "off":
        return fixed, "fixed rule (ATTNLAB_CALIBRATE=0)"
    known = table(dtype)
    row = known.get(entry)
    if row is None and how == "measure":
        with _lock:
            row = known.get(entry)
            if row is None:
                log.info("calibrating packed attention for %s %s (once per machine)", entry, dtype)
                row = known[entry] = measure(entry, dtype, attention=attention)
                _write(dtype, known)
    if row is None:
        return fixed, f"fixed rule ({entry} not calibrated)"
    return row["choice"], f"calibrated on this CPU ({entry}): {row['why']}"


def clear() -> None:
    """Forget the tables loaded in this process (the next ``choice()`` reads the files again)."""
    with _lock:
        _tables.clear()
        _names.clear()
        _build_keys.clear()
        cpu_model.cache_clear()
