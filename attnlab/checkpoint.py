"""Model directories and training checkpoints: safetensors + JSON, written atomically.

A model directory holds three files::

    model.safetensors   the weights
    vocab.json          the vocabularies the model was trained with
    config.json         what to build (task, sizes) and the SHA-256 of the files above

and, for some tasks, further JSON files (a lemmatizer's lookup table), whose checksums
config.json also records.

Every file is written to a temporary name and moved into place with ``os.replace``,
config.json last, so a reader sees either the old model or the new one. The checksums
in config.json catch files that were truncated, corrupted or mixed from two saves.

Optimizer state is stored the same way (tensors in safetensors, everything else in
JSON); nothing is ever pickled. Every problem reading these files raises
``CheckpointError`` with a one-line message naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import torch

WEIGHTS = "model.safetensors"
VOCAB = "vocab.json"
CONFIG = "config.json"
FORMAT = "attnlab-model/1"


class CheckpointError(ValueError):
    """A model or checkpoint file is missing, truncated, corrupted or inconsistent."""


# -- atomic writes ---------------------------------------------------------------------

def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _new_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _new_file_beside(path: Path) -> tuple[int, Path]:
    """A new empty file next to ``path``, open for writing, with the mode open() would give it
    (0666 less the umask; tempfile.mkstemp's 0600 would leave every written file private)."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- reading with clear errors ---------------------------------------------------------

def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing {what}") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None


def _check_sha(path: Path, data: bytes, expected: str | None) -> None:
    if expected is not None and sha256(data) != expected:
        raise CheckpointError(
            f"{path}: checksum mismatch (the file is corrupted, truncated or from a different save)"
        )


def parse_json(path: Path, data: bytes, what: str = "JSON file") -> dict:
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: {what} is not UTF-8 text (corrupted?)") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}:{exc.lineno}: {what} is not valid JSON ({exc.msg}; truncated or corrupted?)") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: {what} must hold a JSON object, found {type(obj).__name__}")
    return obj


def read_json(path: str | os.PathLike, what: str = "JSON file", expected_sha: str | None = None) -> dict:
    path = Path(path)
    data = _read_bytes(path, what)
    _check_sha(path, data, expected_sha)
    return parse_json(path, data, what)


def tensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().contiguous() for k, v in tensors.items()})


def read_tensors(path: str | os.PathLike, what: str = "weights", expected_sha: str | None = None) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    data = _read_bytes(path, what)
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a valid safetensors file, truncated or corrupted ({reason})") from None
    _check_sha(path, data, expected_sha)
    return tensors


# -- model directories -----------------------------------------------------------------

@dataclass(frozen=True)
class ModelFiles:
    """The contents of a model directory."""

    state: dict[str, torch.Tensor]
    config: dict
    vocab: dict


def save_model_dir(directory: str | os.PathLike, state: dict[str, torch.Tensor], config: dict, vocab: dict,
                   extra_json: dict[str, dict] | None = None) -> Path:
    """Write weights, vocab, any further JSON files (``extra_json``: file name -> object)
    and config (with the checksums of all of them) into ``directory``."""
    directory = Path(directory)
    weights = tensors_bytes(state)
    vocab_data = json_bytes(vocab)
    atomic_write_bytes(directory / WEIGHTS, weights)
    atomic_write_bytes(directory / VOCAB, vocab_data)
    sums = {WEIGHTS: sha256(weights), VOCAB: sha256(vocab_data)}
    for name, obj in (extra_json or {}).items():
        data = json_bytes(obj)
        atomic_write_bytes(directory / name, data)
        sums[name] = sha256(data)
    record = {"format": FORMAT, **config, "files": sums}
    atomic_write_bytes(directory / CONFIG, json_bytes(record))
    return directory


def add_model_json(directory: str | os.PathLike, name: str, obj: dict) -> Path:
    """Add (or replace) one JSON file of an existing model directory: the file first, then
    config.json with its checksum, both atomically (for models saved before the file existed)."""
    directory = Path(directory)
    config = load_model_dir(directory).config  # checks the directory as it is
    data = json_bytes(obj)
    atomic_write_bytes(directory / name, data)
    config["files"] = {**(config.get("files") or {}), name: sha256(data)}
    atomic_write_bytes(directory / CONFIG, json_bytes(config))
    return directory / name


def read_model_json(directory: str | os.PathLike, config: dict, name: str, what: str) -> dict | None:
    """A further JSON file of a model directory, checked against the checksum in ``config``
    (its config.json); None when config.json does not list it (a model saved without it)."""
    expected = (config.get("files") or {}).get(name)
    if expected is None:
        return None
    return read_json(Path(directory) / name, what, expected)


def load_model_dir(directory: str | os.PathLike) -> ModelFiles:
    """Read a model directory written by ``save_model_dir``, checking every file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such model directory")
    config = read_json(directory / CONFIG, "model config")
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{directory / CONFIG}: not an attnlab model config (format {config.get('format')!r}, expected {FORMAT!r})")
    files = config.get("files") or {}
    state = read_tensors(directory / WEIGHTS, "model weights", files.get(WEIGHTS))
    vocab = read_json(directory / VOCAB, "vocabulary", files.get(VOCAB))
    return ModelFiles(state=state, config=config, vocab=vocab)


def load_state_into(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | os.PathLike) -> None:
    """``model.load_state_dict(state)`` with a one-line error when names or shapes disagree."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")
        raise CheckpointError(f"{source}: weights do not match the model ({'; '.join(parts)})")
    for name, tensor in state.items():
        if tuple(own[name].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{source}: weight {name} has shape {tuple(tensor.shape)}, the model expects {tuple(own[name].shape)}"
            )
    model.load_state_dict(state)


# -- model directories of the tasks ----------------------------------------------------

def save_task_model(directory: str | os.PathLike, task: str, model: torch.nn.Module, vocab: dict,
                    extra: dict | None = None, extra_json: dict[str, dict] | None = None) -> Path:
    """A task model's directory: config.json names the ``task`` and holds ``model.config.to_json()``
    (what to build) next to ``extra`` (training record, data paths)."""
    record = {"task": task, "model": model.config.to_json(), **(extra or {})}
    return save_model_dir(directory, model.state_dict(), record, vocab, extra_json)


def load_task_model(directory: str | os.PathLike, task: str, what: str, config_from_json, vocab_from_json, build):
    """Read a directory written by ``save_task_model`` for ``task``: ``build(config, vocab)`` makes
    the module the weights are loaded into (in eval mode). Returns (model, config, vocab, files);
    every problem is a one-line CheckpointError naming the file (``what`` names the model kind)."""
    files = load_model_dir(directory)
    source = Path(directory) / CONFIG
    if files.config.get("task") != task:
        raise CheckpointError(f"{source}: not a {what} (task {files.config.get('task')!r})")
    try:
        config = config_from_json(files.config["model"])
        vocab = vocab_from_json(files.vocab)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: malformed model description ({exc})") from None
    model = build(config, vocab)
    load_state_into(model, files.state, Path(directory) / WEIGHTS)
    model.eval()
    return model, config, vocab, files


# -- optimizer state without pickle ----------------------------------------------------

def optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into tensors (for safetensors) and JSON metadata."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for index, slot in sd["state"].items():
        for key, value in slot.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    groups = []
    for group in sd["param_groups"]:
        groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()})
    meta = {"param_groups": groups, "scalars": scalars, "tensor_keys": sorted(tensors)}
    return tensors, meta


def optimizer_from_files(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict, source: str) -> None:
    """Inverse of ``optimizer_to_files``: load the state into ``optimizer``."""
    try:
        state: dict[int, dict] = {}
        for name in meta["tensor_keys"]:
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = tensors[name]
        for index, values in meta["scalars"].items():
            state.setdefault(int(index), {}).update(values)
        groups = []
        for group in meta["param_groups"]:
            groups.append({k: (tuple(v) if k == "betas" else v) for k, v in group.items()})
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{source}: optimizer state does not match the model ({exc})") from None
