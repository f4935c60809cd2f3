"""A tiny attention tagger written to a model directory by the project's own code, for the
explorer's tests: 2 layers x 2 heads of width 8, trained for a few dozen steps on the
generated toy corpus (so its tags mean something) in about a second."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

LAYERS, HEADS = 2, 2


@dataclass
class FullSentence:
    """A toy sentence with every word-level layer: forms, UPOS, XPOS, FEATS and lemmas."""

    forms: list[str]
    upos: list[str]
    xpos: list[str]
    feats: list[str]
    lemmas: list[str]


# FEATS of the toy words by UPOS (NOUN: by the form); the rest have none
_TOY_FEATS = {"PRON": "Case=Nom|Person=1", "DET": "PronType=Art", "AUX": "VerbForm=Fin", "VERB": "VerbForm=Fin"}


def full_corpus(n: int, seed: int = 1) -> list[FullSentence]:
    """The toy corpus with FEATS (by UPOS) and lemmas (the lowercased form) added."""
    from attnlab.tasks.tagging_demo import toy_corpus

    out = []
    for s in toy_corpus(n, seed=seed):
        feats = [("Number=Plur" if f.endswith("s") else "Number=Sing") if u == "NOUN" else _TOY_FEATS.get(u, "_")
                 for f, u in zip(s.forms, s.upos)]
        out.append(FullSentence(s.forms, s.upos, s.xpos, feats, [f.lower() for f in s.forms]))
    return out


@functools.lru_cache(maxsize=None)
def tiny_tagger_dir(steps: int = 40, positions: str = "rotary", encoder: str = "attention", xpos_weight: float = 0.0,
                    full: bool = False) -> Path:
    """The directory of a tiny tagger trained for ``steps`` steps (built once per test session);
    with ``xpos_weight`` > 0 it predicts XPOS too; ``full``: trained on ``full_corpus``, it
    predicts FEATS and LEMMA as well (XPOS too, with ``xpos_weight`` > 0)."""
    from attnlab.encoders import EncoderConfig
    from attnlab.features import FeatureConfig
    from attnlab.tasks.tagging import Tagger, TaggerConfig, TaggerVocabs, TaggingTask, save_tagger
    from attnlab.tasks.tagging_demo import toy_corpus

    root = Path(tempfile.mkdtemp(prefix="attnlab-tiny-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    corpus = full_corpus(80, seed=1) if full else toy_corpus(80, seed=1)
    vocabs = TaggerVocabs.build(corpus)
    config = TaggerConfig(
        encoder=encoder,
        features=FeatureConfig(word_dim=12, shape_dim=4, char_dim=6, char_filters=4, char_widths=(2, 3),
                               max_chars=10, word_dropout=0.0, dropout=0.0),
        encoder_config=EncoderConfig(hidden=16, layers=LAYERS, heads=HEADS, d_ff=32, dropout=0.0, positions=positions),
        xpos_weight=xpos_weight,
    )
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = Tagger(config, vocabs)
        task = TaggingTask(model, vocabs, corpus, corpus[:10])
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        model.train()
        for step in range(steps):
            batch = task.make_batch([(8 * step + i) % len(corpus) for i in range(8)])
            optimizer.zero_grad()
            task.loss(model, batch).backward()
            optimizer.step()
        model.eval()
    finally:
        torch.set_num_threads(before)
    directory = root / f"{encoder}-{positions}-{steps}-{xpos_weight}{'-full' if full else ''}"
    save_tagger(directory, model, vocabs, {"note": "tiny test model"})
    return directory


def toy_raw_conllu(n: int, seed: int = 1) -> str:
    """The toy corpus as UD writes raw text: ``# text``, the full stop attached (SpaceAfter=No),
    paragraphs of three sentences (``# newpar``), and in every fourth sentence the multiword
    token "don't" (do + n't) after the first word."""
    from attnlab.tasks.tagging_demo import toy_corpus

    blocks = []
    for i, s in enumerate(toy_corpus(n, seed=seed)):
        forms, upos = list(s.forms), list(s.upos)
        tokens = [[f] for f in forms]
        if i % 4 == 0:
            tokens.insert(1, ["don't", "do", "n't"])
        lines, text, ident = [], "", 1
        for k, token in enumerate(tokens):
            last = k + 1 == len(tokens)
            no_space = k + 2 == len(tokens)  # before the full stop
            misc = "SpaceAfter=No" if no_space else "_"
            text += token[0] + ("" if no_space or last else " ")
            if len(token) > 1:
                lines.append(f"{ident}-{ident + 1}\t{token[0]}\t_\t_\t_\t_\t_\t_\t_\t{misc}")
                lines += [f"{ident}\tdo\tdo\tAUX\t_\t_\t_\t_\t_\t_", f"{ident + 1}\tn't\tnot\tPART\t_\t_\t_\t_\t_\t_"]
                ident += 2
            else:
                tag = upos[forms.index(token[0])]
                lines.append(f"{ident}\t{token[0]}\t{token[0].lower()}\t{tag}\t_\t_\t_\t_\t_\t{misc}")
                ident += 1
        head = ["# newpar"] if i % 3 == 0 else []
        blocks.append("\n".join(head + [f"# sent_id = {i + 1}", f"# text = {text}"] + lines) + "\n\n")
    return "".join(blocks)


@functools.lru_cache(maxsize=None)
def tiny_segmenter_dir() -> Path:
    """A tiny segmenter trained on ``toy_raw_conllu`` (built once per test session, a few seconds):
    it learns the spaces, the attached full stops, sentence ends and "don't"."""
    from attnlab.data.conllu import parse_conllu
    from attnlab.tasks import segmenter as seg

    root = Path(tempfile.mkdtemp(prefix="attnlab-tiny-seg-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    train, dev = parse_conllu(toy_raw_conllu(300, seed=1)), parse_conllu(toy_raw_conllu(30, seed=2))
    config = seg.SegmenterConfig(dim=16, heads=2, layers=1, block=16, d_ff=32, conv_width=5, char_dim=16, dropout=0.0)
    training = seg.SegmenterTraining(window=128, batch=16, steps=120, eval_every=60, lr=1e-2, newline_rate=0.0)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, vocab, record = seg.train_segmenter(train, dev, config, training)
    finally:
        torch.set_num_threads(before)
    return seg.save_segmenter(root / "segmenter", model, vocab, record)


def with_segmenter(model_dir: Path, target: Path) -> Path:
    """A copy of ``model_dir`` at ``target`` with the tiny segmenter in it (``target/segmenter``),
    so that it reads raw text."""
    shutil.copytree(model_dir, target)
    shutil.copytree(tiny_segmenter_dir(), Path(target) / "segmenter")
    return Path(target)


@functools.lru_cache(maxsize=None)
def tiny_pipeline_dir(**tagger: object) -> Path:
    """``tiny_tagger_dir(**tagger)`` with the tiny segmenter: a model that reads raw text."""
    root = Path(tempfile.mkdtemp(prefix="attnlab-tiny-pipeline-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return with_segmenter(tiny_tagger_dir(**tagger), root / "model")
