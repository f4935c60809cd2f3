"""The raw-text pipeline: block-local attention, what the segmenter learns from a treebank's raw
text, multiword tokens, decoding rules, and CoNLL-U that gives back every character of the input."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnlab.attention.local import block_attention, block_mask
from attnlab.data.conllu import parse_conllu
from attnlab.data.rawtext import (INSIDE, SENTENCE_END, TOKEN_END, conllu_sentences, document_text, escape_spaces,
                                  labeled_text, rebuild_text, unescape_spaces)
from attnlab.data.vocab import Vocab
from attnlab.tasks.multiword import MultiwordTable, split_rule
from attnlab.tasks import segmenter as seg

# A tiny treebank in the shape UD writes: # text, SpaceAfter=No, a multiword token, # newpar.
TREEBANK = """# newdoc id = d1
# newpar
# sent_id = 1
# text = Il parle du chat.
1\tIl\til\tPRON\t_\t_\t2\tnsubj\t_\t_
2\tparle\tparler\tVERB\t_\t_\t0\troot\t_\t_
3-4\tdu\t_\t_\t_\t_\t_\t_\t_\t_
3\tde\tde\tADP\t_\t_\t5\tcase\t_\t_
4\tle\tle\tDET\t_\t_\t5\tdet\t_\t_
5\tchat\tchat\tNOUN\t_\t_\t2\tobl\t_\tSpaceAfter=No
6\t.\t.\tPUNCT\t_\t_\t2\tpunct\t_\t_

# sent_id = 2
# text = Oui !
1\tOui\toui\tINTJ\t_\t_\t0\troot\t_\t_
2\t!\t!\tPUNCT\t_\t_\t1\tpunct\t_\t_

# newpar
# sent_id = 3
1\tFin\tfin\tNOUN\t_\t_\t0\troot\t_\tSpaceAfter=No
2\t.\t.\tPUNCT\t_\t_\t1\tpunct\t_\t_

"""


@pytest.mark.parametrize("block,shift", [(4, 0), (4, 2), (5, 3), (1, 0)])
def test_block_attention_is_attention_under_the_block_mask(block, shift):
    torch.manual_seed(0)
    B, N, H, d = 3, 37, 2, 8
    q, k, v = (torch.randn(B, N, H, d, dtype=torch.float64) for _ in range(3))
    lengths = torch.tensor([37, 20, 5])
    out = block_attention(q, k, v, block, shift, lengths)
    mask = block_mask(N, block, shift)[None, None] & (torch.arange(N)[None, None, None, :] < lengths[:, None, None, None])
    ref = torch.nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                           attn_mask=mask).transpose(1, 2)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[b, :n], ref[b, :n], rtol=0, atol=1e-12)
    assert torch.isfinite(out).all()  # padded queries whose block holds no key stay finite


def test_block_mask_cuts_where_the_shift_says():
    assert block_mask(6, 2).int().tolist()[0] == [1, 1, 0, 0, 0, 0]
    assert block_mask(6, 2, 1).int().tolist()[0] == [1, 0, 0, 0, 0, 0]  # the first block is one position
    assert block_mask(6, 2, 1).int().tolist()[1] == [0, 1, 1, 0, 0, 0]


def test_the_raw_text_and_its_labels_come_from_text_spaceafter_and_paragraphs():
    sentences = parse_conllu(TREEBANK)
    assert document_text(sentences) == "Il parle du chat. Oui !\n\nFin.\n"
    labeled = labeled_text(sentences)
    assert labeled.text == "Il parle du chat. Oui !\n\nFin.\n"
    ends = {i for i, b in enumerate(labeled.boundary) if b == TOKEN_END}
    assert ends == {1, 7, 10, 15, 20, 27}  # Il parle du chat Oui Fin; ".", "!" and "." end sentences
    assert [i for i, b in enumerate(labeled.boundary) if b == SENTENCE_END] == [16, 22, 28]
    assert [i for i, m in enumerate(labeled.multiword) if m] == [10]  # the "u" of "du"
    assert labeled.tokens[2] == (9, 11, ("de", "le")) and labeled.rebuilt == 0  # sentence 3 has no # text: rebuilt
    assert labeled.boundary.count(INSIDE) == len(labeled.text) - 9


def test_multiword_splits_come_from_the_table_and_from_learned_endings():
    tokens = [("du", ["de", "le"])] * 3 + [("du", ["du"])] + [("Au", ["À", "le"]), ("didn't", ["did", "n't"]),
                                                                  ("don't", ["do", "n't"]), ("chat", ["chat"])]
    table = MultiwordTable.build(tokens)
    assert table.known("du") == 0.75 and table.known("chat") is None
    assert table.split("du") == ["de", "le"] and table.split("Au") == ["À", "le"]
    assert table.split("DU") == ["DE", "LE"]  # a case the table lacks: cased like the token
    assert split_rule("didn't", ["did", "n't"]) == ("n't", "", ("n't",))
    assert split_rule("du", ["de", "le"]) == ("u", "e", ("le",))
    assert table.split("wouldn't") == ["would", "n't"]  # never seen: the rule of the ending "n't" (2 examples)
    assert table.split("Couldn't") == ["Could", "n't"]
    assert table.split("chats") == ["chats"]  # no rule fits
    turkish = MultiwordTable.build([("evdeki", ["evde", "ki"])] * 9 + [("deki", ["d", "eki"])] * 2)
    assert turkish.rules["ki"][-1] == 9 and turkish.rules["eki"][-1] == 2
    assert turkish.split("yirmilerindeki") == ["yirmilerinde", "ki"]  # "-ki" over 4 times as common as "-eki"
    again = MultiwordTable.from_json(table.to_json())
    assert again.forms == table.forms and again.rules == table.rules


class _Fixed:
    """Scores for a text from a list of labels (and multiword probabilities)."""

    @staticmethod
    def scores(labels, mwt=None):
        boundary = torch.full((len(labels), 3), -10.0)
        boundary[torch.arange(len(labels)), torch.tensor(labels)] = 0.0
        return seg.Scores(boundary, torch.tensor(mwt if mwt else [0.0] * len(labels)))


def _vocab(spaces=False, table=None):
    return seg.SegmenterVocab(Vocab(["<pad>", "<unk>"]), spaces, table or MultiwordTable())


def test_decoding_follows_labels_spaces_line_breaks_and_multiword_tokens():
    text = "ab cd.ef\ngh"
    labels = [0] * len(text)
    labels[5] = SENTENCE_END  # "." ends a sentence; "cd" ends where the model says (before ".")
    labels[4] = TOKEN_END
    table = MultiwordTable.build([("ef", ["e", "f"])] * 2)
    found = seg.decode(text, _Fixed.scores(labels), _vocab(table=table))
    assert [[(t.start, t.end, t.form, t.words) for t in s] for s in found] == [
        [(0, 2, "ab", ["ab"]), (3, 5, "cd", ["cd"]), (5, 6, ".", ["."])],
        [(6, 8, "ef", ["e", "f"]), (9, 11, "gh", ["gh"])],  # a line break ends "ef"; the text's end ends a sentence
    ]
    spaced = seg.decode("bắt chuyện x", _Fixed.scores([0] * 9 + [TOKEN_END, 0, SENTENCE_END]), _vocab(spaces=True))
    assert [t.form for t in spaced[0]] == ["bắt chuyện", "x"]  # spaces inside tokens where the treebank has them


def test_a_sentence_never_grows_past_the_limit(monkeypatch):
    monkeypatch.setattr(seg, "MAX_SENTENCE_TOKENS", 10)
    text = " ".join(["w"] * 35)
    labels = [0] * len(text)
    found = seg.decode(text, _Fixed.scores(labels), _vocab())
    assert [len(s) for s in found] == [10, 5, 10, 5, 5] or sum(len(s) for s in found) == 35
    assert max(len(s) for s in found) <= 10 and sum(len(s) for s in found) == 35


def test_paragraphs_are_split_at_blank_lines():
    text = "  one\ntwo\n \t\nthree\n\n\n"
    assert [text[a:b] for a, b in seg.paragraph_spans(text)] == ["one\ntwo", "three"]
    assert [text[a:b] for a, b in seg.line_spans(text)] == ["one", "two", "three"]


def test_escaped_white_space_round_trips():
    for s in ["", " ", "\n\n", "\r\n\t \\|", "\u2028\xa0"]:
        assert unescape_spaces(escape_spaces(s)) == s
    assert escape_spaces(" \n") == "\\s\\n"


@pytest.fixture(scope="module")
def random_segmenter():
    """An untrained segmenter: its decisions are arbitrary, which is what the round trip needs."""
    torch.manual_seed(3)
    vocab = seg.SegmenterVocab(Vocab.build("abcdefghij .,!?\n", min_count=1), False,
                               MultiwordTable.build([("du", ["de", "le"])] * 2))
    config = seg.SegmenterConfig(dim=8, heads=2, layers=1, block=8, d_ff=8, conv_width=3, char_dim=8, dropout=0.0)
    model = seg.Segmenter(config, vocab)
    with torch.no_grad():
        model.boundary.bias.copy_(torch.tensor([0.0, 0.5, -0.5]))
        model.multiword.bias.copy_(torch.tensor([0.0, 3.0]))
    return model.eval(), vocab


def _check_round_trip(text: str, model, vocab) -> list:
    paragraphs = seg.segment(model, vocab, text)
    sentences = conllu_sentences(text, paragraphs)
    written = "".join("\n".join(s.lines) + "\n\n" for s in sentences)
    read = parse_conllu(written, require_sentences=False)  # our own reader takes what we write
    if all(seg.is_space(ch) for ch in text):
        assert read == []  # white space alone holds no sentence
        return read
    assert rebuild_text(read) == text  # no character lost or invented
    for sentence, par_sentence in zip(read, (s for par in paragraphs for s in par)):
        first, last = par_sentence[0], par_sentence[-1]
        assert sentence.text == text[first.start:last.end].replace("\n", " ").replace("\r", " ")
        for token in par_sentence:
            assert text[token.start:token.end] == token.form and token.form.strip() == token.form
            assert not set(token.form) & seg._BREAKS
    covered = set()
    for par in paragraphs:
        for s in par:
            for t in s:
                covered.update(range(t.start, t.end))
    assert all(seg.is_space(ch) for i, ch in enumerate(text) if i not in covered)
    return read


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_any_text_comes_back_from_offsets_and_text(random_segmenter, text):
    _check_round_trip(text, *random_segmenter)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["du", "ab", " ", "\r\n", "\t", "\n\n", ".", "\u3000", "\ufeff", "x" * 40, "|\\"]),
                max_size=60))
def test_hostile_pieces_come_back_exactly(random_segmenter, pieces):
    _check_round_trip("".join(pieces), *random_segmenter)


def test_a_megabyte_without_a_full_stop_is_read_to_its_end(random_segmenter):
    rng = random.Random(0)
    text = "".join(rng.choice("abcdefghij    ") for _ in range(1_000_000))
    read = _check_round_trip(text, *random_segmenter)
    assert max(len(s.tokens) for s in read) <= seg.MAX_SENTENCE_TOKENS


def test_export_carries_the_segmenter(tmp_path):
    import attnlab
    from attnlab.compact import export_model
    from tiny_models import tiny_pipeline_dir

    source = tiny_pipeline_dir(xpos_weight=0.5)
    out = export_model(source, tmp_path / "int8", "int8")
    assert (out / "segmenter" / "config.json").is_file()
    import json
    assert json.loads((out / "segmenter" / "config.json").read_text())["weight_storage"] == "float16"
    text = "I see a idea. they don't take me."
    a, b = attnlab.load(source)(text), attnlab.load(out)(text)
    assert [[t.form for t in s.tokens] for s in a] == [[t.form for t in s.tokens] for s in b]
    assert len(b) == 2 and b[1].tokens[1].words[1].form == "n't"


def test_abbreviations_learned_from_the_treebank_keep_their_sentence_and_lose_trailing_punctuation():
    text = "# text = Dr. Who left.\n1\tDr.\t_\tX\t_\t_\t_\t_\t_\t_\n2\tWho\t_\tX\t_\t_\t_\t_\t_\t_\n" \
           "3\tleft\t_\tX\t_\t_\t_\t_\t_\tSpaceAfter=No\n4\t.\t_\tX\t_\t_\t_\t_\t_\t_\n\n"
    ends = "# text = See Dr.\n1\tSee\t_\tX\t_\t_\t_\t_\t_\t_\n2\tDr.\t_\tX\t_\t_\t_\t_\t_\t_\n\n"
    table = seg.abbreviation_table(parse_conllu(text * 9 + ends))
    assert table == {"Dr.": 0.1}  # 1 of its 10 occurrences ended a sentence; "." alone is no abbreviation
    vocab = _vocab()
    vocab.abbreviations = table
    words = "Dr. Lee at 5 Dr.!"
    labels = [0] * len(words)
    for i in (2, 6, 9, 11):  # the model's guesses: a sentence end after "Dr.", token ends elsewhere
        labels[i] = SENTENCE_END if i == 2 else TOKEN_END
    found = seg.decode(words, _Fixed.scores(labels), vocab)
    assert [[t.form for t in s] for s in found] == [["Dr.", "Lee", "at", "5", "Dr.", "!"]]
    assert [(t.start, t.end) for t in found[0][-2:]] == [(13, 16), (16, 17)]
