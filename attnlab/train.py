"""One training loop for every task: bucketed batches, AdamW + warm-up, early stopping,
atomic checkpoints, exact resume, clean Ctrl-C.

A task is any object with

    lengths() -> list[int]                       sizes of the training examples (for bucketing)
    make_batch(indices) -> batch                 a batch with a ``tokens`` attribute (and
                                                 optionally ``units``: what its loss is a
                                                 mean over; ``tokens`` when absent)
    loss(model, batch) -> scalar tensor          the training loss of one batch
    evaluate(model) -> float                     the dev score, higher is better
    save_model(directory, model, extra) -> None  write a model directory (attnlab.checkpoint)

``train(model, task, TrainConfig(...), out_dir)`` writes into ``out_dir``:

    model.safetensors, config.json, vocab.json   the best model on dev so far
    checkpoints/latest.json                      names the newest complete checkpoint
    checkpoints/step-0000123/                    a model directory plus
        optimizer.safetensors                    AdamW moments and the torch RNG state
        state.json                               step, epoch, position in the epoch, best
                                                 score, patience, time, history

A checkpoint directory is complete before ``latest.json`` points at it, so a crash at
any moment leaves the previous checkpoint usable. ``train(..., resume_from=dir)``
continues from a checkpoint exactly: the batches of an epoch depend only on the seed and
the epoch number, the learning rate only on the step, and the RNG state is restored, so
an interrupted and resumed run ends with the same weights as an uninterrupted one.

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
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import torch

from .checkpoint import (
    CheckpointError, atomic_write_bytes, json_bytes, optimizer_from_files, optimizer_to_files,
    read_json, read_tensors, sha256, tensors_bytes,
)
from .data.batching import bucket_batches

STATE_FORMAT = "attnlab-train-state/1"
CHECKPOINTS = "checkpoints"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
SCHEDULES = ("linear", "cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    batch_tokens      tokens per batch (sentences of similar length are batched together)
    warmup            steps of linear warm-up from 0 to ``lr``
    schedule          after warm-up: linear or cosine decay to 0 at the last step, or constant
    patience          stop after this many dev evaluations without improvement (0 = never)
    checkpoint_every  also checkpoint every this many steps (0 = only at the end of epochs)
    """

    epochs: int = 20
    batch_tokens: int = 3000
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup: int = 200
    schedule: str = "linear"
    clip_norm: float = 1.0
    patience: int = 5
    seed: int = 0
    checkpoint_every: int = 200

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_tokens < 1:
            raise ValueError(f"batch_tokens must be >= 1, got {self.batch_tokens}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r} is unknown; choose one of {', '.join(SCHEDULES)}")
        if self.warmup < 0 or self.patience < 0 or self.checkpoint_every < 0:
            raise ValueError("warmup, patience and checkpoint_every must be >= 0")

    def to_json(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_json(cls, obj: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate for optimizer step ``step`` (0-based)."""
    if config.warmup and step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    if config.schedule == "constant":
        return config.lr
    span = max(total_steps - config.warmup, 1)
    progress = min(max(step - config.warmup, 0) / span, 1.0)
    if config.schedule == "linear":
        return config.lr * (1.0 - progress)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


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


@dataclass(frozen=True)
class TrainResult:
    status: str  # finished | early-stopped | time-limit | interrupted | stopped
    step: int
    epoch: int
    best_score: float | None
    best_epoch: int
    elapsed: float
    checkpoint: Path | None
    history: list


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


# -- several processes -----------------------------------------------------------------

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


def _ddp(model: torch.nn.Module) -> torch.nn.Module:
    """DistributedDataParallel that still answers the model's attributes (``.config``...)."""
    from torch.nn.parallel import DistributedDataParallel

    class Wrapped(DistributedDataParallel):
        def __getattr__(self, name):
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(self.module, name)

    # no buffer changes during training (no batch norm): nothing to broadcast per step
    import warnings

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
    root = out_dir / CHECKPOINTS
    directory = root / f"step-{state.step:07d}"
    if directory.exists():
        shutil.rmtree(directory)
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
        "files": {OPTIMIZER_FILE: sha256(opt_bytes), "config.json": sha256((directory / "config.json").read_bytes())},
    }
    atomic_write_bytes(directory / STATE_FILE, json_bytes(record))
    atomic_write_bytes(root / "latest.json", json_bytes({"dir": directory.name, "step": state.step}))
    for old in root.glob("step-*"):
        if old.is_dir() and old.name != directory.name:
            shutil.rmtree(old, ignore_errors=True)
    return directory


def read_checkpoint_state(directory: str | Path) -> dict:
    """The state.json of a checkpoint, with its train config (checked)."""
    directory = Path(directory)
    record = read_json(directory / STATE_FILE, "training state")
    if record.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{directory / STATE_FILE}: not an attnlab training state (format {record.get('format')!r})")
    expected = (record.get("files") or {}).get("config.json")
    if expected and sha256((directory / "config.json").read_bytes()) != expected:
        raise CheckpointError(f"{directory / 'config.json'}: does not belong to this checkpoint (checksum mismatch)")
    return record


def _restore(directory: Path, optimizer, record: dict) -> TrainState:
    files = record.get("files") or {}
    tensors = read_tensors(directory / OPTIMIZER_FILE, "optimizer state", files.get(OPTIMIZER_FILE))
    if "rng.torch" not in tensors:
        raise CheckpointError(f"{directory / OPTIMIZER_FILE}: no RNG state in the checkpoint")
    torch.set_rng_state(tensors.pop("rng.torch"))
    optimizer_from_files(optimizer, tensors, record["optimizer"], str(directory / OPTIMIZER_FILE))
    try:
        return TrainState(**record["state"])
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{directory / STATE_FILE}: malformed training state ({exc})") from None


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
    model: torch.nn.Module,
    task,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume_from: str | Path | None = None,
    max_minutes: float | None = None,
    stop_after_steps: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    extra: dict | None = None,
) -> TrainResult:
    """Train ``model`` on ``task``; see the module docstring for the files written.

    ``max_minutes`` limits this call (the dev score is taken when the limit stops a run);
    ``stop_after_steps`` stops (with a checkpoint, as Ctrl-C would) once the global step
    reaches that number. ``extra`` is stored in every config.json written.
    """
    rank, world, started_group = init_distributed()
    try:
        return _train(model, task, config, out_dir, rank, world, resume_from=resume_from, max_minutes=max_minutes,
                      stop_after_steps=stop_after_steps, progress=progress, log=log, extra=extra)
    finally:
        if started_group:
            torch.distributed.destroy_process_group()


STOP_CODES = (None, "interrupted", "stopped", "time-limit")


def _train(model, task, config, out_dir, rank, world, *, resume_from, max_minutes, stop_after_steps, progress, log, extra):
    from tqdm import tqdm

    distributed = world > 1
    if distributed:
        import torch.distributed as dist
    out_dir = Path(out_dir)
    log = log or (lambda msg: tqdm.write(msg, file=sys.stderr))
    if rank != 0:
        log, progress = (lambda msg: None), False
    extra = {"train": config.to_json(), **(extra or {})}
    optimizer = make_optimizer(model, config)
    lengths = task.lengths()
    if not lengths:
        raise ValueError("no training examples")
    steps_per_epoch = len(epoch_batches(lengths, config, 0))
    total_steps = steps_per_epoch * config.epochs

    if resume_from is not None:
        resume_from = Path(resume_from)
        state = _restore(resume_from, optimizer, read_checkpoint_state(resume_from))
        log(f"resuming from {resume_from} (epoch {state.epoch + 1}, step {state.step})")
        if rank:  # the checkpoint holds rank 0's random state; the others draw their own
            torch.manual_seed(config.seed + rank + 1_000_003 * state.step)
    else:
        state = TrainState()
        torch.manual_seed(config.seed + rank)
    if state.done:
        return TrainResult("finished", state.step, state.epoch, state.best_score, state.best_epoch, state.elapsed, resume_from, state.history)

    started = time.monotonic()
    elapsed_before = state.elapsed
    status = "finished"
    checkpoint: Path | None = None

    def now_elapsed() -> float:
        return elapsed_before + time.monotonic() - started

    def evaluate(tag: str) -> float:
        score = 0.0
        if rank == 0:
            model.eval()
            score = task.evaluate(model)
            model.train()
        if distributed:
            box = torch.tensor([score], dtype=torch.float64)
            dist.broadcast(box, 0)
            score = float(box[0])
        improved = state.best_score is None or score > state.best_score
        if improved:
            state.best_score, state.best_step, state.best_epoch = score, state.step, state.epoch + 1
            state.elapsed = now_elapsed()
            if rank == 0:
                task.save_model(out_dir, model, {**extra, "best": {"dev_score": score, "epoch": state.epoch + 1, "step": state.step, "train_seconds": state.elapsed}})
            if distributed:
                dist.barrier()
        return score

    def checkpoint_now() -> Path:
        state.elapsed = now_elapsed()
        path = out_dir / CHECKPOINTS / f"step-{state.step:07d}"
        if rank == 0:
            path = save_checkpoint(out_dir, task, model, optimizer, config, state, extra)
        if distributed:
            dist.barrier()
        return path

    net = _ddp(model) if distributed else model

    model.train()
    with _StopFlag(log) as stop_flag:
        while state.epoch < config.epochs:
            batches = epoch_batches(lengths, config, state.epoch)
            bar = tqdm(total=len(batches), initial=state.batch_in_epoch, desc=f"epoch {state.epoch + 1}/{config.epochs}",
                       unit="batch", disable=not progress, leave=False, file=sys.stderr, dynamic_ncols=True)
            loss_sum, loss_n, tokens, t_epoch = 0.0, 0, 0, time.monotonic()
            stop_reason = None
            try:
                while state.batch_in_epoch < len(batches):
                    indices = batches[state.batch_in_epoch]
                    weight = 1.0
                    if distributed:
                        # a process without a share runs one example with weight 0, so that
                        # every process takes part in DDP's gradient exchange
                        share = rank_share(indices, rank, world)
                        batch = task.make_batch(share or indices[:1])
                        units = torch.tensor([float(getattr(batch, "units", batch.tokens)) if share else 0.0])
                        dist.all_reduce(units)  # (1,) local -> global units
                        weight = (float(getattr(batch, "units", batch.tokens)) if share else 0.0) * world / float(units[0])
                    else:
                        batch = task.make_batch(indices)
                    lr = learning_rate(config, state.step, total_steps)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    loss = task.loss(net, batch)
                    optimizer.zero_grad(set_to_none=True)
                    (loss * weight if distributed else loss).backward()
                    if config.clip_norm > 0:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
                    optimizer.step()
                    state.step += 1
                    state.batch_in_epoch += 1
                    step_loss, step_tokens = float(loss.detach()), batch.tokens
                    if distributed:
                        # global mean loss, tokens of the whole batch, rank 0's stop decision
                        code = 0
                        if rank == 0:
                            code = 1 if stop_flag.set else 3 if (max_minutes is not None and time.monotonic() - started >= 60 * max_minutes) else 0
                        stats = torch.tensor([step_loss * weight / world, float(step_tokens if share else 0), float(code)],
                                             dtype=torch.float64)
                        dist.all_reduce(stats)
                        step_loss, step_tokens = float(stats[0]), int(stats[1])
                        remote_stop = STOP_CODES[int(stats[2])]
                    loss_sum += step_loss
                    loss_n += 1
                    tokens += step_tokens
                    speed = tokens / max(time.monotonic() - t_epoch, 1e-9)
                    bar.update(1)
                    bar.set_postfix_str(
                        f"loss {loss_sum / loss_n:.4f}, {speed:,.0f} tok/s"
                        + (f", dev {100 * state.best_score:.2f}%" if state.best_score is not None else ""),
                        refresh=False,
                    )
                    if distributed:
                        stop_reason = remote_stop
                        if stop_reason is None and stop_after_steps is not None and state.step >= stop_after_steps:
                            stop_reason = "stopped"
                    elif stop_flag.set:
                        stop_reason = "interrupted"
                    elif stop_after_steps is not None and state.step >= stop_after_steps:
                        stop_reason = "stopped"
                    elif max_minutes is not None and time.monotonic() - started >= 60 * max_minutes:
                        stop_reason = "time-limit"
                    if stop_reason:
                        break
                    if config.checkpoint_every and state.step % config.checkpoint_every == 0 \
                            and state.batch_in_epoch < len(batches):
                        checkpoint = checkpoint_now()
            finally:
                bar.close()

            epoch_done = state.batch_in_epoch >= len(batches)
            if epoch_done or stop_reason == "time-limit":
                dev = evaluate("epoch")
                entry = {
                    "epoch": state.epoch + 1, "step": state.step, "loss": loss_sum / max(loss_n, 1),
                    "dev": dev, "tokens_per_s": tokens / max(time.monotonic() - t_epoch, 1e-9),
                    "elapsed": now_elapsed(), "partial_epoch": not epoch_done,
                }
                state.history.append(entry)
                best = state.best_step == state.step
                log(f"epoch {state.epoch + 1}{' (partial)' if not epoch_done else ''}: loss {entry['loss']:.4f}, "
                    f"{entry['tokens_per_s']:,.0f} tok/s, dev {100 * dev:.2f}%{' (best)' if best else ''}, "
                    f"{entry['elapsed'] / 60:.1f} min")
                if epoch_done:
                    state.epoch += 1
                    state.batch_in_epoch = 0
                    state.bad_evals = 0 if best else state.bad_evals + 1
                    if config.patience and state.bad_evals >= config.patience and stop_reason is None:
                        stop_reason = "early-stopped"
            if state.epoch >= config.epochs and stop_reason is None:
                stop_reason = "finished"
            if stop_reason in ("finished", "early-stopped"):
                state.done = True
            checkpoint = checkpoint_now()
            if stop_reason:
                status = stop_reason
                break
    return TrainResult(status, state.step, state.epoch, state.best_score, state.best_epoch, state.elapsed, checkpoint, state.history)


def describe_result(result: TrainResult, out_dir: str | Path) -> str:
    best = f"best dev {100 * result.best_score:.2f}% (epoch {result.best_epoch})" if result.best_score is not None else "no dev evaluation yet"
    text = {
        "finished": "finished",
        "early-stopped": "stopped early (no dev improvement)",
        "time-limit": "stopped at the time limit",
        "interrupted": "interrupted",
        "stopped": "stopped",
    }[result.status]
    msg = f"{text} after {result.step} steps, {result.elapsed / 60:.1f} min: {best}; model in {out_dir}"
    if result.status in ("interrupted", "stopped", "time-limit"):
        msg += f"\ncontinue with: attnlab train --resume --out {out_dir}"
    return msg


def save_json(path: str | Path, obj) -> None:
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2) + "\n").encode())
