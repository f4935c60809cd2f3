"""The demo corpus that ships with attnlab: English-like sentences generated from a small
grammar in which the same words change their part of speech with context.

    I saw a saw .            PRON VERB DET NOUN PUNCT
    the can can hold water   DET NOUN AUX VERB NOUN
    they book a book .       PRON VERB DET NOUN PUNCT

"saw", "can", "book", "watch", "fly" and a few more are nouns after a determiner or an
adjective, verbs after a subject or an auxiliary ("can" is also the auxiliary itself), so
a tagger that looks at each word alone cannot get them all right. The exact sentence
"I saw a saw" never occurs in the corpus: the demo asks for it, unseen.

The corpus ships as this generator: ``demo_paths()`` writes ``generate(seed=DEFAULT_SEED)``
into ``$ATTNLAB_CACHE/demo-corpus`` (default ``~/.cache/attnlab``) the first time it is asked
for, and rewrites any file that differs from what the generator gives (about 30 ms), so
every machine trains on the same bytes. ``python -m attnlab.data.demo --out DIR`` writes
the three files anywhere.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from ..errors import UserError

DEFAULT_SEED = 2024
SIZES = {"train": 2400, "dev": 300, "test": 300}
PROBE = ["I", "saw", "a", "saw"]

# (form, lemma, XPOS) per category. Ambiguous words appear in both NOUN and VERB lists.
SUBJECTS = [("I", "I", "PRP"), ("you", "you", "PRP"), ("we", "we", "PRP"), ("they", "they", "PRP")]
SUBJECTS_3SG = [("he", "he", "PRP"), ("she", "she", "PRP")]
OBJECTS = [("me", "I", "PRP"), ("you", "you", "PRP"), ("us", "we", "PRP"), ("them", "they", "PRP"),
           ("him", "he", "PRP"), ("her", "she", "PRP"), ("it", "it", "PRP")]
DETS = [("a", "a", "DT"), ("the", "the", "DT"), ("this", "this", "DT"), ("every", "every", "DT"),
        ("my", "my", "PRP$"), ("their", "their", "PRP$")]
ADJS = [("big", "big", "JJ"), ("old", "old", "JJ"), ("red", "red", "JJ"), ("new", "new", "JJ"),
        ("small", "small", "JJ"), ("sharp", "sharp", "JJ")]
AMBIGUOUS = ("saw", "can", "book", "watch", "fly", "walk", "drink", "play", "cut", "fish")
NOUNS = [(w, w, "NN") for w in ("dog", "cat", "man", "table", "car", "house", "idea", "kite", "water", "river",
                                "saw", "can", "book", "watch", "fly", "walk", "drink", "play", "cut", "fish")]
# base form, past form (the past of "see" is the ambiguous "saw")
VERBS = [("see", "saw"), ("like", "liked"), ("want", "wanted"), ("take", "took"), ("find", "found"),
         ("hold", "held"), ("book", "booked"), ("watch", "watched"), ("fly", "flew"), ("walk", "walked"),
         ("drink", "drank"), ("play", "played"), ("cut", "cut"), ("fish", "fished"), ("saw", "sawed")]
AUXES = [("can", "can", "MD"), ("will", "will", "MD"), ("must", "must", "MD"), ("could", "could", "MD")]
PREPS = [("with", "with", "IN"), ("near", "near", "IN"), ("in", "in", "IN"), ("under", "under", "IN")]
ADVS = [("often", "often", "RB"), ("never", "never", "RB"), ("quickly", "quickly", "RB")]
CONJS = [("and", "and", "CC"), ("but", "but", "CC")]

Word = tuple[str, str, str, str]  # form, lemma, UPOS, XPOS


class _Grammar:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def pick(self, items, upos: str) -> Word:
        form, lemma, xpos = self.rng.choice(items)
        return (form, lemma, upos, xpos)

    def noun_phrase(self) -> list[Word]:
        r = self.rng.random()
        if r < 0.25:
            return [self.pick(OBJECTS, "PRON")]
        words = [self.pick(DETS, "DET")]
        if self.rng.random() < 0.35:
            words.append(self.pick(ADJS, "ADJ"))
        words.append(self.pick(NOUNS, "NOUN"))
        if self.rng.random() < 0.12:
            words += [self.pick(PREPS, "ADP"), self.pick(DETS, "DET"), self.pick(NOUNS, "NOUN")]
        return words

    def subject(self) -> tuple[list[Word], bool]:
        """(words, third person singular?)"""
        r = self.rng.random()
        if r < 0.45:
            return [self.pick(SUBJECTS, "PRON")], False
        if r < 0.6:
            return [self.pick(SUBJECTS_3SG, "PRON")], True
        np = [self.pick(DETS, "DET")]
        if self.rng.random() < 0.3:
            np.append(self.pick(ADJS, "ADJ"))
        np.append(self.pick(NOUNS, "NOUN"))
        return np, True

    def verb_phrase(self, third_singular: bool) -> list[Word]:
        base, past = self.rng.choice(VERBS)
        words: list[Word] = []
        r = self.rng.random()
        if r < 0.3:
            words.append(self.pick(AUXES, "AUX"))
        if self.rng.random() < 0.15:
            words.append(self.pick(ADVS, "ADV"))
        if r < 0.3:
            words.append((base, base, "VERB", "VB"))
        elif r < 0.65:
            words.append((past, base, "VERB", "VBD"))
        elif third_singular:
            form = base + ("es" if base.endswith(("sh", "ch")) else "s")
            words.append((form, base, "VERB", "VBZ"))
        else:
            words.append((base, base, "VERB", "VBP"))
        words += self.noun_phrase()
        if self.rng.random() < 0.15:
            words += [self.pick(PREPS, "ADP")] + self.noun_phrase()
        return words

    def sentence(self) -> list[Word]:
        subj, third = self.subject()
        words = subj + self.verb_phrase(third)
        if self.rng.random() < 0.15:
            words.append(self.pick(CONJS, "CCONJ"))
            subj2, third2 = self.subject()
            words += subj2 + self.verb_phrase(third2)
        return words + [(".", ".", "PUNCT", ".")]


def _contains(forms: list[str], probe: list[str]) -> bool:
    return any(forms[i:i + len(probe)] == probe for i in range(len(forms) - len(probe) + 1))


def generate(seed: int = DEFAULT_SEED, sizes: dict[str, int] | None = None) -> dict[str, str]:
    """CoNLL-U text per split; every sentence is distinct across splits, none holds the probe."""
    sizes = dict(SIZES if sizes is None else sizes)
    grammar = _Grammar(random.Random(seed))
    seen: set[tuple[str, ...]] = set()
    out: dict[str, str] = {}
    for split, n in sizes.items():
        lines: list[str] = []
        count = 0
        while count < n:
            words = grammar.sentence()
            forms = [w[0] for w in words]
            key = tuple(forms)
            if key in seen or _contains([f.lower() for f in forms], [p.lower() for p in PROBE]):
                continue
            seen.add(key)
            count += 1
            lines.append(f"# sent_id = demo-{split}-{count:04d}")
            lines.append(f"# text = {' '.join(forms[:-1])}.")
            for i, (form, lemma, upos, xpos) in enumerate(words, 1):
                misc = "SpaceAfter=No" if i + 1 == len(words) else "_"
                lines.append(f"{i}\t{form}\t{lemma}\t{upos}\t{xpos}\t_\t_\t_\t_\t{misc}")
            lines.append("")
        out[split] = "\n".join(lines) + "\n"
    return out


def write_corpus(directory: str | Path, seed: int = DEFAULT_SEED) -> dict[str, Path]:
    """Write demo-{train,dev,test}.conllu into ``directory`` (atomically; files already
    holding exactly the generator's output are left alone)."""
    from ..output import write_output

    directory = Path(directory)
    paths = {}
    for split, text in generate(seed).items():
        path = paths[split] = directory / f"demo-{split}.conllu"
        data = text.encode("utf-8")
        try:
            same = path.read_bytes() == data
        except OSError:
            same = False
        if not same:
            write_output(path, data)
    return paths


def demo_paths() -> dict[str, Path]:
    """The demo corpus: {"train": path, "dev": path, "test": path}, written on first use."""
    from ..kernels import cache_dir

    directory = cache_dir() / "demo-corpus"
    try:
        return write_corpus(directory)
    except (OSError, UserError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"{directory}: cannot write the demo corpus ({reason}); "
                        "set ATTNLAB_CACHE to a writable directory") from None


def main(argv: list[str] | None = None) -> int:
    from ..options import seed, show_ranges

    parser = argparse.ArgumentParser(prog="python -m attnlab.data.demo", description="Write the demo corpus.")
    parser.add_argument("--out", type=Path, required=True, help="directory for demo-{train,dev,test}.conllu")
    parser.add_argument("--seed", type=seed, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    show_ranges(parser)
    args = parser.parse_args(argv)
    for path in write_corpus(args.out, args.seed).values():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
