"""Running any task from the options of `attnlab train` and `attnlab eval`.

    run = prepare_training(args)    # data, then a new model or the --resume checkpoint's
    print(run.start_line())
    result = run.train(max_minutes=None, progress=True)    # attnlab.train.train into --out

    task, result = evaluate(args)   # the task of the model in --model scores the gold file
    print(task.report_text(result))

Data: --train/--dev, or --treebank DIR, or the directory in $ATTNLAB_DATA. A new run needs
an --out that holds no model yet, and sizes that give a model every loader reads back (the
task's ``build`` checks them before any training: ``attnlab.tasks.base.new_model``); --resume
continues from the latest checkpoint in --out, with the training settings and (unless the
command line names others) the data paths it recorded, on the task its model belongs to.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import UserError
from . import DEFAULT_TASK, TASKS, model_task, task_for_model
from .base import Task


def use_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` when given (else torch's choice)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


# -- attnlab train --------------------------------------------------------------------------

@dataclass
class TrainingRun:
    """A model ready to train on its task and data, new or from a checkpoint (``resume_from``)."""

    task: Task
    loaded: Any  # the task's Loaded* object: .model, vocabularies, .record
    training: Any  # what attnlab.train.train drives (TaggingTask ...)
    config: Any  # attnlab.train.TrainConfig
    out: Path
    train_path: Path
    dev_path: Path
    train_sentences: Sequence
    resume_from: Path | None

    def start_line(self) -> str:
        """What is trained, how large, on which data, with how many threads."""
        import torch

        what, examples = self.task.describe(self.loaded, self.training, self.train_sentences)
        n_params = sum(p.numel() for p in self.loaded.model.parameters())
        return (f"training {what} ({n_params / 1e6:.2f}M parameters) on {self.train_path} ({examples}), "
                f"dev {self.dev_path}, {self.config.epochs} epochs (patience {self.config.patience}), "
                f"{torch.get_num_threads()} threads")

    def train(self, *, max_minutes: float | None = None, progress: bool = True):
        """``attnlab.train.train`` into ``out``, with the data paths recorded in config.json."""
        from ..train import train

        data = {"train": str(Path(self.train_path).resolve()), "dev": str(Path(self.dev_path).resolve())}
        return train(self.loaded.model, self.training, self.config, self.out, resume_from=self.resume_from,
                     max_minutes=max_minutes, progress=progress, extra={"data": data})


def prepare_training(args: argparse.Namespace) -> TrainingRun:
    """The run `attnlab train` asks for: ``args.resume`` continues the one in ``args.out``."""
    use_threads(args.threads)
    return _resumed_run(args) if args.resume else _new_run(args)


def _new_run(args: argparse.Namespace) -> TrainingRun:
    import torch

    from ..train import TrainConfig

    out: Path = args.out
    if (out / "config.json").exists() or (out / "checkpoints").exists():
        raise UserError(f"{out} already holds a model; use --resume to continue it or choose another --out")
    task = TASKS[args.task]
    train_path, dev_path = data_paths(args)
    train, dev = _read_data(task, train_path, dev_path)
    epochs = args.epochs if args.epochs is not None else task.default_epochs(train)
    config = TrainConfig(
        epochs=epochs, batch_tokens=args.batch_tokens, lr=args.lr, weight_decay=args.weight_decay,
        warmup=args.warmup, schedule=args.schedule, seed=args.seed, checkpoint_every=args.checkpoint_every,
        patience=args.patience if args.patience is not None else max(6, epochs // 4),
    )
    torch.manual_seed(args.seed)
    loaded = task.build(args, train)
    training = task.training_task(loaded, args, train, dev)
    return TrainingRun(task, loaded, training, config, out, train_path, dev_path, train, None)


def _resumed_run(args: argparse.Namespace) -> TrainingRun:
    from ..train import TrainConfig, latest_checkpoint, read_checkpoint_state

    checkpoint = latest_checkpoint(args.out)
    config = TrainConfig.from_json(read_checkpoint_state(checkpoint)["train_config"])
    task = _task_of_checkpoint(checkpoint, args.task)
    loaded = task.load(checkpoint)
    train_path, dev_path = _resume_data_paths(args, checkpoint, loaded.record)
    train, dev = _read_data(task, train_path, dev_path)
    training = task.training_task(loaded, args, train, dev)
    return TrainingRun(task, loaded, training, config, args.out, train_path, dev_path, train, checkpoint)


def _task_of_checkpoint(checkpoint: Path, asked: str) -> Task:
    """The task of the model in ``checkpoint``; --task, when not the default, must agree."""
    task = task_for_model(checkpoint)
    if asked != DEFAULT_TASK and (task is None or task.name != asked):
        raise UserError(f"{checkpoint}: holds a {model_task(checkpoint)} model, not --task {asked}")
    return task or TASKS[DEFAULT_TASK]  # an unknown model: the tagger's loader says what is wrong


def data_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """(train, dev) from --train/--dev, or --treebank DIR, or $ATTNLAB_DATA."""
    if args.train or args.dev:
        if not (args.train and args.dev):
            raise UserError("give both --train and --dev (or --treebank DIR)")
        return args.train, args.dev
    from ..data.treebank import find_split, resolve_treebank

    directory = resolve_treebank(args.treebank)
    return find_split(directory, "train"), find_split(directory, "dev")


def _resume_data_paths(args: argparse.Namespace, checkpoint: Path, record: dict) -> tuple[Path, Path]:
    """The data of a resumed run: the command line's when it names any, else the paths the
    checkpoint's ``record`` (its config.json) holds."""
    if args.train or args.dev or args.treebank:
        return data_paths(args)
    data = record.get("data") or {}
    if data.get("train") and data.get("dev"):
        return Path(data["train"]), Path(data["dev"])
    raise UserError(f"{checkpoint}: no data paths recorded; give --train/--dev or --treebank")


def _read_data(task: Task, train_path: Path, dev_path: Path) -> tuple[list, list]:
    """The training and dev sentences, checked by the task."""
    from ..data.conllu import read_conllu

    train, dev = read_conllu(train_path), read_conllu(dev_path)
    if not train:
        raise UserError(f"{train_path}: no sentences")
    task.check(train)
    task.check(dev)
    return train, dev


# -- attnlab eval ---------------------------------------------------------------------------

def evaluate(args: argparse.Namespace) -> tuple[Task, dict]:
    """Score the model directory ``args.model`` on the gold file ``args.file`` (``-``: stdin),
    checked by the model's task: (the task, the result)."""
    from .files import read_gold

    use_threads(args.threads)
    task = task_for_model(args.model) or TASKS[DEFAULT_TASK]  # an unknown model: the tagger's loader says why
    gold, source = read_gold(args.file)
    task.check(gold)
    return task, task.evaluate(args, gold, source)
