"""The tagging data the EWT experiments use: a treebank, or the bundled demo corpus."""

from __future__ import annotations

import os
from pathlib import Path

from ..data.conllu import read_conllu
from ..data.treebank import ENV, find_split, resolve_treebank


def load_tagging_data(treebank: Path | None, *, allow_demo: bool) -> tuple[str, list, list, list]:
    """(name, train, dev, test) from ``treebank`` or ``$ATTNLAB_DATA``; with ``allow_demo``
    (the --quick path) the bundled demo corpus stands in when neither is given."""
    if treebank is None and not os.environ.get(ENV, "").strip():
        if not allow_demo:
            raise ValueError(f"this experiment needs a treebank: pass --treebank DIR or set {ENV} "
                             "(or use --quick, which runs on the bundled demo corpus)")
        from ..data.demo import demo_paths

        paths = demo_paths()
        train, dev, test = (read_conllu(paths[s]) for s in ("train", "dev", "test"))
        return "demo corpus (bundled)", train, dev, test
    root = resolve_treebank(treebank)
    train, dev, test = (read_conllu(find_split(root, s)) for s in ("train", "dev", "test"))
    return str(root), train, dev, test
