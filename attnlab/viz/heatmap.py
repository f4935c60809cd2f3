"""Attention weights of one sentence as a grid of heatmaps: layers down, heads across.

Shape letters: L layers, H heads, n tokens. ``weights[l, h, i, j]`` is alpha'_{i,j} of head h
in layer l: how much query token i (a row) attends to key token j (a column).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

FORMATS = ("png", "svg", "pdf")
MAX_PIXELS = 4000  # longest side of an image, in pixels
MAX_WIDTH = 27.0  # inches: a wider grid wraps each layer's heads over several rows
COLOURBAR_LABEL = r"attention weight $\alpha'_{ij}$"


def _labels(tokens: Sequence[str], tags: Sequence[str] | None) -> list[str]:
    if tags is None:
        return list(tokens)
    if len(tags) != len(tokens):
        raise ValueError(f"got {len(tags)} tags for {len(tokens)} tokens")
    return [f"{w}/{t}" for w, t in zip(tokens, tags)]


def _pick(count: int, index: int | None, what: str) -> list[int]:
    if index is None:
        return list(range(count))
    if not 0 <= index < count:
        raise ValueError(f"{what} {index + 1} does not exist: there are {count} {what}s (1..{count})")
    return [index]


def image_format(path: str | Path) -> str:
    """The format ``path`` asks for ("png", "svg" or "pdf"), after checking that an image can be
    written there: a known suffix, not a directory, and no regular file where a directory must be
    (missing directories are created when the image is written). Cheap: call it before any work."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"{path}: unknown image format {path.suffix!r}; use one of .{', .'.join(FORMATS)}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory; name an image file, e.g. {path / 'attn.png'}")
    existing = next(p for p in path.absolute().parents if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{path}: {existing} is not a directory")
    return fmt


def plot_attention_grid(
    tokens: Sequence[str],
    weights,
    *,
    tags: Sequence[str] | None = None,
    layer: int | None = None,
    head: int | None = None,
    path: str | Path,
    title: str | None = None,
    dpi: int = 110,
) -> np.ndarray:
    """Draw ``weights`` (L, H, n, n) as a grid of heatmaps and write it to ``path`` atomically.

    ``layer`` / ``head`` (numbered from 0) keep one row / one column of the grid; a layer with
    many heads of a long sentence wraps its heads over several rows (``grid_layout``). Tokens label
    both axes (with their predicted tag when ``tags`` is given). The format follows the
    suffix of ``path`` (png, svg or pdf). Returns the arrays drawn, (L', H', n, n), read back
    from the figure's images.
    """
    from .figure import pyplot, save_figure

    plt = pyplot()
    fmt = image_format(path)
    n = len(tokens)
    w = _as_weights(weights, n)
    labels = _labels(tokens, tags)
    rows, cols = _pick(w.shape[0], layer, "layer"), _pick(w.shape[1], head, "head")
    vmax = max(1.0, float(w.max())) if w.size else 1.0  # softmax weights lie in [0, 1]; relu's may exceed 1

    size, per_row, dpi, font = grid_layout(n, len(rows), len(cols), dpi)
    wraps = -(-len(cols) // per_row)  # grid rows per layer
    fig, axes = plt.subplots(len(rows) * wraps, per_row, figsize=size, squeeze=False, constrained_layout=True)
    drawn = np.empty((len(rows), len(cols), n, n))
    image = None
    for r, l in enumerate(rows):
        for c, h in enumerate(cols):
            row, col = r * wraps + c // per_row, c % per_row
            last = r == len(rows) - 1 and c + per_row >= len(cols)  # nothing below it in its column
            image = _heatmap(axes[row, col], w[l, h], labels, vmax, title=f"layer {l + 1}, head {h + 1}",
                             bottom=last, left=col == 0, font=font)
            drawn[r, c] = np.asarray(image.get_array())
    for ax in axes.flat:  # the slots a wrapped layer leaves empty
        if not ax.images:
            ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=[ax for ax in axes.flat if ax.get_visible()], shrink=0.6).set_label(
            COLOURBAR_LABEL, fontsize=max(font, 8))
    fig.suptitle(title or ('attention on "' + " ".join(tokens) + '"'), fontsize=10)
    save_figure(fig, path, fmt=fmt, dpi=dpi)
    return drawn


def grid_layout(n: int, rows: int, cols: int, dpi: int) -> tuple[tuple[float, float], int, int, float]:
    """How to draw ``rows`` x ``cols`` heatmaps of n tokens: (figure size in inches, heatmaps per
    grid row, dots per inch, label size in points). A token gets 0.28 inch (short sentences) down
    to 0.13 inch (long ones), which keeps its 7-8 pt label readable; a grid wider than
    ``MAX_WIDTH`` wraps each layer's heads over several rows (a grid too large for that anyway is
    laid out about square); the longest side stays within ``MAX_PIXELS`` (past that the dots get
    smaller: choose a layer and a head to read the labels, ``label_pixels`` says how small)."""
    cell = min(max(3.4 / n, 0.13), 0.28)  # inches per token
    panel = max(2.6, cell * n + 1.2)  # inches per heatmap, with room for its title and ticks
    font = min(8.0, max(7.0, 0.75 * cell * 72))
    fits = int((MAX_WIDTH - 1.2) // panel)  # heatmaps side by side within MAX_WIDTH
    per_row = max(1, min(cols, max(fits, math.ceil(math.sqrt(rows * cols)))))  # else about square
    wraps = -(-cols // per_row)
    size = (panel * per_row + 1.2, panel * rows * wraps + 0.9)
    return size, per_row, min(dpi, int(MAX_PIXELS / max(size))), font


def label_pixels(n: int, rows: int, cols: int, dpi: int = 110) -> float:
    """The height in pixels of the token labels ``plot_attention_grid`` writes for such a grid."""
    _, _, dots, font = grid_layout(n, rows, cols, dpi)
    return font * dots / 72


def _as_weights(weights, n: int) -> np.ndarray:
    """``weights`` (a tensor or an array) as float64 (L, H, n, n), or a ValueError naming the shape."""
    w = np.asarray(weights.detach().cpu() if hasattr(weights, "detach") else weights, dtype=np.float64)
    if w.ndim != 4 or w.shape[2:] != (n, n):
        raise ValueError(f"weights must have shape (L, H, n, n) with n = {n} tokens, got {tuple(w.shape)}")
    return w


def _heatmap(ax, weights: np.ndarray, labels: Sequence[str], vmax: float, *, title: str, bottom: bool, left: bool,
             font: float):
    """One (n, n) heatmap: queries i down, keys j across; axis names only on the grid's edges."""
    n = len(labels)
    small = font
    image = ax.imshow(weights, vmin=0.0, vmax=vmax, cmap="viridis", interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks(range(n), labels if bottom else [""] * n, rotation=90, fontsize=small)
    ax.set_yticks(range(n), labels if left else [""] * n, fontsize=small)
    if bottom:
        ax.set_xlabel("key j (attended to)", fontsize=8)
    if left:
        ax.set_ylabel("query i", fontsize=8)
    return image

