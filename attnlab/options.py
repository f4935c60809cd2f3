"""Numeric options and arguments: each has a stated range, checked in one place.

On the command line a range is the option's argparse type; ``--help`` shows it after the
option's help, and a value outside it is refused before any work (exit code 2)::

    p.add_argument("--batch-size", type=positive_int, default=8192, help="tokens per batch")
    #   --batch-size BATCH_SIZE   tokens per batch [an integer >= 1]
    #   attnlab tag --batch-size 0  ->  argument --batch-size: expected an integer >= 1, got '0'

In Python the same range checks an argument and names it: a value of the wrong type raises
TypeError (``True`` is not an integer here), one outside the range ValueError::

    positive_int.check(batch_tokens, "batch_tokens")   # ValueError: batch_tokens must be an integer >= 1, got 0

Every number a range accepts is finite: ``inf`` and ``nan`` are refused everywhere.
No torch here: building the command line stays fast.
"""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import dataclass

from .config import MAX_LAYERS, MAX_WIDTH
from .data.conllu import MAX_SENTENCE_WORDS

MAX_SEED = 2**32 - 1  # seeds: 0 .. 2^32 - 1, what every random generator used here accepts
MAX_BEAM = 64  # beam search width of a lemmatizer
MAX_PORT = 65535


@dataclass(frozen=True)
class Range:
    """Integers (``kind`` int) or finite numbers (``kind`` float) from ``low`` to ``high``
    (None: no bound); ``low_open`` / ``high_open`` leave the bound itself out."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        """The range in words: "an integer >= 1", "a number >= 0 and < 1", "an integer from 1 to 64"."""
        what = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None and not (self.low_open or self.high_open):
            return f"{what} from {_number(self.low)} to {_number(self.high)}"
        bounds = [f"{'>' if self.low_open else '>='} {_number(self.low)}" if self.low is not None else "",
                  f"{'<' if self.high_open else '<='} {_number(self.high)}" if self.high is not None else ""]
        if self.kind is float and not all(bounds):
            what = "a finite number"  # a bound on one side: say that infinity is not in range
        return " ".join([what, " and ".join(b for b in bounds if b)]).strip()

    def __str__(self) -> str:
        return self.describe()

    def contains(self, value: float) -> bool:
        if self.kind is float and not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or (value < self.high or (not self.high_open and value == self.high))

    def check(self, value, name: str):
        """``value`` (as an int or a float) when it is in range; TypeError or ValueError naming
        ``name`` otherwise."""
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if self.kind is int else numbers.Real):
            raise TypeError(f"{name} must be {self.describe()}, not {type(value).__name__} ({value!r:.40})")
        value = self.kind(value)
        if not self.contains(value):
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")
        return value

    def __call__(self, text: str):
        """The argparse type: ``text`` as a number in range, else ArgumentTypeError."""
        try:
            value = self.kind(text.strip())
        except ValueError:
            value = None
        if value is None or not self.contains(value):
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}")
        return value


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def int_range(low: int | None = None, high: int | None = None) -> Range:
    return Range(int, low, high)


positive_int = int_range(1)
non_negative_int = int_range(0)
finite_float = Range(float)
positive_float = Range(float, 0.0, low_open=True)
non_negative_float = Range(float, 0.0)
probability = Range(float, 0.0, 1.0)
fraction = Range(float, 0.0, 1.0, high_open=True)  # a dropout rate, label smoothing: 1 is not allowed
seed = int_range(0, MAX_SEED)
width = int_range(1, MAX_WIDTH)  # a model size (hidden, heads, feed-forward ...), as model loaders accept it
layers = int_range(1, MAX_LAYERS)  # a layer count, as model loaders accept it
port = int_range(0, MAX_PORT)
sentence_words = int_range(1, MAX_SENTENCE_WORDS)  # words of one sentence, as the readers accept them
beam = int_range(1, MAX_BEAM)


def show_ranges(parser: argparse.ArgumentParser) -> None:
    """Append the range of every option with a ``Range`` type to its help, in ``parser`` and
    all its subcommands: ``tokens per batch [an integer >= 1]``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                show_ranges(sub)
        elif isinstance(action.type, Range) and action.help is not argparse.SUPPRESS:
            suffix = f"[{action.type.describe()}]"
            if not (action.help or "").endswith(suffix):
                action.help = f"{action.help} {suffix}" if action.help else suffix
