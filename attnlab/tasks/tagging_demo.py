"""`attnlab demo`: the seed's example end to end, and a tiny generated tagging corpus.

``run_demo`` trains the attention tagger and the context-free ``none`` tagger on the
demo corpus attnlab generates and tags "I saw a saw" with both (``demo_report`` tells
the result), and ``draw_demo_attention`` draws the attention tagger's weights on it.
``toy_corpus`` generates a few dozen sentences in which the same words are nouns in
one place and verbs in another, small enough for tests to train on in seconds.
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from ..encoders.attention import AttentionEncoder

# -- a tiny corpus ---------------------------------------------------------------------

# Words that are nouns after a determiner and verbs after a subject.
AMBIGUOUS = ("saw", "watch", "book", "fly", "drink", "walk", "play")
_NOUNS = ("dog", "cat", "man", "table", "car", "house", "idea") + AMBIGUOUS
_VERBS = ("see", "like", "want", "take", "find") + AMBIGUOUS
_SUBJECTS = ("I", "you", "we", "they")
_OBJECTS = ("me", "you", "us", "them")
_DETS = ("a", "the", "this", "every")
_ADJS = ("big", "old", "red", "new")
_XPOS = {"PRON": "PRP", "VERB": "VBP", "DET": "DT", "NOUN": "NN", "ADJ": "JJ", "AUX": "MD", "PUNCT": "."}


@dataclass(frozen=True)
class ToySentence:
    forms: list[str]
    upos: list[str]
    xpos: list[str]


def toy_corpus(n: int, seed: int = 0) -> list[ToySentence]:
    """``n`` generated sentences such as "I saw a saw ." (PRON VERB DET NOUN PUNCT)."""
    rng = random.Random(seed)
    patterns = (
        ("PRON", "VERB", "DET", "NOUN"),
        ("PRON", "VERB", "DET", "ADJ", "NOUN"),
        ("DET", "NOUN", "VERB", "DET", "NOUN"),
        ("DET", "ADJ", "NOUN", "VERB", "OBJ"),
        ("PRON", "AUX", "VERB", "DET", "NOUN"),
    )
    words = {"PRON": _SUBJECTS, "OBJ": _OBJECTS, "VERB": _VERBS, "DET": _DETS, "NOUN": _NOUNS, "ADJ": _ADJS,
             "AUX": ("can", "will", "must")}
    out = []
    for _ in range(n):
        pattern = rng.choice(patterns)
        forms = [rng.choice(words[slot]) for slot in pattern] + ["."]
        upos = [("PRON" if slot == "OBJ" else slot) for slot in pattern] + ["PUNCT"]
        out.append(ToySentence(forms, upos, [_XPOS[u] for u in upos]))
    return out


# -- the demo --------------------------------------------------------------------------

EXPECTED = ["PRON", "VERB", "DET", "NOUN"]  # the tags of attnlab.data.demo.PROBE, "I saw a saw"
ATTENTION_SIZES = {"hidden": 64, "layers": 2, "heads": 4, "d_ff": 128}
NONE_SIZES = {"hidden": 64, "layers": 1}


@dataclass
class DemoTagger:
    """One trained demo tagger: its tags on the probe sentence and its demo test accuracy."""

    encoder: str
    directory: Path
    tags: list[str]
    test_accuracy: float
    seconds: float


@dataclass
class DemoResult:
    out: Path
    attention: DemoTagger
    none: DemoTagger

    @property
    def correct(self) -> bool:
        """Whether the attention tagger tells the two "saw" apart."""
        return self.attention.tags == EXPECTED


def _train_one(encoder: str, sizes: dict, train, dev, out: Path, *, epochs: int, seed: int, progress: bool) -> float:
    """Train a small tagger into ``out`` (replaced); the seconds it took."""
    import torch

    from ..encoders import EncoderConfig
    from ..features import FeatureConfig
    from ..train import TrainConfig, train as run_training
    from .tagging import Tagger, TaggerConfig, TaggerVocabs, TaggingTask

    if out.exists():
        check_replaceable(out)
        shutil.rmtree(out)
    vocabs = TaggerVocabs.build(train)
    config = TaggerConfig(
        encoder=encoder,
        features=FeatureConfig(word_dim=64, char_filters=32, word_dropout=0.05, dropout=0.1),
        encoder_config=EncoderConfig(**sizes, dropout=0.1),
        xpos_weight=0.0,
    )
    torch.manual_seed(seed)
    model = Tagger(config, vocabs)
    task = TaggingTask(model, vocabs, train, dev)
    cfg = TrainConfig(epochs=epochs, batch_tokens=1500, lr=3e-3, warmup=50, schedule="linear", patience=0, seed=seed,
                      checkpoint_every=0)
    start = time.monotonic()
    run_training(model, task, cfg, out, progress=progress, log=lambda m: print(f"  [{encoder}] {m}", file=sys.stderr))
    return time.monotonic() - start


def _demo_tagger(encoder: str, sizes: dict, corpus: dict, out: Path, **training) -> DemoTagger:
    """Train one demo tagger into ``out``, then tag the probe sentence and the test split."""
    from ..data.demo import PROBE
    from ..evaluate import score_tags
    from .tagging import load_tagger, predict

    seconds = _train_one(encoder, sizes, corpus["train"], corpus["dev"], out, **training)
    loaded = load_tagger(out)
    tags = predict(loaded.model, loaded.encoder(), loaded.vocabs, [PROBE])[0][0]
    test = corpus["test"]
    test_pred, _ = predict(loaded.model, loaded.encoder(), loaded.vocabs, [s.forms for s in test])
    return DemoTagger(encoder, out, tags, score_tags([s.upos for s in test], test_pred).accuracy, seconds)


def check_replaceable(directory: Path) -> None:
    """The demo replaces its model directories; anything else there is refused (UserError)."""
    from ..output import check_new_directory, is_model_directory

    if not (directory.is_dir() and is_model_directory(directory)):
        check_new_directory(directory)  # a file, or a directory of other data: one line, nothing removed


def run_demo(out: Path, *, epochs: int = 6, seed: int = 1, progress: bool = True, say=print) -> DemoResult:
    """Train the attention tagger and the ``none`` tagger on the demo corpus into ``out`` (its
    ``attention-tagger`` and ``none-tagger`` directories are replaced when they hold a model, and
    refused when they hold anything else); ``say`` hears what is going on."""
    from ..data.conllu import read_conllu
    from ..data.demo import demo_paths
    from ..output import check_output

    out = Path(out)
    for name in ("attention-tagger", "none-tagger"):
        check_replaceable(out / name)
    check_output(out / "attention.png")
    paths = demo_paths()
    corpus = {k: read_conllu(paths[k]) for k in ("train", "dev", "test")}
    train = corpus["train"]
    say(f"demo corpus: {len(train):,} training sentences ({sum(len(s.forms) for s in train):,} tokens) from "
        f"{paths['train']}")
    say("training the attention tagger ...")
    attention = _demo_tagger("attention", ATTENTION_SIZES, corpus, out / "attention-tagger", epochs=epochs, seed=seed,
                             progress=progress)
    say("training the 'none' tagger (no context) ...")
    none = _demo_tagger("none", NONE_SIZES, corpus, out / "none-tagger", epochs=max(2, epochs // 2), seed=seed,
                        progress=progress)
    return DemoResult(out, attention, none)


def demo_report(result: DemoResult) -> str:
    """The probe sentence as each tagger tags it, and what that shows."""
    from ..data.demo import PROBE

    attention, none = result.attention, result.none
    lines = ["", f"{'word':<6} {'expected':<9} {'attention':<10} {'none':<6}"]
    for i, w in enumerate(PROBE):
        mark = "   <- same input vector as the other 'saw'" if w == "saw" and none.tags[i] != EXPECTED[i] else ""
        lines.append(f"{w:<6} {EXPECTED[i]:<9} {attention.tags[i]:<10} {none.tags[i]:<6}{mark}")
    lines += [
        "",
        f"attention tagger: {'correct' if result.correct else 'WRONG'} on 'I saw a saw'; demo test accuracy "
        f"{100 * attention.test_accuracy:.2f}% (trained {attention.seconds:.0f} s)",
        f"none tagger:      tags {' '.join(none.tags)}; demo test accuracy {100 * none.test_accuracy:.2f}% "
        f"(trained {none.seconds:.0f} s)",
        "  the 'none' encoder sends each word's vector alone through a fully connected layer, so both 'saw' get "
        "the same vector and the same tag; it can only be right on one of them.",
    ]
    return "\n".join(lines)


def draw_demo_attention(result: DemoResult) -> Path:
    """Draw the attention tagger's weights on the probe sentence (every layer and head) into
    ``out/attention.png``; returns that path."""
    import torch

    from ..data.demo import PROBE
    from ..viz.heatmap import plot_attention_grid
    from .tagging import load_tagger

    loaded = load_tagger(result.attention.directory)
    batch = loaded.encoder().encode([PROBE])
    with torch.no_grad():
        x = loaded.model.features(batch)
        encoder = cast("AttentionEncoder", loaded.model.encoder)  # the demo trains the attention encoder
        weights = encoder.attention_weights(x, batch.lengths)  # L x (B, H, N, N)
    stacked = torch.stack([w[0] for w in weights])  # (L, H, N, N)
    png = result.out / "attention.png"
    plot_attention_grid(PROBE, stacked.numpy(), tags=result.attention.tags, path=png,
                        title='attention weights of the tagger on "' + " ".join(PROBE) + '"')
    return png
