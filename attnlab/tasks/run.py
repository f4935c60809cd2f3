"""Running any task from the options of `attnlab train` and `attnlab eval`.

    run = prepare_training(args)    # data, then a new model or the --resume checkpoint's
    print(run.start_line())
    result = run.train(max_minutes=None, progress=True)    # attnlab.train.train into --out

    task, result = evaluate(args)   # the task of the model in --model scores the gold file
    print(task.report_text(result))

Data: --train/--dev, or --treebank DIR, or the directory in $ATTNLAB_DATA. A new run needs
an --out that is a new or empty directory (never one that holds a model or other data), and
sizes that give a model every loader reads back (the task's ``build`` checks them before any
training: ``attnlab.tasks.base.new_model``); --resume continues from the latest checkpoint in
--out, with the training settings and (unless the command line names others) the data paths it
recorded, on the task its model belongs to.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import UserError
from ..output import check_new_directory, is_model_directory, make_directory
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
        c = self.config
        if c.plan_epochs:
            epochs = (f"epochs planned after the first two to fit a {c.budget_minutes:g}-minute budget (at most {c.epochs}; "
                      f"patience {'a quarter of them, at least 6' if c.patience is None else c.patience})")
        else:
            epochs = f"{c.epochs} epochs (patience {c.stop_patience})"
            if c.budget_minutes is not None:
                epochs += f", at most {c.budget_minutes:g} minutes"
        line = (f"training {what} ({n_params / 1e6:.2f}M parameters) on {self.train_path} ({examples}), "
                f"dev {self.dev_path}, {epochs}, {torch.get_num_threads()} threads")
        if self.segmenter_minutes:
            line += (f"; first a segmenter (sentences, tokens, multiword tokens from the raw text; at most "
                     f"{self.segmenter_minutes:g} minutes) into {self.out / 'segmenter'}")
        elif self.task.name == "tag":
            line += "; no segmenter (--segmenter-minutes 0, or one is there already): "
            line += "raw text goes to the segmenter in --out" if self.has_segmenter() else "the model takes words or CoNLL-U only"
        return line

    segmenter_minutes: float = 0.0  # train a segmenter first (tagging runs), for at most this long

    def has_segmenter(self) -> bool:
        from .segmenter import DIRECTORY

        return (self.out / DIRECTORY / "config.json").is_file()

    def train_segmenter(self, log=None) -> dict:
        """Train the segmenter of a tagging run into ``out/segmenter`` on the raw text of the
        training data (the dev data picks the best state); returns its training record."""
        from ..data.conllu import read_conllu
        from .segmenter import DIRECTORY, SegmenterTraining, save_segmenter, train_segmenter

        dev = read_conllu(self.dev_path)
        training = SegmenterTraining(minutes=self.segmenter_minutes, seed=self.config.seed)
        model, vocab, record = train_segmenter(self.train_sentences, dev, training=training, log=log)
        self.out.mkdir(parents=True, exist_ok=True)
        save_segmenter(self.out / DIRECTORY, model, vocab, record)
        return record

    def train(self, *, max_minutes: float | None = None, progress: bool = True):
        """``attnlab.train.train`` into ``out``, with the data paths recorded in config.json."""
        from ..train import train

        data = {"train": str(Path(self.train_path).resolve()), "dev": str(Path(self.dev_path).resolve())}
        return train(self.loaded.model, self.training, self.config, self.out, resume_from=self.resume_from,
                     max_minutes=max_minutes, progress=progress, extra={"data": data})


DEFAULT_BUDGET_MINUTES = 15.0  # a run that plans its epochs (--task tag without --epochs): its training time
DEFAULT_SEGMENTER_MINUTES = 4.5  # a tagging run's segmenter, at most (the budget: 5 minutes on 2 cores)


def prepare_training(args: argparse.Namespace) -> TrainingRun:
    """The run `attnlab train` asks for: ``args.resume`` continues the one in ``args.out``."""
    use_threads(args.threads)
    run = _resumed_run(args) if args.resume else _new_run(args)
    minutes = getattr(args, "segmenter_minutes", None)
    if minutes is None:
        minutes = 0.0 if args.resume else DEFAULT_SEGMENTER_MINUTES
    if run.task.name == "tag" and not getattr(args, "pretrained", None) and not run.has_segmenter():
        run.segmenter_minutes = minutes
    return run


def _training_precision(args: argparse.Namespace) -> str:
    """``--precision`` resolved for this machine ("auto": bf16 where the CPU has it natively)."""
    from ..precision import resolve

    return resolve(getattr(args, "precision", "fp32") or "fp32")


def _new_run(args: argparse.Namespace) -> TrainingRun:
    import torch

    from ..train import TrainConfig

    out: Path = args.out
    check_train_out(out, [args.train, args.dev, args.treebank, args.pretrained])
    task = TASKS[args.task]
    train_path, dev_path = data_paths(args)
    train, dev = _read_data(task, train_path, dev_path)
    epochs = args.epochs if args.epochs is not None else task.default_epochs(train)
    budget = getattr(args, "budget_minutes", None)
    if epochs is None and budget is None:
        budget = DEFAULT_BUDGET_MINUTES
    config = TrainConfig(
        epochs=task.max_epochs if epochs is None else epochs, batch_tokens=args.batch_tokens, lr=args.lr,
        weight_decay=args.weight_decay, warmup=args.warmup, schedule=args.schedule, seed=args.seed,
        checkpoint_every=args.checkpoint_every, patience=args.patience,  # None: a quarter of the epochs, at least 6
        budget_minutes=budget, plan_epochs=epochs is None, precision=_training_precision(args),
    )
    torch.manual_seed(args.seed)
    loaded = task.build(args, train)
    training = task.training_task(loaded, args, train, dev)
    make_directory(out)  # a read-only file system fails now, not at the first checkpoint
    return TrainingRun(task, loaded, training, config, out, train_path, dev_path, train, None)


def check_train_out(out: Path, inputs: Sequence[Path | None]) -> None:
    """--out of a new run: not a model already (that is --resume), and no other data either: a new
    or empty directory, none of the ``inputs`` (so never the treebank directory)."""
    if is_model_directory(out) or (out / "checkpoints").exists():
        raise UserError(f"{out} already holds a model; use --resume to continue it or choose another --out")
    check_new_directory(out, inputs)


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
