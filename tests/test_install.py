"""A plain `pip install attnlab` (no extras) runs the main job: `attnlab demo` imports nothing
that only an optional extra installs."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def extra_only_modules() -> set[str]:
    """Import names of the packages that only an extra (not the core) brings in."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]

    def names(requirements):
        return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower().replace("-", "_") for r in requirements}

    optional = set().union(*map(names, project["optional-dependencies"].values()))
    return optional - names(project["dependencies"])


def test_the_extras_are_what_the_test_blocks():
    assert extra_only_modules() == {
        "starlette", "uvicorn", "pytest", "hypothesis", "selenium", "transformers", "tokenizers", "onnxruntime", "onnx",
    }


def test_demo_runs_without_any_extra(tmp_path):
    blocked = sorted(extra_only_modules())
    code = textwrap.dedent(f"""
        import sys
        for name in {blocked!r}:
            sys.modules[name] = None  # `import name` now fails as if it were not installed
        from attnlab.cli import main
        sys.exit(main(["demo", "--threads", "1", "--no-progress", "--out", {str(tmp_path / "out")!r}]))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "out" / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "attention tagger: correct on 'I saw a saw'" in r.stdout
