"""`attnlab bench treebanks`' tables, on made-up results: cells above UDPipe 1.2 in bold, the others
marked as misses, a model without a segmenter said so in the raw-text table."""

from attnlab.bench.treebanks import RAW_METRICS, changed_columns, raw_table


def test_raw_text_rows_mark_every_cell_against_udpipe():
    result = {"treebank": "ud-english-ewt",
              "raw": {"Words": 0.9935, "Sentences": 0.70, "UPOS": 0.94, "XPOS": 0.93, "UFeats": 0.944,
                      "AllTags": 0.92, "Lemmas": 0.97, "words_per_s": 12345.6}}
    lines = raw_table([result, {"treebank": "ud-french-sequoia", "raw": None}]).splitlines()
    assert lines[0] == "| treebank | " + " | ".join(RAW_METRICS) + " | raw text to CoNLL-U words/s |"
    cells = [c.strip() for c in lines[2].split("|")[1:-1]]
    assert cells == ["ud-english-ewt", "**99.35** / 99.1", "70.00 (miss) / 77.1", "**94.00** / 93.5", "**93.00** / 92.9",
                     "94.40 (miss) / 94.5", "**92.00** / 91.5", "**97.00** / 96.0", "12,346"]
    assert lines[3].count("no segmenter") == len(RAW_METRICS)


def test_changed_columns_sees_only_word_columns():
    before = "# text = a\n1\ta\t_\t_\t_\t_\t0\troot\t_\t_\n"
    assert changed_columns(before, before.replace("\t_\t_\t_\t_\t0", "\ta\tDET\t_\t_\t0")) == {2, 3}
    assert changed_columns(before, before.replace("# text = a", "# text = b")) == {-1}
