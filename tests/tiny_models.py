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
