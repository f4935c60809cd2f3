"""The explorer in a real browser (see browser_kit): every view is driven and read back: the head
view (heatmap, lines, overlaid heads, hover), the model view, the steps with their numbers, compare,
the URL that reopens a view, the exports, a narrow window, a long sentence, a model without
attention, and the page ``attnlab.viz.show`` makes for a notebook."""

from __future__ import annotations

from browser_kit import *  # noqa: F401,F403  (the fixtures, helpers and the modules they use)


# -- the head view -------------------------------------------------------------------------------

def test_type_click_read_the_tags_and_switch_heads(browser, model, server, tmp_path):
    driver = browser
    tokens = tokenize(SENTENCE)
    tags, _, weights = model.attention(tokens)
    driver.get("about:blank")
    driver.get(server + "/")
    wait = WebDriverWait(driver, 10)
    wait.until(lambda d: f"{LAYERS} layers × {HEADS} heads" in d.find_element(By.ID, "model-info").text)
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

    # the heatmap of layer 1, head 1 is drawn, and the line view links each query to its top keys
    canvas = driver.find_element(By.ID, "heatmap")
    assert canvas.is_displayed() and canvas.size["width"] > 200
    assert (canvas.get_attribute("data-layer"), canvas.get_attribute("data-head")) == ("0", "0")
    assert canvas_colours(driver) > 20
    assert len(driver.find_elements(By.CSS_SELECTOR, "#lines line")) == links_drawn(weights[0, 0])
    first = canvas_picture(driver)

    # another head: another picture; another layer too
    select(driver, "head", 1)
    assert canvas.get_attribute("data-head") == "1"
    second = canvas_picture(driver)
    assert second != first
    select(driver, "layer", 1)
    assert canvas.get_attribute("data-layer") == "1"
    assert canvas_picture(driver) not in (first, second)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#lines line")) == links_drawn(weights[1, 1])

    # all links, then only the strongest one per query
    select(driver, "topk", 0)
    driver.execute_script("const t = document.getElementById('threshold'); t.value = '0.005';"
                          "t.dispatchEvent(new Event('input'));")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#lines line")) == links_drawn(weights[1, 1], top=99, threshold=0.005)
    select(driver, "topk", 1)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#lines line")) == len(tokens)

    # pointing at a query token keeps only its links in the line view
    third = driver.find_elements(By.CSS_SELECTOR, "#lines text[data-side='query']")[2]
    ActionChains(driver).move_to_element(third).perform()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#lines line")) == 1)
    assert "focus" in driver.find_elements(By.CSS_SELECTOR, "#tagged .token")[2].get_attribute("class")
    ActionChains(driver).move_to_element(driver.find_element(By.TAG_NAME, "h1")).perform()
    screenshot(driver, tmp_path / "head.png")

    # a sentence over the server's limit: the message, and nothing left of the previous sentence
    box.clear()
    box.send_keys("word " * 130)
    driver.find_element(By.ID, "submit").click()
    error = driver.find_element(By.ID, "error")
    wait.until(lambda d: error.is_displayed())
    assert "the sentence has 130 tokens; this server tags at most 128" in error.text
    assert not driver.find_element(By.ID, "result").is_displayed()
    assert driver.find_elements(By.CSS_SELECTOR, "#tagged .token") == []
    assert severe_errors(driver, allowed=["413"]) == []


def test_the_colour_scale_and_its_legend(browser, model, server):
    driver = browser
    open_view(driver, server, text=SENTENCE, view="head", scale="fixed")
    assert Select(driver.find_element(By.ID, "scale")).first_selected_option.get_attribute("value") == "fixed"
    assert "fixed scale from 0 to 1" in driver.find_element(By.ID, "legend-text").text
    fixed = canvas_picture(driver)
    _, _, weights = model.attention(tokenize(SENTENCE))
    for mode, words in (("matrix", f"from 0 to {weights[0, 0].max():.3f}"), ("row", "largest α′ of its row")):
        Select(driver.find_element(By.ID, "scale")).select_by_value(mode)
        assert words in driver.find_element(By.ID, "legend-text").text
        assert canvas_picture(driver) != fixed
        assert f"scale={mode}" in driver.current_url


def test_heads_overlaid_in_their_colours_with_what_a_token_attends_to(browser, model, server):
    driver = browser
    tokens = tokenize(SENTENCE)
    _, _, weights = model.attention(tokens)
    wait = open_view(driver, server, text=SENTENCE, view="head", layer=2, head=1)
    toggles = driver.find_elements(By.CSS_SELECTOR, "#head-toggles input")
    assert [t.is_selected() for t in toggles] == [True] + [False] * (HEADS - 1)
    toggles[1].click()
    groups = driver.find_elements(By.CSS_SELECTOR, "#lines g[data-head]")
    assert [g.get_attribute("data-head") for g in groups] == ["0", "1"]
    assert len({g.get_attribute("stroke") for g in groups}) == 2  # a colour per head
    for g in groups:
        h = int(g.get_attribute("data-head"))
        assert len(g.find_elements(By.TAG_NAME, "line")) == links_drawn(weights[1, h])
    assert "heads=1%2C2" in driver.current_url or "heads=1,2" in unquote(driver.current_url)

    # pointing at a token: per head, what it attends to most and what attends to it most
    key = driver.find_elements(By.CSS_SELECTOR, "#lines text[data-side='key']")[1]
    ActionChains(driver).move_to_element(key).perform()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#hover-info .focus-line")) == 2)
    lines = driver.find_elements(By.CSS_SELECTOR, "#hover-info .focus-line")
    labels = token_labels(tokens)  # a repeated word is named with its position: saw₂
    for line, h in zip(lines, (0, 1)):
        w = weights[1, h].numpy()
        best_to, best_by = int(np.argmax(w[1])), int(np.argmax(w[:, 1]))
        assert line.text.startswith(f"head {h + 1}: attends to {labels[best_to]} {w[1, best_to]:.2f}")
        assert f"attended by {labels[best_by]} {w[best_by, 1]:.2f}" in line.text
    for g in driver.find_elements(By.CSS_SELECTOR, "#lines g[data-head]"):  # only the links into key 2
        h = int(g.get_attribute("data-head"))
        top3 = np.argsort(-np.round(weights[1, h].numpy(), 6), axis=1, kind="stable")[:, :3]
        expected = sum(1 for i in range(len(tokens)) if 1 in top3[i] and weights[1, h, i, 1] >= 0.05)
        assert len(g.find_elements(By.TAG_NAME, "line")) == expected
    ActionChains(driver).move_to_element(driver.find_element(By.TAG_NAME, "h1")).perform()

    toggles = driver.find_elements(By.CSS_SELECTOR, "#head-toggles input")
    toggles[0].click()
    assert [g.get_attribute("data-head") for g in driver.find_elements(By.CSS_SELECTOR, "#lines g[data-head]")] == ["1"]


# -- the model view --------------------------------------------------------------------------------

def test_model_view_shows_every_head_and_a_click_focuses_one(browser, model, server, tmp_path):
    driver = browser
    open_view(driver, server, text=SENTENCE, view="model")
    thumbs = driver.find_elements(By.CSS_SELECTOR, "#thumbs canvas.thumb")
    assert [(t.get_attribute("data-layer"), t.get_attribute("data-head")) for t in thumbs] == [
        (str(l), str(h)) for l in range(LAYERS) for h in range(HEADS)]
    assert all(t.is_displayed() and t.size["width"] > 20 for t in thumbs)
    pictures = driver.execute_script("return [...document.querySelectorAll('#thumbs canvas')].map(c => c.toDataURL())")
    assert len(set(pictures)) == LAYERS * HEADS  # every head draws its own weights
    screenshot(driver, tmp_path / "model.png")

    thumbs[HEADS + 1].click()  # layer 2, head 2
    assert driver.find_element(By.ID, "view-head").is_displayed()
    assert not driver.find_element(By.ID, "view-model").is_displayed()
    canvas = driver.find_element(By.ID, "heatmap")
    assert (canvas.get_attribute("data-layer"), canvas.get_attribute("data-head")) == ("1", "1")
    assert Select(driver.find_element(By.ID, "layer")).first_selected_option.text == "layer 2"
    assert Select(driver.find_element(By.ID, "head")).first_selected_option.text == "head 2"
    assert "view=head" in driver.current_url and "layer=2" in driver.current_url and "head=2" in driver.current_url

    # from the keyboard too
    from selenium.webdriver.common.keys import Keys

    driver.find_element(By.CSS_SELECTOR, "#view-tabs button[data-view='model']").click()
    driver.find_elements(By.CSS_SELECTOR, "#thumbs canvas.thumb")[1].send_keys(Keys.ENTER)
    assert driver.find_element(By.ID, "view-head").is_displayed()
    assert (canvas.get_attribute("data-layer"), canvas.get_attribute("data-head")) == ("0", "1")


# -- the seed's steps --------------------------------------------------------------------------------

def test_the_steps_panel_shows_the_apis_numbers(browser, model, server, tmp_path):
    driver = browser
    tokens = tokenize(SENTENCE)
    open_view(driver, server, text=SENTENCE, view="steps", layer=2, head=2, query=3)
    expected = api(server, "/api/steps", {"text": SENTENCE, "layer": 1, "head": 1})
    assert expected == steps_body(model, tokens, 1, 1)
    i = 2

    def values(selector):
        return [float(e.get_attribute("data-value")) for e in driver.find_elements(By.CSS_SELECTOR, selector)]

    assert values(".vector[data-name='q'] .num") == expected["q"][i]
    assert values(".vector[data-name='b'] .num") == expected["b"][i]
    assert values("#steps-table td.alpha") == expected["alpha"][i]
    assert values("#steps-table td.alpha-prime") == expected["alpha_prime"][i]
    for j, row in enumerate(driver.find_elements(By.CSS_SELECTOR, "#steps-table tbody tr")):
        assert [float(e.get_attribute("data-value")) for e in row.find_elements(By.CSS_SELECTOR, "td.k .num")] == expected["k"][j]
        assert [float(e.get_attribute("data-value")) for e in row.find_elements(By.CSS_SELECTOR, "td.v .num")] == expected["v"][j]
        assert row.find_element(By.CSS_SELECTOR, "td.word").text == tokens[j]
    shown = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#steps-table td.alpha-prime")]
    assert shown == [f"{v:.4f}" for v in expected["alpha_prime"][i]]
    assert driver.find_element(By.ID, "steps-normalizer").text == f"{expected['normalizer'][i]:.4f}"
    assert f'query word 3 “{tokens[i]}”' in driver.find_element(By.ID, "steps-panel").text
    assert canvas_colours(driver, "steps-chart") > 3
    screenshot(driver, tmp_path / "steps.png")

    # another query word: its row of the same head
    select(driver, "query", 0)
    WebDriverWait(driver, 5).until(lambda d: values("#steps-table td.alpha-prime") == expected["alpha_prime"][0])
    assert "query=1" in driver.current_url


# -- the URL and the exports ----------------------------------------------------------------------------

def test_the_url_reopens_the_same_view(browser, server):
    driver = browser
    open_view(driver, server, text=SENTENCE)
    select(driver, "layer", 1)
    select(driver, "head", 1)
    Select(driver.find_element(By.ID, "scale")).select_by_value("matrix")
    driver.find_element(By.CSS_SELECTOR, "#view-tabs button[data-view='steps']").click()
    WebDriverWait(driver, 5).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#steps-table td.alpha"))
    select(driver, "query", 4)
    link = driver.current_url
    numbers = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#steps-table td.alpha-prime")]

    driver.get("about:blank")
    driver.get(link)  # reload, or a colleague opening the link
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    assert driver.find_element(By.ID, "sentence").get_attribute("value") == SENTENCE
    assert driver.find_element(By.ID, "view-steps").is_displayed()
    # (the colour control is hidden in Steps, which has its own colours: read its option's text, not what is shown)
    chosen = {k: Select(driver.find_element(By.ID, k)).first_selected_option.get_attribute("textContent")
              for k in ("layer", "head", "scale", "query")}
    assert chosen == {"layer": "layer 2", "head": "head 2", "scale": "auto: matrix max", "query": f"5: {tokenize(SENTENCE)[4]}"}
    assert [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#steps-table td.alpha-prime")] == numbers
    assert driver.current_url == link


@pytest.mark.parametrize("view", ["head", "model", "steps", "compare"])
def test_export_the_view_as_png_and_its_weights_as_json(browser, model, server, view):
    driver = browser
    tokens = tokenize(SENTENCE)
    _, _, weights = model.attention(tokens)
    open_view(driver, server, text=SENTENCE, view=view, layer=2, head=1, compare="I saw the saw")
    if view == "compare":
        WebDriverWait(driver, 5).until(lambda d: d.find_element(By.ID, "caption-b").text)
    png, js = driver.find_element(By.ID, "export-png"), driver.find_element(By.ID, "export-json")
    png.click()
    href = png.get_attribute("href")
    assert href.startswith("data:image/png;base64,")
    assert png.get_attribute("download") == ("attention-model.png" if view == "model" else f"attention-{view}-layer2-head1.png")
    picture = base64.b64decode(href.split(",", 1)[1])
    assert picture[:8] == b"\x89PNG\r\n\x1a\n" and colours_of_png(picture) > 10

    js.click()
    href = js.get_attribute("href")
    assert href.startswith("data:application/json;charset=utf-8,")
    data = json.loads(unquote(href.split(",", 1)[1]))
    w = np.round(weights.double().numpy(), 6)
    if view == "head":
        assert data["tokens"] == tokens and (data["layer"], data["head"]) == (2, 1)
        np.testing.assert_array_equal(data["weights"], w[1, 0])
    elif view == "model":
        np.testing.assert_array_equal(data["weights"], w)
    elif view == "steps":
        np.testing.assert_allclose(data["steps"]["alpha_prime"], w[1, 0], atol=2e-6)  # computed in float64
    else:
        assert [s["tokens"] for s in data["sentences"]] == [tokens, ["I", "saw", "the", "saw"]]
        np.testing.assert_array_equal(data["sentences"][0]["weights"], w[1, 0])


# -- compare ------------------------------------------------------------------------------------------

def test_compare_two_sentences_side_by_side(browser, model, server, tmp_path):
    driver = browser
    open_view(driver, server, text="I saw a saw", view="compare", layer=1, head=2, compare="I saw the saw")
    WebDriverWait(driver, 5).until(lambda d: d.find_element(By.ID, "caption-b").text)
    for side, text in (("a", "I saw a saw"), ("b", "I saw the saw")):
        tokens = tokenize(text)
        [(tags, _)] = model.tag([tokens])
        caption = driver.find_element(By.ID, f"caption-{side}").text
        assert " ".join(f"{t}/{g}" for t, g in zip(tokens, tags)) in caption
        canvas = driver.find_element(By.ID, f"heatmap-{side}")
        assert canvas.is_displayed() and canvas.get_attribute("data-head") == "1"
        assert canvas_colours(driver, f"heatmap-{side}") > 10
    assert canvas_picture(driver, "heatmap-a") != canvas_picture(driver, "heatmap-b")
    a, b = (driver.find_element(By.ID, f"heatmap-{s}").rect for s in "ab")
    assert a["x"] + a["width"] <= b["x"]  # side by side
    screenshot(driver, tmp_path / "compare.png")

    box = driver.find_element(By.ID, "sentence2")
    box.clear()
    box.send_keys("They watch the old watch")
    driver.find_element(By.ID, "compare-submit").click()
    WebDriverWait(driver, 5).until(lambda d: "watch/" in d.find_element(By.ID, "caption-b").text)
    assert "compare=They%20watch" in driver.current_url or "compare=They+watch" in driver.current_url


# -- narrow windows and long sentences -----------------------------------------------------------------

def test_a_narrow_window_has_no_horizontal_scroll(browser, server, tmp_path):
    driver = browser
    driver.set_window_size(420, 900)
    try:
        for view in ("head", "model", "steps", "compare"):
            open_view(driver, server, text=SENTENCE, view=view, compare="I saw the saw")
            width = driver.execute_script("return window.innerWidth")
            assert no_horizontal_scroll(driver), view
            button = driver.find_element(By.ID, "submit")
            assert button.is_displayed() and button.rect["x"] + button.rect["width"] <= width, view
            for canvas in driver.find_elements(By.CSS_SELECTOR, "canvas"):
                if canvas.is_displayed():
                    assert canvas.rect["x"] + canvas.rect["width"] <= width, (view, canvas.get_attribute("id"))
            screenshot(driver, tmp_path / f"narrow-{view}.png")
    finally:
        driver.set_window_size(1200, 900)


def test_a_sixty_token_sentence_stays_readable(browser, model, server, tmp_path):
    driver = browser
    text = " ".join(["the old man saw a saw and we watched him ."] * 6)
    tokens = tokenize(text)
    assert len(tokens) == 66
    _, _, weights = model.attention(tokens)
    open_view(driver, server, text=text, view="head")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#tagged .token")) == len(tokens)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#lines line")) == links_drawn(weights[0, 0]) <= 3 * len(tokens)
    assert no_horizontal_scroll(driver)
    cell = driver.execute_script("return document.getElementById('heatmap').geometry.cell")
    assert cell >= 12  # every cell big enough to point at
    screenshot(driver, tmp_path / "long.png")


def test_one_letter_key_labels_are_written_upright(browser, server):
    driver = browser
    open_view(driver, server, text="I saw a saw")
    upright = driver.execute_script("""
        const g = document.getElementById('heatmap').geometry;
        const ctx = document.getElementById('heatmap').getContext('2d');
        ctx.font = '13px system-ui, sans-serif';
        return g.tokens.map((t) => ctx.measureText(t).width <= g.cell - 3);""")
    assert upright == [True, True, True, True]
    # the label area above the columns is one line high, not the width of a rotated word
    assert driver.execute_script("return document.getElementById('heatmap').geometry.top") <= 32


def test_every_tag_layer_is_shown_with_its_probability(browser):
    driver = browser
    model = load_explainable(tiny_tagger_dir(xpos_weight=1.0, full=True))
    layers = model.annotate(tokenize(SENTENCE))
    assert [a["name"] for a in layers] == ["UPOS", "XPOS", "FEATS", "LEMMA"]
    with ServerThread(create_app(model)) as url:
        open_view(driver, url, text=SENTENCE)
        chips = driver.find_elements(By.CSS_SELECTOR, "#tagged .token")
        # the first layer is shown; the others, and the probabilities, when their switches are ticked
        assert [c.find_element(By.CSS_SELECTOR, ".tag[data-layer='UPOS']").text for c in chips] == layers[0]["tags"]
        assert all(e.text == "" for c in chips for e in c.find_elements(By.CSS_SELECTOR, ".tag.extra, .prob"))
        for switch in driver.find_elements(By.CSS_SELECTOR, "#tag-layers input"):
            if not switch.is_selected():
                switch.click()
        for k, a in enumerate(layers):
            assert [c.find_element(By.CSS_SELECTOR, f".tag[data-layer='{a['name']}']").text for c in chips] == a["tags"]
            assert [c.find_elements(By.CSS_SELECTOR, ".prob")[k].text for c in chips] == [f"{p:.2f}" for p in a["probabilities"]]
        assert chips[0].get_attribute("title") == "\n".join(
            f"{a['name']} {a['tags'][0]}: P = {a['probabilities'][0]:.3f}" for a in layers)


# -- a model without attention -----------------------------------------------------------------------------

def test_a_model_without_attention_shows_its_tags_and_why(browser):
    driver = browser
    none = load_explainable(tiny_tagger_dir(steps=0, encoder="none"))
    [(tags, _)] = none.tag([tokenize(SENTENCE)])
    with ServerThread(create_app(none)) as url:
        open_view(driver, url, text=SENTENCE)
        assert [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#tagged .token .tag")] == tags
        reason = driver.find_element(By.ID, "no-attention")
        assert reason.is_displayed() and "'none' encoder, which has no attention" in reason.text
        assert not driver.find_element(By.ID, "attention").is_displayed()
        assert "tags only" in driver.find_element(By.ID, "model-info").text
        assert severe_errors(driver) == []


# -- the notebook page ---------------------------------------------------------------------------------------

def test_the_notebook_page_works_offline(browser, model, tmp_path):
    driver = browser
    page = show(model, "I saw a saw", compare="I saw the saw", view="steps", layer=2, head=2).save(tmp_path / "explorer.html")
    driver.get("about:blank")
    driver.get(page.as_uri())
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    tokens = tokenize("I saw a saw")
    expected = steps_body(model, tokens, 1, 1)
    values = [float(e.get_attribute("data-value")) for e in driver.find_elements(By.CSS_SELECTOR, "#steps-table td.alpha-prime")]
    assert values == expected["alpha_prime"][0]
    driver.find_element(By.CSS_SELECTOR, "#view-tabs button[data-view='compare']").click()
    WebDriverWait(driver, 5).until(lambda d: "the/" in d.find_element(By.ID, "caption-b").text)
    driver.find_element(By.CSS_SELECTOR, "#view-tabs button[data-view='model']").click()
    assert len(driver.find_elements(By.CSS_SELECTOR, "#thumbs canvas")) == LAYERS * HEADS
    # a sentence the page was not made with: said so, no request is made
    box = driver.find_element(By.ID, "sentence")
    box.clear()
    box.send_keys("another sentence")
    driver.find_element(By.ID, "submit").click()
    assert "saved with “I saw a saw” and “I saw the saw” only" in driver.find_element(By.ID, "error").text
    assert severe_errors(driver) == []


def test_two_notebook_outputs_on_one_page_each_work(browser, model, tmp_path):
    """What Jupyter does with ``_repr_html_``: the iframes sit in the notebook's page, each its own view."""
    driver = browser
    outputs = [show(model, "I saw a saw", view="steps", layer=1, head=2), show(model, "They watch the old watch", view="model")]
    host = tmp_path / "notebook.html"
    host.write_text("<!doctype html><html><body><h1>notebook</h1>" + "".join(o._repr_html_() for o in outputs) + "</body></html>",
                    encoding="utf-8")
    driver.get("about:blank")
    driver.get_log("browser")
    driver.get(host.as_uri())
    frames = driver.find_elements(By.TAG_NAME, "iframe")
    assert len(frames) == 2
    try:
        for frame, (view, count) in zip(frames, (("steps", 4), ("model", LAYERS * HEADS))):
            driver.switch_to.frame(frame)
            WebDriverWait(driver, 10).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
            assert driver.find_element(By.ID, f"view-{view}").is_displayed()
            selector = "#steps-table tbody tr" if view == "steps" else "#thumbs canvas"
            assert len(driver.find_elements(By.CSS_SELECTOR, selector)) == count
            driver.switch_to.default_content()
    finally:
        driver.switch_to.default_content()
    assert severe_errors(driver) == []


# -- a Hugging Face checkpoint ---------------------------------------------------------------------------------

def test_a_checkpoint_shows_its_word_pieces_and_every_heads_map(browser, tmp_path):
    """A tiny random BERT checkpoint (built locally): word pieces instead of tag chips, the heatmap
    with the pieces on its axes, and the steps of a head with the API's numbers."""
    pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
    from test_hf import write_wordpiece_tokenizer
    from tiny_hf import hf_model, save_checkpoint

    directory = save_checkpoint(hf_model("bert"), tmp_path / "bert")
    write_wordpiece_tokenizer(directory)
    bert = load_explainable(directory)
    text = "The cat sat on the unbelievable mat."
    pieces = bert.split(text)
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]" and "##believ" in pieces
    driver = browser
    with ServerThread(create_app(bert)) as url:
        open_view(driver, url, text=text)
        assert "bert checkpoint: word pieces, no tags" in driver.find_element(By.ID, "model-info").text
        assert driver.find_element(By.ID, "submit").text == "Attend"
        assert [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#tagged .token .word")] == pieces
        assert driver.find_elements(By.CSS_SELECTOR, "#tagged .token .tag") == []
        assert driver.find_element(By.ID, "tags-heading").text == "Word pieces"
        note = driver.find_element(By.ID, "no-tags")
        assert note.is_displayed() and "without a tagging head" in note.text
        assert driver.execute_script("return document.getElementById('heatmap').geometry.tokens") == pieces
        assert canvas_colours(driver) > 20
        screenshot(driver, tmp_path / "checkpoint.png")

        open_view(driver, url, text=text, view="steps", layer=3, head=2, query=8)
        expected = api(url, "/api/steps", {"text": text, "layer": 2, "head": 1})
        shown = [float(e.get_attribute("data-value")) for e in driver.find_elements(By.CSS_SELECTOR, "#steps-table td.alpha-prime")]
        assert shown == expected["alpha_prime"][7]
        assert [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#steps-table td.word")] == pieces
        assert severe_errors(driver) == []
