"""Experiments: the generated tasks, the plots against their JSON, and the --quick path of every
experiment (with test-sized settings, on generated data and the bundled demo corpus)."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
import torch

from attnlab.cli import main
from attnlab.experiments import EXPERIMENTS
from attnlab.experiments import common, data_size, distance, graph, speed


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- the distance task -----------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 2, 7, 64])
def test_distance_label_is_the_token_k_after_the_query(k):
    data = distance.make_dataset(k, 300, seed=3)
    first_key_agrees = 0
    for s in data:
        q = s.forms.index(distance.QUERY)
        assert s.forms.count(distance.QUERY) == 1
        assert s.upos[q] == s.forms[q + k] == distance.query_label(s.forms, k)
        assert s.forms[q + k] in distance.class_names(4)
        # between the query and its key there are only fillers: the key is the only one after the query
        assert all(f.startswith("f") for f in s.forms[q + 1: q + k])
        assert all(not f in distance.class_names(4) for f in s.forms[q + k + 1:])
        assert [t for t in s.upos if t not in ("O", "KEY")] == [s.upos[q]]
        keys_before = [f for f in s.forms[:q] if f in distance.class_names(4)]
        assert keys_before, "every sequence has a distractor key before the query"
        first_key_agrees += keys_before[0] == s.upos[q]
    # the distractors do not decide the label: the first key agrees with it about 1/4 of the time
    assert first_key_agrees / len(data) < 0.45
    # the labels are balanced over the classes
    counts = Counter(s.upos[s.forms.index("?")] for s in data)
    assert set(counts) == set("ABCD") and min(counts.values()) > 40


def test_distance_label_changes_with_the_key_and_nothing_else():
    """Counterfactual: editing the token k away changes the rule's label; editing any other token does not."""
    k = 5
    s = distance.make_sequence(k, random.Random(0))
    q = s.forms.index("?")
    for pos in range(len(s.forms)):
        if pos == q:
            continue
        for replacement in distance.class_names(4) + ["f00"]:
            forms = list(s.forms)
            if pos == q + k and replacement.startswith("f"):
                continue  # the key must stay a key
            forms[pos] = replacement
            expected = replacement if pos == q + k else s.upos[q]
            assert distance.query_label(forms, k) == expected


def test_query_accuracy_scores_only_the_query():
    gold = [["O", "KEY", "B", "O"], ["A", "O"]]
    assert distance.query_accuracy(gold, [["KEY", "O", "B", "KEY"], ["C", "O"]]) == 0.5


def test_distance_rejects_bad_settings():
    with pytest.raises(ValueError, match="k must be >= 1"):
        distance.make_sequence(0, random.Random(0))
    with pytest.raises(ValueError, match="classes"):
        distance.make_sequence(3, random.Random(0), classes=1)


# -- the graph task --------------------------------------------------------------------

def test_graph_labels_count_red_neighbours_from_the_adjacency():
    from attnlab.attention.masks import from_graph

    for g in graph.make_graphs(50, seed=1):
        adj = from_graph(g.edges, g.n, self_loops=False)
        red = torch.tensor([c == "R" for c in g.colors])
        counts = (adj & red[None, :]).sum(1).tolist()
        assert g.labels() == [graph.LABELS[min(c, 2)] for c in counts]
        assert g.tokens() == [f"{c}{int(d)}" for c, d in zip(g.colors, adj.sum(1).tolist())]
        # connected: a walk from node 0 reaches everyone
        seen, todo = {0}, [0]
        while todo:
            i = todo.pop()
            for j in g.neighbours(i):
                if j not in seen:
                    seen.add(j)
                    todo.append(j)
        assert len(seen) == g.n


def test_graph_mask_hides_non_neighbours():
    """With the mask, a one-layer model's output at a node ignores nodes that are not its neighbours."""
    torch.manual_seed(0)
    g = graph.Graph(["R", "B", "R", "B"], [(0, 1), (1, 2), (2, 3)])  # a path 0-1-2-3
    model = graph.GraphAttentionModel(vocab_size=10, classes=3, width=16, layers=1, heads=2).eval()
    mask = graph.attend_mask_for([g], 4, use_graph=True)
    assert mask[0, 0].tolist() == [[True, True, False, False], [True, True, True, False],
                                   [False, True, True, True], [False, False, True, True]]
    ids = torch.tensor([[2, 3, 4, 5]])
    changed = ids.clone()
    changed[0, 3] = 7  # node 3 is not a neighbour of nodes 0 and 1
    with torch.no_grad():
        a, b = model(ids, mask), model(changed, mask)
        full = graph.attend_mask_for([g], 4, use_graph=False)
        c, d = model(ids, full), model(changed, full)
    torch.testing.assert_close(a[0, :2], b[0, :2])
    assert not torch.allclose(a[0, 2:], b[0, 2:])
    assert not torch.allclose(c[0, 0], d[0, 0])  # without the mask, node 0 sees node 3


# -- helpers ---------------------------------------------------------------------------

def test_nested_subsets_are_nested():
    items = list(range(1000))
    subsets = data_size.nested_subsets(items, (0.01, 0.1, 1.0))
    assert [len(subsets[f]) for f in (0.01, 0.1, 1.0)] == [10, 100, 1000]
    assert set(subsets[0.01]) <= set(subsets[0.1]) <= set(subsets[1.0])


def test_crossings():
    xs = [100, 1000, 10000]
    found = data_size.crossings(xs, {"cnn": [0.8, 0.85, 0.88], "attention": [0.7, 0.86, 0.9], "window": [0.5, 0.5, 0.5]})
    assert [(c["a"], c["b"], c["ahead_after"]) for c in found] == [("cnn", "attention", "attention")]
    assert 100 < found[0]["tokens"] < 1000


def test_speed_crossover_and_matched_parameters():
    assert speed.crossover([16, 32, 64], [1.0, 2.0, 4.0], [3.0, 3.0, 3.0]) == pytest.approx(
        2 ** (5 + 1 / 2), rel=1e-6)  # half way between 32 and 64 on the log axis
    assert speed.crossover([16, 32], [1.0, 1.0], [2.0, 2.0]) is None
    configs = speed.matched_configs(32)
    from attnlab.encoders import EncoderConfig, build_encoder

    counts = {e: speed.count(build_encoder(e, 32, EncoderConfig(**c))) for e, c in configs.items()}
    assert max(counts.values()) / min(counts.values()) < 1.15


# -- plots and their JSON --------------------------------------------------------------

def _check_plot_matches_json(out, name):
    png, js = out / f"{name}.png", out / f"{name}.json"
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / f"{name}.md").stat().st_size > 0
    result = json.loads(js.read_text())
    fig = common.draw(result["plot"])
    try:
        for ax, spec in zip(fig.axes, result["plot"]):
            if spec.get("kind") == "bar":
                heights = [p.get_height() for p in ax.patches]
                expected = [y for s in spec["series"] for y in s["y"]]
                assert heights == pytest.approx(expected)
                continue
            lines = [l for l in ax.get_lines() if not l.get_label().startswith("_") and l.get_label() in
                     {s["label"] for s in spec["series"]}]
            assert len(lines) == len(spec["series"])
            for line, s in zip(lines, spec["series"]):
                assert line.get_label() == s["label"]
                assert list(line.get_xdata()) == pytest.approx(s["x"])
                assert list(line.get_ydata()) == pytest.approx(s["y"])
            assert ax.get_xlabel() == spec["xlabel"] and ax.get_ylabel() == spec["ylabel"]
            assert ax.get_legend() is not None
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return result


TINY = {
    "data-size": ["fractions=[0.5,1.0]", 'encoders=["cnn","attention"]', "train_sentences=40", "dev_sentences=10",
                  "test_sentences=10", "steps=3", "max_epochs=1", "seeds=2", "seeds_large=2"],
    "speed": ["lengths=[8,32]", "width=16", "batch_tokens=64", "repeats=1"],
    "distance": ["distances=[1,8]", 'encoders=["window","attention"]', "train_tokens=300", "min_train_sequences=8",
                 "dev_sequences=4", "test_sequences=6", "epochs=1", "scale=0.25"],
    "positions": ['schemes=["none","rotary"]', "demo_train_sentences=40", "demo_dev_sentences=10", "demo_steps=3"],
    "graph": ["train_graphs=30", "dev_graphs=10", "test_graphs=10", "epochs=2", "seeds=2", "width=16"],
}


@pytest.fixture
def no_treebank(monkeypatch):
    monkeypatch.delenv("ATTNLAB_DATA", raising=False)


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_quick_path_writes_json_png_markdown(name, tmp_path, no_treebank):
    argv = ["experiment", name, "--quick", "--out", str(tmp_path), "--no-progress"]
    for item in TINY[name]:
        argv += ["--set", item]
    assert main(argv) == 0
    result = _check_plot_matches_json(tmp_path, name)
    plotted = {s["label"]: s for s in result["plot"][0]["series"]}
    if name == "data-size":
        # the plotted points are the means of the runs, at the subsets' token counts
        for enc in ("cnn", "attention"):
            runs = [r for r in result["runs"] if r["encoder"] == enc]
            assert len(runs) == 4  # 2 fractions x 2 seeds
            for i, f in enumerate((0.5, 1.0)):
                accs = [r["test"] for r in runs if r["fraction"] == f]
                assert plotted[enc]["y"][i] == pytest.approx(100 * sum(accs) / len(accs))
                assert plotted[enc]["x"][i] == runs[2 * i]["train_tokens"]
        assert plotted["cnn"]["x"][0] < plotted["cnn"]["x"][1]
    elif name == "speed":
        for e in ("bilstm", "cnn", "attention"):
            (line,) = [s for label, s in plotted.items() if label.startswith(e + " ")]
            assert line["y"] == pytest.approx(result["us_per_token"][e]) and all(y > 0 for y in line["y"])
            assert line["x"] == [8, 32]
    elif name == "distance":
        for e in ("window", "attention"):
            assert plotted[e]["y"] == pytest.approx([100 * a for a in result["accuracy"][e]])
            assert all(0 <= a <= 1 for a in result["accuracy"][e])
    elif name == "positions":
        assert result["plot"][0]["categories"] == ["none", "rotary"]
        none_runs = [r for r in result["runs"] if r["positions"] == "none"]
        # without positions both "saw" get the same tag, whatever the training did
        assert none_runs and all(not r["saws_differ"] for r in none_runs)
        assert [d["name"] for d in result["datasets"]] == ["demo"]  # no treebank given: demo corpus only
    elif name == "graph":
        assert set(result["summary"]) == {"masked", "unmasked"}
        assert len(result["runs"]) == 4 and 0 < result["majority_baseline"] < 1


def test_all_writes_the_report(tmp_path, no_treebank, monkeypatch):
    from attnlab.experiments import report

    calls = []

    def fake_run_one(name, settings):
        calls.append(name)
        common.write_text(settings.out / f"{name}.md", f"### {name}\n")

    monkeypatch.setattr(report, "run_one", fake_run_one)
    report.run_all(common.Settings(out=tmp_path, quick=True))
    assert calls == list(EXPERIMENTS)
    text = (tmp_path / "experiments.md").read_text()
    assert all(f"### {n}" in text for n in EXPERIMENTS)


def test_bad_input_is_one_line(tmp_path, no_treebank, capsys):
    assert main(["experiment", "data-size", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs a treebank" in err and len(err.splitlines()) == 1
    assert main(["experiment", "speed", "--out", str(tmp_path), "--set", "oops"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main(["experiment", "speed", "--out", str(tmp_path), "--set", "lenghts=[8]"]) == 2
    err = capsys.readouterr().err
    assert "unknown setting lenghts for speed" in err and "lengths" in err
    assert not (tmp_path / "speed.json").exists()


def test_setting_names_are_read_from_the_experiments():
    from attnlab.experiments.report import setting_names

    assert {"lengths", "width", "repeats"} <= setting_names("speed")
    assert {"fractions", "seeds", "seeds_large", "steps"} <= setting_names("data-size")
    for name in EXPERIMENTS:
        assert set(k.replace("-", "_") for item in TINY[name] for k in [item.split("=")[0]]) <= setting_names(name)
