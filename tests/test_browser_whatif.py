"""The explorer in a real browser (see browser_kit): the Compare view (no stale pane or error, two
panes abreast at 40 words, the difference map and its read-out, two models on one sentence),
the exports (title and labels, the Head export's lines, names, the keyboard), the notebook page
(a frame that fits its page, compare without a second sentence, no server) and the What-if view."""

from __future__ import annotations

from selenium.webdriver.common.keys import Keys

from browser_kit import *  # noqa: F401,F403  (the fixtures, helpers and the modules they use)

FORTY = " ".join(("the old man saw a saw and we watched him . " * 4).split()[:39] + ["."])  # 40 words


@pytest.fixture(scope="module")
def other():
    """A second model of another architecture: sinusoidal positions, XPOS, FEATS and LEMMA too."""
    return load_explainable(tiny_tagger_dir(positions="sinusoidal", xpos_weight=1.0, full=True))


@pytest.fixture(scope="module")
def no_downloads(browser):
    """Exports are links to data: URLs; activating one would write a file: the browser refuses."""
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "deny"})
    return browser


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def compare_submit(driver, text):
    box = driver.find_element(By.ID, "sentence2")
    box.clear()
    if text:
        box.send_keys(text)
    driver.find_element(By.ID, "compare-submit").click()


def point_at_cell(driver, canvas_id, i, j):
    """Move the pointer to the middle of cell (i, j) of a grid drawn by drawGrid."""
    canvas = driver.find_element(By.ID, canvas_id)
    js(driver, "arguments[0].scrollIntoView({block: 'start'})", canvas)  # all of it in view: offsets from its centre
    g = js(driver, f"const c = document.getElementById('{canvas_id}'); "
                   "return {...c.geometry, scale: c.getBoundingClientRect().width / c.cssWidth, w: c.getBoundingClientRect().width, "
                   "h: c.getBoundingClientRect().height};")
    x = (g["left"] + (j + 0.5) * g["cell"]) * g["scale"] - g["w"] / 2
    y = (g["top"] + (i + 0.5) * g["cell"]) * g["scale"] - g["h"] / 2
    ActionChains(driver).move_to_element_with_offset(canvas, int(x), int(y)).perform()


# -- defect 7: Compare --------------------------------------------------------------------------------

def test_compare_hides_the_second_pane_after_an_error(browser, server):
    driver = browser
    open_view(driver, server, text="I saw a saw", view="compare", compare="I saw the saw")
    wait = WebDriverWait(driver, 5)
    wait.until(lambda d: d.find_element(By.ID, "caption-b").text)
    assert driver.find_element(By.ID, "heatmap-b").is_displayed()
    compare_submit(driver, "word " * 130)
    error = driver.find_element(By.ID, "error")
    wait.until(lambda d: error.is_displayed())
    assert error.text.startswith("second sentence: the sentence has 130 tokens")
    assert not driver.find_element(By.ID, "heatmap-b").is_displayed()  # not the previous sentence's map
    assert not driver.find_element(By.ID, "heatmap-diff").is_displayed()
    assert driver.find_element(By.ID, "heatmap-a").is_displayed()
    assert severe_errors(driver, allowed=["413"]) == []


def test_emptying_the_compare_box_clears_its_error(browser, server):
    driver = browser
    open_view(driver, server, text="I saw a saw", view="compare", compare="word " * 130)
    error = driver.find_element(By.ID, "error")
    WebDriverWait(driver, 5).until(lambda d: error.is_displayed())
    compare_submit(driver, "")
    WebDriverWait(driver, 5).until(lambda d: not error.is_displayed())
    assert "Type a second sentence" in driver.find_element(By.ID, "compare-hint").text
    assert not driver.find_element(By.ID, "heatmap-b").is_displayed()
    assert driver.find_element(By.ID, "heatmap-a").is_displayed()


def test_forty_words_compare_side_by_side_at_1280_px(browser, server, tmp_path):
    driver = browser
    assert len(tokenize(FORTY)) == 40
    driver.set_window_size(1280, 900)
    try:
        open_view(driver, server, text=FORTY, view="compare", compare=FORTY.replace("old", "young"))
        WebDriverWait(driver, 5).until(lambda d: d.find_element(By.ID, "caption-b").text)
        a, b = (driver.find_element(By.ID, f"heatmap-{s}").rect for s in "ab")
        assert a["x"] + a["width"] <= b["x"] and abs(a["y"] - b["y"]) < 1  # abreast, not stacked
        assert no_horizontal_scroll(driver)
        cell = js(driver, "return document.getElementById('heatmap-a').geometry.cell")
        assert cell >= 6
        screenshot(driver, tmp_path / "compare-40.png")
    finally:
        driver.set_window_size(1200, 900)


def test_compare_difference_map_and_read_out(browser, model, server):
    driver = browser
    open_view(driver, server, text="I saw a saw", view="compare", layer=2, head=2, compare="I saw the saw")
    WebDriverWait(driver, 5).until(lambda d: d.find_element(By.ID, "caption-b").text)
    a = model.attention(tokenize("I saw a saw"))[2][1, 1].double().numpy()
    b = model.attention(tokenize("I saw the saw"))[2][1, 1].double().numpy()
    assert driver.find_element(By.ID, "heatmap-diff").is_displayed()
    diff = np.asarray(js(driver, "return document.getElementById('heatmap-diff').diff"))
    np.testing.assert_allclose(diff, b - a, atol=2e-6)
    assert canvas_colours(driver, "heatmap-diff") > 10
    assert "token by token" not in driver.find_element(By.ID, "caption-diff").text  # "a" and "the" differ
    assert "a|the" in js(driver, "return document.getElementById('caption-diff').textContent") or \
        "by position" in driver.find_element(By.ID, "caption-diff").text

    # pointing at a cell of any map reads the same cell in A, B and B - A
    for canvas in ("heatmap-a", "heatmap-diff"):
        point_at_cell(driver, canvas, 2, 3)
        text = driver.find_element(By.ID, "compare-readout").text
        assert f"A α′(3 “a” → 4 “saw”) = {a[2, 3]:.4f}" in text, text
        assert f"B α′(3 “the” → 4 “saw”) = {b[2, 3]:.4f}" in text
        d = b[2, 3] - a[2, 3]
        assert f"B − A = {'+' if d >= 0 else '−'}{abs(d):.4f}" in text

    # sentences of different lengths: aligned by position up to the shorter
    compare_submit(driver, "They watch the old watch")
    WebDriverWait(driver, 5).until(lambda d: "watch/" in d.find_element(By.ID, "caption-b").text)
    assert np.asarray(js(driver, "return document.getElementById('heatmap-diff').diff")).shape == (4, 4)
    assert "the first 4 of each" in driver.find_element(By.ID, "caption-diff").text
    point_at_cell(driver, "heatmap-b", 4, 4)
    assert "A: no such token" in driver.find_element(By.ID, "compare-readout").text


def test_two_models_side_by_side_on_one_sentence(browser, model, other):
    driver = browser
    tokens = tokenize(SENTENCE)
    with ServerThread(create_app([model, other])) as url:
        open_view(driver, url, text=SENTENCE, view="compare", layer=2, head=1, model2=other.name)
        WebDriverWait(driver, 5).until(lambda d: d.find_element(By.ID, "caption-b").text)
        assert driver.find_element(By.ID, "model2-label").is_displayed()
        assert driver.find_element(By.ID, "sentence2").get_attribute("value") == ""  # empty: the same sentence
        assert driver.find_element(By.ID, "caption-a").text.startswith(f"model {model.name}, layer 2, head 1")
        assert driver.find_element(By.ID, "caption-b").text.startswith(f"model {other.name}, layer 2, head 1")
        [(tags_b, _)] = other.tag([tokens])
        assert " ".join(f"{t}/{g}" for t, g in zip(tokens, tags_b)) in driver.find_element(By.ID, "caption-b").text
        wa = np.asarray(js(driver, "return document.getElementById('heatmap-a').w"))
        wb = np.asarray(js(driver, "return document.getElementById('heatmap-b').w"))
        np.testing.assert_allclose(wa, model.attention(tokens)[2][1, 0].numpy(), atol=2e-6)
        np.testing.assert_allclose(wb, other.attention(tokens)[2][1, 0].numpy(), atol=2e-6)
        np.testing.assert_allclose(js(driver, "return document.getElementById('heatmap-diff').diff"), wb - wa, atol=1e-9)
        assert "token by token" in driver.find_element(By.ID, "caption-diff").text
        assert f"model2={other.name}" in unquote(driver.current_url)
        # the first model again on the right: the difference is zero
        Select(driver.find_element(By.ID, "model2")).select_by_value(model.name)
        compare_submit(driver, SENTENCE)
        WebDriverWait(driver, 5).until(lambda d: d.find_element(By.ID, "caption-b").text.startswith(f"model {model.name}"))
        assert np.abs(np.asarray(js(driver, "return document.getElementById('heatmap-diff').diff"))).max() == 0
        assert severe_errors(driver) == []


# -- defect 8: exports ------------------------------------------------------------------------------------

def png_of(driver, link_id="export-png"):
    from PIL import Image

    href = driver.find_element(By.ID, link_id).get_attribute("href")
    assert href.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(href.split(",", 1)[1]))).convert("RGB")


def test_the_head_export_has_a_title_labels_and_the_lines(no_downloads, server):
    driver = no_downloads
    open_view(driver, server, text=SENTENCE, view="head", layer=2, head=1)
    driver.find_element(By.ID, "export-png").click()
    labels = driver.find_element(By.ID, "export-png").get_attribute("data-labels").split("\n")
    legend = driver.find_element(By.ID, "legend-text").text
    assert labels[0].startswith(f"“{SENTENCE}”") and "one head: layer 2, head 1" in labels[1] and labels[2] == legend
    image = png_of(driver)
    dpr = js(driver, "return window.devicePixelRatio")
    heatmap, lines = (driver.find_element(By.ID, i).size for i in ("heatmap", "lines"))
    assert image.width >= (heatmap["width"] + lines["width"]) * dpr  # the map and the lines beside it
    assert image.height >= (max(heatmap["height"], lines["height"]) + 40) * dpr  # and a title above
    pixels = np.asarray(image)
    title = pixels[: int(26 * dpr)]
    assert (title.sum(axis=2) < 200).sum() > 100  # dark text in the title band
    stroke = js(driver, "return getComputedStyle(document.querySelector('#lines line')).stroke")  # rgb(r, g, b)
    r, g, b = (int(v) for v in stroke[4:-1].split(","))
    near = (np.abs(pixels.astype(int) - [r, g, b]).sum(axis=2) < 40).sum()
    assert near > 50, stroke  # the lines are in the picture


def test_the_model_export_is_named_for_the_model_and_labels_each_head(no_downloads, server):
    driver = no_downloads
    open_view(driver, server, text=SENTENCE, view="model", layer=2, head=1)
    link = driver.find_element(By.ID, "export-png")
    link.click()
    assert link.get_attribute("download") == "attention-model.png"
    labels = link.get_attribute("data-labels").split("\n")
    assert "every layer (rows) and head (columns)" in labels[1]
    assert labels[3:] == [f"layer {l + 1}, head {h + 1}" for l in range(LAYERS) for h in range(HEADS)]
    driver.find_element(By.ID, "export-json").click()
    assert driver.find_element(By.ID, "export-json").get_attribute("download") == "attention-model.json"


def test_the_export_links_work_from_the_keyboard(no_downloads, server):
    driver = no_downloads
    open_view(driver, server, text=SENTENCE, view="head", layer=1, head=2)
    png, json_link = driver.find_element(By.ID, "export-png"), driver.find_element(By.ID, "export-json")
    js(driver, "arguments[0].focus()", png)
    assert driver.switch_to.active_element == png
    png.send_keys(Keys.ENTER)
    WebDriverWait(driver, 5).until(lambda d: (png.get_attribute("href") or "").startswith("data:image/png;base64,"))
    assert png.get_attribute("download") == "attention-head-layer1-head2.png"
    json_link.send_keys(Keys.SPACE)
    WebDriverWait(driver, 5).until(lambda d: (json_link.get_attribute("href") or "").startswith("data:application/json"))
    data = json.loads(unquote(json_link.get_attribute("href").split(",", 1)[1]))
    assert (data["layer"], data["head"]) == (1, 2)
    assert js(driver, "return window.scrollY") == 0  # Space did not scroll the page


# -- defect 14: the notebook page ---------------------------------------------------------------------------

def notebook_host(tmp_path, outputs, sandboxed: bool):
    """A page holding ``outputs`` as Jupyter does; ``sandboxed``: inside an iframe with the
    sandbox front ends put outputs in (scripts, no same origin)."""
    body = "<h1>notebook</h1>" + "".join(o._repr_html_() for o in outputs)
    if sandboxed:
        inner = "<!doctype html><html><body>" + body + "</body></html>"
        body = (f'<iframe id="sandbox" sandbox="allow-scripts" style="width: 100%; height: 3000px; border: 0" '
                f'srcdoc="{html_escape(inner)}"></iframe>')
    host = tmp_path / ("sandboxed.html" if sandboxed else "notebook.html")
    host.write_text("<!doctype html><html><body>" + body + "</body></html>", encoding="utf-8")
    return host


def html_escape(text):
    import html

    return html.escape(text, quote=True)


@pytest.mark.parametrize("sandboxed", [False, True], ids=["plain", "sandboxed"])
def test_the_notebook_frame_fits_its_page(browser, model, tmp_path, sandboxed):
    driver = browser
    host = notebook_host(tmp_path, [show(model, SENTENCE, view="head")], sandboxed)
    driver.get("about:blank")
    driver.get_log("browser")
    driver.get(host.as_uri())
    try:
        if sandboxed:
            driver.switch_to.frame(driver.find_element(By.ID, "sandbox"))
        frame = driver.find_element(By.CSS_SELECTOR, "iframe[title='attnlab explorer']")

        def heights():
            driver.switch_to.frame(frame)
            inner = js(driver, "return Math.ceil(document.documentElement.getBoundingClientRect().height)")
            driver.switch_to.parent_frame()
            return inner, js(driver, "return arguments[0].getBoundingClientRect().height", frame)

        driver.switch_to.frame(frame)
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        driver.switch_to.parent_frame()
        WebDriverWait(driver, 5).until(lambda d: abs(heights()[1] - heights()[0] - 4) <= 3)
        inner, outer = heights()
        assert abs(inner - 760) > 40  # the page is not as tall as the old fixed frame, so this measures something
        # another view, another height: the frame follows
        driver.switch_to.frame(frame)
        driver.find_element(By.CSS_SELECTOR, "#view-tabs button[data-view='model']").click()
        driver.switch_to.parent_frame()
        WebDriverWait(driver, 5).until(lambda d: abs(heights()[0] - inner) > 20)
        WebDriverWait(driver, 5).until(lambda d: abs(heights()[1] - heights()[0] - 4) <= 3)
    finally:
        driver.switch_to.default_content()
    assert severe_errors(driver) == []


def open_saved(driver, path):
    driver.get("about:blank")
    driver.get_log("browser")
    driver.get(path.as_uri())
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")


def test_notebook_compare_without_a_saved_second_sentence(browser, model, tmp_path):
    driver = browser
    open_saved(driver, show(model, "I saw a saw", view="compare").save(tmp_path / "page.html"))
    assert driver.find_element(By.ID, "view-compare").is_displayed()
    assert not driver.find_element(By.ID, "error").is_displayed()
    assert "saved without a second sentence" in driver.find_element(By.ID, "compare-hint").text
    assert driver.find_element(By.ID, "heatmap-a").is_displayed() and not driver.find_element(By.ID, "heatmap-b").is_displayed()
    assert severe_errors(driver) == []


def test_notebook_keeps_its_result_when_another_sentence_is_typed(browser, model, tmp_path):
    driver = browser
    open_saved(driver, show(model, "I saw a saw", view="head").save(tmp_path / "page.html"))
    box = driver.find_element(By.ID, "sentence")
    box.clear()
    box.send_keys("another sentence")
    driver.find_element(By.ID, "submit").click()
    assert driver.find_element(By.ID, "result").is_displayed()  # what was shown stays
    assert [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#tagged .token .word")] == ["I", "saw", "a", "saw"]
    error = driver.find_element(By.ID, "error")
    assert error.is_displayed() and "this page has no server" in error.text
    assert canvas_colours(driver) > 20
    assert "a saved page, no server" in driver.find_element(By.ID, "model-info").text
    assert severe_errors(driver) == []


# -- What if ------------------------------------------------------------------------------------------------

def table_rows(driver):
    return [{"word": int(r.get_attribute("data-word")), "layer": r.get_attribute("data-layer"),
             "change": float(r.find_element(By.CSS_SELECTOR, "td.change").get_attribute("data-value"))}
            for r in driver.find_elements(By.CSS_SELECTOR, "#whatif-table tbody tr")]


def test_whatif_masks_a_word_and_shows_what_changes(browser, model, server, tmp_path):
    driver = browser
    tokens = tokenize(SENTENCE)
    open_view(driver, server, text=SENTENCE, view="whatif", layer=2, head=2, word=4)
    expected = api(server, "/api/whatif", {"text": SENTENCE, "position": 3, "mask": True, "layer": 1, "head": 1})
    note = driver.find_element(By.ID, "whatif-note").text
    assert note.startswith("word 4 “saw” masked") and "unknown-word input" in note
    rows = table_rows(driver)
    assert len(rows) == min(20, len(expected["changes"]))
    assert rows == [{"word": r["word"], "layer": r["layer"], "change": r["change"]} for r in expected["changes"][:20]]
    assert "changed" in driver.find_element(By.CSS_SELECTOR, "#whatif-table tbody tr[data-word='3']").get_attribute("class")
    assert len(rows) == len(expected["changes"]) == len(tokens)  # the tiny tagger has UPOS only: every row,
    assert not driver.find_element(By.ID, "whatif-all").is_displayed()  # nothing more to show

    # the difference map, and what the pointer reads on it
    canvas = driver.find_element(By.ID, "whatif-map")
    assert canvas.is_displayed() and (canvas.get_attribute("data-layer"), canvas.get_attribute("data-head")) == ("1", "1")
    assert canvas_colours(driver, "whatif-map") > 10
    point_at_cell(driver, "whatif-map", 3, 0)
    d = expected["difference"][3][0]
    assert driver.find_element(By.ID, "whatif-readout").text == (
        f"α′(4 “<unk>” → 1 “I”): before {expected['before'][3][0]:.4f}, after {expected['after'][3][0]:.4f}, "
        f"difference {'+' if d >= 0 else '−'}{abs(d):.4f}")
    assert "after minus α′ before" in driver.find_element(By.ID, "legend-text").text
    assert not driver.find_element(By.ID, "scale").is_displayed()  # the colour choice does not apply here
    screenshot(driver, tmp_path / "whatif.png")

    # the word replaced by itself: nothing changes, exactly
    Select(driver.find_element(By.ID, "whatif-word")).select_by_index(1)
    Select(driver.find_element(By.ID, "whatif-kind")).select_by_value("replace")
    driver.find_element(By.ID, "whatif-replacement").send_keys("saw")
    driver.find_element(By.ID, "whatif-submit").click()
    WebDriverWait(driver, 5).until(lambda d: d.find_element(By.ID, "whatif-note").text.startswith("word 2 “saw” replaced by “saw”"))
    assert {r["change"] for r in table_rows(driver)} == {0.0}
    assert "word=2" in driver.current_url and "replace=saw" in driver.current_url

    # the link reopens it; another word, replaced
    open_view(driver, server, text=SENTENCE, view="whatif", layer=1, head=1, word=2, replace="hammer")
    expected = api(server, "/api/whatif", {"text": SENTENCE, "position": 1, "replacement": "hammer", "layer": 0, "head": 0})
    assert table_rows(driver) == [{"word": r["word"], "layer": r["layer"], "change": r["change"]} for r in expected["changes"][:20]]
    png = driver.find_element(By.ID, "export-png")
    js(driver, "arguments[0].click()", png)
    assert png.get_attribute("download") == "attention-whatif-layer1-head1-word2.png"
    assert severe_errors(driver) == []


def test_whatif_of_a_model_with_every_tag_layer(browser, other):
    driver = browser
    with ServerThread(create_app(other)) as url:
        open_view(driver, url, text=SENTENCE, view="whatif", word=2, replace="dog")
        layers = {r["layer"] for r in table_rows(driver)}
        assert layers <= {"UPOS", "XPOS", "FEATS", "LEMMA"} and len(layers) >= 2 and len(table_rows(driver)) == 20
        button = driver.find_element(By.ID, "whatif-all")
        assert button.text == f"show all {4 * len(tokenize(SENTENCE))} rows"
        button.click()
        assert len(table_rows(driver)) == 4 * len(tokenize(SENTENCE))
        sizes = [abs(float(e.get_attribute("data-value"))) for e in driver.find_elements(By.CSS_SELECTOR, "#whatif-table td.largest")]
        assert sizes == sorted(sizes, reverse=True)  # biggest changes first


def test_whatif_in_the_notebook_page_holds_every_word_masked(browser, model, tmp_path):
    driver = browser
    open_saved(driver, show(model, "I saw a saw", view="whatif", layer=2, head=1).save(tmp_path / "page.html"))
    for word in range(4):
        Select(driver.find_element(By.ID, "whatif-word")).select_by_index(word)
        WebDriverWait(driver, 5).until(lambda d: d.find_element(By.ID, "whatif-note").text.startswith(f"word {word + 1} "))
        assert table_rows(driver) and not driver.find_element(By.ID, "error").is_displayed()
    driver.find_element(By.ID, "whatif-replacement").send_keys("hammer")
    driver.find_element(By.ID, "whatif-submit").click()
    error = driver.find_element(By.ID, "error")
    assert "this page has no server: it holds each word masked at layer 2, head 1 only" in error.text
    assert severe_errors(driver) == []


def test_whatif_and_compare_in_a_narrow_window(browser, server):
    driver = browser
    driver.set_window_size(420, 900)
    try:
        for view in ("whatif", "compare"):
            open_view(driver, server, text=FORTY, view=view, compare=FORTY, word=3)
            width = driver.execute_script("return window.innerWidth")
            assert no_horizontal_scroll(driver), view
            for canvas in driver.find_elements(By.CSS_SELECTOR, "canvas"):
                if canvas.is_displayed():
                    assert canvas.rect["x"] + canvas.rect["width"] <= width, (view, canvas.get_attribute("id"))
    finally:
        driver.set_window_size(1200, 900)
