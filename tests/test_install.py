"""A plain `pip install attnlab` (no extras) runs the main job: `attnlab demo` imports nothing
that only an optional extra installs, and says which extra draws its picture. The commands
that only draw name their extra before any work."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

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
        "matplotlib", "starlette", "uvicorn", "pytest", "hypothesis", "selenium", "mypy", "transformers", "tokenizers",
        "onnxruntime", "onnx", "distributed",
    }


def run_blocked(args: list[str], cwd: Path, blocked: list[str]) -> subprocess.CompletedProcess:
    """`attnlab ARGS` in a fresh interpreter where the ``blocked`` packages cannot be imported."""
    code = textwrap.dedent(f"""
        import sys
        for name in {sorted(blocked)!r}:
            sys.modules[name] = None  # `import name` now fails as if it were not installed
        from attnlab.cli import main
        sys.exit(main({args!r}))
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=cwd)


def test_demo_runs_without_any_extra(tmp_path):
    out = tmp_path / "out"
    r = run_blocked(["demo", "--threads", "1", "--no-progress", "--out", str(out)], tmp_path,
                    sorted(extra_only_modules()))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "attention tagger: correct on 'I saw a saw'" in r.stdout
    assert ("attention.png not drawn: the picture of the attention weights needs the 'viz' extra: "
            "pip install 'attnlab[viz]'") in r.stdout
    assert not (out / "attention.png").exists()
    assert (out / "attention-tagger" / "config.json").is_file()
    assert 'the shipped English model (attnlab.load("en")' in r.stdout


def test_drawing_commands_name_the_viz_extra_before_any_work(tmp_path):
    """explain (an image) and experiment (plots) say which extra to install without matplotlib,
    before a model is loaded or an experiment runs (the model named here does not exist)."""
    message = "needs the 'viz' extra: pip install 'attnlab[viz]'"
    r = run_blocked(["explain", "--model", str(tmp_path / "missing"), "I saw a saw"], tmp_path, ["matplotlib"])
    assert (r.returncode, r.stderr) == (2, f"attnlab explain: {message}\n")
    r = run_blocked(["experiment", "graph", "--quick", "--out", str(tmp_path / "results")], tmp_path, ["matplotlib"])
    assert (r.returncode, r.stderr) == (2, f"attnlab experiment: {message}\n")
    assert not (tmp_path / "results").exists()


def test_tagging_on_a_cluster_names_the_cluster_extra_before_any_work(tmp_path):
    """Without distributed, `attnlab tag --scheduler` says which extra to install before it reads
    the model (which does not exist here) or the input; without --scheduler, tagging needs no
    extra."""
    r = run_blocked(["tag", "--model", str(tmp_path / "missing"), "in.txt", "--scheduler", "local:2"], tmp_path,
                    ["distributed"])
    assert (r.returncode, r.stderr) == (2, "attnlab tag: needs the 'cluster' extra: pip install 'attnlab[cluster]'\n")
    r = run_blocked(["tag", "--model", str(tmp_path / "missing"), "in.txt"], tmp_path, ["distributed"])
    assert r.returncode == 2 and "no such model directory" in r.stderr


def test_demo_draws_its_picture_with_the_viz_extra(tmp_path):
    pytest.importorskip("matplotlib", reason="the 'viz' extra is not installed")
    out = tmp_path / "out"
    r = run_blocked(["demo", "--epochs", "1", "--threads", "1", "--no-progress", "--out", str(out)], tmp_path,
                    sorted(extra_only_modules() - {"matplotlib"}))
    assert r.returncode in (0, 1), r.stderr[-2000:]  # one epoch may not tell the two "saw" apart yet
    assert (out / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {out / 'attention.png'} (attention weights, every layer and head)" in r.stdout
    assert "not drawn" not in r.stdout
