"""The explorer's page and its head view in a real browser (see browser_kit), as a reader meets them
with an ordinary sentence: a token followed by the pointer lets go when the pointer leaves, pointing
never moves the heatmap, the tag chips take a row per word with the other layers on demand, a click
pins a word (Escape or a second click releases it), the keyboard reaches every word and cell, the URL
keeps top-k, threshold and the pinned word, head colours stand out in a light and a dark theme, the
line view spreads its columns, the heatmap zooms instead of shrinking its labels, repeated words are
told apart, and the page reads at 5, 40 and 128 words in a wide and a narrow window."""

from __future__ import annotations

import re

from selenium.webdriver.common.keys import Keys

from browser_kit import *  # noqa: F401,F403  (the fixtures, helpers and the modules they use)

WORDS = "the old man saw a saw and we watched him .".split()


def sentence(n: int) -> str:
    text = " ".join((WORDS * (n // len(WORDS) + 1))[:n])
    assert len(tokenize(text)) == n
    return text


@pytest.fixture(scope="module")
def full_server():
    """A tagger with every layer (UPOS, XPOS, FEATS, LEMMA): the chips' worst case."""
    with ServerThread(create_app(load_explainable(tiny_tagger_dir(xpos_weight=1.0, full=True)))) as url:
        yield url


@pytest.fixture
def window(browser):
    """Sets the window's size for one test, and puts it back."""
    yield lambda width, height=900: browser.set_window_size(width, height)
    browser.set_window_size(1200, 900)


# -- what the page is measured with ----------------------------------------------------------------

def luminance(rgb) -> float:
    c = [v / 255 for v in rgb]
    c = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]


def contrast(a, b) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def rgb(css: str) -> tuple:
    """'rgb(1, 2, 3)' or '#010203' as (1, 2, 3)."""
    if css.startswith("#"):
        return tuple(int(css[k:k + 2], 16) for k in (1, 3, 5))
    return tuple(int(float(v)) for v in re.findall(r"[\d.]+", css)[:3])


def page_background(driver) -> tuple:
    return rgb(driver.execute_script("return getComputedStyle(document.documentElement).backgroundColor"))


# every visible text on the page: its font size in CSS px as shown (an SVG's text scaled with its SVG),
# its colour and the colour of the nearest background under it
TEXTS_JS = """
const out = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const opaque = (c) => c && c !== 'transparent' && !/rgba\\(.*, 0\\)$/.test(c);
while (walker.nextNode()) {
  const node = walker.currentNode, el = node.parentElement;
  if (!node.textContent.trim() || el.closest('option, script, style, title')) continue;
  if (!el.getClientRects().length) continue;
  const cs = getComputedStyle(el);
  if (cs.visibility === 'hidden' || el.closest('[disabled]')) continue;
  let px = parseFloat(cs.fontSize);
  const svg = el.closest('svg');
  if (svg) px *= svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  let bg = null;
  for (let a = el; a && !bg; a = a.parentElement) { const b = getComputedStyle(a).backgroundColor; if (opaque(b)) bg = b; }
  out.push([px, svg ? cs.fill : cs.color, bg || getComputedStyle(document.documentElement).backgroundColor,
            el.tagName, node.textContent.trim().slice(0, 30)]);
}
return out;"""


def texts(driver) -> list:
    return driver.execute_script(TEXTS_JS)


def heatmap_label_px(driver) -> float:
    """The heatmap's label font as shown: the px the code draws them in times the canvas's scale on the page."""
    return driver.execute_script("""
        const c = document.getElementById('heatmap'), g = c.geometry;
        const px = g.fontPx || (g.cell < 16 ? 11 : 13);
        return px * c.getBoundingClientRect().width / c.cssWidth;""")


def chips(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#tagged .token")


def lines(driver) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, "#lines line"))


def label(driver, side: str, index: int):
    """The line view's word `index` in the query (left) or key (right) column."""
    return driver.find_elements(By.CSS_SELECTOR, f"#lines text[data-side='{side}']")[index]


def point_at(driver, element) -> None:
    ActionChains(driver).move_to_element(element).perform()


def leave(driver) -> None:
    point_at(driver, driver.find_element(By.TAG_NAME, "h1"))


def pinned(driver) -> list:
    return [i for i, c in enumerate(chips(driver)) if "pinned" in c.get_attribute("class")]


def cell_pointer(driver, i: int, j: int) -> ActionChains:
    """The pointer moved onto the heatmap's cell (i, j) (the map scrolled into view whole: the
    offset counts from its centre)."""
    canvas = driver.find_element(By.ID, "heatmap")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    left, top, cell = driver.execute_script("const g = arguments[0].geometry; return [g.left, g.top, g.cell]", canvas)
    x, y = left + (j + 0.5) * cell, top + (i + 0.5) * cell
    return ActionChains(driver).move_to_element_with_offset(canvas, x - canvas.rect["width"] / 2, y - canvas.rect["height"] / 2)


def active(driver, js: str):
    """Evaluates js with `a` = document.activeElement."""
    return driver.execute_script(f"const a = document.activeElement; return {js};")


# -- defects ---------------------------------------------------------------------------------------

def test_a_pointed_at_word_lets_go_when_the_pointer_leaves(browser, model, server):
    """Pointing at a word of the line view, then at the title: no outline, read-out, framed row or
    filtered lines stay behind, in this view or another."""
    driver = browser
    _, _, weights = model.attention(tokenize(SENTENCE))
    open_view(driver, server, text=SENTENCE)
    untouched = canvas_picture(driver)
    hint = driver.find_element(By.ID, "hover-info").text
    every = links_drawn(weights[0, 0])
    for side, index in (("query", 2), ("key", 3), ("query", 6)):
        point_at(driver, label(driver, side, index))
        WebDriverWait(driver, 5).until(lambda d: lines(d) < every)
        assert canvas_picture(driver) != untouched  # the row or column is framed
        leave(driver)
        assert lines(driver) == every
        assert canvas_picture(driver) == untouched
        assert driver.find_element(By.ID, "hover-info").text == hint
        assert not [c for c in chips(driver) if "focus" in c.get_attribute("class")]
        assert not driver.find_elements(By.CSS_SELECTOR, "#lines text.focus")
    point_at(driver, label(driver, "query", 2))
    WebDriverWait(driver, 5).until(lambda d: lines(d) < every)
    tab = driver.find_element(By.CSS_SELECTOR, "#view-tabs button[data-view='model']")
    tab.click()  # the pointer goes to another tab: what it pointed at stays behind
    driver.find_element(By.CSS_SELECTOR, "#view-tabs button[data-view='head']").click()
    assert lines(driver) == every
    assert canvas_picture(driver) == untouched
    assert not [c for c in chips(driver) if "focus" in c.get_attribute("class")]


def test_pointing_at_a_word_never_moves_the_heatmap(browser, server):
    """The read-out grows no line under the pointer: the heatmap and the lines stay where they are."""
    driver = browser
    open_view(driver, server, text=SENTENCE, heads="1,2")
    where = lambda: driver.execute_script(  # noqa: E731
        "return ['heatmap', 'lines'].map((id) => document.getElementById(id).getBoundingClientRect().top + scrollY)")
    before = where()
    for target in (label(driver, "query", 1), label(driver, "key", 4), chips(driver)[3]):
        point_at(driver, target)
        WebDriverWait(driver, 5).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#hover-info .focus-line")) == HEADS)
        assert where() == before
    target.click()  # pinned: the longest read-out
    leave(driver)
    assert where() == before


@pytest.mark.parametrize("width", [1280, 420])
def test_tag_chips_take_a_row_per_word_and_the_other_layers_on_demand(browser, full_server, window, width):
    driver = browser
    window(width)
    text = sentence(40)
    layers = load_explainable(tiny_tagger_dir(xpos_weight=1.0, full=True)).annotate(tokenize(text))
    open_view(driver, full_server, text=text)
    inner = driver.execute_script("return window.innerWidth")
    box = driver.find_element(By.ID, "tagged").rect
    assert box["height"] <= {1280: 160, 420: 480}[width], box  # 40 words in a few lines
    assert all(c.rect["height"] <= 30 for c in chips(driver))  # a row per word
    assert driver.find_element(By.ID, "heatmap").rect["y"] < {1280: 900, 420: 1700}[width]
    # the other layers and the probabilities on demand; no chip runs off the page
    for switch in driver.find_elements(By.CSS_SELECTOR, "#tag-layers input"):
        if not switch.is_selected():
            switch.click()
    for a in layers:
        assert [c.find_element(By.CSS_SELECTOR, f".tag[data-layer='{a['name']}']").text for c in chips(driver)] == a["tags"]
    assert all(c.rect["x"] >= 0 and c.rect["x"] + c.rect["width"] <= inner for c in chips(driver))
    assert no_horizontal_scroll(driver)
    # every layer of one word with its probability, in a box of fixed height
    detail = driver.find_element(By.ID, "token-detail")
    height = detail.rect["height"]
    point_at(driver, chips(driver)[6])
    for a in layers:
        assert f"{a['name']} {a['tags'][6]} P = {a['probabilities'][6]:.2f}" in detail.text
    assert detail.rect["height"] == height


def test_the_url_keeps_top_k_threshold_and_the_pinned_word(browser, model, server):
    driver = browser
    _, _, weights = model.attention(tokenize(SENTENCE))
    open_view(driver, server, text=SENTENCE)
    Select(driver.find_element(By.ID, "topk")).select_by_value("2")
    driver.execute_script("const t = document.getElementById('threshold'); t.value = '0.1';"
                          "t.dispatchEvent(new Event('input'));")
    chips(driver)[2].click()
    link = driver.current_url
    assert all(part in link for part in ("top=2", "min=0.1", "pin=q3")), link

    driver.get("about:blank")
    driver.get(link)
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    assert driver.find_element(By.ID, "topk").get_attribute("value") == "2"
    assert driver.find_element(By.ID, "threshold").get_attribute("value") == "0.1"
    assert pinned(driver) == [2]
    assert lines(driver) == links_drawn(weights[0, 0], top=2, threshold=0.1, only=2)
    assert driver.current_url == link


def test_every_head_colour_stands_out_from_the_page_in_both_themes(browser, server):
    driver = browser
    try:
        for scheme in ("light", "dark"):
            driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
            open_view(driver, server, text=SENTENCE, heads="1,2")
            page = page_background(driver)
            assert (luminance(page) > 0.5) == (scheme == "light")
            palette = driver.execute_script("return Array.from({ length: 8 }, (_, h) => headColour(h))")
            assert len(set(palette)) == 8
            ratios = [round(contrast(rgb(c), page), 2) for c in palette]
            assert min(ratios) >= 3, (scheme, ratios)
            drawn = [g.get_attribute("stroke") for g in driver.find_elements(By.CSS_SELECTOR, "#lines g[data-head]")]
            assert drawn == palette[:HEADS]
    finally:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def test_the_line_view_spreads_its_columns(browser, server, window):
    driver = browser
    window(1280)
    for n, gap in ((5, 160), (40, 200)):
        open_view(driver, server, text=sentence(n))
        right = max(e.rect["x"] + e.rect["width"] for e in driver.find_elements(By.CSS_SELECTOR, "#lines text[data-side='query']"))
        left = min(e.rect["x"] for e in driver.find_elements(By.CSS_SELECTOR, "#lines text[data-side='key']"))
        assert left - right >= gap, (n, left - right)
        assert no_horizontal_scroll(driver)


@pytest.mark.parametrize("width, n", [(420, 40), (1280, 128)])
def test_heatmap_labels_stay_10px_and_the_map_zooms_in_its_box(browser, server, window, width, n):
    driver = browser
    window(width)
    open_view(driver, server, text=sentence(n))
    cell = lambda: driver.execute_script("return document.getElementById('heatmap').geometry.cell")  # noqa: E731
    assert heatmap_label_px(driver) >= 10
    fitted = cell()
    driver.find_element(By.ID, "zoom-in").click()
    driver.find_element(By.ID, "zoom-in").click()
    assert cell() > fitted and heatmap_label_px(driver) >= 10
    scroll = driver.execute_script("const b = document.getElementById('heatmap-box'); return [b.scrollWidth, b.clientWidth];")
    assert scroll[0] > scroll[1]  # the map scrolls in its box ...
    assert no_horizontal_scroll(driver)  # ... not the page
    driver.find_element(By.ID, "heatmap").send_keys("-")
    assert fitted < cell() and heatmap_label_px(driver) >= 10
    driver.find_element(By.ID, "heatmap").send_keys("0")
    assert cell() == fitted
    for _ in range(3):
        driver.find_element(By.ID, "zoom-out").click() if driver.find_element(By.ID, "zoom-out").is_enabled() else None
    assert cell() >= 12 and heatmap_label_px(driver) >= 10


def test_repeated_words_are_told_apart_by_their_position(browser, model, server):
    driver = browser
    tokens = tokenize(SENTENCE)
    _, _, weights = model.attention(tokens)
    labels = token_labels(tokens)
    assert labels[1] == "saw₂" and labels[3] == "saw₄" and labels[0] == "I"
    open_view(driver, server, text=SENTENCE)
    assert driver.execute_script("return document.getElementById('heatmap').geometry.labels") == labels  # the axes
    for side in ("query", "key"):
        assert [e.text for e in driver.find_elements(By.CSS_SELECTOR, f"#lines text[data-side='{side}']")] == labels

    point_at(driver, chips(driver)[3])
    w = np.round(weights[0, 0].numpy(), 6)
    top3 = lambda values: ", ".join(f"{labels[j]} {values[j]:.2f}" for j in np.argsort(-values, kind="stable")[:3])  # noqa: E731
    line = driver.find_element(By.CSS_SELECTOR, "#hover-info .focus-line")
    assert driver.find_element(By.CSS_SELECTOR, "#hover-info .focus-title").text == "4 “saw₄”"
    assert line.text == f"head 1: attends to {top3(w[3])}; attended by {top3(w[:, 3])}"

    # the heatmap's cell read-out
    cell_pointer(driver, 1, 3).perform()  # row 2 "saw", column 4 "saw"
    assert driver.find_element(By.ID, "readout").text == f"α′(2 “saw₂” → 4 “saw₄”) = {w[1, 3]:.4f}"


def test_the_keyboard_reaches_every_word_and_cell(browser, model, server):
    driver = browser
    _, _, weights = model.attention(tokenize(SENTENCE))
    w = np.round(weights[0, 0].numpy(), 6)
    open_view(driver, server, text=SENTENCE)
    last = driver.find_elements(By.CSS_SELECTOR, "#head-toggles input")[-1]
    driver.execute_script("arguments[0].focus()", last)
    seen = []
    for _ in range(6):  # after the last head switch: the zoom, the heatmap, the line view, never the body
        ActionChains(driver).send_keys(Keys.TAB).perform()
        seen.append(active(driver, "a.id || a.tagName"))
        assert active(driver, "a.closest('#view-head') !== null"), seen
        if seen[-1] == "heatmap":
            break
    assert seen[-1] == "heatmap"

    # the arrow keys walk the cells (read out), Enter pins the row's word
    ActionChains(driver).send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_DOWN).perform()
    assert driver.find_element(By.ID, "readout").text == f"α′(2 “saw₂” → 3 “a”) = {w[1, 2]:.4f}"
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    assert pinned(driver) == [1] and lines(driver) == links_drawn(w, only=1)

    # on to the line view: its pinned word has the focus; arrows walk the column, Escape releases the pin
    ActionChains(driver).send_keys(Keys.TAB).perform()
    assert active(driver, "[a.dataset.side, a.dataset.index]") == ["query", "1"]
    ActionChains(driver).send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN).perform()
    assert active(driver, "[a.dataset.side, a.dataset.index]") == ["query", "3"]
    assert lines(driver) == links_drawn(w, only=1)  # the pin holds
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    assert pinned(driver) == [] and lines(driver) == links_drawn(w, only=3)  # the focused word is followed
    ActionChains(driver).send_keys(Keys.ARROW_RIGHT, Keys.ENTER).perform()
    assert active(driver, "[a.dataset.side, a.dataset.index]") == ["key", "3"]
    assert "pin=k4" in driver.current_url
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    assert "pin=" not in driver.current_url

    # the chips: one Tab stop, the arrows walk the sentence, Enter pins
    driver.execute_script("document.querySelector('#tagged .token[tabindex=\"0\"]').focus()")
    ActionChains(driver).send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ENTER).perform()
    assert active(driver, "a.dataset.index") == "2" and pinned(driver) == [2]
    assert len(driver.find_elements(By.CSS_SELECTOR, "#tagged .token[tabindex='0']")) == 1


# -- pin, dark mode, the page at three lengths --------------------------------------------------------

def test_a_click_pins_a_word_until_escape_or_a_second_click(browser, model, server):
    driver = browser
    _, _, weights = model.attention(tokenize(SENTENCE))
    w = weights[0, 0]
    open_view(driver, server, text=SENTENCE)
    chips(driver)[2].click()
    assert pinned(driver) == [2] and lines(driver) == links_drawn(w, only=2)
    assert "pinned" in driver.find_element(By.ID, "hover-info").text
    point_at(driver, label(driver, "key", 5))  # the pointer elsewhere: the pin holds
    assert lines(driver) == links_drawn(w, only=2)
    chips(driver)[2].click()
    leave(driver)
    assert pinned(driver) == [] and lines(driver) == links_drawn(w)

    label(driver, "key", 4).click()  # a key of the line view
    assert "pin=k5" in driver.current_url
    assert lines(driver) == sum(1 for i in range(len(w)) if 4 in links_kept(w[i]))
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    assert "pin=" not in driver.current_url and lines(driver) == links_drawn(w)

    cell_pointer(driver, 3, 0).click().perform()  # a heatmap cell pins its row
    assert pinned(driver) == [3] and "pin=q4" in driver.current_url
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    assert pinned(driver) == []


def links_kept(row, top: int = 3, threshold: float = 0.05) -> list:
    row = np.round(np.asarray(row, dtype=np.float64), 6)
    return [j for j in np.argsort(-row, kind="stable")[:top] if row[j] >= threshold]


def test_dark_mode_follows_the_system_and_the_switch_is_remembered(browser, server):
    driver = browser
    scheme = lambda s: driver.execute_cdp_cmd(  # noqa: E731
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": s}]})
    dark = lambda: luminance(page_background(driver)) < 0.05  # noqa: E731
    canvas_dark = lambda: luminance(driver.execute_script(  # noqa: E731
        "return [...document.getElementById('heatmap').getContext('2d').getImageData(2, 2, 1, 1).data].slice(0, 3)")) < 0.05
    try:
        scheme("dark")
        open_view(driver, server, text=SENTENCE)
        assert driver.find_element(By.ID, "theme").get_attribute("value") == "auto"
        assert dark() and canvas_dark()
        low = [t for t in texts(driver) if contrast(rgb(t[1]), rgb(t[2])) < 4.5]
        assert low == [], low[:5]
        Select(driver.find_element(By.ID, "theme")).select_by_value("light")
        assert not dark() and not canvas_dark()
        open_view(driver, server, text=SENTENCE)  # remembered, over the system's choice
        assert not dark() and driver.find_element(By.ID, "theme").get_attribute("value") == "light"
        low = [t for t in texts(driver) if contrast(rgb(t[1]), rgb(t[2])) < 4.5]
        assert low == [], low[:5]
        scheme("light")
        Select(driver.find_element(By.ID, "theme")).select_by_value("dark")
        assert dark() and canvas_dark()
        open_view(driver, server, text=SENTENCE)
        assert dark()
        Select(driver.find_element(By.ID, "theme")).select_by_value("auto")
        assert not dark()
    finally:
        driver.execute_script("localStorage.clear()")
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


@pytest.mark.parametrize("width", [1280, 420])
@pytest.mark.parametrize("n", [5, 40, 128])
def test_the_head_view_reads_well_at_5_40_and_128_words(browser, full_server, window, n, width):
    """No horizontal scroll, no text under 10 px (the heatmap's labels as shown included), with every
    tag layer ticked and a word pinned."""
    driver = browser
    window(width)
    open_view(driver, full_server, text=sentence(n), heads="1,2")
    for switch in driver.find_elements(By.CSS_SELECTOR, "#tag-layers input"):
        if not switch.is_selected():
            switch.click()
    chips(driver)[min(3, n - 1)].click()
    assert no_horizontal_scroll(driver)
    small = [t for t in texts(driver) if t[0] < 10]
    assert small == [], small[:5]
    assert len(texts(driver)) > 3 * n  # the chips, the lines' words ... were measured
    assert heatmap_label_px(driver) >= 10
    assert driver.execute_script("const c = document.getElementById('heatmap'); return c.getBoundingClientRect().width") \
        == driver.execute_script("return document.getElementById('heatmap').cssWidth")
    assert severe_errors(driver) == []
