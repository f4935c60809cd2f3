"""`attnlab demo`: the seed's example end to end, and a tiny generated tagging corpus.

``run_demo`` trains the attention tagger and the context-free ``none`` tagger on the
demo corpus attnlab generates, tags "I saw a saw", and draws the attention weights.
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

from .. import tagger_cli

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

def _train_one(encoder: str, sizes: dict, train, dev, out: Path, *, epochs: int, seed: int, progress: bool):
    import torch

    from ..encoders import EncoderConfig
    from ..features import FeatureConfig
    from ..train import TrainConfig, train as run_training
    from .tagging import Tagger, TaggerConfig, TaggerVocabs, TaggingTask

    if out.exists():
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
    result = run_training(model, task, cfg, out, progress=progress,
                          log=lambda m: print(f"  [{encoder}] {m}", file=sys.stderr))
    return result, time.monotonic() - start


def run_demo(args) -> int:
    import torch

    from ..data.conllu import read_conllu
    from ..data.demo import demo_paths
    from ..evaluate import score_tags
    from ..viz.heatmap import plot_attention_grid
    from .tagging import load_tagger, predict

    if args.threads:
        torch.set_num_threads(args.threads)
    out: Path = args.out
    paths = demo_paths()
    train, dev, test = (read_conllu(paths[k]) for k in ("train", "dev", "test"))
    progress = not args.no_progress
    print(f"demo corpus: {len(train):,} training sentences ({sum(len(s.forms) for s in train):,} tokens) from {paths['train']}")

    print("training the attention tagger ...")
    attn_sizes = {"hidden": 64, "layers": 2, "heads": 4, "d_ff": 128}
    attn_result, attn_time = _train_one("attention", attn_sizes, train, dev, out / "attention-tagger",
                                        epochs=args.epochs, seed=args.seed, progress=progress)
    print("training the 'none' tagger (no context) ...")
    none_result, none_time = _train_one("none", {"hidden": 64, "layers": 1}, train, dev, out / "none-tagger",
                                        epochs=max(2, args.epochs // 2), seed=args.seed, progress=progress)

    attn, none = load_tagger(out / "attention-tagger"), load_tagger(out / "none-tagger")
    sentence = tagger_cli.DEMO_SENTENCE
    tags = {}
    for name, loaded in (("attention", attn), ("none", none)):
        tags[name] = predict(loaded.model, loaded.encoder(), loaded.vocabs, [sentence])[0][0]
        test_pred, _ = predict(loaded.model, loaded.encoder(), loaded.vocabs, [s.forms for s in test])
        tags[name + "-test"] = score_tags([s.upos for s in test], test_pred).accuracy

    expected = tagger_cli.DEMO_EXPECTED
    print()
    print(f"{'word':<6} {'expected':<9} {'attention':<10} {'none':<6}")
    for i, w in enumerate(sentence):
        mark = "   <- same input vector as the other 'saw'" if w == "saw" and tags["none"][i] != expected[i] else ""
        print(f"{w:<6} {expected[i]:<9} {tags['attention'][i]:<10} {tags['none'][i]:<6}{mark}")
    ok = tags["attention"] == expected
    print()
    print(f"attention tagger: {'correct' if ok else 'WRONG'} on 'I saw a saw'; demo test accuracy "
          f"{100 * tags['attention-test']:.2f}% (trained {attn_time:.0f} s)")
    print(f"none tagger:      tags {' '.join(tags['none'])}; demo test accuracy {100 * tags['none-test']:.2f}% "
          f"(trained {none_time:.0f} s)")
    print("  the 'none' encoder sends each word's vector alone through a fully connected layer, so both 'saw' get "
          "the same vector and the same tag; it can only be right on one of them.")

    # attention heatmap of the trained tagger on the demo sentence
    model = attn.model
    batch = attn.encoder().encode([sentence])
    with torch.no_grad():
        x = model.features(batch)
        weights = model.encoder.attention_weights(x, batch.lengths)  # L x (B, H, N, N)
    stacked = torch.stack([w[0] for w in weights])  # (L, H, N, N)
    png = out / "attention.png"
    plot_attention_grid(sentence, stacked.numpy(), tags=tags["attention"], path=png,
                        title='attention weights of the tagger on "' + " ".join(sentence) + '"')
    print()
    print(f"wrote {png} (attention weights, every layer and head)")
    print(f"wrote {out / 'attention-tagger'} and {out / 'none-tagger'} (models; try: "
          f"echo 'I saw a saw' | attnlab tag --model {out / 'attention-tagger'} --format tsv)")
    return 0 if ok else 1
