"""The package metadata says what ships: the code's license and the shipped models' license
(an SPDX expression naming both, both texts among the license files), and classifiers that
agree with the rest of pyproject.toml."""

from __future__ import annotations

import glob
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
MODELS = sorted(p for p in (ROOT / "attnlab" / "models").iterdir() if (p / "config.json").is_file())

# how each license's text names it -> its SPDX identifier
SPDX = {"MIT License": "MIT", "CC BY-SA 4.0": "CC-BY-SA-4.0"}


def license_files() -> set[Path]:
    return {Path(p).resolve() for pattern in PROJECT["license-files"] for p in glob.glob(str(ROOT / pattern))}


def spdx_ids(text: str) -> set[str]:
    return {spdx for name, spdx in SPDX.items() if name in text}


def test_the_license_expression_names_the_code_and_every_shipped_model():
    expression = set(re.split(r"\s+AND\s+", PROJECT["license"]))
    assert expression == {"MIT", "CC-BY-SA-4.0"}
    assert MODELS, "no shipped model found"
    texts = {ROOT / "LICENSE": "the code"} | {m / "LICENSE": f"model {m.name}" for m in MODELS}
    for path, what in texts.items():
        ids = spdx_ids(path.read_text(encoding="utf-8"))
        assert ids and ids <= expression, f"{what}: {path} names {ids or 'no known license'}"


def test_every_license_text_is_a_license_file_of_the_distribution():
    assert license_files() == {(ROOT / "LICENSE").resolve()} | {(m / "LICENSE").resolve() for m in MODELS}


def test_classifiers_agree_with_the_metadata():
    classifiers = PROJECT["classifiers"]
    # with an SPDX expression, license classifiers are not allowed (PEP 639)
    assert not [c for c in classifiers if c.startswith("License ::")]
    assert ("Typing :: Typed" in classifiers) == (ROOT / "attnlab" / "py.typed").is_file()
    lowest = tuple(int(x) for x in PROJECT["requires-python"].removeprefix(">=").split("."))
    versions = [tuple(int(x) for x in c.rsplit(" :: ", 1)[1].split("."))
                for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert versions and min(versions) == lowest
