"""Errors that the command line prints as one line (exit code 2) instead of a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with what the user asked for: printed as one line, exit code 2."""
