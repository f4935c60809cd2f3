"""The explorer in a real browser: Debian's chromium, headless, driven by selenium through
/usr/bin/chromedriver (nothing is downloaded). Type a sentence, click, read the tags, see the
heatmap and the line view, switch head and layer, save a screenshot."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest

from attnlab.serve.app import create_app
from attnlab.serve.server import ServerThread
from attnlab.viz.model import load_explainable, tokenize

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


def canvas_picture(driver) -> str:
    return driver.execute_script("return document.getElementById('heatmap').toDataURL('image/png')")


def canvas_colours(driver) -> int:
    """How many distinct colours the heatmap canvas holds (0 on a blank canvas)."""
    return driver.execute_script("""
        const c = document.getElementById('heatmap');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        return seen.size;""")


def test_type_click_read_the_tags_and_switch_heads(browser, model, tmp_path):
    driver = browser
    tokens = tokenize(SENTENCE)
    tags, _, weights = model.attention(tokens)
    with ServerThread(create_app(model)) as url:
        driver.get(url + "/")
        wait = WebDriverWait(driver, 10)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#head option")) == HEADS)
        assert f"{LAYERS} layers × {HEADS} heads" in driver.find_element(By.ID, "model-info").text
        assert not driver.find_element(By.ID, "result").is_displayed()

        box = driver.find_element(By.ID, "sentence")
        box.clear()
        box.send_keys(SENTENCE)
        driver.find_element(By.ID, "submit").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")

        # the tagged sentence: each word with the model's tag
        words = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#tagged .token .word")]
        shown = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#tagged .token .tag")]
        assert words == tokens and shown == tags

        # the heatmap of layer 1, head 1 is drawn, and the line view links the tokens
        canvas = driver.find_element(By.ID, "heatmap")
        assert canvas.is_displayed() and canvas.size["width"] > 200
        assert (canvas.get_attribute("data-layer"), canvas.get_attribute("data-head")) == ("0", "0")
        assert canvas_colours(driver) > 20
        lines = driver.find_elements(By.CSS_SELECTOR, "#lines line")
        n = len(tokens)
        shown_weights = np.round(weights.double().numpy(), 6)  # as the API sends them
        expected = int((shown_weights[0, 0] >= 0.005).sum())  # the links drawn: weights of at least 0.005
        assert len(lines) == expected and expected >= n
        first = canvas_picture(driver)

        # another head: another picture
        Select(driver.find_element(By.ID, "head")).select_by_index(1)
        assert canvas.get_attribute("data-head") == "1"
        second = canvas_picture(driver)
        assert second != first
        # another layer too
        Select(driver.find_element(By.ID, "layer")).select_by_index(1)
        assert canvas.get_attribute("data-layer") == "1"
        assert canvas_picture(driver) not in (first, second)
        assert len(driver.find_elements(By.CSS_SELECTOR, "#lines line")) == int((shown_weights[1, 1] >= 0.005).sum())

        # pointing at a query token keeps only its links in the line view
        third = driver.find_elements(By.CSS_SELECTOR, "#lines text:not(.tag)")[2]
        ActionChains(driver).move_to_element(third).perform()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#lines line")) == int((shown_weights[1, 1, 2] >= 0.005).sum()))
        assert "focus" in driver.find_elements(By.CSS_SELECTOR, "#tagged .token")[2].get_attribute("class")
        ActionChains(driver).move_to_element(driver.find_element(By.TAG_NAME, "h1")).perform()

        shot = tmp_path / "explorer.png"
        assert driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

        # a sentence over the server's limit: the API's message is shown, the page keeps working
        box.clear()
        box.send_keys("word " * 130)
        driver.find_element(By.ID, "submit").click()
        error = driver.find_element(By.ID, "error")
        wait.until(lambda d: error.is_displayed())
        assert "the sentence has 130 tokens; this server tags at most 128" in error.text

        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "413" not in e["message"]]
        assert severe == []
