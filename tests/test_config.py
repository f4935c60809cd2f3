"""The shared pieces of settings dataclasses: JSON form and field checks."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from attnlab.config import JsonConfig, check_fraction, check_positive


@dataclass(frozen=True)
class Sizes(JsonConfig):
    width: int = 8
    widths: tuple[int, ...] = (2, 3)
    dropout: float = 0.1

    def __post_init__(self):
        check_positive(self, ("width",), "sizes ")
        check_fraction(self, ("dropout",))


def test_json_lists_tuples_and_reading_ignores_unknown_keys_and_fills_defaults():
    assert Sizes(width=4).to_json() == {"width": 4, "widths": [2, 3], "dropout": 0.1}
    assert Sizes.from_json({"width": 5, "from_a_newer_version": 1}) == Sizes(width=5, widths=(2, 3), dropout=0.1)


def test_checks_name_the_field_and_its_value():
    with pytest.raises(ValueError, match=r"^sizes width must be >= 1, got 0$"):
        Sizes(width=0)
    with pytest.raises(ValueError, match=r"^dropout must be in \[0, 1\), got 1.0$"):
        Sizes(dropout=1.0)
    Sizes(width=1, dropout=0.0)  # the bounds themselves are allowed
