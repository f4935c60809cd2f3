"""matplotlib without a display, and figures written atomically (png, svg or pdf)."""

from __future__ import annotations

import io
from pathlib import Path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no window: attnlab only writes files)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, *, fmt: str = "png", dpi: int = 100) -> None:
    """Render ``fig`` as ``fmt``, close it, and write ``path`` atomically."""
    from ..checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    pyplot().close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
