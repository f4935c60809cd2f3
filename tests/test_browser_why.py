"""The Why view in a real browser (see browser_kit): for the chosen word and tag layer, one row
per input word with its integrated-gradients bar (red raises the tag's logit, blue lowers it) and
its rollout bar, the numbers of ``/api/why``, the completeness check, a narrow window, and the
notebook page that works without a server."""

from __future__ import annotations

from browser_kit import *  # noqa: F401,F403  (the fixtures, helpers and the modules they use)

from attnlab.viz import why as W

from tiny_models import tiny_tagger_dir


@pytest.fixture(scope="module")
def full():
    return load_explainable(tiny_tagger_dir(full=True, xpos_weight=0.5))


@pytest.fixture(scope="module")
def full_server(full):
    with ServerThread(create_app(full)) as url:
        yield url


def why_rows(driver) -> list[dict]:
    return driver.execute_script("""
        return [...document.querySelectorAll('#why-chart .why-row')].map((r) => ({
          index: Number(r.dataset.index), attribution: Number(r.dataset.attribution),
          rollout: Number(r.dataset.rollout), chosen: r.classList.contains('chosen'),
          colour: getComputedStyle(r.querySelector('.bar.signed')).backgroundImage,
          width: Number(r.querySelector('.bar.signed').dataset.width)}));""")


def wait_for_word(driver, word: int, layer: str):
    WebDriverWait(driver, 20).until(lambda d: d.execute_script(
        "const r = document.querySelector('#why-chart .why-row.chosen');"
        "return r && Number(r.dataset.index) === arguments[0] && "
        "document.getElementById('why-summary').textContent.includes(arguments[1]);", word, layer))


def test_why_shows_attributions_rollout_and_the_completeness_check(browser, full, full_server, tmp_path):
    driver = browser
    tokens = tokenize(SENTENCE)
    open_view(driver, full_server, text=SENTENCE, view="why", word=4, tag="UPOS")
    wait_for_word(driver, 3, "UPOS")
    assert driver.find_element(By.ID, "view-why").is_displayed()
    assert not driver.find_element(By.ID, "controls").is_displayed()  # the heatmap's settings do not apply here

    w = W.explain_word(full, tokens, 3, "UPOS")
    rows = why_rows(driver)
    assert [r["index"] for r in rows] == list(range(len(tokens)))
    assert [r["chosen"] for r in rows] == [i == 3 for i in range(len(tokens))]
    np.testing.assert_allclose([r["attribution"] for r in rows], w.attributions, atol=1e-6)
    np.testing.assert_allclose([r["rollout"] for r in rows], w.rollout, atol=1e-6)
    top = np.abs(w.attributions).max()
    for r, a in zip(rows, w.attributions):  # signed bars: red up, blue down, half a cell at the largest
        assert ("178, 24, 43" if a > 0 else "33, 102, 172") in r["colour"]
        assert r["width"] == pytest.approx(50 * abs(a) / top, abs=0.01)
    check = driver.find_element(By.ID, "why-check")
    assert float(check.get_attribute("data-sum")) == pytest.approx(w.attributions.sum(), abs=1e-5)
    assert float(check.get_attribute("data-gap")) == pytest.approx(w.gap, abs=1e-5)
    assert f"gap {w.gap:.4f}" in check.text and "of the difference" in check.text
    summary = driver.find_element(By.ID, "why-summary").text
    assert f"tagged UPOS {w.tag} (P = {w.probability:.3f})" in summary and f"{w.difference:.3f}" in summary
    assert "word=4" in driver.current_url and "tag=UPOS" in driver.current_url

    # another layer, then another word by clicking its row
    select(driver, "why-layer", 3)
    wait_for_word(driver, 3, "LEMMA")
    lemma = W.explain_word(full, tokens, 3, "LEMMA")
    np.testing.assert_allclose([r["attribution"] for r in why_rows(driver)], lemma.attributions, atol=1e-6)
    driver.find_elements(By.CSS_SELECTOR, "#why-chart .why-row .word")[1].click()
    wait_for_word(driver, 1, "LEMMA")
    assert driver.find_element(By.ID, "why-word").get_attribute("value") == "1"
    screenshot(driver, tmp_path / "why.png")

    # every text of the view is at least 10 px; no horizontal scroll at 420 px
    sizes = driver.execute_script("""return [...document.querySelectorAll('#view-why *')]
        .filter((e) => e.offsetParent && [...e.childNodes].some((c) => c.nodeType === 3 && c.textContent.trim()))
        .map((e) => parseFloat(getComputedStyle(e).fontSize));""")
    assert sizes and min(sizes) >= 10
    driver.set_window_size(420, 900)
    try:
        long = "the dogs saw a cat with my old saw and the man ate a big red apple ."
        open_view(driver, full_server, text=long, view="why", word=3, tag="XPOS")
        wait_for_word(driver, 2, "XPOS")
        assert no_horizontal_scroll(driver)
        assert len(why_rows(driver)) == len(tokenize(long))
    finally:
        driver.set_window_size(1200, 900)
    assert severe_errors(driver) == []


def test_why_errors_say_what_is_wrong(browser, server):
    driver = browser
    open_view(driver, server, text=SENTENCE, view="why", word=2, tag="XPOS")  # the small tagger has UPOS only
    wait_for_word(driver, 1, "UPOS")
    assert driver.find_element(By.ID, "why-layer").text.split() == ["UPOS"]


def test_why_in_the_notebook_page_without_a_server(browser, model, tmp_path):
    page = tmp_path / "why.html"
    show(model, "I saw a saw", view="why", why_steps=16).save(page)
    driver = browser
    driver.get("about:blank")
    driver.get_log("browser")
    driver.get(page.as_uri() + "#text=I%20saw%20a%20saw&view=why&word=3&tag=UPOS")
    wait_for_word(driver, 2, "UPOS")
    w = W.explain_word(model, ["I", "saw", "a", "saw"], 2, "UPOS", steps=16)
    np.testing.assert_allclose([r["attribution"] for r in why_rows(driver)], w.attributions, atol=1e-6)
    select(driver, "why-word", 0)
    wait_for_word(driver, 0, "UPOS")
    assert severe_errors(driver) == []
