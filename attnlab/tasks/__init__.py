"""Tasks: what `attnlab train` learns and `attnlab eval` scores.

    tag        part of speech per token (N->N)            tag_task.py, tagging.py
    classify   the genre of each sentence (N->1)          classify_task.py, classification.py
    seq2seq    the lemma of each word as characters (N->M) seq2seq_task.py, seq2seq.py

Each ``*_task.py`` module holds a ``Task`` (``base.py``: its options, how it builds, loads,
trains, evaluates and reports); the module beside it holds the model, the object the
training loop drives (``TaggingTask`` ...) and the evaluation. ``run.py`` runs any task.
A new task is a new ``*_task.py`` module (and its model) plus one entry in ``TASKS``.
"""

from __future__ import annotations

from pathlib import Path

from .base import Task
from .classify_task import Classify
from .seq2seq_task import Seq2seq
from .tag_task import Tag

TASKS: dict[str, Task] = {task.name: task for task in (Tag(), Classify(), Seq2seq())}
DEFAULT_TASK = "tag"


def model_task(directory: str | Path) -> str | None:
    """The ``task`` a model directory's config.json names (None when unreadable)."""
    from ..checkpoint import MAX_CONFIG_BYTES, CheckpointError, read_json

    try:
        return read_json(Path(directory) / "config.json", "model config", limit=MAX_CONFIG_BYTES).get("task")
    except CheckpointError:  # missing, not a regular file, too large or deep, not a JSON object
        return None


def task_for_model(directory: str | Path) -> Task | None:
    """The task whose models the directory holds (None when config.json names none of them)."""
    recorded = model_task(directory)
    return next((task for task in TASKS.values() if recorded in getattr(task, "model_tasks", (task.model_task,))), None)
