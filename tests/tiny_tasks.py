"""Tiny generated CoNLL-U corpora for the classification and seq2seq tasks.

* ``genre_corpus``: two "genres" whose sentences draw most of their words from different
  lists (sent_id ``news-...`` or ``chat-...``), so a bag of words separates them.
* ``lemma_corpus``: words built from stems and regular suffixes with their lemma
  (walks/VERB -> walk, dogs/NOUN -> dog, walked/VERB -> walk, walking/VERB -> walk).
"""

from __future__ import annotations

import random

from attnlab.data.conllu import format_conllu, parse_conllu, read_conllu
from attnlab.data.demo import demo_paths

NEWS = ["government", "minister", "report", "election", "market", "official", "said", "announced", "percent"]
CHAT = ["lol", "hey", "gonna", "cool", "thanks", "yeah", "awesome", "dude", "omg"]
SHARED = ["the", "a", "and", "of", "to", "is", "it", "."]
STEMS = ["walk", "talk", "jump", "play", "work", "look", "help", "call", "open", "turn", "kick", "pull", "push",
         "wish", "pick", "rest", "want", "land", "mark", "park", "cook", "book", "sort", "test", "list", "paint"]


def random_stems(n: int, seed: int) -> list[str]:
    """Made-up stems (consonant, vowel, consonant ... ending in a consonant)."""
    rng = random.Random(seed)
    return ["".join(rng.choice("bdfgklmnprstv") + rng.choice("aeiou") for _ in range(rng.randint(1, 3))) + rng.choice("kmnprst")
            for _ in range(n)]
SUFFIXES = [("s", "NOUN"), ("s", "VERB"), ("ed", "VERB"), ("ing", "VERB"), ("", "NOUN"), ("er", "NOUN")]


def _conllu(sentences) -> str:
    out = []
    for sid, rows in sentences:
        out.append(f"# sent_id = {sid}")
        for i, (form, lemma, upos) in enumerate(rows, 1):
            out.append(f"{i}\t{form}\t{lemma}\t{upos}\t_\t_\t0\tdep\t_\t_")
        out.append("")
    return "\n".join(out) + "\n"


def genre_text(n: int, seed: int) -> str:
    rng = random.Random(seed)
    sentences = []
    for i in range(n):
        genre = ("news", "chat")[i % 2]
        own = NEWS if genre == "news" else CHAT
        words = [rng.choice(own) if rng.random() < 0.6 else rng.choice(SHARED) for _ in range(rng.randint(3, 9))]
        sentences.append((f"{genre}-doc{i // 10}-{i:04d}", [(w, w, "X") for w in words]))
    return _conllu(sentences)


def lemma_text(n: int, seed: int, stems=STEMS) -> str:
    rng = random.Random(seed)
    sentences = []
    for i in range(n):
        rows = []
        for _ in range(rng.randint(3, 7)):
            stem = rng.choice(stems)
            suffix, upos = rng.choice(SUFFIXES)
            lemma = stem + "er" if suffix == "er" else stem
            rows.append((stem + suffix, lemma, upos))
        sentences.append((f"gen-{i:04d}", rows))
    return _conllu(sentences)


def genre_corpus(n: int, seed: int):
    return parse_conllu(genre_text(n, seed), f"<genre {seed}>")


def lemma_corpus(n: int, seed: int, stems=STEMS):
    return parse_conllu(lemma_text(n, seed, stems), f"<lemma {seed}>")


def demo_slices(root, **counts: int) -> dict:
    """The first sentences of the shipped demo corpus's splits, written into ``root``:
    ``demo_slices(root, train=240, dev=40)`` writes train.conllu and dev.conllu there and
    returns their paths by split."""
    paths = demo_paths()
    written = {}
    for split, n in counts.items():
        written[split] = root / f"{split}.conllu"
        written[split].write_text(format_conllu(read_conllu(paths[split])[:n]), encoding="utf-8")
    return written

