"""Download datasets: resumable, checksummed, never half-written.

    attnlab data get ud-english-ewt --dest data/ud-english-ewt

``DATASETS`` names each dataset with the place it is published, the files to fetch
and, where known, the SHA-256 of each file. A file travels like this:

1. It is written to ``DIR/.<name>.part``. If that file already exists (an earlier
   run was interrupted) the request asks only for the missing tail with an HTTP
   ``Range: bytes=<size>-`` header. A server that ignores Range answers 200 with
   the whole file, and the part file is then started again from zero; a server
   that answers 416 (nothing left past that offset) leaves the part file to be
   checked as it is.
2. The part file's SHA-256 is compared with the expected one. On a mismatch the
   part file is deleted; if it had been resumed, the file is fetched once more
   from the start (the old part may have come from a different version), and
   otherwise the run stops with an error naming the file and both checksums.
3. Only a verified file is moved to its final name with ``os.replace``, so
   ``DIR/<name>`` is either absent, the previous good copy, or the new good copy.

After each file, ``DIR/SHA256SUMS`` (the format ``sha256sum -c`` reads) is rewritten
atomically. For a file whose checksum the registry does not know, that manifest is
what later runs verify against; a file with no known checksum and no manifest entry
is downloaded again rather than trusted. A file whose checksum matches is skipped
without contacting the server, unless ``force`` is set.

Every problem (unknown dataset, HTTP error, unreachable host, timeout, interrupted
transfer, checksum mismatch, unwritable directory) raises ``DownloadError``, a
``ValueError`` with a one-line message naming the URL or the file.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .conllu import split_lines

MANIFEST = "SHA256SUMS"
CHUNK = 64 * 1024
DEFAULT_TIMEOUT = 30.0  # seconds, for connecting and for each read


class DownloadError(ValueError):
    """A download failed or produced the wrong bytes; the message is one line."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name under the base URL, its name on disk, its SHA-256 (or None)."""

    remote: str
    local: str
    sha256: str | None = None


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    base_url: str
    files: tuple[RemoteFile, ...]
    license: str


UD_ENGLISH_EWT_RELEASE = "r2.16"

DATASETS: dict[str, Dataset] = {
    "ud-english-ewt": Dataset(
        name="ud-english-ewt",
        description=f"Universal Dependencies English Web Treebank, release {UD_ENGLISH_EWT_RELEASE} (train/dev/test CoNLL-U)",
        base_url=(
            "https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/"
            f"{UD_ENGLISH_EWT_RELEASE}"
        ),
        # SHA-256 of en_ewt-ud-{train,dev,test}.conllu as distributed at tag r2.16
        # (the same values are published for that release by other projects that pin
        # it). A tag that moved, or a mirror serving other bytes, fails this check.
        files=(
            RemoteFile("en_ewt-ud-train.conllu", "train.conllu",
                       "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b"),
            RemoteFile("en_ewt-ud-dev.conllu", "dev.conllu",
                       "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6"),
            RemoteFile("en_ewt-ud-test.conllu", "test.conllu",
                       "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd"),
        ),
        license="annotations CC BY-SA 4.0; texts from the LDC English Web Treebank (LDC2012T13)",
    ),
}


@dataclass
class FileResult:
    path: Path
    sha256: str
    size: int
    downloaded: bool  # False: an existing complete file was kept


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


# -- the dataset level --------------------------------------------------------------------

def get_dataset(
    dataset: str | Dataset,
    dest: str | os.PathLike,
    *,
    base_url: str | None = None,
    force: bool = False,
    progress: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    log: Callable[[str], None] = _stderr,
) -> list[FileResult]:
    """Fetch every file of ``dataset`` into ``dest``; return what is there afterwards.

    ``base_url`` replaces the dataset's own (a mirror must serve the same bytes:
    the registry's checksums still apply). ``force`` downloads even complete files
    and discards partial ones. ``log`` receives the occasional one-line note
    (resuming, restarting); the progress bars go to stderr.
    """
    if isinstance(dataset, str):
        if dataset not in DATASETS:
            raise DownloadError(f"unknown dataset {dataset!r} (known: {', '.join(sorted(DATASETS))})")
        dataset = DATASETS[dataset]
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"{dest}: cannot create the directory: {exc.strerror or exc}") from None
    base = (base_url or dataset.base_url).rstrip("/")
    manifest = read_manifest(dest / MANIFEST)
    order = [f.local for f in dataset.files]
    results = []
    for f in dataset.files:
        final = dest / f.local
        expected = f.sha256 or manifest.get(f.local)
        result = None
        if force:
            _unlink(_part_path(final))
        elif final.is_file() and expected is None:
            log(f"{final}: no checksum to verify it against; downloading it again")
        elif final.is_file():
            have = file_sha256(final)
            if have == expected:
                result = FileResult(final, have, final.stat().st_size, downloaded=False)
            else:
                log(f"{final}: SHA-256 {have} is not the expected {expected}; downloading it again")
        if result is None:
            sha = fetch(f"{base}/{f.remote}", final, expected_sha256=expected,
                        progress=progress, timeout=timeout, log=log)
            result = FileResult(final, sha, final.stat().st_size, downloaded=True)
        manifest[f.local] = result.sha256
        _write_manifest(dest / MANIFEST, manifest, order)
        results.append(result)
    return results


def read_manifest(path: Path) -> dict[str, str]:
    """``{name: sha256}`` from a ``sha256sum``-style file; empty when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise DownloadError(f"{path}: cannot read the checksum manifest: {exc}") from None
    out = {}
    for lineno, line in enumerate(split_lines(text), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        digest = parts[0].lower()
        if len(parts) != 2 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise DownloadError(f"{path}:{lineno}: expected '<sha256>  <file name>', got {line[:80]!r}")
        out[parts[1].lstrip("*").strip()] = digest
    return out


def _write_manifest(path: Path, manifest: dict[str, str], order: list[str]) -> None:
    from ..output import write_output

    names = [n for n in order if n in manifest] + sorted(n for n in manifest if n not in order)
    text = "".join(f"{manifest[n]}  {n}\n" for n in names)
    with _writing(path):
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return
        write_output(path, text)


# -- one file -------------------------------------------------------------------------------

def fetch(
    url: str,
    final: str | os.PathLike,
    *,
    expected_sha256: str | None = None,
    progress: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    log: Callable[[str], None] = _stderr,
) -> str:
    """Download ``url`` to ``final`` through ``.<name>.part``, resuming it; return the SHA-256.

    ``final`` appears only once the bytes match ``expected_sha256`` (any bytes when it
    is None). A partial file stays behind after a network failure, for the next call
    to resume; after a checksum mismatch nothing is left.
    """
    final = Path(final)
    part = _part_path(final)
    for attempt in range(2):
        offset = part.stat().st_size if part.is_file() else 0
        if offset:
            log(f"{final.name}: resuming at byte {offset}")
        _transfer(url, part, offset, progress=progress, timeout=timeout, desc=final.name, log=log)
        sha = file_sha256(part)
        if expected_sha256 is None or sha == expected_sha256:
            try:
                os.replace(part, final)
            except OSError as exc:
                raise DownloadError(f"{final}: cannot move the download into place: {exc.strerror or exc}") from None
            return sha
        _unlink(part)
        if offset and attempt == 0:
            log(f"{final.name}: SHA-256 mismatch after resuming; downloading it again from the start")
            continue
        raise DownloadError(
            f"{final}: SHA-256 mismatch: expected {expected_sha256}, downloaded {sha} (from {url})"
        )
    raise AssertionError("unreachable")


def _transfer(url: str, part: Path, offset: int, *, progress: bool, timeout: float, desc: str,
              log: Callable[[str], None]) -> None:
    """Append the bytes of ``url`` from ``offset`` on to ``part`` (or rewrite it when the server ignores Range)."""
    response = _request(url, offset, timeout)
    if response is None:
        return  # nothing past offset: the part file may already be whole; the checksum decides
    with response:
        offset = _resume_offset(response, url, part, offset, desc, log)
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        received = _copy(response, url, part, offset, length, progress=progress, desc=desc)
    if length is not None and received != length:
        raise DownloadError(_interrupted(url, part, offset + received, f"{received} of {length} bytes received"))


def _request(url: str, offset: int, timeout: float):
    """The open response to a GET of ``url`` from byte ``offset`` on; None when the server
    answers 416 to a resumed request (it has no bytes past ``offset``)."""
    from .. import __version__

    headers = {"User-Agent": f"attnlab/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return None
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"cannot reach {url}: {_reason(exc.reason)}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot reach {url}: {_reason(exc)}") from None


def _resume_offset(response, url: str, part: Path, offset: int, desc: str, log: Callable[[str], None]) -> int:
    """Where the response's body starts in ``part``: ``offset`` when the server sent that range,
    0 when it ignored the Range request and sends the whole file."""
    if offset and response.status == 206:
        if _content_range_start(response.headers.get("Content-Range")) != offset:
            _unlink(part)
            raise DownloadError(
                f"{url}: asked for bytes from {offset}, server sent Content-Range "
                f"{response.headers.get('Content-Range')!r}; the partial file was discarded, run again"
            )
    elif offset:
        log(f"{desc}: the server ignored the Range request; downloading from the start")
        offset = 0
    return offset


def _copy(response, url: str, part: Path, offset: int, length: int | None, *, progress: bool, desc: str) -> int:
    """Write the response's body to ``part`` after its first ``offset`` bytes (from the start
    when 0), flushed to disk; returns the bytes received."""
    from tqdm import tqdm

    with _writing(part):
        out = open(part, "ab" if offset else "wb")
    bar = tqdm(total=None if length is None else offset + length, initial=offset, desc=desc, unit="B",
               unit_scale=True, unit_divisor=1024, file=sys.stderr, disable=not progress, leave=True)
    received = 0
    with out, bar:
        while chunk := _read_chunk(response, url, part, offset + received):
            with _writing(part):
                out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
        with _writing(part):
            out.flush()
            os.fsync(out.fileno())
    return received


def _read_chunk(response, url: str, part: Path, have: int) -> bytes:
    """The next chunk of the body (b"" at its end); a failure says how much ``part`` keeps."""
    try:
        return response.read(CHUNK)
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadError(_interrupted(url, part, have, _reason(exc))) from None


@contextmanager
def _writing(path: Path):
    """Turn an OSError inside the block into a DownloadError: '<path>: cannot write: ...'."""
    try:
        yield
    except OSError as exc:
        raise DownloadError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _interrupted(url: str, part: Path, have: int, why: str) -> str:
    return f"{url}: download interrupted ({why}); {have} bytes kept in {part}, run again to resume"


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/200"
    if not value or not value.startswith("bytes "):
        return None
    first = value[6:].split("-", 1)[0].strip()
    return int(first) if first.isdigit() else None


def _reason(reason) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    text = str(reason) or type(reason).__name__
    return " ".join(text.split())


def _part_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.part")


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
