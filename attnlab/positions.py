"""Position information for packed sequences.

Self-attention alone ignores order: without positions both "saw" in "I saw a saw"
get the same output. In a packed batch (tokens (T, D), ``cu_seqlens`` (B + 1,)) every
token's position is its index within its own sequence,
``attnlab.packing.positions_in_sequence(cu_seqlens)`` (T,), so sequence b starts at 0
whatever comes before it.

Kinds (``POSITIONS``):

* ``"none"``: nothing is added;
* ``"sinusoidal"``: the fixed table PE[p, 2i] = sin(p / 10000^(2i/D)),
  PE[p, 2i + 1] = cos(p / 10000^(2i/D)) is added to the input once;
* ``"learned"``: a trained (max_len, D) table is added to the input once;
* ``"rotary"``: inside every attention layer, q and k of each head are rotated pair by
  pair, (x_{2i}, x_{2i+1}) by the angle p * theta_i with theta_i = base^(-2i/d), so
  q_p . k_r depends on p - r only.
"""

from __future__ import annotations


import torch
import torch.nn as nn

POSITIONS = ("none", "sinusoidal", "learned", "rotary")


def check_positions(kind: str) -> str:
    if kind not in POSITIONS:
        raise ValueError(f"positions={kind!r} is unknown; choose one of {', '.join(POSITIONS)}")
    return kind


def _check_positions_tensor(positions: torch.Tensor, rows: int, max_len: int | None = None) -> None:
    if positions.dim() != 1 or positions.shape[0] != rows:
        raise ValueError(f"positions must have shape (T,) = ({rows},), got {tuple(positions.shape)}")
    if max_len is not None and positions.numel() and int(positions.max()) >= max_len:
        raise ValueError(
            f"a sequence is {int(positions.max()) + 1} tokens long but max_len = {max_len}; build with a larger max_len"
        )


def sinusoidal_table(max_len: int, d_model: int, *, base: float = 10000.0) -> torch.Tensor:
    """(max_len, D): PE[p, 2i] = sin(p / base^(2i/D)), PE[p, 2i + 1] = cos(p / base^(2i/D)),
    made on the CPU (as ``RotaryPositions.inv_freq``)."""
    if d_model % 2:
        raise ValueError(f"sinusoidal positions need an even d_model, got {d_model}")
    p = torch.arange(max_len, dtype=torch.float64, device="cpu")[:, None]  # (max_len, 1)
    inv = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64, device="cpu") / d_model)  # (D/2,)
    table = torch.empty(max_len, d_model, dtype=torch.float64, device="cpu")
    table[:, 0::2] = torch.sin(p * inv)
    table[:, 1::2] = torch.cos(p * inv)
    return table.float()


class SinusoidalPositions(nn.Module):
    """Adds the fixed sinusoidal table: x (T, D), positions (T,) -> x + PE[positions]."""

    table: torch.Tensor  # a buffer (registered in __init__)

    def __init__(self, d_model: int, max_len: int):
        super().__init__()
        self.max_len = max_len
        self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        _check_positions_tensor(positions, x.shape[0], self.max_len)
        return x + self.table.to(x.dtype).index_select(0, positions)


class LearnedPositions(nn.Module):
    """Adds a trained table: x (T, D), positions (T,) -> x + E[positions]."""

    def __init__(self, d_model: int, max_len: int):
        super().__init__()
        self.max_len = max_len
        self.table = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        _check_positions_tensor(positions, x.shape[0], self.max_len)
        return x + self.table(positions)


class RotaryPositions(nn.Module):
    """Rotary position embedding for one head width d (even).

    ``rotate(x, positions)``: x (T, ..., d), positions (T,) -> x with each pair
    (x_{2i}, x_{2i+1}) of row t turned by the angle positions[t] * theta_i. Attention
    layers call ``rotate_`` on their freshly projected q and k (in place, no copy).
    """

    inv_freq: torch.Tensor  # a buffer (registered in __init__)

    def __init__(self, d_head: int, *, base: float = 10000.0):
        super().__init__()
        if d_head % 2:
            raise ValueError(f"rotary positions need an even head width, got d = {d_head}")
        self.d_head, self.base = d_head, base
        # made on the CPU (module.to moves it): computed on "meta", these few numbers would cost
        # the first use of torch's reference ops, about 1.5 s
        inv = base ** (-torch.arange(0, d_head, 2, dtype=torch.float64, device="cpu") / d_head)  # (d/2,) theta_i
        self.register_buffer("inv_freq", inv, persistent=False)
        self._table: torch.Tensor | None = None  # e^{i p theta} for p < len(table), grown on demand

    def rotations(self, positions: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(T,) -> complex (T, d/2): e^{i p theta}, in the complex dtype matching ``dtype``."""
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        need = int(positions.max()) + 1 if positions.numel() else 0
        table = self._table
        if table is None or table.shape[0] < need or table.dtype != cdtype or table.device != positions.device:
            size = max(need, 256 if table is None else 2 * table.shape[0])
            p = torch.arange(size, dtype=torch.float64, device=positions.device)
            angles = p[:, None] * self.inv_freq.to(positions.device)  # (size, d/2), in float64
            table = torch.polar(torch.ones_like(angles), angles).to(cdtype)
            self._table = table
        return table.index_select(0, positions)

    def _as_complex(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.d_head:
            raise ValueError(f"rotary positions were built for d = {self.d_head}, got head width {x.shape[-1]}")
        return torch.view_as_complex(x.unflatten(-1, (self.d_head // 2, 2)))  # (T, ..., d/2)

    def _broadcast(self, cis: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return cis.reshape(cis.shape[0], *([1] * (x.dim() - 2)), cis.shape[1])  # (T, 1, ..., d/2)

    def rotate(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x (T, ..., d), positions (T,) -> rotated copy (T, ..., d)."""
        _check_positions_tensor(positions, x.shape[0])
        if x.dtype not in (torch.float32, torch.float64):  # bfloat16, float16: turned in float32, rounded back
            return self.rotate(x.float(), positions).to(x.dtype)
        cis = self._broadcast(self.rotations(positions, x.dtype), x)
        return torch.view_as_real(self._as_complex(x.contiguous()) * cis).flatten(-2)

    def rotate_(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """In place: x (T, ..., d) whose last axis is contiguous (e.g. q and k sliced out of
        one projection). Returns x. A bfloat16 or float16 x (which has no complex dtype to
        view it as) is turned in float32 and rounded back once."""
        _check_positions_tensor(positions, x.shape[0])
        if x.dtype not in (torch.float32, torch.float64):
            return x.copy_(self.rotate(x, positions))
        cis = self._broadcast(self.rotations(positions, x.dtype), x)
        self._as_complex(x).mul_(cis)
        return x


def make_positions(kind: str, d_model: int, heads: int, max_len: int) -> nn.Module | None:
    """The module for ``kind``: added to the input (sinusoidal, learned), used by attention
    (rotary) or None."""
    check_positions(kind)
    if kind == "sinusoidal":
        return SinusoidalPositions(d_model, max_len)
    if kind == "learned":
        return LearnedPositions(d_model, max_len)
    if kind == "rotary":
        return RotaryPositions(d_model // heads)
    return None
