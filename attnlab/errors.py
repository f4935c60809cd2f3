"""Errors that the command line prints as one line (exit code 2) instead of a traceback."""

from __future__ import annotations

import importlib.util
from typing import Sequence


class UserError(Exception):
    """A problem with what the user asked for: printed as one line, exit code 2."""


class MissingExtra(UserError):
    """An optional feature whose extra is not installed; the message says what to install."""


def require_extra(extra: str, modules: Sequence[str]) -> None:
    """Raise ``MissingExtra`` unless every module in ``modules`` can be imported.

    Call it before any work, e.g. ``require_extra("serve", ["starlette", "uvicorn"])``; the
    command line prints ``attnlab serve: needs the 'serve' extra: pip install 'attnlab[serve]'``.
    Only looks the modules up (``importlib.util.find_spec``): nothing is imported.
    """
    if not all(_importable(m) for m in modules):
        raise MissingExtra(f"needs the {extra!r} extra: pip install 'attnlab[{extra}]'")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or a broken module entry
        return False
