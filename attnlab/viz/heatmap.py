"""Attention weights of one sentence as a grid of heatmaps: layers down, heads across.

Shape letters: L layers, H heads, n tokens. ``weights[l, h, i, j]`` is alpha'_{i,j} of head h
in layer l: how much query token i (a row) attends to key token j (a column).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

FORMATS = ("png", "svg", "pdf")
MAX_PIXELS = 8000  # longest side of a PNG


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

    ``layer`` / ``head`` (numbered from 0) keep one row / one column of the grid. Tokens label
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

    panel = min(max(2.6, 0.28 * n + 1.2), 9.0)  # inches per heatmap: room for the labels
    size = (panel * len(cols) + 1.2, panel * len(rows) + 0.9)
    dpi = min(dpi, int(MAX_PIXELS / max(size)))  # big grids: smaller dots rather than a giant file
    fig, axes = plt.subplots(len(rows), len(cols), figsize=size, squeeze=False, constrained_layout=True)
    drawn = np.empty((len(rows), len(cols), n, n))
    image = None
    for r, l in enumerate(rows):
        for c, h in enumerate(cols):
            image = _heatmap(axes[r, c], w[l, h], labels, vmax, title=f"layer {l + 1}, head {h + 1}",
                             bottom=r == len(rows) - 1, left=c == 0)
            drawn[r, c] = np.asarray(image.get_array())
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="alpha'_(i,j)")
    fig.suptitle(title or ('attention on "' + " ".join(tokens) + '"'), fontsize=10)
    save_figure(fig, path, fmt=fmt, dpi=dpi)
    return drawn


def _as_weights(weights, n: int) -> np.ndarray:
    """``weights`` (a tensor or an array) as float64 (L, H, n, n), or a ValueError naming the shape."""
    w = np.asarray(weights.detach().cpu() if hasattr(weights, "detach") else weights, dtype=np.float64)
    if w.ndim != 4 or w.shape[2:] != (n, n):
        raise ValueError(f"weights must have shape (L, H, n, n) with n = {n} tokens, got {tuple(w.shape)}")
    return w


def _heatmap(ax, weights: np.ndarray, labels: Sequence[str], vmax: float, *, title: str, bottom: bool, left: bool):
    """One (n, n) heatmap: queries i down, keys j across; axis names only on the grid's edges."""
    n = len(labels)
    small = 8 if n <= 20 else 6
    image = ax.imshow(weights, vmin=0.0, vmax=vmax, cmap="viridis", interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=small)
    ax.set_yticks(range(n), labels if left else [""] * n, fontsize=small)
    if bottom:
        ax.set_xlabel("key j (attended to)", fontsize=8)
    if left:
        ax.set_ylabel("query i", fontsize=8)
    return image

