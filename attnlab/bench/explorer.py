"""`attnlab bench explorer`: how long each view of the explorer takes to draw in headless Chromium.

The explorer is served for one model on loopback (in this process) and opened in Debian's
chromium through selenium and /usr/bin/chromedriver (nothing is downloaded). For every sentence
length and window width, each round loads the page once on the Head view and then switches to
every view in turn (each drawn for the first time on that page, so nothing is cached in the
page): the time runs from the tab's click to the end of the next animation frame after the page
marks the view drawn (``body[data-drawn]`` holds the view's name when ``render()`` is done,
answers of the server included). Medians over the rounds. After each switch the page is also
checked for horizontal scroll and for its smallest text (every visible element's own text and
the line view's SVG labels; canvas labels are not seen).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote

VIEWS = ("head", "model", "steps", "compare", "whatif", "why")
SWITCH_ORDER = ("model", "steps", "compare", "whatif", "why", "head")  # the page opens on Head
TARGET_S, TARGET_WORDS = 1.5, 128
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FIRST = "I saw a saw ."
PASSAGE = ("in the shop window , and I went in to ask how much it cost . "
           "The woman behind the counter said that it had belonged to her father , who made chairs "
           "for every house in the village before the war . I bought it , carried it home under my "
           "arm and hung it on the wall above the bench where I can see it from the door .").split()


@dataclass(frozen=True)
class ExplorerBenchConfig:
    model: str = "en"
    words: tuple[int, ...] = (5, 40, 128)
    widths: tuple[int, ...] = (1280, 420)
    rounds: int = 3
    height: int = 900
    timeout_s: float = 60.0
    threads: int = 1  # torch threads of the server
    views: tuple[str, ...] = field(default=VIEWS)


def sentence(n: int) -> str:
    """An English sentence of ``n`` words ending in "."; 5 words give "I saw a saw ." and longer
    ones start with it, so the Why and What-if views look at the same word at every length."""
    if n < 2:
        raise ValueError(f"a sentence of at least 2 words, got {n}")
    words = FIRST.split()[:-1]
    while len(words) < n - 1:
        words += PASSAGE[: n - 1 - len(words)]
    return " ".join(words[: n - 1] + ["."])


def other_sentence(text: str) -> str:
    """The Compare view's second sentence: the first "a" becomes "the" ("I saw the saw ...")."""
    words = text.split()
    return " ".join(words[:2] + ["the" if words[2] == "a" else words[2]] + words[3:]) if len(words) > 2 else text


def cpu_name() -> str:
    """lscpu's "Model name", else /proc/cpuinfo's (``attnlab.bench.machine``)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from .machine import cpu_model

    return cpu_model()


def missing_browser() -> str | None:
    """One line naming what the benchmark needs and this machine lacks, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (apt-get install {package})"
    return None


def _driver(width: int, height: int):
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='attnlab-bench-chromium-')}",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must never fetch anything
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


# Click a view's tab and answer the milliseconds until the frame after the page marks it drawn.
SWITCH_JS = """
const [view, done] = [arguments[0], arguments[arguments.length - 1]];
const t0 = performance.now();
document.querySelector(`#view-tabs button[data-view="${view}"]`).click();
const poll = () => {
  if (document.body.dataset.drawn === view) requestAnimationFrame(() => setTimeout(() => done(performance.now() - t0)));
  else requestAnimationFrame(poll);
};
poll();
"""

# What the page looks like now: horizontal scroll, its smallest visible text (px and which), its error line.
MEASURE_JS = """
let smallest = null;
for (const el of document.querySelectorAll("body *")) {
  if (!el.getClientRects().length || ["SCRIPT", "STYLE", "OPTION"].includes(el.tagName)) continue;
  const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own) continue;
  const style = getComputedStyle(el);
  if (style.visibility === "hidden") continue;
  const px = parseFloat(style.fontSize);
  if (!smallest || px < smallest.px) smallest = { px, text: el.textContent.trim().slice(0, 30), tag: el.tagName.toLowerCase() };
}
const error = document.getElementById("error");
return { scroll: document.documentElement.scrollWidth > window.innerWidth, width: window.innerWidth,
         smallest, error: error && !error.hidden ? error.textContent : "" };
"""


def page_url(base: str, text: str) -> str:
    state = {"text": text, "view": "head", "compare": other_sentence(text), "word": 2, "replace": "hammer"}
    return base + "/#" + "&".join(f"{k}={quote(str(v))}" for k, v in state.items())


def _open(driver, url: str, timeout_s: float) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get("about:blank")
    driver.get(url)
    WebDriverWait(driver, timeout_s).until(
        lambda d: d.execute_script("return document.body.dataset.ready === '1' && document.body.dataset.drawn === 'head'"))


def run(cfg: ExplorerBenchConfig, log=print) -> dict:
    """Time every view of ``cfg`` (see the module's docstring); the report ``format_report`` prints."""
    missing = missing_browser()
    if missing:
        raise RuntimeError(missing)
    import torch

    from ..api import resolve_model
    from ..serve.app import create_app
    from ..serve.server import ServerThread
    from ..viz.model import load_explainable

    torch.set_num_threads(cfg.threads)
    model = load_explainable(resolve_model(cfg.model))
    load_before = os.getloadavg()
    cases = []
    with ServerThread(create_app(model)) as base:
        for width in cfg.widths:
            driver = _driver(width, cfg.height)
            driver.set_script_timeout(cfg.timeout_s)
            browser = driver.capabilities.get("browserVersion", "?")
            try:
                for n in cfg.words:
                    times: dict[str, list[float]] = {v: [] for v in cfg.views}
                    page: dict[str, Any] = {v: None for v in cfg.views}
                    for r in range(cfg.rounds):
                        _open(driver, page_url(base, sentence(n)), cfg.timeout_s)
                        for view in (v for v in SWITCH_ORDER if v in cfg.views):
                            times[view].append(driver.execute_async_script(SWITCH_JS, view) / 1000)
                            if r == cfg.rounds - 1:
                                page[view] = driver.execute_script(MEASURE_JS)
                    case = {"words": n, "width": width, "inner_width": page[cfg.views[0]]["width"],
                            "seconds": {v: statistics.median(times[v]) for v in cfg.views},
                            "rounds": times, "scroll": {v: page[v]["scroll"] for v in cfg.views},
                            "smallest": min((page[v]["smallest"] for v in cfg.views if page[v]["smallest"]),
                                            key=lambda s: s["px"], default=None),
                            "errors": {v: page[v]["error"] for v in cfg.views if page[v]["error"]}}
                    cases.append(case)
                    log(f"  {n} words at {width} px: " + ", ".join(f"{v} {s:.2f} s" for v, s in case["seconds"].items()))
            finally:
                driver.quit()
    return {"cpu": cpu_name(), "nproc": len(os.sched_getaffinity(0)), "browser": browser, "model": cfg.model,
            "rounds": cfg.rounds, "load_before": load_before, "load_after": os.getloadavg(),
            "target_s": TARGET_S, "target_words": TARGET_WORDS, "views": list(cfg.views), "cases": cases}


def format_report(report: dict) -> str:
    """A Markdown table: median seconds per view (marked against the target at its length),
    horizontal scroll and the smallest text, one row per sentence length and width."""
    views = report["views"]
    lines = [f"CPU: {report['cpu']} ({report['nproc']} CPUs), Chromium {report['browser']}, model {report['model']}, "
             f"median of {report['rounds']} rounds; load average {report['load_before'][0]:.2f} before, "
             f"{report['load_after'][0]:.2f} after",
             f"target: every view <= {report['target_s']} s at {report['target_words']} words (ok / OVER)", "",
             "| words | width px | " + " | ".join(views) + " | horizontal scroll | smallest text |",
             "|---:|---:|" + "---:|" * len(views) + "---|---|"]
    for c in report["cases"]:
        cells = []
        for v in views:
            s = c["seconds"][v]
            mark = (" ok" if s <= report["target_s"] else " OVER") if c["words"] == report["target_words"] else ""
            cells.append(f"{s:.2f}{mark}")
        scrolled = [v for v in views if c["scroll"][v]]
        small = c["smallest"]
        lines.append(f"| {c['words']} | {c['width']} | " + " | ".join(cells) + " | "
                     + (", ".join(scrolled) if scrolled else "none") + " | "
                     + (f"{small['px']:.1f} px ({small['tag']} \"{small['text']}\")" if small else "–") + " |")
    errors = [f"{c['words']} words, {c['width']} px, {v}: {e}" for c in report["cases"] for v, e in c["errors"].items()]
    if errors:
        lines += ["", "errors shown by the page:"] + [f"  {e}" for e in errors]
    return "\n".join(lines)


# The README's screenshots: (file, what the URL holds, window width, height).
SHOTS = (
    ("head.png", dict(text=FIRST, view="head", heads="1,2", pin="q2"), 1280, 1000),
    ("model.png", dict(text=FIRST, view="model"), 1280, 900),
    ("steps.png", dict(text=FIRST, view="steps", layer=1, head=2, query=2), 1280, 1100),
    ("compare.png", dict(text=FIRST, view="compare", compare="I saw the saw ."), 1280, 900),
    ("whatif.png", dict(text=FIRST, view="whatif", word=4, replace="hammer"), 1280, 1100),
    ("why.png", dict(text=FIRST, view="why", word=2, tag="UPOS"), 1280, 900),
    ("narrow.png", dict(text=FIRST, view="head", heads="1,2"), 420, 900),
    ("long.png", dict(text=sentence(60), view="head"), 1280, 1000),
)
MAX_SHOT_BYTES = 250_000


def screenshots(out_dir, model: str = "en", timeout_s: float = 60.0, log=print) -> list:
    """Save the README's pictures of the page (``SHOTS``) to ``out_dir`` in 256 colours, each under
    250 KB (the repository stays light); the files written."""
    import io
    from pathlib import Path

    from PIL import Image

    from ..api import resolve_model
    from ..serve.app import create_app
    from ..serve.server import ServerThread
    from ..viz.model import load_explainable

    missing = missing_browser()
    if missing:
        raise RuntimeError(missing)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with ServerThread(create_app(load_explainable(resolve_model(model)))) as base:
        for name, state, width, height in SHOTS:
            driver = _driver(width, height)
            try:
                from selenium.webdriver.support.ui import WebDriverWait

                driver.get(base + "/#" + "&".join(f"{k}={quote(str(v))}" for k, v in state.items()))
                WebDriverWait(driver, timeout_s).until(lambda d: d.execute_script(
                    "return document.body.dataset.ready === '1' && document.body.dataset.drawn === arguments[0]",
                    state["view"]))
                driver.execute_script("document.activeElement.blur()")
                time.sleep(0.3)  # the last frame painted
                image = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
            finally:
                driver.quit()
            data = io.BytesIO()  # 256 colours, no dithering: a third of the bytes, the same picture to the eye
            image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
                data, "PNG", optimize=True)
            if data.tell() > MAX_SHOT_BYTES:
                raise RuntimeError(f"{name}: {data.tell()} bytes, over {MAX_SHOT_BYTES}")
            (out_dir / name).write_bytes(data.getvalue())
            written.append(out_dir / name)
            log(f"wrote {out_dir / name} ({data.tell() // 1000} KB)")
    return written
