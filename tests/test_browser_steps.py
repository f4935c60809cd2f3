"""The Steps view in a real browser (see browser_kit): the seed's formula first, then what the model
adds, each named, with its numbers (a^i, W and the biases, q and k before and after the rotary turn,
q o k entry by entry); its own colour scale and legend, readable text; and a page that holds at 40
and 128 words, at 1280 and 420 px."""

from __future__ import annotations

import numpy as np

from browser_kit import *  # noqa: F401,F403  (the fixtures, helpers and the modules they use)

LONG = "the old man saw a saw and we watched him ."


def values(driver, selector: str) -> list[float]:
    return [float(e.get_attribute("data-value")) for e in driver.find_elements(By.CSS_SELECTOR, selector)]


def words(n: int) -> str:
    tokens = (LONG.split() * (n // len(LONG.split()) + 1))[:n]
    return " ".join(tokens)


# -- what is computed, in the model's order ---------------------------------------------------------

def test_steps_show_the_seeds_formula_then_what_the_model_adds(browser, model, server):
    driver = browser
    tokens = tokenize(SENTENCE)
    open_view(driver, server, text=SENTENCE, view="steps", layer=2, head=2, query=3)
    expected = steps_body(model, tokens, 1, 1)
    i = 2
    panel = driver.find_element(By.ID, "steps-panel").text
    assert panel.index("The seed's formula") < panel.index("What this model adds") < panel.index("1. a")
    names = [e.get_attribute("data-name") for e in driver.find_elements(By.CSS_SELECTOR, "#steps-additions li")]
    assert names == [a["name"] for a in model.additions(1, 1)] == ["layer norm", "biases", "rotary positions", "output"]
    assert "pre-norm" in driver.find_element(By.CSS_SELECTOR, "#steps-additions li[data-name='layer norm']").text

    # a^i, the biases, q before and after the turn: the API's numbers
    assert values(driver, ".vector[data-name='a'] .num") == expected["a"][i]
    for part in "qkv":
        assert values(driver, f".vector[data-name='b{part}'] .num") == expected["bias"][part]
    assert values(driver, ".vector[data-name='q-projected'] .num") == expected["q_projected"][i]
    assert values(driver, ".vector[data-name='q'] .num") == expected["q"][i]
    assert expected["q"][i] != expected["q_projected"][i]  # the turn is there to see
    # W^(q,2), W^(k,2), W^(v,2): one picture each, d x D cells
    for part in "qkv":
        size = driver.execute_script(f"const c = document.getElementById('steps-W-{part}'); return [c.cssWidth, c.height];")
        assert size[0] % expected["D"] == 0 and canvas_colours(driver, f"steps-W-{part}") > 10

    # the chosen key (the strongest, until a row is clicked): k before and after the turn, q o k and its sum
    def check_key(j):
        assert values(driver, ".vector[data-name='k-projected'] .num") == expected["k_projected"][j]
        assert values(driver, ".vector[data-name='k'] .num") == expected["k"][j]
        assert values(driver, ".vector[data-name='v'] .num") == expected["v"][j]
        product = np.array(expected["q"][i]) * np.array(expected["k"][j])
        np.testing.assert_allclose(values(driver, ".vector[data-name='qk'] .num"), product, atol=1e-12)
        assert driver.find_element(By.ID, "steps-dot").text == f"{product.sum():.4f}"
        assert float(driver.find_element(By.ID, "steps-dot-alpha").text) == pytest.approx(expected["alpha"][i][j], abs=1e-4)
        chosen = driver.find_element(By.CSS_SELECTOR, "#steps-table tr.chosen")
        assert chosen.get_attribute("data-key") == str(j)

    check_key(int(np.argmax(expected["alpha_prime"][i])))
    driver.find_element(By.CSS_SELECTOR, "#steps-table tr[data-key='0']").click()
    WebDriverWait(driver, 5).until(lambda d: d.find_element(By.CSS_SELECTOR, "#steps-table tr.chosen").get_attribute("data-key") == "0")
    check_key(0)
    assert severe_errors(driver) == []


def test_two_equal_words_show_one_k_before_the_turn_and_two_after(browser, model, server):
    """Layer 1: both "saw" (keys 2 and 4) have the same a and k before the turn; the page shows
    that their k differ only once turned by their positions."""
    driver = browser
    open_view(driver, server, text="I saw a saw", view="steps", layer=1, head=1, query=1)
    shown = {}
    for j in (1, 3):
        driver.find_element(By.CSS_SELECTOR, f"#steps-table tr[data-key='{j}']").click()
        WebDriverWait(driver, 5).until(lambda d: d.find_element(By.CSS_SELECTOR, "#steps-table tr.chosen").get_attribute("data-key") == str(j))
        shown[j] = (values(driver, ".vector[data-name='k-projected'] .num"), values(driver, ".vector[data-name='k'] .num"))
        assert f"turned by {j} × θ" in driver.find_element(By.CSS_SELECTOR, ".vector[data-name='k']").text
    assert shown[1][0] == shown[3][0] and shown[1][1] != shown[3][1]


def test_a_checkpoints_steps_say_it_has_absolute_positions_and_no_rotary(browser, tmp_path):
    pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
    from test_hf import write_wordpiece_tokenizer
    from tiny_hf import hf_model, save_checkpoint

    directory = save_checkpoint(hf_model("bert"), tmp_path / "bert")
    write_wordpiece_tokenizer(directory)
    bert = load_explainable(directory)
    text = "The cat sat on the unbelievable mat."
    driver = browser
    with ServerThread(create_app(bert)) as url:
        open_view(driver, url, text=text, view="steps", layer=3, head=2, query=4)
        expected = api(url, "/api/steps", {"text": text, "layer": 2, "head": 1})
        names = [e.get_attribute("data-name") for e in driver.find_elements(By.CSS_SELECTOR, "#steps-additions li")]
        assert names == ["layer norm", "biases", "absolute positions", "output"]
        adds = driver.find_element(By.ID, "steps-additions").text
        assert "post-norm" in adds and "no rotary" in adds
        assert values(driver, ".vector[data-name='a'] .num") == expected["a"][3]
        assert values(driver, ".vector[data-name='bq'] .num") == expected["bias"]["q"]
        assert driver.find_elements(By.CSS_SELECTOR, ".vector[data-name='q-projected']") == []
        assert "no rotary" in driver.find_element(By.CSS_SELECTOR, ".vector[data-name='q']").text
        assert severe_errors(driver) == []


# -- colours -------------------------------------------------------------------------------------------

CONTRAST = """
    const lum = (css) => {
        const [r, g, b] = css.match(/[\\d.]+/g).slice(0, 3).map(Number).map((c) => c / 255)
            .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    return [...document.querySelectorAll('#steps-panel .num')].filter((c) => c.textContent).map((c) => {
        const s = getComputedStyle(c), a = lum(s.backgroundColor), b = lum(s.color);
        return [(Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), Math.abs(Number(c.dataset.value))];
    });"""


def test_steps_have_their_own_colour_scale_with_a_legend_and_readable_cells(browser, server):
    driver = browser
    open_view(driver, server, text=SENTENCE, view="steps", layer=2, head=2, query=3)
    # the heatmap's legend and colour control say nothing about Steps
    assert not driver.find_element(By.ID, "legend-text").is_displayed()
    assert not driver.find_element(By.ID, "scale").is_displayed()
    legend = driver.find_element(By.ID, "steps-legend")
    assert legend.is_displayed() and "blue below 0, red above" in legend.text
    cells = driver.execute_script(CONTRAST)
    assert len(cells) > 30
    assert min(c for c, _ in cells) >= 4.5, sorted(cells)[:3]
    # the legend's ends are the colours of the strongest cells
    ends = driver.execute_script("return getComputedStyle(document.querySelector('#steps-legend .legend-bar')).backgroundImage")
    strongest = driver.execute_script("""
        const cells = [...document.querySelectorAll(".vector[data-name='qk'] .num")];  // scaled by itself
        const top = Math.max(...cells.map((c) => Math.abs(Number(c.dataset.value))));
        return cells.filter((c) => Math.abs(Number(c.dataset.value)) === top).map((c) => getComputedStyle(c).backgroundColor);""")
    assert strongest and all(colour in ends for colour in strongest)
    # back to the head view: its legend and control are back
    driver.find_element(By.CSS_SELECTOR, "#view-tabs button[data-view='head']").click()
    assert driver.find_element(By.ID, "legend-text").is_displayed() and driver.find_element(By.ID, "scale").is_displayed()


# -- long sentences, narrow windows -------------------------------------------------------------------------

SMALLEST_TEXT = """
    let smallest = 1e9, where = '';
    for (const el of document.querySelectorAll('#view-steps *')) {
        const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
        if (!own || !el.getClientRects().length) continue;
        const size = parseFloat(getComputedStyle(el).fontSize);
        if (size < smallest) { smallest = size; where = el.tagName + ' ' + el.textContent.slice(0, 20); }
    }
    return [smallest, where];"""


def boxes_apart(boxes) -> bool:
    """No two boxes {x, y, w, h} overlap."""
    for k, a in enumerate(boxes):
        for b in boxes[k + 1:]:
            if a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]:
                return False
    return True


@pytest.mark.parametrize("n, width", [(40, 1280), (40, 420), (128, 1280), (128, 420)])
def test_steps_hold_at_40_and_128_words(browser, model, server, tmp_path, n, width):
    driver = browser
    text = words(n)
    driver.set_window_size(width, 900)
    try:
        open_view(driver, server, text=text, view="steps", layer=2, head=1, query=5)
        expected = api(server, "/api/steps", {"text": text, "layer": 1, "head": 0})
        rows = driver.find_elements(By.CSS_SELECTOR, "#steps-table tbody tr")
        top = sorted(range(n), key=lambda j: (-expected["alpha_prime"][4][j], j))[:10]
        assert [int(r.get_attribute("data-key")) for r in rows] == top  # the strongest keys, strongest first
        assert values(driver, "#steps-table td.alpha-prime") == [expected["alpha_prime"][4][j] for j in top]
        rest = 1 - sum(expected["alpha_prime"][4][j] for j in top)
        assert f"hold α′ = {rest:.4f}" in driver.find_element(By.ID, "steps-rest").text
        written = driver.execute_script("""
            return [...document.querySelectorAll('#steps-panel .num, #steps-table td.alpha, #steps-table td.alpha-prime')]
                .filter((e) => e.textContent.trim()).length;""")
        assert written <= 200  # not thousands of numbers

        # the chart: next to the table (beside it when there is room, right under it when not), axes, apart labels
        table, chart = (driver.find_element(By.ID, x).rect for x in ("steps-table", "steps-chart"))
        if width >= 1000:
            assert chart["x"] >= table["x"] + table["width"] and chart["y"] < table["y"] + table["height"]
        else:
            assert 0 <= chart["y"] - (table["y"] + table["height"]) < 40
        g = driver.execute_script("return document.getElementById('steps-chart').geometry")
        assert [int(r) for r in g["rows"]] == top and len(g["labels"]) == len(top)
        assert len(g["ticks"]) >= 4 and boxes_apart(g["labels"] + g["ticks"]) and g["font"] >= 10
        assert chart["width"] == pytest.approx(g["width"], abs=1)  # drawn at the size it is shown: no shrunk text

        assert no_horizontal_scroll(driver)
        viewport = driver.execute_script("return window.innerWidth")
        for canvas in driver.find_elements(By.CSS_SELECTOR, "#view-steps canvas"):
            assert canvas.rect["x"] + canvas.rect["width"] <= viewport, canvas.get_attribute("id")
        smallest, where = driver.execute_script(SMALLEST_TEXT)
        assert smallest >= 10, where

        # every key on demand
        Select(driver.find_element(By.ID, "steps-keys")).select_by_value("all")
        WebDriverWait(driver, 5).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#steps-table tbody tr")) == n)
        assert values(driver, "#steps-table td.alpha-prime") == expected["alpha_prime"][4]
        g = driver.execute_script("return document.getElementById('steps-chart').geometry")
        assert len(g["labels"]) == n and boxes_apart(g["labels"] + g["ticks"])
        assert no_horizontal_scroll(driver)
        screenshot(driver, tmp_path / f"steps-{n}-{width}.png")
        assert severe_errors(driver) == []
    finally:
        driver.set_window_size(1200, 900)


def test_a_saved_page_shows_w_for_the_head_it_opened_on_and_says_so_for_the_others(browser, model, tmp_path):
    driver = browser
    page = show(model, "I saw a saw", view="steps", layer=1, head=1).save(tmp_path / "explorer.html")
    driver.get("about:blank")
    driver.get(page.as_uri())
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    assert len(driver.find_elements(By.CSS_SELECTOR, "canvas[id^='steps-W-']")) == 3
    assert driver.find_elements(By.CSS_SELECTOR, ".steps-no-weights") == []
    select(driver, "head", 1)  # head 2: its steps are in the page, its matrices W are not
    WebDriverWait(driver, 5).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".steps-no-weights"))
    assert "head it opened on only" in driver.find_element(By.CSS_SELECTOR, ".steps-no-weights").text
    assert driver.find_elements(By.CSS_SELECTOR, "canvas[id^='steps-W-']") == []
    assert len(driver.find_elements(By.CSS_SELECTOR, "#steps-table td.alpha-prime")) > 0
    assert severe_errors(driver) == []
