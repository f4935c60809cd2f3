"""Model directories and training checkpoints: safetensors + JSON, written atomically.

A model directory holds three files::

    model.safetensors   the weights
    vocab.json          the vocabularies the model was trained with
    config.json         what to build (task, sizes) and the SHA-256 of the files above

and, for some tasks, further JSON files (a lemmatizer's lookup table), whose checksums
config.json also records. A model is loaded only when config.json has a checksum for
each of its files and every file matches it. Weights are float32, or float16 / int8 with
per-row scales in a compact copy (``attnlab.weight_storage``; config.json says which), and are
always float32 once loaded.

A save is one atomic unit: a reader sees either the old model or the new one, whenever
the writer is killed. config.json is the commit point (see ``save_model_dir``): the new
files are first written beside the old ones under staged names, then config.json is
replaced, then the staged files are renamed into place. Every single file is written
to a temporary name and moved into place with ``os.replace`` (``atomic_write_bytes``);
new files get the usual permissions (0666 minus the umask).

Optimizer state is stored the same way (tensors in safetensors, everything else in
JSON); nothing is ever pickled. Every problem reading these files raises
``CheckpointError`` with a one-line message naming the file; a disk that fills up
while writing raises ``UserError`` naming the directory (the old files stay as they were).

Reading is the one checkpoint validator of the project: attnlab's model directories, their
compact copies and Hugging Face checkpoints (``attnlab.hf``) are all read through it. Before
anything is built from a checkpoint:

============================  =============================================================
what                          limit
============================  =============================================================
files read                    regular files only (never a FIFO, device or directory: they
                              are refused before they are opened); a file named by a config
                              or an index is a plain name inside the checkpoint directory
config and index JSON         at most ``MAX_CONFIG_BYTES`` (4 MiB), nested at most
                              ``MAX_JSON_DEPTH`` (32) levels
other JSON (vocabularies,     at most ``MAX_JSON_BYTES`` (64 MiB), nested at most 32 levels
tokenizer.json)
sizes in a model description  integers 0 to ``MAX_WIDTH`` (65536), ``...layers`` 0 to
                              ``MAX_LAYERS`` (64), ``...vocab_size`` 0 to ``MAX_VOCAB``
                              (1048576); numbers finite; dropouts in [0, 1)
weights                       every name, shape and dtype that the model built from the
                              config (without memory, on torch's "meta" device) has; every
                              value finite (``allow_nonfinite=True`` lets NaN/inf through)
============================  =============================================================

``attnlab.hf.config`` adds the limits of a Hugging Face config.json (and of the number of
parameters it implies) to this table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .atomic import atomic_write_bytes  # noqa: F401  (attnlab.atomic; named here too)
from .config import MAX_LAYERS, MAX_WIDTH, JsonConfig  # MAX_*: the limits of a model description (also `attnlab train`'s)
from .errors import UserError
from .weight_storage import StorageError, decode_weights, storage_of

WEIGHTS = "model.safetensors"
VOCAB = "vocab.json"
CONFIG = "config.json"
FORMAT = "attnlab-model/1"
MAX_VOCAB = 1_048_576  # limit of every "...vocab_size" (Hugging Face vocabularies reach 250k)
MAX_SAFETENSORS_HEADER = 100_000_000  # bytes (the safetensors library's own limit)
MAX_CONFIG_BYTES = 4 * 2**20  # a config.json, a model.safetensors.index.json
MAX_JSON_BYTES = 64 * 2**20  # any other JSON file of a model (vocabularies, tokenizer.json)
MAX_JSON_DEPTH = 32  # nesting of any JSON file a model holds

_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")  # atomic_write_bytes (and older tempfile names)
_STAGED = re.compile(r"\.(?P<name>.+)\.(?P<sha>[0-9a-f]{16})\.staged")  # save_model_dir


class CheckpointError(UserError, ValueError):
    """A model or checkpoint file is missing, truncated, corrupted, inconsistent or beyond
    the stated limits (a ``UserError``: the command line prints it as one line)."""


# -- atomic writes (attnlab.atomic) --------------------------------------------------

def json_bytes(obj, *, compact: bool = False) -> bytes:
    """UTF-8 JSON: indented for people (config.json), or ``compact`` for the large machine-read
    files (vocab.json of a tagger holds tens of thousands of words: a third of its size is
    indentation)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":")) if compact else json.dumps(obj, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- reading with clear errors ---------------------------------------------------------

def _open_regular(path: Path, what: str, limit: int | None = None):
    """``path`` opened for reading and its size; only a regular file (not a device, FIFO
    or directory, which could be endless or block) is opened, and only when it holds at most
    ``limit`` bytes. The file is looked at before it is opened and once more through the
    open descriptor (opened without blocking), so a FIFO put in its place meanwhile is
    refused too."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise CheckpointError(f"{path}: {what} is not a regular file")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing {what}") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    f = os.fdopen(fd, "rb")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        problem = "is not a regular file"
    elif limit is not None and info.st_size > limit:
        problem = f"has {info.st_size} bytes, more than the limit of {limit}"
    else:
        return f, info.st_size
    f.close()
    raise CheckpointError(f"{path}: {what} {problem}")


def check_regular(path: str | os.PathLike, what: str) -> None:
    """A one-line CheckpointError unless ``path`` is a regular file that can be opened."""
    f, _ = _open_regular(Path(path), what)
    f.close()


def read_bytes(path: str | os.PathLike, what: str, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path``; a one-line CheckpointError naming it (``what``
    it should hold) when it is missing, unreadable, not a regular file or larger than
    ``limit`` bytes."""
    path = Path(path)
    f, size = _open_regular(path, what, limit)
    with f:
        try:
            return f.read(size)
        except OSError as exc:
            raise CheckpointError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None


def member(directory: str | os.PathLike, name, source: str | os.PathLike, key: str) -> Path:
    """``directory / name`` for a file name that a config or index (``source``, its entry
    ``key``) gives: a plain name (no directory part, not absolute, not ``..``), so the file
    is inside ``directory``; else a CheckpointError naming the entry."""
    if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name
            or "\0" in name or os.path.isabs(name)):
        raise CheckpointError(f"{source}: {key} names {name!r:.80}; only a file of the checkpoint's own "
                              "directory (a plain file name) is read")
    return Path(directory) / name


def _check_sha(path: Path, data: bytes, expected: str | None) -> None:
    if expected is not None and sha256(data) != expected:
        raise CheckpointError(
            f"{path}: checksum mismatch (the file is corrupted, truncated or from a different save)"
        )


def parse_json(path: Path, data: bytes, what: str = "JSON file") -> dict:
    """The JSON object in ``data`` (the bytes of ``path``), nested at most MAX_JSON_DEPTH levels."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: {what} is not UTF-8 text (corrupted?)") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}:{exc.lineno}: {what} is not valid JSON ({exc.msg}; truncated or corrupted?)") from None
    except RecursionError:
        obj = _TOO_DEEP
    if obj is _TOO_DEEP or json_depth(obj) > MAX_JSON_DEPTH:
        raise CheckpointError(f"{path}: {what} is nested more than {MAX_JSON_DEPTH} levels deep")
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: {what} must hold a JSON object, found {type(obj).__name__}")
    return obj


_TOO_DEEP = object()


def json_depth(obj) -> int:
    """How deeply lists and objects nest in the parsed JSON ``obj`` (a number or string: 0),
    level by level, without recursion."""
    depth, level = 0, [obj] if type(obj) in (dict, list) else []
    while level:
        depth += 1
        level = [c for v in level for c in (v.values() if type(v) is dict else v) if type(c) in (dict, list)]
    return depth


def read_json(path: str | os.PathLike, what: str = "JSON file", expected_sha: str | None = None,
              limit: int = MAX_JSON_BYTES) -> dict:
    """The JSON object in the regular file ``path`` of at most ``limit`` bytes (checked against
    ``expected_sha`` when given); any problem is a one-line CheckpointError naming the file."""
    path = Path(path)
    data = read_bytes(path, what, limit)
    _check_sha(path, data, expected_sha)
    return parse_json(path, data, what)


def file_checksums(record: dict, source: str | os.PathLike) -> dict[str, str]:
    """The ``"files"`` entry of a config.json or state.json (file name -> SHA-256), checked:
    each name a plain file name in the directory itself (no ``/``, ``\\``, ``..``), so that
    neither reading nor ``attnlab export`` ever reaches outside the model directory."""
    sums = record.get("files", {})
    if not isinstance(sums, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in sums.items()):
        raise CheckpointError(f'{source}: "files" must map file names to SHA-256 checksums, found {sums!r:.60}')
    for name in sums:
        if not is_plain_name(name):
            raise CheckpointError(f'{source}: "files" names {name[:80]!r}, which is not a plain file name in the model '
                                  f"directory; refusing to read or write outside it")
    return sums


def is_plain_name(name: str) -> bool:
    """Whether ``name`` names a file directly inside a directory: not empty, ``.`` or ``..``,
    and without a path separator or NUL."""
    return name not in ("", ".", "..") and not any(c in name for c in "/\\\0")


def tensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().contiguous() for k, v in tensors.items()})


def _bad_safetensors(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(f"{path}: not a valid safetensors file, truncated or corrupted ({reason})")


def _read_safetensors_bytes(path: Path, what: str) -> bytes:
    """The bytes of a safetensors file, read only as far as its header says the file goes:
    8 bytes of header length, the JSON header (dtype, shape and byte range of each
    tensor), then the tensor data, which must end exactly at the end of the file."""
    f, size = _open_regular(path, what)
    with f:
        if size < 8:
            raise _bad_safetensors(path, f"{size} bytes, shorter than the header length")
        length = int.from_bytes(f.read(8), "little")
        if length > min(size - 8, MAX_SAFETENSORS_HEADER):
            raise _bad_safetensors(path, f"a header of {length} bytes in a file of {size}")
        header = f.read(length)
        try:
            entries = json.loads(header.decode("utf-8"))
            end = max([int(e["data_offsets"][1]) for k, e in entries.items() if k != "__metadata__"] or [0])
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
            raise _bad_safetensors(path, "unreadable header") from None
        if 8 + length + end != size:
            raise _bad_safetensors(path, f"the header describes {8 + length + end} bytes, the file has {size}")
        return length.to_bytes(8, "little") + header + f.read(end)


def read_tensors(path: str | os.PathLike, what: str = "weights", expected_sha: str | None = None) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    data = _read_safetensors_bytes(path, what)
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise _bad_safetensors(path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    _check_sha(path, data, expected_sha)
    return tensors


# -- model directories -----------------------------------------------------------------

@dataclass(frozen=True)
class ModelFiles:
    """The contents of a model directory."""

    state: dict[str, torch.Tensor]
    config: dict
    vocab: dict


def _staged_name(name: str, sha: str) -> str:
    return f".{name}.{sha[:16]}.staged"


def _commit_files(directory: Path, files: dict[str, bytes], record: dict) -> None:
    """Write ``files`` (name -> bytes) and config.json = ``record`` with their checksums
    as one unit: staged copies, then config.json (the commit), then the renames."""
    sums = {name: sha256(data) for name, data in files.items()}
    staged = [directory / _staged_name(name, sums[name]) for name in files]
    try:
        for path, data in zip(staged, files.values()):
            atomic_write_bytes(path, data)
    except Exception:  # a full disk, say: free what was staged (a kill leaves it to remove_stale_temporaries)
        for path in staged:
            path.unlink(missing_ok=True)
        raise
    record = {**record, "files": {**file_checksums(record, directory / CONFIG), **sums}}
    atomic_write_bytes(directory / CONFIG, json_bytes(record))
    for path, name in zip(staged, files):
        os.replace(path, directory / name)


def save_model_dir(directory: str | os.PathLike, state: dict[str, torch.Tensor], config: dict, vocab: dict,
                   extra_json: dict[str, dict] | None = None) -> Path:
    """Write weights, vocab, any further JSON files (``extra_json``: file name -> object)
    and config (with the checksums of all of them) into ``directory``, as one unit.

    config.json is the commit point. The new files are first written under staged names
    that carry their checksum (``.model.safetensors.<sha>.staged``) while the old files
    stay in place; then config.json is replaced; then each staged file is renamed to its
    own name. Killed before config.json lands, the directory still holds the old model
    (the staged files are left-overs that ``remove_stale_temporaries`` deletes); killed
    after it, config.json already names the new files by checksum and readers take the
    staged copy until it is renamed (``remove_stale_temporaries`` finishes the renames).
    The directory keeps its one layout, and the old model stays whole until the moment
    config.json is replaced.
    """
    directory = Path(directory)
    files = {WEIGHTS: tensors_bytes(state), VOCAB: json_bytes(vocab, compact=True)}
    files.update((name, json_bytes(obj)) for name, obj in (extra_json or {}).items())
    _commit_files(directory, files, {"format": FORMAT, **config, "files": {}})
    return directory


def add_model_json(directory: str | os.PathLike, name: str, obj: dict) -> Path:
    """Add (or replace) one JSON file of an existing model directory, with its checksum in
    config.json, as one unit (for models saved before the file existed)."""
    directory = Path(directory)
    config = load_model_dir(directory).config  # checks the directory as it is
    _commit_files(directory, {name: json_bytes(obj)}, config)
    return directory / name


def update_model_config(directory: str | os.PathLike, entries: dict) -> Path:
    """Add (or replace) top-level ``entries`` of an existing model directory's config.json
    (the record of how it was trained), as one commit; the other files stay as they are."""
    directory = Path(directory)
    if {"format", "files"} & set(entries):
        raise ValueError("update_model_config: 'format' and 'files' belong to the directory itself")
    config = load_model_dir(directory).config  # checks the directory as it is
    _commit_files(directory, {}, {**config, **entries})
    return directory / CONFIG


def remove_stale_temporaries(directory: str | os.PathLike) -> None:
    """Clean up after writes that were killed in ``directory``: finish the renames of a
    committed save (staged files that config.json names) and delete every other
    temporary file of ours (``.NAME.XXXXXXXX.tmp``, uncommitted ``.NAME.<sha>.staged``)."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    try:
        sums = file_checksums(read_json(directory / CONFIG, "model config", limit=MAX_CONFIG_BYTES), directory / CONFIG)
    except CheckpointError:
        sums = {}
    for path in directory.iterdir():
        staged = _STAGED.fullmatch(path.name)
        if staged and sums.get(staged["name"], "")[:16] == staged["sha"]:
            os.replace(path, directory / staged["name"])
        elif staged or _TEMPORARY.fullmatch(path.name):
            path.unlink(missing_ok=True)


def read_model_json(directory: str | os.PathLike, config: dict, name: str, what: str) -> dict | None:
    """A further JSON file of a model directory, checked against the checksum in ``config``
    (its config.json); None when config.json does not list it (a model saved without it)."""
    directory = Path(directory)
    expected = file_checksums(config, directory / CONFIG).get(name)
    if expected is None:
        return None
    return _read_committed(directory, name, expected, lambda path: read_json(path, what, expected))


def _read_committed(directory: Path, name: str, expected: str, read):
    """``read(path)`` of the file config.json names: its staged copy while a committed save
    is still renaming (see ``save_model_dir``), else the file itself."""
    staged = directory / _staged_name(name, expected)
    if os.path.lexists(staged):
        try:
            return read(staged)
        except CheckpointError:
            if os.path.lexists(staged):
                raise
            # renamed into place while we read it
    return read(directory / name)


def load_model_dir(directory: str | os.PathLike) -> ModelFiles:
    """Read a model directory written by ``save_model_dir``, checking every file (a save
    that replaces the model meanwhile makes it read the directory once more)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such model directory")
    before = _inode(directory / CONFIG)
    try:
        return _load_model_files(directory)
    except CheckpointError:
        if before is None or before == _inode(directory / CONFIG):
            raise
        return _load_model_files(directory)


def _inode(path: Path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _load_model_files(directory: Path) -> ModelFiles:
    source = directory / CONFIG
    config = read_json(source, "model config", limit=MAX_CONFIG_BYTES)
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{source}: not an attnlab model config (format {config.get('format')!r}, expected {FORMAT!r})")
    sums = file_checksums(config, source)
    for name in (WEIGHTS, VOCAB):
        if name not in sums:
            raise CheckpointError(f"{source}: the model has no checksum for {name}; refusing to load unverified files")
    try:
        storage = storage_of(config)
    except StorageError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    state = _read_committed(directory, WEIGHTS, sums[WEIGHTS], lambda p: read_tensors(p, "model weights", sums[WEIGHTS]))
    vocab = _read_committed(directory, VOCAB, sums[VOCAB], lambda p: read_json(p, "vocabulary", sums[VOCAB]))
    try:  # float16 / int8 storage back to float32: at most 4x the bytes already read
        state = decode_weights(state, storage)
    except StorageError as exc:
        raise CheckpointError(f"{directory / WEIGHTS}: {exc}") from None
    return ModelFiles(state=state, config=config, vocab=vocab)


def check_tensors(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], source: str | os.PathLike,
                  *, allow_nonfinite: bool = False) -> None:
    """A one-line CheckpointError when the names, shapes or dtypes of ``state`` differ from
    those of ``expected`` (a model's ``state_dict()``, on the "meta" device or not), or when a
    floating tensor holds NaN or infinite values (unless ``allow_nonfinite``)."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")
        raise CheckpointError(f"{source}: weights do not match the model ({'; '.join(parts)})")
    for name, tensor in state.items():
        check_tensor(tensor, name, tuple(expected[name].shape), (expected[name].dtype,), source,
                     allow_nonfinite=allow_nonfinite)


def check_tensor(tensor: torch.Tensor, name: str, shape: tuple[int, ...], dtypes: tuple[torch.dtype, ...],
                 source: str | os.PathLike, *, allow_nonfinite: bool = False) -> None:
    """One tensor of a weight file against the ``shape`` and one of the ``dtypes`` the model
    expects; NaN and infinite values refused unless ``allow_nonfinite``."""
    check_tensor_header(name, tuple(tensor.shape), tensor.dtype, shape, dtypes, source)
    if not allow_nonfinite and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise CheckpointError(f"{source}: weight {name} holds NaN or infinite values")


def check_tensor_header(name: str, found_shape: tuple[int, ...], found_dtype: torch.dtype | str,
                        shape: tuple[int, ...], dtypes: tuple[torch.dtype, ...], source: str | os.PathLike) -> None:
    """The shape and dtype a weight file declares for ``name`` against what the model expects."""
    if found_shape != shape:
        raise CheckpointError(f"{source}: weight {name} has shape {found_shape}, the model expects {shape}")
    if found_dtype not in dtypes:
        want = " or ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise CheckpointError(f"{source}: weight {name} is {str(found_dtype).removeprefix('torch.')}, "
                              f"the model expects {want}")


def load_state_into(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | os.PathLike,
                    *, allow_nonfinite: bool = False) -> None:
    """``model.load_state_dict(state)`` with a one-line error when names, shapes or dtypes
    disagree or a weight is not finite (``check_tensors``)."""
    check_tensors(model.state_dict(), state, source, allow_nonfinite=allow_nonfinite)
    model.load_state_dict(state)


# -- model descriptions ------------------------------------------------------------------

def check_model_description(obj, source: str | os.PathLike, where: str = "model") -> None:
    """Limits on the "model" part of a config.json, before anything is built from it: JSON
    objects, lists, strings, booleans and numbers only; every integer in 0..MAX_WIDTH
    (0..MAX_LAYERS for a ``...layers`` count, 0..MAX_VOCAB for a ``...vocab_size``); every
    number finite; dropouts in [0, 1)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            check_model_description(value, source, f"{where}.{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            check_model_description(value, source, f"{where}[{i}]")
    elif isinstance(obj, int) and not isinstance(obj, bool):
        key = where.rsplit(".", 1)[-1]
        limit = MAX_LAYERS if key.endswith("layers") else MAX_VOCAB if key.endswith("vocab_size") else MAX_WIDTH
        if not 0 <= obj <= limit:
            raise CheckpointError(f"{source}: {where} = {obj} is out of range (0 to {limit})")
    elif isinstance(obj, float):
        if not math.isfinite(obj) or ("dropout" in where and not 0.0 <= obj < 1.0):
            raise CheckpointError(f"{source}: {where} = {obj} is out of range")
    elif not isinstance(obj, (str, bool)) and obj is not None:
        raise CheckpointError(f"{source}: {where} has an unexpected value {obj!r:.40}")


def _check_field_types(config, source: str | os.PathLike, where: str = "model") -> None:
    """Every field of the config dataclass ``config`` (and of the dataclasses in it) has
    the type of its default: an int where the default is an int, and so on."""
    if not dataclasses.is_dataclass(config):
        return
    for f in dataclasses.fields(config):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        value, name = getattr(config, f.name), f"{where}.{f.name}"
        if dataclasses.is_dataclass(default):
            _check_field_types(value, source, name)
        elif default is not None and not _same_kind(value, default):
            raise CheckpointError(f"{source}: {name} must be {_kind(default)}, found {value!r:.40}")


def _same_kind(value, default) -> bool:
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple)) and (not default or all(_same_kind(v, default[0]) for v in value))
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def _kind(default) -> str:
    if isinstance(default, (list, tuple)):
        return "a list"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(type(default), "a value")


# -- model directories of the tasks ----------------------------------------------------

def save_task_model(directory: str | os.PathLike, task: str, model: torch.nn.Module, vocab: dict,
                    extra: dict | None = None, extra_json: dict[str, dict] | None = None) -> Path:
    """A task model's directory: config.json names the ``task`` and holds ``model.config.to_json()``
    (what to build) next to ``extra`` (training record, data paths)."""
    record = {"task": task, "model": cast(JsonConfig, model.config).to_json(), **(extra or {})}
    return save_model_dir(directory, model.state_dict(), record, vocab, extra_json)


class _NoInit(torch.overrides.TorchFunctionMode):
    """Skips the in-place initialisers (``normal_``, ``uniform_``, ``zero_``...) on meta
    tensors: on "meta" torch runs them through its Python reference ops, whose first use
    imports its compiler stack (about 1.5 s)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.startswith("_") and name != "requires_grad_":
            first = args[0] if args else next(iter(kwargs.values()), None)
            if isinstance(first, torch.Tensor) and first.is_meta:
                return first
        return func(*args, **kwargs)


@contextmanager
def meta_skeleton() -> Iterator[None]:
    """Modules built in this block live on torch's "meta" device: names, shapes and dtypes,
    no memory and no random numbers drawn."""
    with torch.device("meta"), _NoInit():
        yield


def load_task_model(directory: str | os.PathLike, task: str, what: str, config_from_json, vocab_from_json, build,
                    *, allow_nonfinite: bool = False):
    """Read a directory written by ``save_task_model`` for ``task``: ``build(config, vocab)`` makes
    the module the weights are loaded into (in eval mode). Returns (model, config, vocab, files);
    every problem is a one-line CheckpointError naming the file (``what`` names the model kind).

    The description in config.json is checked before anything is built (sizes within
    limits, values of the right types), and the model is first built without memory
    (on torch's "meta" device) to compare its weight names, shapes and dtypes with the
    file's; weights that are not finite are refused unless ``allow_nonfinite``."""
    files = load_model_dir(directory)
    source = Path(directory) / CONFIG
    if files.config.get("task") != task:
        raise CheckpointError(f"{source}: not a {what} (task {files.config.get('task')!r})")
    description = files.config.get("model")
    if not isinstance(description, dict):
        raise CheckpointError(f"{source}: no model description (\"model\" must be a JSON object)")
    check_model_description(description, source)
    try:
        config = config_from_json(description)
        vocab = vocab_from_json(files.vocab)
        _check_field_types(config, source)
        with meta_skeleton():
            skeleton = build(config, vocab)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{source}: malformed model description ({exc})") from None
    weights = Path(directory) / WEIGHTS
    check_tensors(skeleton.state_dict(), files.state, weights, allow_nonfinite=allow_nonfinite)
    model = build(config, vocab)
    model.load_state_dict(files.state)
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
