"""Run one experiment or all of them, and put the Markdown sections together.

``run_all`` runs every experiment in turn (a failing one is reported and the others
still run) and writes ``experiments.md`` in the output directory: the sections each
experiment wrote (``<name>.md``) under a short header, with a table of wall times.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import time
from pathlib import Path

from ..output import make_directory
from ..viz.figure import require_viz
from . import EXPERIMENTS
from .common import Settings, log, machine, markdown_table, write_text


def setting_names(name: str) -> set[str]:
    """The settings an experiment reads (the names it passes to ``Settings.get``)."""
    source = inspect.getsource(importlib.import_module(EXPERIMENTS[name]))
    return set(re.findall(r'settings\.get\("([a-z_]+)"', source))


def check_overrides(names, overrides: dict) -> None:
    """A --set key no experiment in ``names`` reads is a typo: say so before anything runs."""
    known = set().union(*(setting_names(n) for n in names))
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown setting {', '.join(unknown)} for {' / '.join(names)}; "
                         f"known: {', '.join(sorted(known))}")


def run_one(name: str, settings: Settings) -> dict:
    require_viz()  # every experiment ends in a plot: name the missing extra before any work
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    check_overrides([name], settings.overrides)
    make_directory(settings.out)  # a path that cannot be written fails now, not after the experiment
    module = importlib.import_module(EXPERIMENTS[name])
    return module.run(settings)


def assemble(out: Path, names=tuple(EXPERIMENTS), times: dict | None = None, title: str = "Experiments") -> str:
    """experiments.md from the ``<name>.md`` sections found in ``out``."""
    info = machine()
    parts = [f"# {title}\n",
             f"Machine: {info['cpu']}, {info['cores']} cores (shared), torch {info['torch']}, "
             f"Python {info['python']}.\n"]
    if times:
        parts.append(markdown_table(["experiment", "status", "wall time (min)"],
                                    [[n, t["status"], f"{t['seconds'] / 60:.1f}"] for n, t in times.items()]) + "\n")
    for name in names:
        section = Path(out) / f"{name}.md"
        if section.is_file():
            parts.append(section.read_text())
    text = "\n".join(parts)
    write_text(Path(out) / "experiments.md", text)
    return text


def run_all(settings: Settings) -> dict:
    require_viz()
    check_overrides(list(EXPERIMENTS), settings.overrides)
    make_directory(settings.out)
    settings_for = {n: setting_names(n) for n in EXPERIMENTS}
    times = {}
    failed = []
    for name in EXPERIMENTS:
        started = time.monotonic()
        try:
            # each experiment gets the --set values it reads (the others belong to other experiments)
            own = {k: v for k, v in settings.overrides.items() if k in settings_for[name]}
            run_one(name, dataclasses.replace(settings, overrides=own))
            status = "ok"
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            status = f"failed: {exc}"
            failed.append(name)
            log(f"{name}: {status}")
        times[name] = {"status": status, "seconds": time.monotonic() - started}
    assemble(settings.out, times=times, title="Experiments (quick settings)" if settings.quick else "Experiments")
    log(f"wrote {Path(settings.out) / 'experiments.md'}")
    if failed:
        raise ValueError(f"{len(failed)} experiment(s) failed: {', '.join(failed)}")
    return times
