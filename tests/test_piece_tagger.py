"""`attnlab train --pretrained DIR`: a tagger on a tiny random BERT checkpoint (made here with
``transformers`` and ``tokenizers``), trained end to end, saved, reloaded and resumed."""

from __future__ import annotations

import json
import re

import pytest
import torch

from attnlab.cli import main
from attnlab.data.conllu import read_conllu
from tiny_hf import hf_config, save_checkpoint
from tiny_tasks import demo_slices

pytest.importorskip("tokenizers", reason="the hf extra (tokenizers) is not installed")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
OPTIONS = ["--epochs", "2", "--batch-tokens", "300", "--warmup", "5", "--lr", "2e-3", "--no-progress", "--threads", "1"]


def write_tokenizer(directory, words: set[str]) -> int:
    """A BERT-style WordPiece tokenizer.json: the given words whole, anything else letter by
    letter (so that some words have several pieces). Returns the vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    letters = sorted({c for w in words for c in w} | set("abcdefghijklmnopqrstuvwxyz0123456789.,'-"))
    vocab = SPECIALS + sorted(words) + letters + [f"##{c}" for c in letters]
    tokenizer = Tokenizer(models.WordPiece({p: i for i, p in enumerate(dict.fromkeys(vocab))}, unk_token="[UNK]"))
    tokenizer.add_special_tokens(SPECIALS)
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.save(str(directory / "tokenizer.json"))
    return tokenizer.get_vocab_size()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    demo_slices(root, train=160, dev=30)
    train = read_conllu(root / "train.conllu")
    checkpoint = root / "bert"
    checkpoint.mkdir()
    common = {w.lower() for s in train for w in s.forms}
    vocab_size = write_tokenizer(checkpoint, set(sorted(common)[: len(common) // 2]))  # half the words split
    import transformers

    config = hf_config("bert")
    config.vocab_size, config.initializer_range, config.max_position_embeddings = vocab_size, 0.02, 128
    torch.manual_seed(0)
    save_checkpoint(transformers.BertModel(config), checkpoint)
    return root, checkpoint


def train_args(root, checkpoint, out, *extra):
    return ["train", "--pretrained", str(checkpoint), "--train", str(root / "train.conllu"),
            "--dev", str(root / "dev.conllu"), "--out", str(out), *OPTIONS, *extra]


def test_train_on_a_checkpoint_saves_a_tagger_that_reloads_and_resumes(setup, tmp_path, capsys):
    from attnlab.tasks.piece_tagging import load_piece_tagger, piece_batch
    from attnlab.hf import load_encoder

    root, checkpoint = setup
    out = tmp_path / "tagger"
    assert main(train_args(root, checkpoint, out)) == 0
    assert "bert (pretrained) tagger" in capsys.readouterr().err
    record = json.loads((out / "config.json").read_text())
    assert record["task"] == "tagging-pretrained" and record["model"]["encoder"]["layers"] == 3
    dev = read_conllu(root / "dev.conllu")
    tags = [t for s in dev for t in s.upos]
    majority = max(tags.count(t) for t in set(tags)) / len(tags)
    assert record["best"]["dev_score"] > majority + 0.1  # learned more than the most frequent tag
    loaded = load_piece_tagger(out)
    # the encoder was fine-tuned: its weights moved away from the checkpoint's
    before = load_encoder(checkpoint).state_dict()["encoder.layers.0.ff1.weight"]
    assert not torch.equal(loaded.model.encoder.state_dict()["encoder.layers.0.ff1.weight"], before)
    batch = piece_batch(loaded.pieces, [s.forms for s in dev], loaded.model.encoder.config.longest)
    with torch.inference_mode():
        scores = loaded.model(batch).upos
    assert scores.shape[:2] == (len(dev), max(len(s) for s in dev))
    # `attnlab eval` scores the saved (best) model: on the dev file, its recorded dev score
    capsys.readouterr()
    assert main(["eval", "--model", str(out), str(root / "dev.conllu"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    upos = report["upos"]
    # the dev score is the mean accuracy of the layers the model predicts (UPOS and XPOS here)
    assert upos["tokens"] == len(tags)
    assert (upos["accuracy"] + report["xpos_accuracy"]) / 2 == pytest.approx(record["best"]["dev_score"])
    # resuming continues the same model from its checkpoint
    assert main(["train", "--resume", "--out", str(out), "--epochs", "3", "--no-progress", "--threads", "1"]) == 0
    assert json.loads((out / "config.json").read_text())["task"] == "tagging-pretrained"


def test_first_word_piece_per_word(setup):
    from attnlab.hf import load_tokenizer
    from attnlab.tasks.piece_tagging import piece_batch

    _, checkpoint = setup
    pieces = load_tokenizer(checkpoint)
    batch = piece_batch(pieces, [["zzq", "a"], ["a"]], longest=40)
    tokens = [pieces.tokenizer.id_to_token(i) for i in batch.ids.tolist()]
    assert tokens == ["[CLS]", "z", "##z", "##q", "a", "[SEP]", "[CLS]", "a", "[SEP]"]
    assert batch.first.tolist() == [1, 4, 7]  # each word's first piece, in packed order
    assert batch.lengths.tolist() == [2, 1] and batch.cu.tolist() == [0, 6, 9]
    with pytest.raises(ValueError, match="a sentence of 2 words gives 6 word pieces; the encoder takes at most 4"):
        piece_batch(pieces, [["zzq", "a"]], longest=4)
    with pytest.raises(ValueError, match=re.escape(f"the word {chr(0x200B)!r} gives no word piece")):
        piece_batch(pieces, [["a", chr(0x200B)]], longest=40)  # a zero-width space: nothing left


def test_pretrained_needs_the_tag_task(setup, tmp_path, capsys):
    root, checkpoint = setup
    assert main(train_args(root, checkpoint, tmp_path / "x", "--task", "classify")) == 2
    assert "--pretrained trains --task tag, not --task classify" in capsys.readouterr().err


def test_a_checkpoint_without_tokenizer_or_extra_is_one_line(setup, tmp_path, capsys, monkeypatch):
    import shutil

    import attnlab.errors

    root, checkpoint = setup
    bare = tmp_path / "bare"
    shutil.copytree(checkpoint, bare)
    (bare / "tokenizer.json").unlink()
    assert main(train_args(root, bare, tmp_path / "x")) == 2
    err = capsys.readouterr().err
    assert err.endswith(f"{bare}: no tokenizer.json (attnlab reads the fast tokenizer's file only)\n") and err.count("\n") == 1
    monkeypatch.setattr(attnlab.errors, "_importable", lambda module: module != "tokenizers")
    assert main(train_args(root, checkpoint, tmp_path / "y")) == 2
    assert capsys.readouterr().err == "attnlab train: needs the 'hf' extra: pip install 'attnlab[hf]'\n"
    assert not (tmp_path / "y").exists()
