"""graph: self-attention masked by a graph's adjacency labels nodes by their neighbours.

The seed lists graphs among the inputs a model may get as a set of vectors. Here each
generated graph (``make_graph``: a random spanning tree plus a few extra edges) has
nodes of two colours, R and B; a node's label is how many of its neighbours are red
(0, 1 or 2+). Each node's input token is its colour and its degree (e.g. ``R3``), so the
model knows how many neighbours a node has but not which ones.

The same small Transformer (``GraphAttentionModel``: embedding, pre-norm layers of
``attnlab.MultiHeadSelfAttention`` and feed-forward, a linear head) is trained twice:

* ``masked``:   every layer's ``attend_mask`` is ``masks.from_graph(edges, n)``: a node
                attends to itself and its neighbours only;
* ``unmasked``: every node attends to every node (only padding is masked).

Both see the same tokens; the mask is the only way the edges enter. Training uses
``attnlab.train.train`` through ``GraphTask``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import Settings, fmt_pct, finish, footer, log, machine, markdown_table, mean_and_spread, plot_spec, series

NAME = "graph"
VARIANTS = ("masked", "unmasked")
LABELS = ("0", "1", "2+")


@dataclass(frozen=True)
class Graph:
    colors: list[str]  # "R" or "B" per node
    edges: list[tuple[int, int]]  # undirected, i < j

    @property
    def n(self) -> int:
        return len(self.colors)

    def neighbours(self, i: int) -> list[int]:
        return [b if a == i else a for a, b in self.edges if i in (a, b)]

    def tokens(self) -> list[str]:
        """Input token per node: colour and degree, e.g. "R3"."""
        return [f"{c}{len(self.neighbours(i))}" for i, c in enumerate(self.colors)]

    def labels(self) -> list[str]:
        """Red neighbours per node: "0", "1" or "2+"."""
        out = []
        for i in range(self.n):
            red = sum(self.colors[j] == "R" for j in self.neighbours(i))
            out.append(LABELS[min(red, 2)])
        return out


def make_graph(rng: random.Random, n_range=(10, 20), extra_edges=(1, 4), p_red: float = 0.4) -> Graph:
    """A connected graph: a random tree (each node joins an earlier one) plus a few extra edges."""
    n = rng.randint(*n_range)
    edges = set()
    for i in range(1, n):
        j = rng.randrange(i)
        edges.add((j, i))
    for _ in range(rng.randint(*extra_edges)):
        a, b = rng.sample(range(n), 2)
        edges.add((min(a, b), max(a, b)))
    colors = ["R" if rng.random() < p_red else "B" for _ in range(n)]
    # shuffle node ids so that the order says nothing about the tree
    perm = list(range(n))
    rng.shuffle(perm)
    colors = [colors[perm.index(i)] for i in range(n)]
    return Graph(colors, sorted({(min(perm[a], perm[b]), max(perm[a], perm[b])) for a, b in edges}))


def make_graphs(n: int, seed: int, **kw) -> list[Graph]:
    rng = random.Random(seed)
    return [make_graph(rng, **kw) for _ in range(n)]


class GraphAttentionModel(nn.Module):
    """tokens (B, N) -> label scores (B, N, C); ``attend_mask`` (B, 1, N, N) limits attention."""

    def __init__(self, vocab_size: int, classes: int, width: int = 64, layers: int = 2, heads: int = 4):
        super().__init__()
        from ..modules import MultiHeadSelfAttention

        self.embed = nn.Embedding(vocab_size, width, padding_idx=0)
        self.attn = nn.ModuleList(MultiHeadSelfAttention(width, heads) for _ in range(layers))
        self.ff = nn.ModuleList(nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
                                for _ in range(layers))
        self.norm1 = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.norm2 = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.head = nn.Linear(width, classes)

    def forward(self, tokens: torch.Tensor, attend_mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)  # (B, N, D)
        for attn, ff, n1, n2 in zip(self.attn, self.ff, self.norm1, self.norm2):
            x = x + attn(n1(x), attend_mask=attend_mask)
            x = x + ff(n2(x))
        return self.head(x)  # (B, N, C)


@dataclass
class GraphBatch:
    ids: torch.Tensor  # (B, N) token ids, 0 = padding
    labels: torch.Tensor  # (B, N) label ids, -100 at padding
    attend_mask: torch.Tensor  # (B, 1, N, N)
    tokens: int  # real nodes in the batch (the training loop counts them)


def attend_mask_for(graphs: list[Graph], n: int, use_graph: bool, adjacency=None) -> torch.Tensor:
    """(B, 1, N, N): real keys only; with ``use_graph`` also only the node's neighbours and itself.

    ``adjacency(graph)`` may supply ``masks.from_graph(graph.edges, graph.n)`` from a cache."""
    from ..attention.masks import from_graph, from_lengths

    adjacency = adjacency or (lambda g: from_graph(g.edges, g.n))
    lengths = torch.tensor([g.n for g in graphs])
    mask = from_lengths(lengths, n).expand(len(graphs), 1, n, n).clone()  # (B, 1, N, N)
    if use_graph:
        for b, g in enumerate(graphs):
            adj = torch.zeros(n, n, dtype=torch.bool)
            adj[: g.n, : g.n] = adjacency(g)
            adj[g.n:, 0] = True  # padded query rows look at one real key (never used, but no empty row)
            mask[b, 0] &= adj
    return mask


class GraphTask:
    """The graph side of ``attnlab.train.train``."""

    def __init__(self, model: GraphAttentionModel, vocab: dict[str, int], train: list[Graph], dev: list[Graph],
                 use_graph: bool):
        self.model, self.vocab, self.train, self.dev, self.use_graph = model, vocab, train, dev, use_graph
        self._adjacency: dict[int, torch.Tensor] = {}  # id(graph) -> from_graph mask, built once
        self._ids: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(graph) -> (token ids, label ids)

    def adjacency(self, g: Graph) -> torch.Tensor:
        from ..attention.masks import from_graph

        adj = self._adjacency.get(id(g))
        if adj is None:
            adj = self._adjacency[id(g)] = from_graph(g.edges, g.n)
        return adj

    def lengths(self) -> list[int]:
        return [g.n for g in self.train]

    def _encoded(self, g: Graph) -> tuple[torch.Tensor, torch.Tensor]:
        hit = self._ids.get(id(g))
        if hit is None:
            hit = self._ids[id(g)] = (torch.tensor([self.vocab.get(t, 1) for t in g.tokens()]),
                                      torch.tensor([LABELS.index(l) for l in g.labels()]))
        return hit

    def batch_of(self, graphs: list[Graph]) -> GraphBatch:
        n = max(g.n for g in graphs)
        tokens = torch.zeros(len(graphs), n, dtype=torch.long)
        labels = torch.full((len(graphs), n), -100, dtype=torch.long)
        for b, g in enumerate(graphs):
            ids, gold = self._encoded(g)
            tokens[b, : g.n] = ids
            labels[b, : g.n] = gold
        return GraphBatch(tokens, labels, attend_mask_for(graphs, n, self.use_graph, self.adjacency),
                          sum(g.n for g in graphs))

    def make_batch(self, indices) -> GraphBatch:
        return self.batch_of([self.train[i] for i in indices])

    def loss(self, model, batch) -> torch.Tensor:
        scores = model(batch.ids, batch.attend_mask)  # (B, N, C)
        return F.cross_entropy(scores.flatten(0, 1), batch.labels.flatten())

    @torch.no_grad()
    def accuracy(self, model, graphs: list[Graph]) -> float:
        was = model.training
        model.eval()
        correct = total = 0
        for start in range(0, len(graphs), 128):
            b = self.batch_of(graphs[start:start + 128])
            pred = model(b.ids, b.attend_mask).argmax(-1)
            real = b.labels != -100
            correct += int((pred[real] == b.labels[real]).sum())
            total += int(real.sum())
        model.train(was)
        return correct / total if total else 0.0

    def evaluate(self, model) -> float:
        return self.accuracy(model, self.dev)

    def save_model(self, directory: str | Path, model, extra: dict) -> None:
        from ..checkpoint import save_model_dir

        save_model_dir(directory, model.state_dict(), {"task": "graph-node-labels", **extra}, {"tokens": self.vocab})


def majority_baseline(graphs: list[Graph]) -> float:
    from collections import Counter

    counts = Counter(l for g in graphs for l in g.labels())
    return max(counts.values()) / sum(counts.values())


def token_baseline(train: list[Graph], test: list[Graph]) -> float:
    """Accuracy of the most frequent training label per input token (colour and degree): the
    best a model can do from a node's own token, without knowing which nodes are its neighbours."""
    from collections import Counter, defaultdict

    by_token: dict[str, Counter] = defaultdict(Counter)
    for g in train:
        for t, l in zip(g.tokens(), g.labels()):
            by_token[t][l] += 1
    overall = Counter(l for g in train for l in g.labels()).most_common(1)[0][0]
    guess = {t: c.most_common(1)[0][0] for t, c in by_token.items()}
    pairs = [(guess.get(t, overall), l) for g in test for t, l in zip(g.tokens(), g.labels())]
    return sum(p == l for p, l in pairs) / len(pairs)


def token_vocab(graphs: list[Graph]) -> dict[str, int]:
    """Input token -> id, in order of first appearance; 0 is padding, 1 an unseen token."""
    vocab = {"<pad>": 0, "<unk>": 1}
    for g in graphs:
        for t in g.tokens():
            vocab.setdefault(t, len(vocab))
    return vocab


def train_one(variant: str, seed: int, vocab: dict, graphs: tuple[list, list, list], *, width: int, epochs: int,
              max_minutes, progress: bool) -> dict:
    """Train one model (masked or unmasked) on ``graphs`` = (train, dev, test); score its best state on test."""
    import shutil
    import tempfile

    from ..checkpoint import load_model_dir, load_state_into
    from ..train import TrainConfig, train as run_training

    train, dev, test = graphs
    torch.manual_seed(seed)
    model = GraphAttentionModel(len(vocab), len(LABELS), width=width)
    task = GraphTask(model, vocab, train, dev, use_graph=variant == "masked")
    tc = TrainConfig(epochs=epochs, batch_tokens=800, lr=2e-3, warmup=50, schedule="cosine", patience=8,
                     seed=seed, checkpoint_every=0)
    workdir = Path(tempfile.mkdtemp(prefix="attnlab-graph-"))
    t0 = time.monotonic()
    try:
        result = run_training(model, task, tc, workdir, max_minutes=max_minutes, progress=progress,
                              log=(lambda m: log(f"  [{variant} seed {seed}] {m}")) if progress else (lambda m: None))
        files = load_model_dir(workdir)
        load_state_into(model, files.state, workdir / "model.safetensors")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    acc = task.accuracy(model, test)
    log(f"{NAME}: {variant:8s} seed {seed}: test accuracy {fmt_pct(acc)}% ({result.status}, {result.epoch} epochs)")
    return {"variant": variant, "seed": seed, "test": acc, "dev": result.best_score,
            "epochs": result.epoch, "status": result.status, "train_seconds": round(time.monotonic() - t0, 2),
            "dev_history": [h["dev"] for h in result.history]}


def learning_curves(runs: list[dict], summary: dict, base: float) -> dict:
    """Dev accuracy per epoch, mean over seeds with the min..max band (up to the shortest run)."""
    lines = []
    for v in VARIANTS:
        hs = [r["dev_history"] for r in runs if r["variant"] == v]
        length = min(len(h) for h in hs)
        xs = list(range(1, length + 1))
        lines.append(series(f"{v} (test {100 * summary[v]['mean']:.1f}%)", xs,
                            [100 * sum(h[i] for h in hs) / len(hs) for i in range(length)],
                            low=[100 * min(h[i] for h in hs) for i in range(length)],
                            high=[100 * max(h[i] for h in hs) for i in range(length)]))
    return plot_spec("node labels (red neighbours: 0 / 1 / 2+), dev accuracy while training", "epoch",
                     "dev accuracy (%)", lines, ylim=(0, 102),
                     hline={"y": 100 * base, "label": f"majority label ({100 * base:.0f}%)"})


def run(settings: Settings) -> dict:
    started = time.monotonic()
    torch.set_num_threads(settings.threads)
    n_train = int(settings.get("train_graphs", 3000, 300))
    n_dev = int(settings.get("dev_graphs", 300, 60))
    n_test = int(settings.get("test_graphs", 1000, 100))
    epochs = int(settings.get("epochs", 15, 3))
    seeds = int(settings.get("seeds", 3, 1))
    width = int(settings.get("width", 64, 32))
    max_minutes = settings.get("max_minutes", 1.0, 0.1)
    train, dev, test = (make_graphs(n, settings.seed * 7919 + i) for i, n in enumerate((n_train, n_dev, n_test)))
    graphs = (train, dev, test)
    vocab = token_vocab(train)
    runs = [train_one(v, settings.seed + s, vocab, graphs, width=width, epochs=epochs, max_minutes=max_minutes,
                      progress=settings.progress)
            for v in VARIANTS for s in range(seeds)]
    summary = {v: mean_and_spread([r["test"] for r in runs if r["variant"] == v]) for v in VARIANTS}
    base = majority_baseline(test)
    per_token = token_baseline(train, test)
    panel = learning_curves(runs, summary, base)
    info = machine()
    seconds = time.monotonic() - started
    rows = [[v, f"{100 * summary[v]['mean']:.2f} ± {100 * summary[v]['std']:.2f}", f"{100 * summary[v]['min']:.2f}",
             f"{100 * summary[v]['max']:.2f}", summary[v]["n"]] for v in VARIANTS]
    md = f"""### graph: attention masked by the adjacency

![graph node labeling]({NAME}.png)

{n_train:,} training graphs (10-20 nodes: a random tree plus 1-4 extra edges, node ids shuffled), {n_dev} dev,
{n_test:,} test graphs; label = number of red neighbours (0 / 1 / 2+), input token = colour and degree.
Same model (2 layers, width {width}, 4 heads, no positions) with and without `masks.from_graph` as the
attend mask. Majority label: {100 * base:.1f}% of test nodes; the most frequent label per input token (colour and
degree, i.e. everything a node knows about itself): {100 * per_token:.1f}%.

{markdown_table(["attention", "test accuracy % (mean ± std)", "min", "max", "seeds"], rows)}

{footer(settings, seconds, info, f"{settings.seed}..{settings.seed + seeds - 1}")}
"""
    result = {
        "experiment": NAME, "variants": list(VARIANTS), "train_graphs": n_train, "dev_graphs": n_dev,
        "test_graphs": n_test, "width": width, "epochs": epochs, "majority_baseline": base, "token_baseline": per_token, "runs": runs,
        "summary": summary, "machine": info, "seconds": seconds, "command": settings.command,
    }
    return finish(settings, NAME, result, [panel], md)
