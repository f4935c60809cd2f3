"""README.md reads the same on a package index as in the source tree: no relative links or
images (they break once the page is rendered away from the files), and every file of the
source tree that it names ships in the source distribution (MANIFEST.in) or the package."""

from __future__ import annotations

import re
import shlex
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ALWAYS_IN_SDIST = {"README.md", "LICENSE", "pyproject.toml", "MANIFEST.in"}  # setuptools adds these itself

LINK_TARGETS = [
    r"\]\(\s*<?([^)\s>]+)",  # [text](target), ![alt](target)
    r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)",  # [label]: target
    r"""\b(?:src|href)\s*=\s*["']([^"']+)""",  # <img src="...">, <a href="...">
]


def link_targets(text: str) -> list[str]:
    return [m.group(1) for pattern in LINK_TARGETS for m in re.finditer(pattern, text, re.MULTILINE)]


def is_absolute(target: str) -> bool:
    return target.startswith("#") or re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) is not None


def test_link_finder_sees_every_kind_of_link():
    text = ("see [B](BENCHMARKS.md), ![img](docs/a.png)\n[ref]: docs/x.md\n<img src=\"docs/b.png\">"
            " [ok](https://example.org/a) [top](#install)\n")
    assert link_targets(text) == ["BENCHMARKS.md", "docs/a.png", "https://example.org/a", "#install",
                                  "docs/x.md", "docs/b.png"]
    assert [t for t in link_targets(text) if not is_absolute(t)] == [
        "BENCHMARKS.md", "docs/a.png", "docs/x.md", "docs/b.png"]


def test_readme_has_no_relative_links():
    relative = [t for t in link_targets(README) if not is_absolute(t)]
    assert relative == [], f"relative links break on a package index; name the file as text instead: {relative}"


def sdist_rules() -> list[tuple[str, list[str]]]:
    """MANIFEST.in as (directive, arguments); only the directives this project uses."""
    rules = []
    for line in (ROOT / "MANIFEST.in").read_text(encoding="utf-8").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] in {"include", "graft", "global-exclude"}, f"MANIFEST.in: unexpected {line!r}"
            rules.append((words[0], words[1:]))
    return rules


def in_sdist(path: str) -> bool:
    """Whether the source distribution holds ``path`` (relative to the project root)."""
    if path in ALWAYS_IN_SDIST or path.split("/")[0] == "attnlab":  # the package itself
        return True
    rules = sdist_rules()
    included = any(
        (directive == "include" and any(fnmatch(path, p) for p in args))
        or (directive == "graft" and any(path == d or path.startswith(d.rstrip("/") + "/") for d in args))
        for directive, args in rules)
    excluded = any(directive == "global-exclude" and any(fnmatch(Path(path).name, p) for p in args)
                   for directive, args in rules)
    return included and not excluded


def named_files() -> set[str]:
    """The files and directories of the source tree that README names in `code`."""
    top = {p.name for p in ROOT.iterdir() if not p.name.startswith(".")}
    names = set()
    for token in re.findall(r"`([^`\s]+)`", README):
        token = token.rstrip("/")
        if token.split("/")[0] in top and not re.search(r"[<>*]", token):
            names.add(token)
    return names


def test_every_file_the_readme_names_exists_and_ships_in_the_sdist():
    names = named_files()
    assert {"RESULTS.md", "BENCHMARKS.md", "docs/experiments.md", "docs/explorer", "Makefile",
            "attnlab/models/en/LICENSE"} <= names  # the finder finds what the README names
    missing = sorted(n for n in names if not (ROOT / n).exists())
    assert missing == [], f"README names files that do not exist: {missing}"
    unshipped = sorted(n for n in names if not in_sdist(n))
    assert unshipped == [], f"README names files the source distribution leaves out (MANIFEST.in): {unshipped}"


def test_the_screenshot_table_names_files_in_docs_explorer():
    shots = re.findall(r"^\| `([\w-]+\.png)` \|", README, re.MULTILINE)
    assert len(shots) == 8
    assert [s for s in shots if not (ROOT / "docs" / "explorer" / s).is_file()] == []
    assert in_sdist("docs/explorer/head.png")
