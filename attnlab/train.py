"""One training loop for every task: bucketed batches, AdamW + warm-up, early stopping,
atomic checkpoints, exact resume, clean Ctrl-C.

A task is any object with the methods of ``TrainingTask`` (below): the sizes of its
examples, batches of them, the loss of a batch, a dev score and a way to save a model.

``train(model, task, TrainConfig(...), out_dir)`` writes into ``out_dir``:

    model.safetensors, config.json, vocab.json   the best model on dev so far
    checkpoints/latest.json                      names the newest complete checkpoint
    checkpoints/step-0000123/                    a model directory plus
        optimizer.safetensors                    AdamW moments and the torch RNG state
        state.json                               step, epoch, position in the epoch, best
                                                 score, patience, time, history

A checkpoint directory is complete before ``latest.json`` points at it, so a crash at
any moment leaves the previous checkpoint usable. A run whose loss, gradient or weights
become NaN or infinite stops with ``TrainingDiverged`` before the step that would spread
them, and nothing non-finite is ever saved: the best model and the latest checkpoint stay
those from before. ``train(..., resume_from=dir)`` continues from a checkpoint exactly: the batches of an epoch depend only on the seed and
the epoch number, the learning rate only on the step, and the RNG state is restored, so
an interrupted and resumed run ends with the same weights as an uninterrupted one.

A run may spend a time budget instead of a given number of epochs (``TrainConfig.plan_epochs``,
``budget_minutes``): it times its first ``PLAN_AFTER`` epochs, plans the epochs that fit the
rest of the budget (``plan_epochs``) and from then on runs as if that count had been given.
The learning rate holds its peak through the timed epochs, so no step depends on a count not
yet known, and the plan is recorded: ``epochs=K`` with the same seed repeats the run exactly.
It ends at whichever comes first: no dev improvement for ``patience`` epochs (converged), the
budget, the last planned epoch; ``"run"`` in the model's config.json says which.

Several processes (``torchrun --nproc_per_node P -m attnlab train ...``): when the
environment says WORLD_SIZE > 1, ``train`` joins the process group (gloo; NCCL only for
models on a GPU) and wraps the model in DistributedDataParallel. Every process computes
the same batches of an epoch from the seed (the distributed length-bucketed sampler) and
takes its share ``batch[rank::P]`` of each global batch. Its loss is weighted by its
share of the batch's ``units`` times P, so DDP's average of the P gradients is the
gradient of the mean loss over the whole global batch: one process and P processes with
the same ``batch_tokens`` take the same steps (up to floating-point rounding; dropout
masks differ). Rank 0 alone evaluates on dev (the score is broadcast), writes model
directories and checkpoints (the others wait at a barrier), logs and shows progress; its
decision to stop (Ctrl-C, time limit) reaches every process after the step.

All of that lives behind one interface, ``Communication``, in two versions,
``SingleProcess`` and ``ProcessGroup``: the loop calls the same methods whether it runs
alone or in a group.
"""

from __future__ import annotations

import enum
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Protocol, TypeVar

import torch

from .checkpoint import (
    CheckpointError, atomic_write_bytes, file_checksums, json_bytes, optimizer_from_files, optimizer_to_files,
    read_bytes, read_json, read_tensors, remove_stale_temporaries, sha256, tensors_bytes,
)
from .config import JsonConfig, check_positive
from .data.batching import bucket_batches
from .errors import UserError
from .options import fraction, non_negative_float, positive_float

STATE_FORMAT = "attnlab-train-state/1"
CHECKPOINTS = "checkpoints"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
SCHEDULES = ("linear", "cosine", "constant")


ModelT = TypeVar("ModelT", bound=torch.nn.Module)
ModelT_contra = TypeVar("ModelT_contra", bound=torch.nn.Module, contravariant=True)


class TrainingTask(Protocol[ModelT_contra]):
    """What the loop needs from a task (tagging, classification, seq2seq, ...), for models of
    type ``ModelT_contra`` (``TrainingTask[Tagger]``: a task whose methods take a Tagger).

    A batch is any object with ``tokens`` (its size in tokens, for the progress bar) and
    optionally ``units``, what its loss is a mean over (``tokens`` when absent): with
    several processes each one's loss is weighted by its share of the global batch's units.
    """

    def lengths(self) -> list[int]:
        """Sizes of the training examples (for bucketing into batches)."""

    def make_batch(self, indices: list[int]) -> Any:
        """The batch of these training examples."""

    def loss(self, model: ModelT_contra, batch: Any) -> torch.Tensor:
        """The mean training loss of one batch (a scalar)."""

    def evaluate(self, model: ModelT_contra) -> float:
        """The dev score, higher is better (the model is in eval mode)."""

    def save_model(self, directory: Path, model: ModelT_contra, extra: dict) -> None:
        """Write a model directory (``attnlab.checkpoint``) with ``extra`` in its config.json."""


def batch_units(batch) -> float:
    """What the loss of ``batch`` is a mean over (see ``TrainingTask``)."""
    return float(getattr(batch, "units", batch.tokens))


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """How to train.

    batch_tokens      tokens per batch (sentences of similar length are batched together)
    warmup            steps of linear warm-up from 0 to ``lr``
    schedule          after warm-up: linear or cosine decay to 0 at the last step, or constant
    patience          stop after this many dev evaluations without improvement (0 = never; None: a
                      quarter of the epochs, at least 6 -- ``default_patience``)
    checkpoint_every  also checkpoint every this many steps (0 = only at the end of epochs)
    budget_minutes    stop the run (for good) once its training has taken this long, over all calls
    plan_epochs       ``epochs`` is only a cap: after ``PLAN_AFTER`` epochs (timed, dev scores
                      included) the run plans as many epochs as fit ``budget_minutes``
                      (``plan_epochs``) and goes on as if that count had been given; the plan is
                      recorded in the checkpoints and config.json, and ``epochs=K`` with the same
                      seed repeats the run exactly
    precision         "fp32", or "bf16": the forward pass under torch's bfloat16 autocast
                      (weights, optimizer and gradients stay fp32; ``attnlab.precision``)

    Every number is finite: lr > 0, weight_decay and clip_norm >= 0 (0: no clipping), betas in [0, 1).
    """

    epochs: int = 20
    batch_tokens: int = 3000
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup: int = 200
    schedule: str = "linear"
    clip_norm: float = 1.0
    patience: int | None = 5
    seed: int = 0
    checkpoint_every: int = 200
    budget_minutes: float | None = None
    plan_epochs: bool = False
    precision: str = "fp32"

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        check_positive(self, ("epochs", "batch_tokens"))
        positive_float.check(self.lr, "lr")
        non_negative_float.check(self.weight_decay, "weight_decay")
        non_negative_float.check(self.clip_norm, "clip_norm")
        for beta in self.betas:
            fraction.check(beta, "betas")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r} is unknown; choose one of {', '.join(SCHEDULES)}")
        if self.warmup < 0 or (self.patience or 0) < 0 or self.checkpoint_every < 0:
            raise ValueError("warmup, patience and checkpoint_every must be >= 0")
        if self.budget_minutes is not None:
            positive_float.check(self.budget_minutes, "budget_minutes")
        if self.plan_epochs and self.budget_minutes is None:
            raise ValueError("plan_epochs needs budget_minutes")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision {self.precision!r}: training runs in fp32 or bf16")

    @property
    def stop_patience(self) -> int:
        """``patience``, or when it is None the default for ``epochs``."""
        return default_patience(self.epochs) if self.patience is None else self.patience


def default_patience(epochs: int) -> int:
    """Epochs without dev improvement that stop a run: a quarter of them, at least 6."""
    return max(6, epochs // 4)


PLAN_AFTER = 2  # a run that plans its epochs times this many first (the faster one counts)


def plan_epochs(budget_seconds: float, elapsed: float, epoch_seconds: float, done: int, cap: int) -> int:
    """How many epochs a run fits in ``budget_seconds``: the ``done`` ones, which took
    ``elapsed``, and as many more as fit the rest when each takes ``epoch_seconds`` (a timed
    epoch's, its dev score and checkpoint included); at least ``done``, at most ``cap``. The
    budget still stops a run whose later epochs turn out slower."""
    more = int(max(budget_seconds - elapsed, 0.0) // max(epoch_seconds, 1e-9))
    return max(done, min(cap, done + more))


def learning_rate(config: TrainConfig, step: int, total_steps: int, decay_from: int = 0) -> float:
    """The learning rate for optimizer step ``step`` (0-based): a linear warm-up over
    ``config.warmup`` steps, the peak until step ``decay_from`` (the loop passes the steps of
    the first ``PLAN_AFTER`` epochs), then the way down to 0 at ``total_steps``. Holding the
    peak through those epochs keeps every step before their end independent of the epoch
    count, which a run that plans its epochs only learns there."""
    if config.warmup and step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    if config.schedule == "constant":
        return config.lr
    start = max(config.warmup, decay_from)
    span = max(total_steps - start, 1)
    progress = min(max(step - start, 0) / span, 1.0)
    if config.schedule == "linear":
        return config.lr * (1.0 - progress)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


class TrainingDiverged(UserError):
    """The loss, its gradient or the weights became NaN or infinite: the run stops (nothing of
    the failing step is saved)."""


@dataclass
class TrainState:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_score: float | None = None
    best_step: int = 0
    best_epoch: int = 0
    bad_evals: int = 0
    elapsed: float = 0.0  # seconds of training over all runs
    done: bool = False
    history: list = field(default_factory=list)
    stopped_by: str | None = None  # the StopReason value that ended the run for good
    plan: dict | None = None  # a planned run: {"epochs", "epoch_seconds", "after_seconds", "budget_minutes", "cap"}


@dataclass(frozen=True)
class TrainResult:
    status: str  # a StopReason value: finished | early-stopped | budget | time-limit | interrupted | stopped
    step: int
    epoch: int
    best_score: float | None
    best_epoch: int
    elapsed: float
    checkpoint: Path | None
    history: list
    epochs: int = 0  # the epochs the schedule spans (given or planned)
    patience: int = 0
    budget_minutes: float | None = None
    plan: dict | None = None

    def summary(self) -> dict:
        """What stopped the run and how far it went, as config.json's ``"run"`` records it."""
        partial = bool(self.history) and bool(self.history[-1].get("partial_epoch"))
        return {"stopped_by": self.status, "epochs_run": self.epoch, "partial_epoch": partial,
                "epochs": self.epochs, "patience": self.patience, "budget_minutes": self.budget_minutes,
                "plan": self.plan, "steps": self.step, "minutes": round(self.elapsed / 60, 3),
                "best_epoch": self.best_epoch, "best_dev": self.best_score}


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only: not on biases, norms or embeddings."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.dim() < 2 or "embed" in name or "norm" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr, betas=config.betas, foreach=False)


def epoch_batches(lengths: list[int], config: TrainConfig, epoch: int) -> list[list[int]]:
    """The batches of one epoch: a function of (seed, epoch) only."""
    return bucket_batches(lengths, max_tokens=config.batch_tokens, shuffle=True, seed=config.seed * 100_003 + epoch)


# -- one process or several ------------------------------------------------------------

def init_distributed() -> tuple[int, int, bool]:
    """(rank, world size, whether this call started the process group).

    With WORLD_SIZE > 1 in the environment (set by torchrun) and no process group yet,
    joins one (backend from $ATTNLAB_DIST_BACKEND, else gloo: the models here run on CPU).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    if not dist.is_available():
        raise ValueError(f"WORLD_SIZE={world} but this torch build has no torch.distributed")
    dist.init_process_group(os.environ.get("ATTNLAB_DIST_BACKEND", "gloo"))
    return dist.get_rank(), dist.get_world_size(), True


def is_main_process() -> bool:
    """True unless this is a rank > 0 of a torchrun launch (for printing once)."""
    return int(os.environ.get("RANK", "0")) == 0


def rank_share(indices: list[int], rank: int, world: int) -> list[int]:
    """This process's part of a global batch: every ``world``-th example from ``rank``
    (the batch is nearly sorted by length, so the shares cost about the same)."""
    return indices[rank::world]


class StopReason(enum.Enum):
    """Why a run ends; the value is ``TrainResult.status``."""

    FINISHED = "finished"  # every epoch of the schedule (given or planned) ran
    EARLY_STOPPED = "early-stopped"  # converged: no dev improvement for ``patience`` epochs
    BUDGET = "budget"  # the run's time budget (``budget_minutes``) ran out
    TIME_LIMIT = "time-limit"  # this call's ``max_minutes``: --resume continues
    INTERRUPTED = "interrupted"
    STOPPED = "stopped"

    @property
    def completes_training(self) -> bool:
        """True when there is nothing left to train (a resume returns at once)."""
        return self in (StopReason.FINISHED, StopReason.EARLY_STOPPED, StopReason.BUDGET)


@dataclass(frozen=True)
class LocalBatch:
    """This process's part of one global batch.

    weight  factor on its loss, so that the average over processes is the global mean
    tokens  tokens it counts towards the global batch (0 for a stand-in batch)
    """

    batch: Any
    weight: float
    tokens: int


class Communication(Protocol):
    """What the loop asks of the other processes of a run (``SingleProcess``: there are none).

    rank, world  this process's number and the number of processes (0 = the main process)
    """

    rank: int
    world: int

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module that computes the loss (DDP averages the gradients over processes)."""

    def local_batch(self, task: TrainingTask, indices: list[int]) -> LocalBatch:
        """This process's part of the global batch ``indices``."""

    def exchange_step(self, loss: float, local: LocalBatch, stop: StopReason | None):
        """(mean loss, tokens, stop decision) of the global batch; the main process's
        ``stop`` is everyone's."""

    def from_main(self, compute: Callable[[], float]) -> float:
        """``compute()`` on the main process, its value everywhere."""

    def on_main(self, action: Callable[[], Any]) -> None:
        """``action()`` on the main process; the others wait until it is done."""

    def close(self) -> None:
        """Leave the process group if this run joined it."""


class SingleProcess:
    """The communication of a run in one process: every exchange is the identity."""

    rank, world = 0, 1

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def local_batch(self, task: TrainingTask, indices: list[int]) -> LocalBatch:
        batch = task.make_batch(indices)
        return LocalBatch(batch, 1.0, batch.tokens)

    def exchange_step(self, loss: float, local: LocalBatch, stop: StopReason | None):
        return loss, local.tokens, stop

    def from_main(self, compute: Callable[[], float]) -> float:
        return compute()

    def on_main(self, action: Callable[[], Any]) -> None:
        action()

    def close(self) -> None:
        pass


class ProcessGroup:
    """The communication of one of ``world`` processes in a torch.distributed group."""

    def __init__(self, rank: int, world: int, owns_group: bool):
        import torch.distributed as dist

        self.rank, self.world, self._owns_group, self._dist = rank, world, owns_group, dist

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return _ddp(model)

    def local_batch(self, task: TrainingTask, indices: list[int]) -> LocalBatch:
        # a process without a share runs one example with weight 0, so that every
        # process takes part in DDP's gradient exchange
        share = rank_share(indices, self.rank, self.world)
        batch = task.make_batch(share or indices[:1])
        units = batch_units(batch) if share else 0.0
        total = torch.tensor([units])
        self._dist.all_reduce(total)  # (1,) local -> global units
        return LocalBatch(batch, units * self.world / float(total[0]), batch.tokens if share else 0)

    def exchange_step(self, loss: float, local: LocalBatch, stop: StopReason | None):
        # one all-reduce: global mean loss, tokens of the whole batch, rank 0's stop decision
        code = _STOP_CODES.index(stop) if self.rank == 0 else 0
        stats = torch.tensor([loss * local.weight / self.world, float(local.tokens), float(code)], dtype=torch.float64)
        self._dist.all_reduce(stats)
        return float(stats[0]), int(stats[1]), _STOP_CODES[int(stats[2])]

    def from_main(self, compute: Callable[[], float]) -> float:
        box = torch.tensor([compute() if self.rank == 0 else 0.0], dtype=torch.float64)
        self._dist.broadcast(box, 0)
        return float(box[0])

    def on_main(self, action: Callable[[], Any]) -> None:
        if self.rank == 0:
            action()
        self._dist.barrier()

    def close(self) -> None:
        if self._owns_group:
            self._dist.destroy_process_group()


_STOP_CODES = (None, *StopReason)  # a stop decision as a number, for all-reduce


def join_processes() -> Communication:
    """The communication for this process: a ``ProcessGroup`` under torchrun, else ``SingleProcess``."""
    rank, world, started = init_distributed()
    return ProcessGroup(rank, world, started) if world > 1 else SingleProcess()


def _ddp(model: torch.nn.Module) -> torch.nn.Module:
    """DistributedDataParallel that still answers the model's attributes (``.config``...)."""
    import warnings

    from torch.nn.parallel import DistributedDataParallel

    class Wrapped(DistributedDataParallel):
        def __getattr__(self, name):
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(self.module, name)

    # no buffer changes during training (no batch norm): nothing to broadcast per step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # newer torch renames broadcast_buffers
        return Wrapped(model, broadcast_buffers=False)


# -- checkpoints -----------------------------------------------------------------------

def latest_checkpoint(out_dir: str | Path) -> Path:
    """The newest complete checkpoint directory under ``out_dir``."""
    root = Path(out_dir) / CHECKPOINTS
    pointer = read_json(root / "latest.json", "checkpoint pointer")
    name = pointer.get("dir")
    if not isinstance(name, str) or "/" in name or not (root / name).is_dir():
        raise CheckpointError(f"{root / 'latest.json'}: points at a missing checkpoint {name!r}")
    return root / name


def save_checkpoint(out_dir: Path, task, model, optimizer, config: TrainConfig, state: TrainState, extra: dict) -> Path:
    """Write ``checkpoints/step-N/`` completely, then point ``latest.json`` at it and
    remove the older checkpoints. A failed write (a full disk) removes the new directory
    again; ``latest.json`` still names the previous checkpoint."""
    root = out_dir / CHECKPOINTS
    directory = root / f"step-{state.step:07d}"
    if directory.exists():
        shutil.rmtree(directory)
    try:
        _write_checkpoint(directory, task, model, optimizer, config, state, extra)
        atomic_write_bytes(root / "latest.json", json_bytes({"dir": directory.name, "step": state.step}))
    except Exception:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    for old in root.glob("step-*"):
        if old.is_dir() and old.name != directory.name:
            shutil.rmtree(old, ignore_errors=True)
    return directory


def _write_checkpoint(directory: Path, task, model, optimizer, config: TrainConfig, state: TrainState, extra: dict) -> None:
    """A model directory plus the optimizer and RNG state and state.json."""
    task.save_model(directory, model, extra)
    tensors, meta = optimizer_to_files(optimizer)
    tensors["rng.torch"] = torch.get_rng_state()
    opt_bytes = tensors_bytes(tensors)
    atomic_write_bytes(directory / OPTIMIZER_FILE, opt_bytes)
    record = {
        "format": STATE_FORMAT,
        "train_config": config.to_json(),
        "state": asdict(state),
        "optimizer": meta,
        "files": {OPTIMIZER_FILE: sha256(opt_bytes), "config.json": sha256(read_bytes(directory / "config.json", "model config"))},
    }
    atomic_write_bytes(directory / STATE_FILE, json_bytes(record))


def read_checkpoint_state(directory: str | Path) -> dict:
    """The state.json of a checkpoint, with its train config (checked)."""
    directory = Path(directory)
    path = directory / STATE_FILE
    record = read_json(path, "training state")
    if record.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not an attnlab training state (format {record.get('format')!r})")
    expected = file_checksums(record, path).get("config.json")
    if expected and sha256(read_bytes(directory / "config.json", "model config")) != expected:
        raise CheckpointError(f"{directory / 'config.json'}: does not belong to this checkpoint (checksum mismatch)")
    return record


def _restore(directory: Path, optimizer, record: dict) -> TrainState:
    expected = file_checksums(record, directory / STATE_FILE).get(OPTIMIZER_FILE)
    tensors = read_tensors(directory / OPTIMIZER_FILE, "optimizer state", expected)
    if "rng.torch" not in tensors:
        raise CheckpointError(f"{directory / OPTIMIZER_FILE}: no RNG state in the checkpoint")
    try:
        torch.set_rng_state(tensors.pop("rng.torch"))
        optimizer_from_files(optimizer, tensors, record["optimizer"], str(directory / OPTIMIZER_FILE))
        return TrainState(**record["state"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{directory / STATE_FILE}: malformed training state ({exc})") from None


def record_run(out_dir: str | Path, entries: dict) -> None:
    """Add ``entries`` (the final training settings and the run's summary) to the config.json
    of the best model in ``out_dir``, as one commit (``attnlab.checkpoint``)."""
    from .checkpoint import update_model_config

    update_model_config(out_dir, entries)


def remove_stale_files(out_dir: str | Path) -> None:
    """Remove the temporary files an interrupted save left in ``out_dir`` and its checkpoints
    (finishing a model save that was interrupted after it was committed)."""
    out_dir = Path(out_dir)
    root = out_dir / CHECKPOINTS
    for directory in (out_dir, root, *(sorted(root.glob("step-*")) if root.is_dir() else ())):
        remove_stale_temporaries(directory)


# -- the loop --------------------------------------------------------------------------

class _StopFlag:
    """Ctrl-C sets a flag the loop checks after each step; a second Ctrl-C aborts at once."""

    def __init__(self, log: Callable[[str], None]):
        self.set = False
        self._log = log
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True
        self._log("interrupt: saving a checkpoint after this step (Ctrl-C again to abort without saving)")

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def train(
    model: ModelT,
    task: TrainingTask[ModelT],
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume_from: str | Path | None = None,
    max_minutes: float | None = None,
    stop_after_steps: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    extra: dict | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TrainResult:
    """Train ``model`` on ``task``; see the module docstring for the files written.

    ``max_minutes`` limits this call (the dev score is taken when the limit stops a run);
    ``config.budget_minutes`` limits the whole run, over all calls, and ends it for good;
    ``stop_after_steps`` stops (with a checkpoint, as Ctrl-C would) once the global step
    reaches that number. ``extra`` is stored in every config.json written; a run that ends
    for good also records ``TrainResult.summary()`` as ``"run"`` in the model's config.json.
    ``clock`` (seconds) times the run, its plan and its limits.
    """
    comm = join_processes()
    try:
        run = _Run(model, task, config, Path(out_dir), comm, max_minutes=max_minutes,
                   stop_after_steps=stop_after_steps, progress=progress, log=log, extra=extra, clock=clock)
        return run.resume(Path(resume_from)) if resume_from is not None else run.start()
    finally:
        comm.close()


class _EpochMeter:
    """Mean loss and tokens per second of the steps taken in this epoch (this call)."""

    def __init__(self):
        self.loss_sum, self.steps, self.tokens, self.started = 0.0, 0, 0, time.monotonic()

    def add(self, loss: float, tokens: int) -> None:
        self.loss_sum += loss
        self.steps += 1
        self.tokens += tokens

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.steps, 1)

    @property
    def speed(self) -> float:
        return self.tokens / max(time.monotonic() - self.started, 1e-9)


class _Run:
    """One call of ``train``: the state of the run and its steps, epoch ends and checkpoints."""

    def __init__(self, model, task: TrainingTask, config: TrainConfig, out_dir: Path, comm: Communication, *,
                 max_minutes, stop_after_steps, progress, log, extra, clock=time.monotonic):
        from tqdm import tqdm

        self.model, self.task, self.config, self.out_dir, self.comm = model, task, config, out_dir, comm
        self.max_minutes, self.stop_after_steps = max_minutes, stop_after_steps
        main = comm.rank == 0
        self.progress = progress and main
        self.log = (log or (lambda msg: tqdm.write(msg, file=sys.stderr))) if main else (lambda msg: None)
        self.extra = {"train": config.to_json(), **(extra or {})}
        self.optimizer = make_optimizer(model, config)
        self.lengths = task.lengths()
        if not self.lengths:
            raise ValueError("no training examples")
        self.decay_from = sum(len(epoch_batches(self.lengths, config, e)) for e in range(PLAN_AFTER))
        self.total_steps = len(epoch_batches(self.lengths, config, 0)) * config.epochs
        self.state = TrainState()
        self.checkpoint: Path | None = None
        self.clock = clock
        self.started = clock()
        self.elapsed_before = 0.0
        self.stop_flag = _StopFlag(self.log)

    # -- entry points

    def start(self) -> TrainResult:
        torch.manual_seed(self.config.seed + self.comm.rank)
        self.comm.on_main(lambda: remove_stale_files(self.out_dir))
        return self.loop()

    def resume(self, directory: Path) -> TrainResult:
        self.state = _restore(directory, self.optimizer, read_checkpoint_state(directory))
        self.log(f"resuming from {directory} (epoch {self.state.epoch + 1}, step {self.state.step})")
        if self.comm.rank:  # the checkpoint holds rank 0's random state; the others draw their own
            torch.manual_seed(self.config.seed + self.comm.rank + 1_000_003 * self.state.step)
        if self.state.done:
            return self.result(StopReason(self.state.stopped_by or "finished"), directory)
        self.comm.on_main(lambda: remove_stale_files(self.out_dir))
        self.elapsed_before = self.state.elapsed
        return self.loop()

    def result(self, reason: StopReason, checkpoint: Path | None) -> TrainResult:
        s, c = self.state, self.config
        return TrainResult(reason.value, s.step, s.epoch, s.best_score, s.best_epoch, s.elapsed, checkpoint, s.history,
                           epochs=c.epochs, patience=c.stop_patience, budget_minutes=c.budget_minutes, plan=s.plan)

    # -- the loop

    def loop(self) -> TrainResult:
        self.started = self.clock()
        net = self.comm.wrap(self.model)
        self.model.train()
        reason = StopReason.FINISHED
        with self.stop_flag:
            while self.state.epoch < self.config.epochs:
                batches = epoch_batches(self.lengths, self.config, self.state.epoch)
                meter = _EpochMeter()
                stop = self.train_epoch(net, batches, meter)
                stop = self.end_epoch(meter, stop, epoch_done=self.state.batch_in_epoch >= len(batches))
                self.state.done = stop is not None and stop.completes_training
                if stop is not None and self.state.done:
                    self.state.stopped_by = stop.value
                self.checkpoint = self.save_checkpoint()
                if stop is not None:
                    reason = stop
                    break
        result = self.result(reason, self.checkpoint)
        if self.state.done and self.state.best_score is not None:
            self.comm.on_main(lambda: record_run(self.out_dir, {"train": self.config.to_json(), "run": result.summary()}))
        return result

    def train_epoch(self, net, batches: list[list[int]], meter: _EpochMeter) -> StopReason | None:
        """The remaining steps of this epoch, up to a stop; checkpoints every ``checkpoint_every`` steps."""
        from tqdm import tqdm

        state, every = self.state, self.config.checkpoint_every
        bar = tqdm(total=len(batches), initial=state.batch_in_epoch, desc=f"epoch {state.epoch + 1}/{self.config.epochs}",
                   unit="batch", disable=not self.progress, leave=False, file=sys.stderr, dynamic_ncols=True)
        with bar:
            while state.batch_in_epoch < len(batches):
                stop = self.step(net, batches[state.batch_in_epoch], meter)
                bar.update(1)
                bar.set_postfix_str(f"loss {meter.loss:.4f}, {meter.speed:,.0f} tok/s" + (
                    f", dev {100 * state.best_score:.2f}%" if state.best_score is not None else ""), refresh=False)
                if stop is not None:
                    return stop
                if every and state.step % every == 0 and state.batch_in_epoch < len(batches):
                    self.checkpoint = self.save_checkpoint()
        return None

    def step(self, net, indices: list[int], meter: _EpochMeter) -> StopReason | None:
        """One optimizer step on the global batch ``indices``; the stop decision after it."""
        local = self.comm.local_batch(self.task, indices)
        lr = learning_rate(self.config, self.state.step, self.total_steps, decay_from=self.decay_from)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        device_type = next(self.model.parameters()).device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"):
            loss = self.task.loss(net, local.batch)
        self.optimizer.zero_grad(set_to_none=True)
        (loss * local.weight).backward()
        # the norm of the gradient (averaged over processes: every process decides alike), clipped
        norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm or math.inf))
        if not math.isfinite(norm):
            raise self.diverged(f"at step {self.state.step + 1}",
                                f"the loss is {float(loss.detach()):g}, the norm of its gradient {norm:g}")
        self.optimizer.step()
        self.state.step += 1
        self.state.batch_in_epoch += 1
        loss_value, tokens, stop = self.comm.exchange_step(float(loss.detach()), local, self.should_stop())
        meter.add(loss_value, tokens)
        return stop

    def diverged(self, when: str, what: str) -> TrainingDiverged:
        """The error that stops a run whose numbers stopped being finite (``what``, ``when``)."""
        s = self.state
        kept = (f"{self.out_dir} keeps the best model so far (epoch {s.best_epoch}, step {s.best_step})"
                if s.best_score is not None else "no model was saved")
        return TrainingDiverged(f"training diverged {when}: {what}; {kept}. A lower learning rate or a longer "
                                "warm-up may help")

    def check_weights(self) -> None:
        """``TrainingDiverged`` when a weight is NaN or infinite (before anything is saved)."""
        bad = [name for name, p in self.model.named_parameters() if not bool(torch.isfinite(p).all())]
        if bad:
            raise self.diverged(f"after step {self.state.step}",
                                f"{len(bad)} weight tensors hold NaN or infinite values ({bad[0]} ...)")

    def should_stop(self) -> StopReason | None:
        """This process's reason to stop after the current step (rank 0's decides for all)."""
        if self.stop_flag.set:
            return StopReason.INTERRUPTED
        if self.stop_after_steps is not None and self.state.step >= self.stop_after_steps:
            return StopReason.STOPPED
        if self.config.budget_minutes is not None and self.elapsed() >= 60 * self.config.budget_minutes:
            return StopReason.BUDGET
        if self.max_minutes is not None and self.clock() - self.started >= 60 * self.max_minutes:
            return StopReason.TIME_LIMIT
        return None

    def end_epoch(self, meter: _EpochMeter, stop: StopReason | None, epoch_done: bool) -> StopReason | None:
        """After a whole epoch (or a time limit in one): dev score, history, patience, the
        next epoch; returns the reason to stop, if any."""
        state = self.state
        if epoch_done or stop in (StopReason.TIME_LIMIT, StopReason.BUDGET):
            best = self.evaluate(meter, partial=not epoch_done)
            if epoch_done:
                state.epoch += 1
                state.batch_in_epoch = 0
                state.bad_evals = 0 if best else state.bad_evals + 1
                if self.config.plan_epochs and state.epoch == PLAN_AFTER:
                    self.plan()
                patience = self.config.stop_patience
                if stop is None and patience and state.bad_evals >= patience:
                    stop = StopReason.EARLY_STOPPED
        if stop is None and state.epoch >= self.config.epochs:
            stop = StopReason.FINISHED
        return stop

    def plan(self) -> None:
        """After ``PLAN_AFTER`` epochs: the epochs that fit the budget, from now on the run's
        ``epochs`` (recorded in every checkpoint and config.json written after this)."""
        config, elapsed = self.config, self.elapsed()
        assert config.budget_minutes is not None
        ends = [h["elapsed"] for h in self.state.history if not h["partial_epoch"]]
        # the faster timed epoch: one slowed by start-up costs or a passing load does not shorten
        # the plan (a run whose later epochs are slower meets the budget late in its schedule,
        # where the learning rate is already low)
        last = min(b - a for a, b in zip([0.0, *ends], ends)) if ends else elapsed / max(self.state.epoch, 1)
        epochs = plan_epochs(60 * config.budget_minutes, elapsed, last, done=self.state.epoch, cap=config.epochs)
        self.config = replace(config, epochs=epochs, plan_epochs=False)
        self.extra["train"] = self.config.to_json()
        self.total_steps = len(epoch_batches(self.lengths, config, 0)) * epochs
        self.state.plan = {"epochs": epochs, "epoch_seconds": round(last, 3), "after_seconds": round(elapsed, 3),
                           "budget_minutes": config.budget_minutes, "cap": config.epochs}
        self.log(f"planned {epochs} epochs (patience {self.config.stop_patience}): {self.state.epoch} took "
                 f"{elapsed:.1f} s, the faster {last:.1f} s, of a {config.budget_minutes:g}-minute budget (at most "
                 f"{config.epochs}); --epochs {epochs} --seed {config.seed} repeats this run")

    def evaluate(self, meter: _EpochMeter, partial: bool) -> bool:
        """Score on dev (on the main process), keep the model if it is the best so far, log
        the epoch; returns whether it was the best."""
        state = self.state
        self.check_weights()

        def dev_score() -> float:
            self.model.eval()
            score = self.task.evaluate(self.model)
            self.model.train()
            return score

        score = self.comm.from_main(dev_score)
        best = state.best_score is None or score > state.best_score
        if best:
            state.best_score, state.best_step, state.best_epoch = score, state.step, state.epoch + 1
            state.elapsed = self.elapsed()
            record = {"dev_score": score, "epoch": state.epoch + 1, "step": state.step, "train_seconds": state.elapsed}
            self.comm.on_main(lambda: self.task.save_model(self.out_dir, self.model, {**self.extra, "best": record}))
        entry = {"epoch": state.epoch + 1, "step": state.step, "loss": meter.loss, "dev": score,
                 "tokens_per_s": meter.speed, "elapsed": self.elapsed(), "partial_epoch": partial}
        state.history.append(entry)
        self.log(f"epoch {state.epoch + 1}{' (partial)' if partial else ''}: loss {entry['loss']:.4f}, "
                 f"{entry['tokens_per_s']:,.0f} tok/s, dev {100 * score:.2f}%{' (best)' if best else ''}, "
                 f"{entry['elapsed'] / 60:.1f} min")
        return best

    def elapsed(self) -> float:
        """Seconds of training over all runs so far."""
        return self.elapsed_before + self.clock() - self.started

    def save_checkpoint(self) -> Path:
        self.check_weights()
        self.state.elapsed = self.elapsed()
        self.comm.on_main(lambda: save_checkpoint(self.out_dir, self.task, self.model, self.optimizer, self.config,
                                                  self.state, self.extra))
        return self.out_dir / CHECKPOINTS / f"step-{self.state.step:07d}"


def stop_description(result: TrainResult) -> str:
    """Which rule ended the run, in words."""
    reason = StopReason(result.status)
    if reason is StopReason.FINISHED:
        if not result.epochs:
            return "finished"
        if result.plan:
            return f"finished the {result.epochs} planned epochs (they fit the {result.budget_minutes:g}-minute budget)"
        return f"finished the {result.epochs} epochs"
    if reason is StopReason.EARLY_STOPPED:
        return f"converged (no dev improvement for {result.patience} epoch{'s' if result.patience != 1 else ''})"
    if reason is StopReason.BUDGET:
        return f"stopped by the {result.budget_minutes:g}-minute budget"
    return {StopReason.TIME_LIMIT: "stopped at this call's time limit", StopReason.INTERRUPTED: "interrupted",
            StopReason.STOPPED: "stopped"}[reason]


def describe_result(result: TrainResult, out_dir: str | Path) -> str:
    """What a run did, in one line (two when it can be continued with --resume)."""
    reason = StopReason(result.status)
    best = f"best dev {100 * result.best_score:.2f}% (epoch {result.best_epoch})" if result.best_score is not None else "no dev evaluation yet"
    of = f" of {result.epochs}" + (" planned" if result.plan else "") if result.epochs and reason is not StopReason.FINISHED else ""
    msg = (f"{stop_description(result)}: {result.epoch}{of} epochs, {result.step} steps, {result.elapsed / 60:.1f} min; "
           f"{best}; model in {out_dir}")
    if not reason.completes_training:
        msg += f"\ncontinue with: attnlab train --resume --out {out_dir}"
    return msg


def save_json(path: str | Path, obj) -> None:
    from .output import write_output

    write_output(path, json.dumps(obj, indent=2) + "\n")
