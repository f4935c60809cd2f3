"""spaCy's CNN pipeline beside `attnlab bench tag`: trained on the same treebank, timed the same way.

spaCy is not a dependency of attnlab; the comparison runs when it is installed::

    pip install 'spacy>=3.8,<3.9'

The pipeline is spaCy's own ``spacy init config --pipeline tagger,morphologizer,trainable_lemmatizer
--optimize efficiency`` (a shared tok2vec: hash embeddings and a maxout window CNN, then three
softmax layers), trained by ``spacy train`` on the treebank's train file (dev for its scores)
for a fixed number of steps. Its speed depends on that architecture, not on how long it
trained, so a short budget is enough for timing; its dev accuracy is reported, not compared.

The trained pipeline is kept in ``$ATTNLAB_CACHE/bench-spacy/<key>`` (default
``~/.cache/attnlab``), the key being the treebank's path, its files' sizes and times, the
spaCy version and the step budget, so later runs load it instead of training again.

A timed run is a new process (``python -c PIPE_SCRIPT``: Python's startup, ``import spacy``
and ``spacy.load`` counted, as they are for ``attnlab tag``) that runs ``nlp.pipe`` over the
paragraphs of the raw text (split at blank lines) or over the words of a CoNLL-U file (one
``Doc`` per sentence, spaCy's tokenizer skipped) and prints the tokens and docs it got. torch is
kept out of that process: thinc imports it whenever it is installed (seconds of startup), while
spaCy's CNN runs on numpy, so spaCy starts as it would where it is installed alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..data.conllu import Sentence

PIPELINE = ["tagger", "morphologizer", "trainable_lemmatizer"]
DEFAULT_STEPS = 1000
BATCH_SIZE = 256  # texts per nlp.pipe batch (and per job sent to each of n_process processes)
INSTALL = "pip install 'spacy>=3.8,<3.9'"

# The timed process: argv = pipeline directory, input file, "text" or "conllu", n_process, batch size.
PIPE_SCRIPT = r"""
import re, sys
sys.modules["torch"] = None  # thinc imports torch when it is installed; spaCy's CNN does not use it
import spacy
model, path, kind, n_process, batch_size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
nlp = spacy.load(model)
with open(path, encoding="utf-8") as f:
    data = f.read()
if kind == "text":
    items = [p.strip() for p in re.split(r"\n[ \t]*\n", data) if p.strip()]
else:
    from spacy.tokens import Doc
    items, words, spaces, mwt_end, mwt_space = [], [], [], 0, True
    for line in data.split("\n"):
        if not line.strip():
            if words:
                items.append(Doc(nlp.vocab, words=words, spaces=spaces))
            words, spaces, mwt_end = [], [], 0
            continue
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        space = "SpaceAfter=No" not in cols[9].split("|")
        if "-" in cols[0]:
            mwt_end, mwt_space = int(cols[0].split("-")[1]), space
            continue
        if "." in cols[0]:
            continue
        i = int(cols[0])
        if i < mwt_end:
            space = False
        elif i == mwt_end:
            space, mwt_end = mwt_space, 0
        words.append(cols[1])
        spaces.append(space)
    if words:
        items.append(Doc(nlp.vocab, words=words, spaces=spaces))
tokens = docs = 0
for doc in nlp.pipe(items, batch_size=batch_size, n_process=n_process):
    tokens += len(doc)
    docs += 1
print(tokens, docs)
"""

TRAIN_SCRIPT = r"""
import json, sys
from spacy.cli.train import train
train(sys.argv[1], sys.argv[2], overrides=json.loads(sys.argv[3]))
"""


def _spaces(sentence: "Sentence") -> list[bool]:
    """Whether a space follows each syntactic word: none inside a multiword token, the token's
    own SpaceAfter after its last word."""
    out: list[bool] = []
    for token in sentence.surface_tokens:
        out += [False] * (len(token.words) - 1) + [token.space_after]
    return out


def sentence_doc(sentence: "Sentence", vocab: Any) -> Any:
    """A spaCy ``Doc`` of one sentence's syntactic words with its gold XPOS (``tag_``), UPOS
    (``pos_``), FEATS (``morph``) and LEMMA; spaces from SpaceAfter=No."""
    from spacy.tokens import Doc

    return Doc(vocab, words=sentence.forms, spaces=_spaces(sentence), tags=sentence.xpos, pos=sentence.upos,
               morphs=sentence.feats, lemmas=sentence.lemmas)


def write_docbin(sentences: Iterable["Sentence"], out: Path, lang: str = "en") -> int:
    """Save one ``Doc`` per sentence as a DocBin (``.spacy``) file; how many were written."""
    import spacy
    from spacy.tokens import DocBin

    vocab = spacy.blank(lang).vocab
    docs = DocBin(attrs=["ORTH", "TAG", "POS", "MORPH", "LEMMA"], store_user_data=False)
    n = 0
    for sentence in sentences:
        docs.add(sentence_doc(sentence, vocab))
        n += 1
    docs.to_disk(out)
    return n


def config_text(lang: str = "en") -> str:
    """The config ``spacy init config --lang LANG --pipeline tagger,morphologizer,trainable_lemmatizer
    --optimize efficiency`` writes (CPU)."""
    from spacy.cli.init_config import Optimizations, init_config

    return init_config(lang=lang, pipeline=PIPELINE, optimize=Optimizations.efficiency, gpu=False).to_str()


def overrides(train: Path, dev: Path, steps: int) -> dict[str, object]:
    """``spacy train`` settings: the corpora and a budget of ``steps`` updates (at most one epoch),
    scored on dev four times."""
    return {"paths.train": str(train), "paths.dev": str(dev), "training.max_steps": steps,
            "training.max_epochs": 1, "training.eval_frequency": max(1, steps // 4), "system.seed": 0}


def cache_key(treebank: Path, steps: int, version: str) -> str:
    from ..data.treebank import find_split

    files = [find_split(treebank, split) for split in ("train", "dev")]
    parts = [str(Path(treebank).resolve()), version, str(steps)]
    parts += [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def scores(meta: dict) -> dict[str, float]:
    """Dev accuracy of a pipeline's meta.json: tag_acc, pos_acc, morph_acc, lemma_acc (0-1)."""
    performance = meta.get("performance", {})
    return {k: float(performance[k]) for k in ("tag_acc", "pos_acc", "morph_acc", "lemma_acc")
            if isinstance(performance.get(k), (int, float))}


def ensure_pipeline(treebank: Path, steps: int = DEFAULT_STEPS, cache: Path | None = None) -> dict:
    """The trained pipeline of ``treebank`` (trained now unless cached): its directory, when and
    for how many steps it was trained, the seconds that took, spaCy's version and dev scores."""
    import spacy

    from ..data.conllu import read_conllu
    from ..data.treebank import find_split
    from ..kernels import cache_dir

    train, dev = find_split(treebank, "train"), find_split(treebank, "dev")
    root = (cache or cache_dir()) / "bench-spacy"
    home = root / cache_key(treebank, steps, spacy.__version__)
    marker = home / "trained.json"
    if marker.is_file():
        info = json.loads(marker.read_text(encoding="utf-8"))
        return {**info, "path": str(home / "model-best"), "cached": True}
    work = root / f"{home.name}.tmp-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    write_docbin(read_conllu(train), work / "train.spacy")
    write_docbin(read_conllu(dev), work / "dev.spacy")
    (work / "config.cfg").write_text(config_text(), encoding="utf-8")
    print(f"  training spaCy {spacy.__version__}'s CNN pipeline on {train.name} ({steps} steps; log: {work / 'train.log'})",
          file=sys.stderr, flush=True)
    start = time.perf_counter()
    with open(work / "train.log", "wb") as log:
        proc = subprocess.run([sys.executable, "-c", TRAIN_SCRIPT, str(work / "config.cfg"), str(work),
                               json.dumps(overrides(work / "train.spacy", work / "dev.spacy", steps))],
                              stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "WASABI_LOG_FRIENDLY": "1"})
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or not (work / "model-best" / "meta.json").is_file():
        tail = (work / "train.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"spaCy training failed (exit {proc.returncode}, log {work / 'train.log'}): "
                           f"{tail[0] if tail else ''}")
    meta = json.loads((work / "model-best" / "meta.json").read_text(encoding="utf-8"))
    info = {"treebank": str(Path(treebank).resolve()), "train": train.name, "dev": dev.name, "steps": steps,
            "spacy": spacy.__version__, "pipeline": ["tok2vec", *PIPELINE], "seconds": round(seconds, 1),
            "trained_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "dev_scores": scores(meta)}
    (work / "trained.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    shutil.rmtree(home, ignore_errors=True)
    work.rename(home)
    return {**info, "path": str(home / "model-best"), "cached": False}


def pipe_command(model: str | Path, path: str | Path, kind: str, n_process: int,
                 batch_size: int = BATCH_SIZE) -> list[str]:
    if kind not in ("text", "conllu"):
        raise ValueError(f"kind must be text or conllu, got {kind!r}")
    return [sys.executable, "-c", PIPE_SCRIPT, str(model), str(path), kind, str(n_process), str(batch_size)]


def run_pipe(model: str | Path, path: str | Path, kind: str, n_process: int, batch_size: int = BATCH_SIZE) -> dict:
    """One timed run of ``nlp.pipe`` in a new process: wall seconds, spaCy's tokens ("words") and docs."""
    start = time.perf_counter()
    proc = subprocess.run(pipe_command(model, path, kind, n_process, batch_size), capture_output=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"spaCy nlp.pipe over {path} (n_process={n_process}) failed (exit {proc.returncode}): "
                           f"{err[-1] if err else ''}")
    words, docs = (int(x) for x in proc.stdout.split())
    return {"seconds": seconds, "words": words, "sentences": None, "docs": docs, "peak_rss_mb": None}


def is_spacy(name: str) -> bool:
    return name.startswith("spaCy")


def input_kind(name: str) -> str:
    """"text" or "conllu": what a case of the benchmark reads (its name's first part, after "spaCy CNN, ")."""
    parts = name.split(", ")
    return parts[1] if is_spacy(name) else parts[0]


def versus(rows: dict[str, dict], kinds: Sequence[str] = ("conllu", "text")) -> list[dict]:
    """For each input kind with both attnlab and spaCy rows: the best of each (words/s) and their ratio."""
    out = []
    for kind in kinds:
        ours = {n: r for n, r in rows.items() if not is_spacy(n) and input_kind(n) == kind}
        theirs = {n: r for n, r in rows.items() if is_spacy(n) and input_kind(n) == kind}
        if ours and theirs:
            a = max(ours, key=lambda n: ours[n]["words_per_s"])
            s = max(theirs, key=lambda n: theirs[n]["words_per_s"])
            out.append({"kind": kind, "attnlab": a, "attnlab_words_per_s": ours[a]["words_per_s"], "spacy": s,
                        "spacy_words_per_s": theirs[s]["words_per_s"],
                        "ratio": ours[a]["words_per_s"] / theirs[s]["words_per_s"]})
    return out
