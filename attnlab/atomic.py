"""Writing a file so that readers never see a partial one (``atomic_write_bytes``): the model
directories of ``attnlab.checkpoint`` and every file a command writes (``attnlab.output``).
No torch here, so that a process that only reads and writes text (``attnlab.distributed``'s
client) does not load it."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from .errors import UserError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a partial file.

    The file is written to ``.NAME.XXXXXXXX.tmp`` beside it, flushed to disk and renamed
    over ``path``. It is created like any new file (mode 0666 minus the umask). A full
    disk raises ``UserError`` naming the directory, any other ``OSError`` one naming ``path``;
    ``path`` is then unchanged. Commands write through ``attnlab.output.write_output``, which
    also writes devices, FIFOs and stdout and refuses a command's own inputs.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp, fd = _create_temporary(path)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(f"{path.parent}: no space left on the device (while writing {path.name}; "
                            "the files already there are unchanged)") from None
        if isinstance(exc, OSError):  # a read-only file system, no permission, a path under a file
            raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise


def _create_temporary(path: Path) -> tuple[Path, int]:
    """A new, empty ``.NAME.XXXXXXXX.tmp`` beside ``path`` and its open descriptor."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            # mode 0o666: the kernel takes the umask off, as for any file a program creates
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: cannot create a temporary file for {path.name}")
