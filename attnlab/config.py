"""Settings as frozen dataclasses: checks of their fields and their JSON form, written once.

    @dataclass(frozen=True)
    class SizeConfig(JsonConfig):
        width: int = 64

        def __post_init__(self):
            check_positive(self, ("width",))

No torch here: the command line reads settings without loading it.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, ClassVar, Iterable, TypeVar

C = TypeVar("C", bound="JsonConfig")

MAX_WIDTH = 65536  # limit of every size in a model description (widths, heads, lengths)
MAX_LAYERS = 64  # limit of every "...layers" in a model description


class JsonConfig:
    """A mixin for dataclasses of plain values: ``to_json`` (tuples become lists) and
    ``from_json`` (keys the class does not know are ignored, missing ones take defaults)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # set by @dataclass on every subclass

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls: type[C], obj: dict) -> C:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


def check_positive(config, names: Iterable[str], what: str = "") -> None:
    """Raise ValueError unless every field in ``names`` is >= 1; ``what`` starts the message."""
    for name in names:
        value = getattr(config, name)
        if value < 1:
            raise ValueError(f"{what}{name} must be >= 1, got {value}")


def check_fraction(config, names: Iterable[str], what: str = "") -> None:
    """Raise ValueError unless every field in ``names`` is in [0, 1) (a dropout rate)."""
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{what}{name} must be in [0, 1), got {value}")
