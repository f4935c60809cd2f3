"""Every file attnlab writes goes through here: one writer, the same refusals for every command.

    check_output(path, inputs=[...])          # before any work: a bad output fails at once
    write_output(path, data, inputs=[...])    # str or bytes; "-" is stdout
    check_new_directory(out, inputs=[...])    # a new model directory (train --out, export --out)
    make_directory(out)                       # create it and prove that a file can be written there

Where the data goes:

- ``-``: stdout, by plain writes;
- an existing character device (``/dev/null``) or FIFO: opened and written in place (a new file
  renamed over it would replace the device or the FIFO with a regular file);
- a regular file or a new name: atomically, with ``attnlab.atomic.atomic_write_bytes`` (a
  temporary file beside it, renamed over it: readers see the old file or the new one); a
  symbolic link is followed, so the file it names is replaced and the link stays.

Refused, as a ``UserError`` naming the path (one line and exit code 2 on the command line):
one of the command's own inputs (the same file, by device and inode number, so also through
symbolic and hard links; the input ``-`` is whatever file stdin is), a directory, a block
device, a socket, a path under a regular file; and, while writing, every ``OSError`` (a
read-only file system, no permission, a full disk).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Iterable, Union

from .errors import UserError

STDOUT = "-"
PathLike = Union[str, os.PathLike]


def is_stdout(path: PathLike | None) -> bool:
    return path is not None and os.fspath(path) == STDOUT


# -- refusals ------------------------------------------------------------------------------

def check_output(path: PathLike, inputs: Iterable[PathLike | None] = ()) -> None:
    """Refuse an output ``path`` that must not or cannot be written (see the module docstring)."""
    if is_stdout(path):
        return
    path = Path(path)
    st = _stat(path)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{path}: is a directory")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        raise UserError(f"{path}: is a {_kind(st.st_mode)}; attnlab writes regular files, character devices, "
                        f"FIFOs and '-' (stdout)")
    _check_not_input(path, st, inputs, "choose another output (the input is left as it is)")


def output_path(text: str) -> str | Path:
    """The argparse ``type`` of an output file option: ``-`` or a path that ``check_output``
    accepts, so that a bad output fails before the work, not after it."""
    import argparse

    if text == STDOUT:
        return text
    try:
        check_output(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return Path(text)


def check_new_directory(out: PathLike, inputs: Iterable[PathLike | None] = ()) -> None:
    """Refuse, before any work, a directory for a new model that holds other data: ``out`` must
    not exist yet or be an empty directory, and no input of the command."""
    out = Path(out)
    st = _stat(out)
    if st is None:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise UserError(f"{out}: is a {_kind(st.st_mode)}; choose a new directory")
    _check_not_input(out, st, inputs, "choose a new directory")
    try:
        entries = sorted(os.listdir(out))
    except OSError as exc:
        raise UserError(f"{out}: cannot read the directory ({exc.strerror or exc})") from None
    if entries:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise UserError(f"{out}: already exists and is not empty ({shown}); a model goes into a new or empty "
                        f"directory: choose a new directory")


def is_model_directory(directory: PathLike) -> bool:
    """Whether ``directory`` holds an attnlab model (config.json of the model format) or a
    training run (checkpoints/latest.json)."""
    import json

    from .checkpoint import FORMAT  # here, not at the top: checkpoint imports torch

    directory = Path(directory)
    if (directory / "checkpoints" / "latest.json").is_file():
        return True
    if not (directory / "config.json").is_file():  # a FIFO there would block the read
        return False
    try:
        with open(directory / "config.json", "rb") as f:
            return json.loads(f.read(1_000_000)).get("format") == FORMAT
    except (OSError, ValueError, AttributeError, RecursionError):
        return False


def _stat(path: Path) -> os.stat_result | None:
    """``os.stat(path)`` (through symbolic links); None when nothing is there yet; a UserError
    when nothing can be there (a path under a regular file) or it cannot be looked at."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise UserError(f"{_file_ancestor(path)}: is not a directory") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None


def _file_ancestor(path: Path) -> Path:
    """The first ancestor of ``path`` that exists and is not a directory (else its parent)."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return path.parent


def _kind(mode: int) -> str:
    kinds = [(stat.S_ISDIR, "directory"), (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"),
             (stat.S_ISCHR, "character device"), (stat.S_ISFIFO, "FIFO")]
    return next((name for test, name in kinds if test(mode)), "file")


def _check_not_input(path: Path, st: os.stat_result, inputs: Iterable[PathLike | None], advice: str) -> None:
    same = _input_identities(inputs).get((st.st_dev, st.st_ino))
    if same is not None:
        what = "the input" if same == os.fspath(path) else f"the same file as the input {same}"
        raise UserError(f"{path}: is {what}; {advice}")


def _input_identities(inputs: Iterable[PathLike | None]) -> dict[tuple[int, int], str]:
    """(device, inode) -> name of each input that can be overwritten: the regular files and
    directories named (``-``: stdin's file) and the regular files in those directories: a model
    directory's own files (config.json and those it lists, and its segmenter's), or, in any
    other directory, every regular file directly in it."""
    found: dict[tuple[int, int], str] = {}
    for item in inputs:
        if item is None:
            continue
        name = os.fspath(item)
        try:
            st = os.fstat(sys.stdin.fileno()) if name == STDOUT else os.stat(name)
        except (OSError, ValueError, AttributeError):  # missing (its reader says so), or no stdin
            continue
        if stat.S_ISREG(st.st_mode):
            found[(st.st_dev, st.st_ino)] = "stdin" if name == STDOUT else name
        elif stat.S_ISDIR(st.st_mode):
            found[(st.st_dev, st.st_ino)] = name
            found.update(_files_in(Path(name)))
    return found


def _files_in(directory: Path) -> dict[tuple[int, int], str]:
    found: dict[tuple[int, int], str] = {}
    names = _model_files(directory)
    if names is None:
        try:
            names = [entry.name for entry in os.scandir(directory)]
        except OSError:
            return found
    for name in names:
        try:
            st = os.stat(directory / name)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found[(st.st_dev, st.st_ino)] = str(directory / name)
    return found


def _model_files(directory: Path) -> list[str] | None:
    """The files of the model in ``directory`` (config.json, the files it lists, and the same of
    its ``segmenter/``), or None when ``directory`` holds no readable attnlab config.json."""
    import json

    def listed(d: Path, prefix: str) -> list[str] | None:
        try:
            with open(d / "config.json", "rb") as f:
                record = json.loads(f.read(4 * 2**20))
            files = record.get("files") if isinstance(record, dict) else None
        except (OSError, ValueError):
            return None
        if not isinstance(files, dict):
            return None
        return [prefix + "config.json", *(prefix + str(name) for name in files)]

    own = listed(directory, "")
    if own is None:
        return None
    return own + (listed(directory / "segmenter", "segmenter/") or [])


# -- writing -------------------------------------------------------------------------------

def write_output(path: PathLike, data: str | bytes, inputs: Iterable[PathLike | None] = ()) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` (see the module docstring for where and how).
    Stdout's own write errors are left to the caller (the command line prints them in one line)."""
    if is_stdout(path):
        _write_stdout(data)
        return
    inputs = list(inputs)
    check_output(path, inputs)
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        st = _stat(path)
        if st is not None and not stat.S_ISREG(st.st_mode):
            _write_in_place(path, raw)
        else:
            from .atomic import atomic_write_bytes

            atomic_write_bytes(Path(os.path.realpath(path)), raw)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None


def _write_stdout(data: str | bytes) -> None:
    if isinstance(data, str):
        sys.stdout.write(data)
    else:
        sys.stdout.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:
            sys.stdout.write(data.decode("utf-8", errors="replace"))
        else:
            buffer.write(data)
    sys.stdout.flush()


def _write_in_place(path: Path, data: bytes) -> None:
    """Plain writes to the character device or FIFO at ``path`` (never created or truncated)."""
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "wb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):  # replaced since it was checked
            raise UserError(f"{path}: changed while it was being opened; nothing written")
        f.write(data)


def make_directory(directory: PathLike) -> Path:
    """Create ``directory`` (and its parents) and prove that a file can be written in it, so that
    a read-only file system or a path under a file fails before hours of work, in one line."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".attnlab-write-test.{os.getpid()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except FileExistsError:
        raise UserError(f"{directory}: is not a directory") from None
    except NotADirectoryError:
        raise UserError(f"{_file_ancestor(directory)}: is not a directory") from None
    except OSError as exc:
        raise UserError(f"{directory}: cannot write ({exc.strerror or exc})") from None
    return directory
