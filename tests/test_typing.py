"""The package type-checks: `mypy` in its default mode finds nothing in attnlab (the settings
are [tool.mypy] in pyproject.toml), and the public API has real types, not Any (the names of
``attnlab`` are imported on first use, so type checkers read them from a TYPE_CHECKING block).

mypy comes with the ``dev`` extra; without it the mypy tests skip and say so. Its cache
(.mypy_cache/ in the project root) makes a second run take seconds."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import attnlab

ROOT = Path(__file__).resolve().parents[1]
needs_mypy = pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                                reason="mypy is not installed (pip install 'attnlab[dev]')")


def mypy(*args: str) -> subprocess.CompletedProcess:
    """``python -m mypy ARGS`` in the project root, on this tree's attnlab (MYPYPATH wins over
    an installed copy)."""
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


@needs_mypy
def test_mypy_finds_no_error_in_the_package():
    r = mypy()  # the files and settings of [tool.mypy]
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert r.stdout.startswith("Success: no issues found"), r.stdout


@needs_mypy
def test_the_public_api_has_types(tmp_path):
    use = tmp_path / "use_attnlab.py"
    use.write_text(textwrap.dedent("""
        import attnlab
        tagger = attnlab.load("en")
        reveal_type(tagger)
        reveal_type(tagger("I saw a saw."))
        reveal_type(tagger(["I saw a saw.", "A saw."]))
        reveal_type(tagger.tag([["I", "saw"]])[0][0])
        reveal_type(attnlab.MultiHeadSelfAttention(d_model=8, heads=2))
        reveal_type(attnlab.shipped_models())
    """), encoding="utf-8")
    r = mypy(str(use))
    revealed = [line.split("Revealed type is ", 1)[1].strip('"').replace("builtins.", "")  # as mypy < 2 writes them
                for line in r.stdout.splitlines() if "Revealed type is" in line]
    assert revealed == [
        "attnlab.api.Tagger", "attnlab.api.Document", "list[attnlab.api.Document]",
        "attnlab.api.TaggedWord", "attnlab.modules.MultiHeadSelfAttention", "dict[str, pathlib.Path]",
    ], r.stdout


def imported(module: str, name: str) -> tuple[str, str | None]:
    """``from <module> import <name>`` inside attnlab as ``_EXPORTS`` writes it: (module, None)
    for a submodule, else (module, attribute)."""
    sub = f"{module.rstrip('.')}.{name}"  # "." + "api" -> ".api"
    path = ROOT / "attnlab" / Path(*sub.strip(".").split("."))
    return (sub, None) if path.with_suffix(".py").is_file() or path.is_dir() else (module, name)


def test_type_checkers_see_every_lazy_name():
    """The TYPE_CHECKING imports of attnlab/__init__.py name exactly the names ``__getattr__``
    imports on first use, from the same modules."""
    tree = ast.parse((ROOT / "attnlab" / "__init__.py").read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    seen = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.unparse(node)
        for alias in node.names:
            seen[alias.asname or alias.name] = imported("." + (node.module or ""), alias.name)
    assert seen == attnlab._EXPORTS
