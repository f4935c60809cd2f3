"""The model view with a head report (see browser_kit): every thumbnail shows its head's entropy,
distance, best relation against the fixed-offset baseline and importance, as the report says;
the sort control orders the heads by each; a server without a report draws the view as before;
a notebook page carries the report in itself."""

from __future__ import annotations

from browser_kit import *  # noqa: F401,F403  (the fixtures, helpers and the modules they use)

from attnlab.data.conllu import parse_conllu
from attnlab.viz.headstats import head_report
from tiny_models import full_corpus


def tiny_treebank(model) -> str:
    """The toy corpus as CoNLL-U whose trees layer 2, head 2 tracks: each word's head is the word
    (not itself) that head attends to most; relation dep at odd positions, obj at even ones."""
    blocks = []
    for s in full_corpus(30, seed=5):
        w = model.attention(s.forms)[2][1, 1].clone()  # (n, n)
        w.fill_diagonal_(-1.0)
        heads = w.argmax(-1).tolist()
        rows = [f"{i + 1}\t{f}\t_\t{u}\t_\t_\t{heads[i] + 1}\t{'dep' if i % 2 else 'obj'}\t_\t_"
                for i, (f, u) in enumerate(zip(s.forms, s.upos))]
        blocks.append("\n".join(rows) + "\n\n")
    return "".join(blocks)


@pytest.fixture(scope="module")
def report(model):
    return head_report(model, parse_conllu(tiny_treebank(model), "tiny.conllu"), min_count=5, source="tiny.conllu")


@pytest.fixture(scope="module")
def heads_server(model, report):
    with ServerThread(create_app(model, heads=report)) as url:
        yield url


def shown(driver) -> list[dict]:
    """Every thumbnail in page order: its layer and head (from 0) and its numbers by name."""
    return driver.execute_script("""
        return [...document.querySelectorAll('#thumbs figure')].map(f => {
          const c = f.querySelector('canvas');
          const facts = {};
          f.querySelectorAll('dd[data-stat]').forEach(d => { facts[d.dataset.stat] = [d.textContent, Number(d.dataset.value)]; });
          return {layer: Number(c.dataset.layer), head: Number(c.dataset.head), facts};
        });""")


def sort_by(driver, value: str) -> None:
    Select(driver.find_element(By.ID, "heads-sort")).select_by_value(value)


def mean_loss(e) -> float:
    drops = [v["drop"] for v in e["importance"].values()]
    return sum(drops) / len(drops)


def test_thumbnails_show_each_heads_numbers(browser, heads_server, report):
    driver = browser
    open_view(driver, heads_server, text=SENTENCE, view="model")
    WebDriverWait(driver, 5).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#thumbs dl.head-facts")) == LAYERS * HEADS)
    thumbs = shown(driver)
    assert [(t["layer"], t["head"]) for t in thumbs] == [(l, h) for l in range(LAYERS) for h in range(HEADS)]
    for t, e in zip(thumbs, report["per_head"]):
        f = t["facts"]
        assert f["entropy"] == [f"{e['entropy']:.2f}", pytest.approx(e["entropy"])]
        assert f["distance"] == [f"{e['distance']:.2f}", pytest.approx(e["distance"])]
        best = e["best"]
        if best is None:
            assert f["relation"] == ["none beyond the offset", 0]
        else:
            assert f["relation"][0] == f"{100 * best['accuracy']:.1f}% (offset {100 * best['baseline']:.1f}%)"
            assert f["relation"][1] == pytest.approx(best["accuracy"])
        drop = -100 * e["importance"]["UPOS"]["drop"]
        assert f["importance"][0] == f"UPOS {'+' if drop > 0 else '−' if drop < 0 else '±'}{abs(drop):.2f}"
    # the relation's name and direction label it; the legend names the treebank and the intact accuracy
    labels = " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "#thumbs dl.head-facts dt"))
    named = [e["best"] for e in report["per_head"] if e["best"] is not None]
    assert report["per_head"][3]["best"]["direction"] == "to_head"  # the head the trees follow
    assert named and all(f"{b['relation']} → {'head' if b['direction'] == 'to_head' else 'dependent'}" in labels
                         for b in named)
    legend = driver.find_element(By.ID, "heads-legend").text
    assert "tiny.conllu" in legend and f"UPOS {100 * report['intact']['UPOS']:.1f}%" in legend
    # every text of the numbers is at least 10 px
    sizes = driver.execute_script("return [...document.querySelectorAll('.head-facts dt, .head-facts dd')]"
                                  ".map(e => parseFloat(getComputedStyle(e).fontSize))")
    assert sizes and min(sizes) >= 10
    # a click still opens the head
    driver.find_elements(By.CSS_SELECTOR, "#thumbs canvas.thumb")[3].click()
    canvas = driver.find_element(By.ID, "heatmap")
    assert (canvas.get_attribute("data-layer"), canvas.get_attribute("data-head")) == ("1", "1")
    assert severe_errors(driver) == []


@pytest.mark.parametrize("sort, key", [
    ("entropy", lambda e: e["entropy"]),
    ("distance", lambda e: e["distance"]),
    ("importance", lambda e: -mean_loss(e)),
    ("relation", lambda e: -e["best"]["accuracy"] if e["best"] else 1),
    ("layer", lambda e: 0),
])
def test_the_sort_control_orders_the_heads(browser, heads_server, report, sort, key):
    driver = browser
    open_view(driver, heads_server, text=SENTENCE, view="model")
    WebDriverWait(driver, 5).until(lambda d: d.find_element(By.ID, "heads-sort-box").is_displayed())
    sort_by(driver, sort)
    expected = [(e["layer"] - 1, e["head"] - 1)
                for e in sorted(report["per_head"], key=lambda e: (key(e), e["layer"], e["head"]))]
    thumbs = shown(driver)
    assert [(t["layer"], t["head"]) for t in thumbs] == expected
    if sort == "entropy":  # the numbers travel with their head
        assert [t["facts"]["entropy"][1] for t in thumbs] == sorted(t["facts"]["entropy"][1] for t in thumbs)
    pictures = driver.execute_script("return [...document.querySelectorAll('#thumbs canvas')].map(c => c.dataset.layer + c.dataset.head)")
    assert len(set(pictures)) == LAYERS * HEADS
    # another tab and back: the order holds
    driver.find_element(By.CSS_SELECTOR, "#view-tabs button[data-view='head']").click()
    driver.find_element(By.CSS_SELECTOR, "#view-tabs button[data-view='model']").click()
    assert [(t["layer"], t["head"]) for t in shown(driver)] == expected


def test_a_narrow_window_keeps_the_numbers_on_the_page(browser, heads_server):
    driver = browser
    driver.set_window_size(420, 900)
    try:
        open_view(driver, heads_server, text=SENTENCE, view="model")
        WebDriverWait(driver, 5).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#thumbs dl.head-facts")) == LAYERS * HEADS)
        assert no_horizontal_scroll(driver)
        right = driver.execute_script("return Math.max(...[...document.querySelectorAll('.head-facts')]"
                                      ".map(e => e.getBoundingClientRect().right))")
        assert right <= 420
    finally:
        driver.set_window_size(1200, 900)


def test_without_a_report_the_model_view_is_as_before(browser, server):
    driver = browser
    open_view(driver, server, text=SENTENCE, view="model")
    assert api_get(server, "/api/heads")["report"] is None
    assert not driver.find_element(By.ID, "heads-sort-box").is_displayed()
    assert not driver.find_element(By.ID, "heads-legend").is_displayed()
    assert driver.find_elements(By.CSS_SELECTOR, "#thumbs dl.head-facts") == []
    assert len(driver.find_elements(By.CSS_SELECTOR, "#thumbs .thumb-row")) == LAYERS
    assert severe_errors(driver) == []


def test_a_notebook_page_carries_the_report(browser, model, report, tmp_path):
    page = show(model, SENTENCE, view="model", heads=report).save(tmp_path / "explorer.html")
    driver = browser
    driver.get("about:blank")
    driver.get_log("browser")
    driver.get(page.as_uri())
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    WebDriverWait(driver, 5).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#thumbs dl.head-facts")) == LAYERS * HEADS)
    sort_by(driver, "distance")
    assert [t["facts"]["distance"][1] for t in shown(driver)] == sorted(e["distance"] for e in report["per_head"])
    assert severe_errors(driver) == []


def api_get(url: str, path: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(url + path, timeout=30) as response:
        return json.load(response)
