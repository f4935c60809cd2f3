"""`attnlab bench explorer` without a browser: its options, its sentences and its table (the timing
itself needs chromium and is a benchmark, not a test)."""

from __future__ import annotations

import pytest

from attnlab.bench import explorer
from attnlab.bench.explorer import VIEWS, format_report, other_sentence, sentence
from attnlab.cli import build_parser
from attnlab.cli.bench import explorer_config


def parse(*argv):
    return build_parser().parse_args(["bench", "explorer", *argv])


def test_defaults_are_the_three_lengths_two_widths_and_three_rounds():
    cfg = explorer_config(parse())
    assert (cfg.model, cfg.words, cfg.widths, cfg.rounds, cfg.views) == ("en", (5, 40, 128), (1280, 420), 3, VIEWS)


def test_options_are_kept_in_order_without_repeats():
    cfg = explorer_config(parse("--words", "40", "5", "40", "--widths", "420", "--rounds", "1", "--model", "m"))
    assert (cfg.words, cfg.widths, cfg.rounds, cfg.model) == ((40, 5), (420,), 1, "m")


@pytest.mark.parametrize("argv", [["--words", "129"], ["--words", "1"], ["--widths", "100"], ["--rounds", "0"],
                                  ["--words", "x"]])
def test_out_of_range_options_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert argv[0] in capsys.readouterr().err


@pytest.mark.parametrize("n", [2, 5, 6, 40, 61, 128])
def test_sentences_have_the_words_asked_for_and_start_alike(n):
    words = sentence(n).split()
    assert len(words) == n and words[-1] == "."
    assert words[: min(n, 5) - 1] == "I saw a saw".split()[: min(n, 5) - 1]
    assert sentence(5) == "I saw a saw ."
    other = other_sentence(sentence(n)).split()
    assert len(other) == n
    assert sum(a != b for a, b in zip(words, other)) == (1 if n > 3 else 0)


def test_a_missing_driver_is_named_in_one_line(monkeypatch, tmp_path):
    pytest.importorskip("selenium")
    monkeypatch.setattr(explorer, "CHROMEDRIVER", str(tmp_path / "chromedriver"))
    monkeypatch.setattr(explorer, "CHROMIUM", "/bin/sh")
    message = explorer.missing_browser()
    assert message == f"{tmp_path / 'chromedriver'} is missing (apt-get install chromium-driver)"


def report(seconds_128, scroll=False):
    def case(words, width, s):
        return {"words": words, "width": width, "seconds": {v: s for v in VIEWS},
                "scroll": {v: scroll and width == 420 and v == "steps" for v in VIEWS},
                "smallest": {"px": 10.6667, "tag": "sub", "text": "m"}, "errors": {}}
    return {"cpu": "Some CPU", "nproc": 2, "browser": "1.0", "model": "en", "rounds": 3,
            "load_before": (1.0, 1.0, 1.0), "load_after": (1.5, 1.0, 1.0), "target_s": 1.5, "target_words": 128,
            "views": list(VIEWS), "cases": [case(5, 1280, 0.1), case(128, 420, seconds_128)]}


def test_the_table_marks_the_target_at_128_words_only():
    text = format_report(report(1.5))
    rows = [line for line in text.splitlines() if line.startswith("| 5 ") or line.startswith("| 128 ")]
    assert "Some CPU (2 CPUs)" in text and "load average 1.00 before, 1.50 after" in text
    assert rows[0].count("0.10 |") == 6 and "ok" not in rows[0] and "OVER" not in rows[0]
    assert rows[1].count("1.50 ok") == 6
    assert format_report(report(1.51)).count("1.51 OVER") == 6
    assert rows[1].endswith('| none | 10.7 px (sub "m") |')


def test_the_table_names_the_views_that_scroll_sideways():
    rows = format_report(report(1.0, scroll=True)).splitlines()
    assert rows[-1].startswith("| 128 | 420 |") and "| steps | 10.7 px" in rows[-1]
    assert "| none |" in rows[-2]
