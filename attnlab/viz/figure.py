"""matplotlib without a display, and figures written through ``attnlab.output`` (png, svg or pdf).

matplotlib comes with the ``viz`` extra (``pip install 'attnlab[viz]'``): what draws a
picture calls ``require_viz`` before any work, so a plain install says which extra to add.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..errors import require_extra


def require_viz() -> None:
    """Raise ``MissingExtra`` naming the ``viz`` extra unless matplotlib can be imported."""
    require_extra("viz", ["matplotlib"])


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no window: attnlab only writes files)."""
    require_viz()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, *, fmt: str = "png", dpi: int = 100) -> None:
    """Render ``fig`` as ``fmt``, close it, and write ``path`` (``attnlab.output.write_output``:
    a file atomically, a device or FIFO in place)."""
    from ..output import write_output

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    pyplot().close(fig)
    write_output(path, buf.getvalue())
