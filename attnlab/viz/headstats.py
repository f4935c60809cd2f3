"""What each head of a tagger's attention does, measured over a treebank's sentences (its gold
words and trees), after Clark et al. 2019 ("What Does BERT Look At? An Analysis of BERT's
Attention") and Michel et al. 2019 ("Are Sixteen Heads Really Better than One?").

Shape letters: L layers, H heads, n words of one sentence, R relations. Layers and heads are
numbered from 0 in code and from 1 in the report (as on the command line and the page).

For every layer and head, over every word i of every sentence:

* entropy    mean of -sum_j alpha'_(i,j) ln alpha'_(i,j), in nats (a row spread evenly over n
             keys has ln n; a row on one key has 0)
* distance   mean of sum_j alpha'_(i,j) |i - j|, in words
* to_head    how often word i's strongest key (argmax_j alpha'_(i,j), i itself included) is its
             dependency head (over words that have one: the root has none)
* to_dependent  how often word i's strongest key is one of its dependents (over words that have one)

both overall and by relation: the DEPREL without its subtype (``nsubj:pass`` counts as
``nsubj``). ``to_head`` by the relation of word i; ``to_dependent`` by the relation of the
dependents: over the words with at least one dependent of relation r, a hit when the strongest
key is one of those. Beside them the fixed-offset baseline of Clark et al.: for each relation
and direction, the one offset k that "always attend to word i + k" gets right most often, and
its accuracy; a head tracks a relation only as far as it beats that. Each head's ``best``
relation is the one where it finds the most words the baseline misses (among relations of at
least ``min_count`` words).

Importance: every layer the tagger predicts (UPOS, XPOS, UFeats, Lemmas, scored as ``attnlab
eval`` does: ``attnlab.evaluate.score_word_layers``) on the same sentences with one head
switched off, against the intact model. Switching a head off removes its output before W^O:
the columns of W^O that read it are zeroed (in a copy of the model; the one given is not
touched).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence, cast

import numpy as np
import torch

if TYPE_CHECKING:
    from ..modules import TransformerEncoder, TransformerEncoderLayer
    from ..tasks.tagging import Tagger

FORMAT = "attnlab-heads/1"
DIRECTIONS = ("to_head", "to_dependent")
ALL = None  # the key of every word together, beside the relations
SCORED = ("UPOS", "XPOS", "UFeats", "Lemmas")  # the layers importance reports, as `attnlab eval` names them


@dataclass(frozen=True)
class Tree:
    """One sentence's dependency tree over its words (numbered from 0)."""

    heads: list[int]  # the head of each word, -1 for the root (and for a word without HEAD)
    relations: list[str]  # the base relation of each word (``nsubj:pass`` -> ``nsubj``; ``_`` without DEPREL)


def base_relation(deprel: str) -> str:
    """``nsubj:pass`` -> ``nsubj``; ``_`` (no relation) stays ``_``."""
    return deprel.split(":", 1)[0] or "_"


def sentence_tree(sentence) -> Tree:
    """The tree of an ``attnlab.data.conllu.Sentence``: ValueError naming the line for a HEAD
    that is not a word of the sentence. HEAD ``_`` leaves the word without a head."""
    index = {t.id: k for k, t in enumerate(sentence.tokens)}
    heads = []
    for t in sentence.tokens:
        if t.head == "_":
            heads.append(-1)
            continue
        if not t.head.isdigit() or (t.head != "0" and int(t.head) not in index):
            where = f"{sentence.source}:{t.line}" if t.line else sentence.source
            raise ValueError(f"{where}: HEAD {t.head!r} of word {t.id} is not a word of its sentence")
        heads.append(-1 if t.head == "0" else index[int(t.head)])
    return Tree(heads, [base_relation(t.deprel) for t in sentence.tokens])


def switched_off(model: Tagger, heads: Iterable[tuple[int, int]]) -> Tagger:
    """A copy of a tagger with every (layer, head) of ``heads`` (from 0) switched off: the
    columns of W^O that read such a head's output are zero, so its layer adds nothing of it."""
    off = copy.deepcopy(model)
    transformer = cast("TransformerEncoder", off.encoder.transformer)
    for layer, head in heads:
        attn = cast("TransformerEncoderLayer", transformer.layers[layer]).attn
        d = attn.d_head
        with torch.no_grad():
            attn.out.weight[:, head * d:(head + 1) * d] = 0.0
    return off


class HeadTally:
    """Running sums over sentences: entropy and distance per head, hits per head and relation,
    and the offsets the fixed-offset baseline chooses among."""

    def __init__(self, layers: int, heads: int):
        self.L, self.H = layers, heads
        self.words = 0
        self.entropy = np.zeros((layers, heads))
        self.distance = np.zeros((layers, heads))
        self.relations: dict[str, int] = {}
        self.hits = {d: np.zeros((layers, heads, 0), dtype=np.int64) for d in DIRECTIONS}
        self.all_hits = {d: np.zeros((layers, heads), dtype=np.int64) for d in DIRECTIONS}
        self.totals: dict[str, Counter] = {d: Counter() for d in DIRECTIONS}  # relation (or ALL) -> words
        self.offsets: dict[str, dict] = {d: {} for d in DIRECTIONS}  # relation (or ALL) -> Counter of offsets

    def relation_ids(self, relations: Sequence[str]) -> torch.Tensor:
        for r in relations:
            if r not in self.relations:
                self.relations[r] = len(self.relations)
                for d in DIRECTIONS:
                    self.hits[d] = np.concatenate([self.hits[d], np.zeros((self.L, self.H, 1), dtype=np.int64)], axis=2)
        return torch.tensor([self.relations[r] for r in relations], dtype=torch.long)

    def add(self, w: torch.Tensor, tree: Tree) -> None:
        """One sentence: w (L, H, n, n) its attention, ``tree`` its gold tree."""
        n = w.shape[-1]
        w = w.double()
        pos = torch.arange(n)
        self.words += n
        self.entropy += (-(w * w.clamp_min(1e-300).log()).sum(-1)).sum(-1).numpy()  # (L, H)
        self.distance += (w * (pos[None, :] - pos[:, None]).abs()).sum((-1, -2)).numpy()
        strongest = w.argmax(-1)  # (L, H, n)
        rel = self.relation_ids(tree.relations)  # (n,)
        R = len(self.relations)
        heads = torch.tensor(tree.heads)
        # a word -> its head, by the word's relation
        has_head = heads >= 0
        hit = (strongest == heads) & has_head  # (L, H, n)
        self.all_hits["to_head"] += hit.sum(-1).numpy()
        self.hits["to_head"] += (hit.double() @ torch.nn.functional.one_hot(rel, R).double()).long().numpy()
        # a word -> one of its dependents, by the dependent's relation
        children = heads[None, :] == pos[:, None]  # (n, n): children[i, j] = j depends on i
        hit = children[pos[None, None, :].expand_as(strongest), strongest]  # (L, H, n)
        self.all_hits["to_dependent"] += hit.sum(-1).numpy()
        self.hits["to_dependent"] += (hit[..., None] & (torch.nn.functional.one_hot(rel[strongest], R) > 0)).sum(2).numpy()
        # what each relation counts, and the offsets a fixed-offset head would need
        kids: list[list[int]] = [[] for _ in range(n)]
        for j, h in enumerate(tree.heads):
            if h >= 0:
                kids[h].append(j)
                self._offsets("to_head", tree.relations[j], {h - j})
                self._offsets("to_head", ALL, {h - j})
        for i in range(n):
            if kids[i]:
                self._offsets("to_dependent", ALL, {j - i for j in kids[i]})
                for r in {tree.relations[j] for j in kids[i]}:
                    self._offsets("to_dependent", r, {j - i for j in kids[i] if tree.relations[j] == r})

    def _offsets(self, direction: str, key, offsets: set[int]) -> None:
        """One more word for ``key`` (a relation, or ALL), which a fixed offset in ``offsets`` gets right."""
        self.totals[direction][key] += 1
        self.offsets[direction].setdefault(key, Counter()).update(offsets)


def _baseline(offsets: Counter, total: int) -> dict:
    """The offset that is right most often (ties: the nearer, then the earlier) and its accuracy."""
    k, hits = max(offsets.items(), key=lambda kv: (kv[1], -abs(kv[0]), -kv[0]))
    return {"offset": k, "correct": hits, "accuracy": hits / total}


def _score(correct: int, total: int) -> dict:
    return {"correct": int(correct), "total": int(total), "accuracy": correct / total if total else None}


def _attention_batches(model, sentences: Sequence[Sequence[str]], batch_tokens: int):
    """(index of the sentence, its weights (L, H, n, n)) of every sentence, in batches of similar
    length (packed through the encoder: nothing is computed on padding)."""
    from ..tasks.tagging import length_batches

    tagger = model.model
    rows, table = model.features.char_table(tagger.features, [w for s in sentences for w in s])
    for idx in length_batches([len(s) for s in sentences], batch_tokens):
        batch = model.features.encode([sentences[i] for i in idx], rows=rows)
        batch.char_vectors = table
        per_layer = tagger.encoder.attention_weights(tagger.features(batch), batch.lengths)  # L lists of B (H, n, n)
        for b, i in enumerate(idx):
            yield i, torch.stack([layer[b] for layer in per_layer])


def tag_accuracies(tagger: Tagger, model, sentences) -> dict[str, float]:
    """Accuracy of every layer the tagger predicts and the gold has (``SCORED``)."""
    from ..evaluate import score_word_layers
    from ..tasks.tagging import predict_tags

    predicted = predict_tags(tagger, model.features, model.vocabs, [s.forms for s in sentences]).tags
    report = score_word_layers(sentences, predicted)
    return {layer: cast(float, report[layer].accuracy) for layer in SCORED if report[layer].status == "scored"}


def check_model(model) -> None:
    """ValueError unless ``model`` is a tagger with attention (``attnlab.viz.model.Explainable``)."""
    from .model import Explainable

    if getattr(model, "no_tags", None):
        raise ValueError(f"{model.name} has no tags ({model.no_tags}); the head report needs a tagger, whose words "
                         "are the treebank's")
    if not isinstance(model, Explainable):
        raise ValueError(f"the head report needs a tagger with attention, got {type(model).__name__}")
    model.require_attention()


@torch.inference_mode()
def head_report(model, sentences: Sequence, *, importance: bool = True, min_count: int = 20,
                batch_tokens: int = 2048, progress: bool = False, source: str = "") -> dict:
    """The report (a JSON-ready dict, ``FORMAT``) of every head of ``model`` (an
    ``attnlab.viz.model.Explainable`` with attention) over gold ``sentences``
    (``attnlab.data.conllu.Sentence``: words, HEAD and DEPREL; UPOS and the other layers for
    ``importance``). ``min_count``: fewest words a relation needs to be a head's ``best`` and
    to be listed in ``relations``. ``progress``: a bar on stderr (tqdm), in words.
    """
    import sys

    from tqdm import tqdm

    check_model(model)
    if not sentences:
        raise ValueError(f"{source or 'the treebank'} has no sentences")
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    trees = [sentence_tree(s) for s in sentences]
    if not any(h >= 0 for t in trees for h in t.heads):
        raise ValueError(f"{source or 'the treebank'} has no dependency trees (every HEAD is _ or 0): "
                         "the heads are compared with the gold trees")
    forms = [s.forms for s in sentences]
    words = sum(map(len, forms))
    L, H = model.layers, model.heads
    passes = 1 + (1 + L * H if importance else 0)
    bar = tqdm(total=words * passes, desc="heads", unit="word", disable=not progress, file=sys.stderr)
    try:
        tally = HeadTally(L, H)
        for i, w in _attention_batches(model, forms, batch_tokens):
            tally.add(w, trees[i])
            bar.update(len(forms[i]))
        intact, off = None, {}
        if importance:
            intact = tag_accuracies(model.model, model, sentences)
            bar.update(words)
            for layer in range(L):
                for head in range(H):
                    off[layer, head] = tag_accuracies(switched_off(model.model, [(layer, head)]), model, sentences)
                    bar.update(words)
    finally:
        bar.close()
    return summarise(tally, name=model.name, min_count=min_count, source=source, sentences=len(sentences),
                     intact=intact, switched=off)


def summarise(tally: HeadTally, *, name: str = "model", min_count: int = 20, source: str = "", sentences: int = 0,
              intact: dict | None = None, switched: dict | None = None) -> dict:
    """The report of a tally: per head its entropy, distance, hits overall and by relation, best
    relation and (with ``intact``, the intact model's accuracies, and ``switched``, (layer, head)
    -> the accuracies with that head off) importance; per relation the three heads that track
    it best and the fixed-offset baseline."""
    names = sorted(tally.relations, key=lambda r: tally.relations[r])
    baseline = {d: {r: _baseline(c, tally.totals[d][r]) for r, c in tally.offsets[d].items()} for d in DIRECTIONS}
    kept = {d: sorted((r for r in names if tally.totals[d][r] >= min_count), key=lambda r: -tally.totals[d][r])
            for d in DIRECTIONS}
    heads = []
    for layer in range(tally.L):
        for head in range(tally.H):
            entry: dict = {"layer": layer + 1, "head": head + 1,
                           "entropy": tally.entropy[layer, head] / tally.words,
                           "distance": tally.distance[layer, head] / tally.words}
            for d in DIRECTIONS:
                entry[d] = _score(tally.all_hits[d][layer, head], tally.totals[d][ALL])
                entry[d]["by_relation"] = {
                    r: _score(tally.hits[d][layer, head, tally.relations[r]], tally.totals[d][r]) for r in kept[d]}
            if intact is not None:
                entry["importance"] = {k: {"accuracy": v, "drop": intact[k] - v}
                                       for k, v in (switched or {})[layer, head].items()}
            heads.append(entry)
    relations = []
    for d in DIRECTIONS:
        for r in kept[d]:
            ranked = sorted(heads, key=lambda e: -e[d]["by_relation"][r]["accuracy"])
            relations.append({
                "relation": r, "direction": d, "total": tally.totals[d][r], "baseline": baseline[d][r],
                "best": [{"layer": e["layer"], "head": e["head"], "accuracy": e[d]["by_relation"][r]["accuracy"]}
                         for e in ranked[:3]],
            })
    for entry in heads:
        entry["best"] = best_relation(entry, relations)
    return {
        "format": FORMAT, "model": name, "treebank": source, "sentences": sentences, "words": tally.words,
        "layers": tally.L, "heads": tally.H, "entropy_unit": "nats", "min_count": min_count,
        "baseline": {d: baseline[d].get(ALL) for d in DIRECTIONS},
        "intact": intact, "per_head": heads, "relations": relations,
    }


def best_relation(entry: dict, relations: list[dict]) -> dict | None:
    """The relation a head (an entry of a report's ``per_head``) tracks best beyond position: the
    one where its strongest key finds the most words that the relation's fixed-offset baseline
    misses (``extra``: its hits minus the baseline's, so a rare relation does not win on a few
    words). None when it finds more than the baseline on no relation (of ``min_count`` words)."""
    best = None
    for r in relations:
        score = entry[r["direction"]]["by_relation"][r["relation"]]
        extra = score["correct"] - r["baseline"]["correct"]
        if extra > (0 if best is None else best["extra"]):
            best = {"relation": r["relation"], "direction": r["direction"], "accuracy": score["accuracy"],
                    "total": score["total"], "baseline": r["baseline"]["accuracy"], "offset": r["baseline"]["offset"],
                    "extra": extra}
    return best


def read_report(path: str | Path, model=None) -> dict:
    """A report written by ``attnlab heads --json``; ValueError for a file that is not one, or
    one of a model of another shape than ``model``."""
    path = Path(path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the head report ({exc.strerror or exc})") from None
    if not isinstance(report, dict) or report.get("format") != FORMAT or not isinstance(report.get("per_head"), list):
        raise ValueError(f"{path}: not a head report (`attnlab heads --json` writes one; format {FORMAT})")
    if model is not None and (report.get("layers"), report.get("heads")) != (model.layers, model.heads):
        raise ValueError(f"{path}: a report of {report.get('layers')} layers x {report.get('heads')} heads, but the "
                         f"model has {model.layers} x {model.heads}")
    return report


def format_report(report: dict) -> str:
    """The report as text: a table of the heads, then per relation the heads that track it best
    against the fixed-offset baseline."""
    scored = list(report["intact"] or {})

    def pct(x):
        return "    -" if x is None else f"{100 * x:5.1f}"

    lines = [f"{report['model']} on {report['treebank'] or 'the treebank'}: {report['sentences']:,} sentences, "
             f"{report['words']:,} words; entropy in nats, distance in words, accuracies in %"]
    base = report["baseline"]
    lines.append("fixed-offset baseline: " + "; ".join(
        f"{d.replace('_', ' ')} {pct(base[d]['accuracy']).strip()} (offset {base[d]['offset']:+d})"
        for d in DIRECTIONS if base[d]))
    if scored:
        lines.append("intact: " + ", ".join(f"{k} {pct(v).strip()}" for k, v in report["intact"].items()))
    head = f"{'head':<6} {'entropy':>7} {'dist':>5} {'>head':>6} {'>dep':>6}  {'best relation (offset) +words':<34}"
    head += "".join(f" {'-' + k:>8}" for k in scored)
    lines += ["", head]
    for e in report["per_head"]:
        b = e["best"]
        best = "none beyond the offset" if b is None else (
            f"{b['relation']} {'>head' if b['direction'] == 'to_head' else '>dep'} "
            f"{pct(b['accuracy']).strip()} ({pct(b['baseline']).strip()}) +{b['extra']}")
        row = (f"L{e['layer']} H{e['head']:<2} {e['entropy']:7.2f} {e['distance']:5.2f} "
               f"{pct(e['to_head']['accuracy']):>6} {pct(e['to_dependent']['accuracy']):>6}  {best:<34}")
        row += "".join(f" {100 * e['importance'][k]['drop']:+8.2f}" for k in scored)
        lines.append(row)
    lines.append(">head: a word's strongest key is its head; >dep: one of its dependents; best relation: where the "
                 "head finds the most words the fixed offset misses (its accuracy, the offset's, how many more)")
    if scored:
        lines.append("-LAYER: accuracy lost, in points, when the head is switched off")
    lines += ["", f"{'relation':<14} {'words':>6}  {'offset':>12}  best heads"]
    for r in report["relations"]:
        arrow = ">head" if r["direction"] == "to_head" else ">dep"
        bl = r["baseline"]
        tops = ", ".join(f"L{h['layer']} H{h['head']} {pct(h['accuracy']).strip()}" for h in r["best"])
        lines.append(f"{r['relation'] + ' ' + arrow:<14} {r['total']:>6}  {pct(bl['accuracy'])} ({bl['offset']:+d})  {tops}")
    return "\n".join(lines)
