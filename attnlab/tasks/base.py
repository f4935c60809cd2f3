"""What a task is: the ``Task`` protocol behind `attnlab train` and `attnlab eval`.

A task (``tag``, ``classify``, ``seq2seq``; the registry is ``attnlab.tasks.TASKS``) holds
everything that differs between them, and ``attnlab.tasks.run`` the rest (data paths, new
run or --resume, the training loop, reading the gold file):

    name, model_task, summary       its --task value, the "task" its config.json records, one line of help
    add_train_arguments(group)      its options of `attnlab train` (an argparse group of its own)
    add_eval_arguments(group)       its options of `attnlab eval` (the same)
    check(sentences)                refuse data it cannot learn from or score (``path:line: reason``)
    build(args, train)              a new model with its vocabularies, from the options and the training data
                                    (made by ``new_model``: checked before it takes any memory)
    load(directory)                 the same from a model directory or checkpoint
    training_task(loaded, args, train, dev)
                                    the object ``attnlab.train.train`` drives (lengths, make_batch,
                                    loss, evaluate, save_model)
    default_epochs(train)           the epochs of a run without --epochs (None: planned from the time budget,
                                    at most ``max_epochs``)
    describe(loaded, training, train)
                                    (what is trained, on how much) for the line `attnlab train` starts with
    evaluate(args, gold, source)    score a model directory (``args.model``) on gold sentences
    report_text(result)             that score as the table `attnlab eval` prints
    report_json(result)             ... and as the object `attnlab eval --json` prints

``build`` and ``load`` return the task's ``Loaded*`` object (``LoadedTagger`` ...): the
model (``.model``), its vocabularies and the config.json record (``.record``, empty for a
new model). A task module imports torch only inside its methods, so that building the
command line stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence


DEFAULT_EPOCHS = 24


class FixedEpochs:
    """``Task.default_epochs`` for tasks that train ``DEFAULT_EPOCHS`` whatever the data."""

    max_epochs = DEFAULT_EPOCHS

    def default_epochs(self, train: Sequence) -> int | None:
        return DEFAULT_EPOCHS


class Task(Protocol):
    name: str
    model_task: str
    summary: str

    def add_train_arguments(self, group: argparse._ArgumentGroup) -> None: ...

    def add_eval_arguments(self, group: argparse._ArgumentGroup) -> None: ...

    def check(self, sentences: Sequence) -> None: ...

    def build(self, args: argparse.Namespace, train: Sequence) -> Any: ...

    def load(self, directory: Path) -> Any: ...

    def training_task(self, loaded: Any, args: argparse.Namespace, train: Sequence, dev: Sequence) -> Any: ...

    def describe(self, loaded: Any, training: Any, train: Sequence) -> tuple[str, str]: ...

    max_epochs: int  # the cap of a run that plans its epochs from a time budget

    def default_epochs(self, train: Sequence) -> int | None:
        """The epochs of a run without --epochs; None: as many as fit its time budget."""
        ...

    def evaluate(self, args: argparse.Namespace, gold: Sequence, source: str) -> dict: ...

    def report_text(self, result: dict) -> str: ...

    def report_json(self, result: dict) -> dict: ...


# -- pieces the tasks share ---------------------------------------------------------------

# Sizes per encoder when the command line does not give them (taggers and classifiers).
ENCODER_DEFAULTS = {
    "none": {"hidden": 256, "layers": 1},
    "window": {"hidden": 256, "layers": 1, "window": 2},
    "cnn": {"hidden": 256, "layers": 3, "kernel": 3},
    "bilstm": {"hidden": 256, "layers": 2},
    "attention": {"hidden": 256, "layers": 2, "heads": 8, "d_ff": 512},
}


def new_model(make: Callable[[], Any]) -> Any:
    """``make()``, a new model, built first on torch's "meta" device (no memory, no random
    numbers drawn) and refused with a UserError, before any training, when no model loader
    would read it back (``attnlab.checkpoint.check_model_description``, the loader's own check:
    layers, widths, dropouts within their limits) or when training it needs more memory than
    this machine has (``TRAINING_BYTES_PER_PARAMETER`` per parameter)."""
    import torch

    from ..checkpoint import CheckpointError, check_model_description, meta_skeleton
    from ..errors import UserError

    with meta_skeleton():
        skeleton = make()
    try:
        check_model_description(skeleton.config.to_json(), "the model to train")
    except CheckpointError as exc:
        raise UserError(f"{exc}: no model loader would read it back") from None
    parameters = sum(p.numel() for p in skeleton.parameters())
    needed, memory = TRAINING_BYTES_PER_PARAMETER * parameters, _memory_bytes()
    if memory and needed > memory:
        raise UserError(f"the model to train has {parameters / 1e6:,.0f}M parameters: training it needs about "
                        f"{needed / 2**30:,.0f} GiB (weights, gradients, AdamW moments), more than this machine's "
                        f"{memory / 2**30:,.0f} GiB; choose smaller sizes")
    return make()


TRAINING_BYTES_PER_PARAMETER = 16  # a float32 weight, its gradient and AdamW's two moments


def _memory_bytes() -> int:
    """This machine's memory in bytes (0 when the system does not say)."""
    import os

    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return 0


SIZE_OPTIONS = ("hidden", "layers", "heads", "d_ff", "window", "kernel")


def sizes_from_args(args: argparse.Namespace, defaults: dict) -> dict:
    """``defaults`` with every size the command line gives (``--hidden`` ...) put in."""
    sizes = dict(defaults)
    sizes.update({name: getattr(args, name) for name in SIZE_OPTIONS if getattr(args, name, None) is not None})
    return sizes


FEATURE_DEFAULTS = {"char_filters": 64, "word_dropout": 0.1}


def token_model_configs(args: argparse.Namespace, feature_defaults: dict | None = None):
    """(EncoderConfig, FeatureConfig) of a model on token features (a tagger, a classifier)
    from `attnlab train`'s options; sizes not given come from ``ENCODER_DEFAULTS``, feature
    options not given from ``feature_defaults`` (else ``FEATURE_DEFAULTS``)."""
    from ..encoders import EncoderConfig
    from ..features import FeatureConfig

    sizes = sizes_from_args(args, ENCODER_DEFAULTS[args.encoder])
    encoder = EncoderConfig(**sizes, dropout=args.dropout, positions=args.positions)
    chosen = FEATURE_DEFAULTS | (feature_defaults or {})
    given = {name: getattr(args, name) for name in chosen if getattr(args, name, None) is not None}
    features = FeatureConfig(word_dim=args.word_dim, dropout=args.feature_dropout, **(chosen | given))
    return encoder, features


def recorded_data(record: dict, model_dir: Path, needed_for: str = "the baseline; use --no-baseline") -> tuple[Path, Path]:
    """The training and dev files a model directory's config.json ``record`` names."""
    data = record.get("data") or {}
    if not (data.get("train") and data.get("dev")):
        raise ValueError(f"{Path(model_dir) / 'config.json'}: no training data recorded (needed for {needed_for})")
    return Path(data["train"]), Path(data["dev"])
