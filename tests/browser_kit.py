"""What every browser test of the explorer shares: Debian's chromium, headless, driven by selenium
through /usr/bin/chromedriver (nothing is downloaded), a server over the tiny tagger, and helpers
that read the page back. A test module does ``from browser_kit import *`` (which skips the module
when chromium or selenium is missing, saying why) and uses the ``browser``, ``model`` and
``server`` fixtures."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import tempfile
from urllib.parse import quote, unquote

import numpy as np
import pytest

from attnlab.serve.app import create_app
from attnlab.serve.server import ServerThread
from attnlab.viz import show
from attnlab.viz.model import load_explainable, tokenize
from attnlab.viz.payload import steps_body

from tiny_models import HEADS, LAYERS, tiny_tagger_dir

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SENTENCE = "I saw a saw with my old saw ."

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip(f"{CHROMIUM} or {CHROMEDRIVER} is missing: apt-get install chromium chromium-driver "
                "(.ci/run does this when apt can reach Debian's mirrors)", allow_module_level=True)

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return load_explainable(tiny_tagger_dir())


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="attnlab-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must never fetch anything
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server(model):
    with ServerThread(create_app(model)) as url:
        yield url


# -- helpers -----------------------------------------------------------------------------------

def open_view(driver, url: str, **state) -> WebDriverWait:
    """Load the page with ``state`` in its URL (as a shared link would) and wait until it is drawn."""
    driver.get("about:blank")
    driver.get_log("browser")  # what earlier pages logged is theirs
    driver.get(url + "/#" + "&".join(f"{k}={quote(str(v))}" for k, v in state.items()))
    wait = WebDriverWait(driver, 10)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    return wait


def api(url: str, path: str, body: dict) -> dict:
    import urllib.request

    request = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def colours_of_png(data: bytes) -> int:
    """How many distinct colours a PNG holds (1 for a blank picture)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    return len(image.getcolors(maxcolors=image.width * image.height))


def screenshot(driver, path) -> int:
    """Save a screenshot of the window; assert it is a picture with something on it; its colours."""
    assert driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    colours = colours_of_png(data)
    assert colours > 50, f"{path.name} looks blank ({colours} colours)"
    return colours


def canvas_picture(driver, canvas_id: str = "heatmap") -> str:
    return driver.execute_script(f"return document.getElementById('{canvas_id}').toDataURL('image/png')")


def canvas_colours(driver, canvas_id: str = "heatmap") -> int:
    """How many distinct colours a canvas holds (0 or 1 on a blank canvas)."""
    return driver.execute_script("""
        const c = document.getElementById(arguments[0]);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        return seen.size;""", canvas_id)


def links_drawn(w, top: int = 3, threshold: float = 0.05, only=None) -> int:
    """The links the line view draws for one head: each query's ``top`` keys of at least ``threshold``
    (the page's defaults), of query ``only`` alone when a token is pointed at."""
    w = np.round(np.asarray(w, dtype=np.float64), 6)  # as the API sends them
    rows = range(len(w)) if only is None else [only]
    return sum(int((np.sort(w[i])[::-1][:top] >= threshold).sum()) for i in rows)


def no_horizontal_scroll(driver) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def severe_errors(driver, allowed=()) -> list:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)]


def select(driver, element_id: str, index: int) -> None:
    Select(driver.find_element(By.ID, element_id)).select_by_index(index)




def token_labels(tokens) -> list:
    """The tokens as the page names them: a word that occurs more than once with its 1-based
    position as a subscript ("I saw₂ a saw₄")."""
    sub = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
    return [t + str(i + 1).translate(sub) if tokens.count(t) > 1 else t for i, t in enumerate(tokens)]
