"""Tagging a corpus on a Dask cluster: the ``cluster`` extra (``pip install 'attnlab[cluster]'``).

    attnlab tag corpus/ -o tagged/ --scheduler tcp://10.0.0.1:8786   # a running cluster
    attnlab tag big.txt -o big.conllu --scheduler local:2            # 2 worker processes here

    from attnlab.distributed import tag_on_cluster
    tag_on_cluster("en", "corpus/", "tagged/", scheduler="tcp://10.0.0.1:8786")

**Sharded by block.** This process (the client) reads the input in blocks
(``attnlab.corpus.BlockReader``) and sends each block to the cluster as one task; the
workers tag blocks and send back their output; the client writes it in input order. Reading,
numbering and writing are ``attnlab.corpus.tag_stream`` / ``tag_files`` themselves, given
``ClusterWorkers`` as what tags the blocks, so the output is byte for byte the output of one
process, ``OUT.part`` and ``--resume`` work as they do there, and the workers need no access
to the input or the output. A directory is one stream of blocks across its files, so many
small files keep every worker busy. At most ``PER_THREAD`` blocks per worker thread are in
flight: memory stays bounded on the client and on the workers, whatever the input's size.

**The model, once per worker.** A task names the model (``ModelRef``: a shipped model's
name, or an absolute directory that every worker must see at that path), not its weights. A
worker process loads it on first use and keeps it (``worker_tagger``: a cache in the process,
at most ``CACHED_MODELS`` models), with as many torch threads as the worker has task threads
and glibc's memory thresholds as a plain process has them (``_malloc_for_tensors``);
``ClusterWorkers`` loads it on every worker before the first block, so that a worker that
cannot load it stops the run at once, in one line. A worker that joins later loads it with
its first block.

**Failures.** A task whose worker dies (killed, out of memory, a lost machine) is run again
by the scheduler on another worker; a task that raises is retried ``RETRIES`` times. Each
block is one task, and its output is taken once, by its index, so a block is never lost and
never written twice. Errors in the input (bad CoNLL-U, a sentence over the word limit) are
the same on any worker: they are not retried, and they read as in one process
(``file:line: reason``). A block that stops workers again and again (the scheduler's
``distributed.scheduler.allowed-failures``, 3) fails its file, named by its first line; a
lost scheduler stops the run (``WorkersLost``); either way what is written stays for
``--resume``.

**local:N** is a ``distributed.LocalCluster`` of N worker processes with one thread each,
started without Dask's ``MALLOC_TRIM_THRESHOLD_`` and with this module preloaded in each
worker, so that closing the cluster does not wait for the interpreter's teardown of torch in
every worker (``dask_teardown``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .corpus import (BLOCK_CHARS, Block, BlockResult, Totals, WorkersLost, expand_inputs, tag_block, tag_files,
                     tag_stream)
from .api import BATCH_TOKENS
from .data.conllu import ConlluError
from .errors import UserError, require_extra

RETRIES = 2  # a task that raises (not an error in the input) is run again this many times
PER_THREAD = 2  # blocks in flight per worker thread
CACHED_MODELS = 2  # models a worker process keeps loaded
CONNECT_SECONDS = 10.0  # to reach a scheduler
WORKERS_SECONDS = 60.0  # for a first worker to join a scheduler that has none


@dataclass(frozen=True)
class ModelRef:
    """A model as the workers load it (``attnlab.load``): a shipped model's name or an absolute
    model directory (``source``), and ``load``'s options. It stands for the tagger where this
    process only reads and writes (``tag_stream`` needs a model's ``source`` and ``name``)."""

    source: str
    name: str
    batch_tokens: int = BATCH_TOKENS
    device: str = "cpu"
    precision: str = "auto"

    def load_tagger(self, threads: int | None = None):
        """The ``attnlab.api.Tagger`` this stands for, loaded in this process."""
        from .api import load

        return load(self.source, batch_tokens=self.batch_tokens, device=self.device, threads=threads,
                    precision=self.precision)


def model_ref(name_or_dir: str | os.PathLike[str], *, batch_tokens: int = BATCH_TOKENS, device: str = "cpu",
              precision: str = "auto") -> ModelRef:
    """The ``ModelRef`` of a shipped model's name or a model directory, as ``attnlab.load``
    names it (FileNotFoundError naming the shipped models when it is neither, as ``load``)."""
    from .api import resolve_model, shipped_models
    from .options import positive_int

    from .precision import PRECISIONS

    positive_int.check(batch_tokens, "batch_tokens")
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is unknown; choose one of {', '.join(PRECISIONS)}")
    directory = resolve_model(name_or_dir)
    shipped = isinstance(name_or_dir, str) and shipped_models().get(name_or_dir) == directory
    source = name_or_dir if shipped else str(directory.resolve())
    return ModelRef(str(source), os.fspath(name_or_dir), batch_tokens, device, precision)


# -- on a worker -------------------------------------------------------------------------------

_TAGGERS: dict[ModelRef, Any] = {}  # this process's loaded models, the most recently loaded last
_LOCK = threading.Lock()
_STATS = {"loads": 0, "blocks": 0}


def worker_tagger(ref: ModelRef):
    """The tagger of ``ref`` in this process: loaded on first use, then kept (module docstring)."""
    with _LOCK:
        tagger = _TAGGERS.get(ref)
        if tagger is None:
            if not _TAGGERS:
                _malloc_for_tensors()
            tagger = ref.load_tagger(threads=_worker_threads())
            while len(_TAGGERS) >= CACHED_MODELS:
                del _TAGGERS[next(iter(_TAGGERS))]
            _TAGGERS[ref] = tagger
            _STATS["loads"] += 1
    return tagger


def _malloc_for_tensors() -> None:
    """Dask's nanny starts a worker process with ``MALLOC_TRIM_THRESHOLD_=65536``
    (``distributed.nanny.pre-spawn-environ``), which also turns glibc's adaptive mmap threshold
    off: every large tensor is then mapped and unmapped again, and tagging a block takes 1.5
    times as long (docs/corpus.md). Put back the limits glibc's adaptive thresholds reach (mmap
    from 32 MiB, trim above 64 MiB); nothing elsewhere (other C libraries, other systems)."""
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return
    if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt"):  # glibc
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD


def _worker_threads() -> int | None:
    """The task threads of the Dask worker this runs in (torch gets as many), None outside one."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    return getattr(getattr(worker, "state", worker), "nthreads", None)


def worker_stats() -> dict:
    """What this worker process did: models loaded, blocks tagged (``client.run(worker_stats)``),
    and its ``MALLOC_TRIM_THRESHOLD_`` (None: not set)."""
    return {"pid": os.getpid(), **_STATS, "malloc_trim_threshold": os.environ.get("MALLOC_TRIM_THRESHOLD_")}


@dataclass
class _InputError:
    """An error in the input, sent back as a value so that the scheduler does not retry it."""

    error: Exception


def tag_task(ref: ModelRef, block: Block, fmt: str) -> BlockResult | _InputError:
    """One block, tagged on a worker with its cached model."""
    tagger = worker_tagger(ref)
    try:
        result = tag_block(tagger, block, fmt)
    except (UserError, ConlluError) as exc:
        return _InputError(exc)
    with _LOCK:
        _STATS["blocks"] += 1
    return result


def _preload(ref: ModelRef) -> dict:
    worker_tagger(ref)
    return worker_stats()


def dask_teardown(worker) -> None:
    """Dask calls this when a worker that preloads this module (``local:N`` workers do; any
    worker with ``--preload attnlab.distributed``) closes: once the worker has closed and its
    process exits, skip the interpreter's teardown of torch's modules (about 1 s a process,
    which closing a cluster waits for), as a process that has nothing left to write."""
    import atexit
    import multiprocessing

    if multiprocessing.parent_process() is not None:  # a worker process of its own, not one inside a client
        atexit.register(os._exit, 0)  # registered last, so run first, after the worker has closed


# -- on the client -----------------------------------------------------------------------------

class _BlockFuture:
    """A block's task: ``result()`` is its ``BlockResult``, or its error in one line."""

    def __init__(self, future, block: Block, retries: int):
        self.future, self.block, self.retries = future, block, retries

    def result(self) -> BlockResult:
        from concurrent.futures import CancelledError

        from distributed.comm import CommClosedError
        from distributed.scheduler import KilledWorker

        where = f"{self.block.name}:{self.block.first_line}"
        try:
            out = self.future.result()
        except KilledWorker:
            raise UserError(f"{where}: the block from this line on stopped a worker again and again (killed, or out "
                            "of memory), so it was given up; what is written stays for --resume") from None
        except (CancelledError, CommClosedError) as exc:
            reason = " ".join(str(exc).split())
            raise WorkersLost(f"lost the Dask scheduler ({reason}); what is written stays for --resume") from None
        except Exception as exc:
            raise UserError(f"{where}: tagging the block from this line on failed {self.retries + 1} times on the "
                            f"cluster: {type(exc).__name__}: {exc}") from None
        if isinstance(out, _InputError):
            raise out.error
        return out

    def cancel(self) -> None:
        self.future.cancel()


class ClusterWorkers:
    """The workers of a Dask cluster as an ``attnlab.corpus.BlockMapper``: ``submit`` sends a
    block as a task; ``window`` is ``PER_THREAD`` blocks per worker thread. Made with a
    ``distributed.Client``, it loads the model on every worker first (``UserError`` naming a
    worker that cannot) and waits up to ``wait`` seconds for a first worker when there is none.
    ``task`` tags a block on a worker (``tag_task``; tests put a failing one in its place)."""

    def __init__(self, client, model: ModelRef, *, retries: int = RETRIES, wait: float = WORKERS_SECONDS,
                 task=None):
        self.client, self.model, self.retries = client, model, retries
        self.task = task or tag_task
        workers = client.scheduler_info()["workers"]
        if not workers:
            try:
                client.wait_for_workers(1, timeout=wait)
            except (TimeoutError, OSError):
                raise UserError(f"{client.scheduler.address}: no Dask worker joined in {wait:.0f} s; start some "
                                f"(dask worker {client.scheduler.address} --nworkers N --nthreads 1)") from None
            workers = client.scheduler_info()["workers"]
        self.workers = len(workers)
        self.threads = sum(w.get("nthreads", 1) for w in workers.values())
        self.loaded = self._preload(list(workers))

    @property
    def window(self) -> int:
        return PER_THREAD * self.threads

    def _preload(self, addresses: list[str]) -> dict[str, dict]:
        futures = {a: self.client.submit(_preload, self.model, workers=[a], allow_other_workers=False, pure=False)
                   for a in addresses}
        loaded = {}
        for address, future in futures.items():
            try:
                loaded[address] = future.result()
            except Exception as exc:
                raise UserError(f"Dask worker {address} cannot load the model {self.model.source} (every worker must "
                                f"see it at that path): {exc}") from None
        return loaded

    def submit(self, block: Block, fmt: str) -> _BlockFuture:
        future = self.client.submit(self.task, self.model, block, fmt, retries=self.retries, pure=False)
        return _BlockFuture(future, block, self.retries)

    def close(self) -> None:
        pass  # the client belongs to whoever made it (``cluster_workers`` closes its own)

    def __enter__(self) -> "ClusterWorkers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_scheduler(spec: str) -> tuple[str, int | str]:
    """``("local", N)`` for ``local:N`` (``local``: one worker per usable core) or
    ``("address", spec)`` for a scheduler's address (``tcp://HOST:8786``, ``HOST:8786``);
    ``UserError`` in one line for anything else."""
    if spec == "local" or spec.startswith("local:"):
        if spec == "local":
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            return "local", cores
        n = spec[len("local:"):]
        if not n.isdigit() or int(n) < 1:
            raise UserError(f"{spec}: local:N starts N worker processes on this machine; N is an integer >= 1")
        return "local", int(n)
    if not spec or any(c.isspace() for c in spec) or ":" not in spec:
        raise UserError(f"{spec!r}: not a Dask scheduler's address (tcp://HOST:PORT, e.g. tcp://10.0.0.1:8786; "
                        "or local:N for N worker processes on this machine)")
    return "address", spec


@contextlib.contextmanager
def connect(scheduler, *, timeout: float = CONNECT_SECONDS) -> Iterator[Any]:
    """A ``distributed.Client`` of ``scheduler``: an address (``parse_scheduler``), ``local:N``
    (a ``LocalCluster`` of N worker processes with one thread each, closed at the end) or a
    ``Client`` already made (used as it is, left open)."""
    if not isinstance(scheduler, str):
        yield scheduler
        return
    require_extra("cluster", ["distributed"])
    how, what = parse_scheduler(scheduler)
    import dask
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if how == "local":
            # workers without Dask's MALLOC_TRIM_THRESHOLD_ (_malloc_for_tensors), preloading this
            # module (dask_teardown); the scheduler's web pages on a free port (8787 may be taken)
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                                  "distributed.worker.preload": [__name__]}):
                cluster = stack.enter_context(LocalCluster(n_workers=what, threads_per_worker=1, processes=True,
                                                           dashboard_address=":0", silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
        else:
            try:
                client = stack.enter_context(Client(what, timeout=timeout))
            except (OSError, TimeoutError) as exc:
                raise UserError(f"{scheduler}: no Dask scheduler answers there in {timeout:.0f} s ({exc})") from None
        yield client


@contextlib.contextmanager
def cluster_workers(scheduler, model: ModelRef, **options) -> Iterator[ClusterWorkers]:
    """``ClusterWorkers`` on ``scheduler`` (``connect``), closed with it; ``options`` go to
    ``ClusterWorkers``."""
    with connect(scheduler) as client:
        yield ClusterWorkers(client, model, **options)


def tag_on_cluster(model, source, out, *, scheduler, fmt: str = "conllu", kind: str = "auto", resume: bool = False,
                   progress: bool = False, batch_tokens: int = BATCH_TOKENS, block_chars: int = BLOCK_CHARS,
                   precision: str = "auto", report=print) -> Totals:
    """Tag ``source`` on a Dask cluster into ``out``, as ``attnlab tag SOURCE -o OUT`` does in
    one process (the same bytes): a file (or "-", stdin) into a file (or "-", stdout), or a
    directory or glob into the directory ``out``, mirroring the tree (``tag_files``; ``report``
    gets a line per file that fails). ``model``: a shipped model's name or a model directory
    that every worker sees at the same path. ``scheduler``: ``tcp://HOST:PORT``, ``local:N``
    or a ``distributed.Client``. ``block_chars``: the block size (``attnlab tag --block-chars``;
    blocks are cut here, so it is this process's setting). ``precision``: as ``attnlab.load``
    (resolved on each worker, for its CPU). The totals are those of ``tag_stream`` /
    ``tag_files``."""
    from .api import resolve_model

    require_extra("cluster", ["distributed"])
    if isinstance(scheduler, str):
        parse_scheduler(scheduler)
    ref = model_ref(model, batch_tokens=batch_tokens, precision=precision)
    source = os.fspath(source)
    many = source != "-" and not Path(source).is_file() and (Path(source).is_dir() or not Path(source).exists())
    if many:
        files, base = expand_inputs(source)
    with cluster_workers(scheduler, ref) as workers:
        if many:
            return tag_files(ref, files, base, Path(out), fmt=fmt, kind=kind, workers=workers, resume=resume,
                             progress=progress, report=report, block_chars=block_chars)
        return tag_stream(ref, source, out, fmt=fmt, kind=kind, workers=workers, resume=resume, progress=progress,
                          inputs=[resolve_model(model)], block_chars=block_chars)
