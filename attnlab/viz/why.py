"""Why did the tagger give word t this tag? Two answers side by side, for one word and one tag
layer (UPOS, XPOS, FEATS or LEMMA, whichever heads the model has):

* **integrated gradients** (Sundararajan, Taly & Yan 2017, "Axiomatic attribution for deep
  networks"): the predicted tag's logit z_c (the head's score before the softmax) is split over
  the input words. Each word's input x^i is its feature vector, the whole encoder input of that
  word: [lowercased-word embedding; shape embedding; character-CNN vector] (``attnlab.features``).
  Along the straight path from a baseline x' to x,

      IG_i = sum_d (x^i_d - x'^i_d) * integral_0^1 dz_c(x' + a (x - x')) / dx^i_d da

  and the integral is a quadrature over at most ``steps`` points: Gauss-Legendre panels split
  where completeness fails most (``adaptive_panels``, the default), fixed Gauss-Legendre
  points, or the midpoint Riemann sum. Completeness: sum_i IG_i = z_c(x) - z_c(x') up to the
  quadrature's error, which is reported (``gap``, and ``relative_gap`` = |gap| / |z_c(x) -
  z_c(x')|). The encoder's ReLUs make the gradient jump along the path, so the gap falls only
  about like 1/steps (on the tests' tiny tagger, 256 points: a median of 1e-3 of the
  difference); with a smooth activation it falls below 1e-5.

  The baseline is the zero vector for every word. That is what the model itself uses for
  "nothing here": the padding rows of the word and shape embeddings are zero (``padding_idx``)
  and a zero character vector is one on which no filter fires (the character CNN ends in a
  ReLU). Positions are kept (rotary positions act inside attention), so the baseline is "a
  sentence of n empty words". A word whose input equals the baseline gets exactly 0.

* **attention rollout** (Abnar & Zuidema 2020, "Quantifying attention flow in transformers"):
  per layer l the heads' weights are averaged, A_l = mean_h alpha'_l,h (n, n); the residual
  connection is added as the identity and rows renormalized, Â_l = (A_l + I) / rowsum; the
  layers multiply, R = Â_L ... Â_2 Â_1. Row t of R says how much of word t's last-layer vector
  traces back to each input word; every row sums to 1.

Shape letters: m path points (steps), n words, D_in feature width, C classes of a layer.
Words are numbered from 0 here (from 1 on the command line and the page).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, cast

import numpy as np
import torch

RULES = ("adaptive", "gauss-legendre", "riemann")
PANEL_POINTS = 2  # Gauss-Legendre points per panel of the adaptive rule
FIRST = 0.5  # share of the adaptive rule's points spent on equal panels, before any split
ROUND = 4  # each round of the adaptive rule splits at most 1 / ROUND of the panels
DEFAULT_STEPS = 256
MAX_STEPS = 1024
BASELINE = "zeros at every position (the padding embedding of the word and shape parts; no character filter firing)"
SCORE = "logit"  # what is attributed: the predicted class's score before the softmax
TOKENS_PER_PASS = 8192  # path points x words of one forward pass


@dataclass
class Why:
    """One word's tag explained: attributions over the input words (IG) and rollout (n,) each.

    ``score``, ``baseline_score``: the logit z_c at the input and at the baseline; ``difference``
    = score - baseline_score; ``gap`` = sum(attributions) - difference; ``share`` = each
    attribution over the sum of their absolute values (signed; |share| sums to 1). ``rollout``
    is None for a model without attention (``no_rollout`` says why)."""

    tokens: list[str]
    word: int
    layer: str  # "UPOS", "XPOS", "FEATS", "LEMMA"
    tag: str
    probability: float
    score: float
    baseline_score: float
    attributions: np.ndarray  # (n,)
    rollout: np.ndarray | None  # (n,)
    steps: int
    rule: str
    no_rollout: str | None = None
    note: str | None = None

    @property
    def difference(self) -> float:
        return self.score - self.baseline_score

    @property
    def gap(self) -> float:
        return float(self.attributions.sum()) - self.difference

    @property
    def relative_gap(self) -> float:
        return abs(self.gap) / max(abs(self.difference), 1e-12)

    @property
    def share(self) -> np.ndarray:
        return self.attributions / max(float(np.abs(self.attributions).sum()), 1e-12)


# -- the two methods, on plain tensors ----------------------------------------------------------

def quadrature(steps: int, rule: str = "gauss-legendre") -> tuple[np.ndarray, np.ndarray]:
    """Points a in (0, 1) and weights (summing to 1) of a rule for integral_0^1 f(a) da:
    Gauss-Legendre, or the midpoint Riemann sum ("riemann")."""
    if rule not in RULES or rule == "adaptive":
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(r for r in RULES if r != 'adaptive')}")
    check_steps(steps)
    if rule == "riemann":
        return (np.arange(steps) + 0.5) / steps, np.full(steps, 1.0 / steps)
    nodes, weights = np.polynomial.legendre.leggauss(steps)  # on [-1, 1]
    return (nodes + 1) / 2, weights / 2


def check_steps(steps: int, rule: str = "adaptive") -> None:
    """ValueError in one line for a rule or a number of steps ``integrated_gradients`` cannot use."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    least = 2 * PANEL_POINTS if rule == "adaptive" else 1
    if isinstance(steps, bool) or not isinstance(steps, int) or not least <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be a whole number from {least} to {MAX_STEPS}, got {steps!r}")


def integrated_gradients(
    scores: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    baseline: torch.Tensor,
    *,
    targets: int = 1,
    steps: int = DEFAULT_STEPS,
    rule: str = "adaptive",
    per_pass: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Integrated gradients of ``targets`` scalar functions at ``x`` (n, D_in) from ``baseline``.

    ``scores`` maps a batch of inputs (m, n, D_in) to (m, targets) scores, each row depending
    on its own input only. Path points go through it in batched passes (at most ``per_pass``
    points at a time, default all), and every target's gradient comes from the same forward
    pass. ``rule``: "gauss-legendre" or "riemann" (midpoint) with ``steps`` points, or
    "adaptive" (``adaptive_panels``: at most ``steps`` points, placed where the completeness
    of each piece of the path fails most). Returns (attributions (targets, n), scores at x
    (targets,), scores at the baseline (targets,), gradient evaluations used), in float64;
    attributions are summed over D_in.
    """
    if x.shape != baseline.shape or x.dim() != 2:
        raise ValueError(f"x and baseline must both be (n, D_in), got {tuple(x.shape)} and {tuple(baseline.shape)}")
    check_steps(steps, rule)
    x, baseline = x.detach(), baseline.detach().to(x.dtype)
    delta = x - baseline  # (n, D_in)
    per_pass = per_pass or steps

    def path(alphas: np.ndarray) -> torch.Tensor:  # (m,) -> (m, n, D_in)
        return baseline + torch.tensor(alphas, dtype=x.dtype)[:, None, None] * delta

    def contributions(alphas: np.ndarray) -> np.ndarray:
        """(m, targets, n): dz_t/dx^i . (x^i - x'^i) at each point of the path."""
        out = np.zeros((len(alphas), targets, x.shape[0]))
        with torch.enable_grad():
            for first in range(0, len(alphas), per_pass):
                p = path(alphas[first:first + per_pass]).requires_grad_(True)
                z = scores(p)  # (m, targets)
                for t in range(targets):
                    (g,) = torch.autograd.grad(z[:, t].sum(), p, retain_graph=t + 1 < targets)
                    out[first:first + len(p), t] = (g.double() * delta.double()).sum(-1).numpy()
        return out

    def values(alphas: np.ndarray) -> np.ndarray:
        """(m, targets): the scores at points of the path."""
        with torch.no_grad():
            return np.concatenate([scores(path(alphas[f:f + per_pass])).double().numpy()
                                   for f in range(0, len(alphas), per_pass)])

    ends = values(np.array([1.0, 0.0]))
    if rule == "adaptive":
        attributions, used = adaptive_panels(contributions, values, steps, ends[0] - ends[1])
    else:
        points, weights = quadrature(steps, rule)
        attributions, used = np.einsum("m,mtn->tn", weights, contributions(points)), steps
    return attributions, ends[0], ends[1], used


def adaptive_panels(contributions, values, steps: int, difference: np.ndarray) -> tuple[np.ndarray, int]:
    """The integral of ``contributions`` (a -> (m, targets, n)) over a in [0, 1] with at most
    ``steps`` points: Gauss-Legendre with ``PANEL_POINTS`` points on each of a set of panels.

    A network with ReLUs has a gradient that jumps wherever a unit switches on or off, and
    near a zero baseline it changes fast; a fixed rule then converges slowly (its error falls
    like 1/steps, not faster). Completeness holds on every piece of the path, so each panel
    [a, b] knows its own error: the sum of its attributions minus z(b) - z(a) (``values``).
    Half the points go to equal panels; the rest split, round by round, the panels whose
    error relative to the whole ``difference`` is largest."""
    nodes, weights = np.polynomial.legendre.leggauss(PANEL_POINTS)
    nodes, weights = (nodes + 1) / 2, weights / 2
    scale = np.maximum(np.abs(difference), 1e-12)  # (targets,)

    def integrate(panels: list[tuple[float, float]]) -> list[np.ndarray]:
        """Each panel's attributions (targets, n), all panels' points in one batch."""
        alphas = np.concatenate([a + (b - a) * nodes for a, b in panels])
        c = contributions(alphas).reshape(len(panels), PANEL_POINTS, *difference.shape, -1)
        return [(b - a) * np.einsum("k,ktn->tn", weights, c[p]) for p, (a, b) in enumerate(panels)]

    first = max(1, int(steps * FIRST) // PANEL_POINTS)
    edges = np.linspace(0.0, 1.0, first + 1)
    z = dict(zip(edges.tolist(), values(edges)))
    panels = list(zip(edges[:-1].tolist(), edges[1:].tolist()))
    found = dict(zip(panels, integrate(panels)))
    used = first * PANEL_POINTS

    def error(panel: tuple[float, float]) -> float:
        a, b = panel
        return float(np.max(np.abs(found[panel].sum(-1) - (z[b] - z[a])) / scale))

    while used + 2 * PANEL_POINTS <= steps:
        count = min((steps - used) // (2 * PANEL_POINTS), max(1, len(found) // ROUND))
        worst = sorted(found, key=error, reverse=True)[:count]
        middles = [(a + b) / 2 for a, b in worst]
        z.update(zip(middles, values(np.array(middles))))
        halves = [half for (a, b), m in zip(worst, middles) for half in ((a, m), (m, b))]
        for panel in worst:
            del found[panel]
        found.update(zip(halves, integrate(halves)))
        used += len(halves) * PANEL_POINTS
    return cast(np.ndarray, sum(found.values())), used


def rollout(weights) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020) of weights (L, H, n, n) -> (n, n): heads
    averaged, identity added for the residual, rows renormalized, layers multiplied (the first
    layer on the right). Row t: how much word t's top vector draws on each input word."""
    w = np.asarray(weights.detach().cpu() if hasattr(weights, "detach") else weights, dtype=np.float64)
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise ValueError(f"weights must have shape (L, H, n, n), got {tuple(w.shape)}")
    n = w.shape[2]
    out = np.eye(n)
    for layer in w:
        a = layer.mean(axis=0) + np.eye(n)
        out = (a / a.sum(axis=1, keepdims=True)) @ out
    return out


# -- a tagger's word and layer ------------------------------------------------------------------

def word_inputs(model, tokens: Sequence[str]) -> torch.Tensor:
    """(n, D_in): each word's feature vector, what the tagger's encoder is given (eval mode)."""
    with torch.no_grad():
        return model.model.features(model.features.encode([list(tokens)]))[0].detach()


def layer_names(model) -> list[str]:
    """The tag layers the model predicts, as the page and the command line name them."""
    return [name.upper() for name in model.model.layers]


def check_word_layer(model, tokens: Sequence[str], word: int, layer: str) -> str:
    """The layer's name in the model ("upos"...) after checking ``word`` (from 0) and ``layer``
    ("UPOS"...); ValueError in one line (numbers from 1) otherwise."""
    if getattr(model, "no_tags", None):
        raise ValueError(model.no_tags)
    n = len(tokens)
    if not 0 <= word < n:
        raise ValueError(f"word {word + 1} does not exist: the sentence has {n} words (1..{n})")
    names = layer_names(model)
    if layer.upper() not in names:
        raise ValueError(f"layer {layer!r} is not predicted by {model.name}; it has {', '.join(names)}")
    return layer.lower()


def _predicted(model, tokens: Sequence[str], word: int, name: str, logits: dict[str, torch.Tensor]):
    """(class id, label, probability, note) of the model's choice for ``word`` on layer ``name``,
    from the layers' logits (n, C) at the input: as the tagger chooses (PAD and UNK never,
    FEATS among the strings seen with the word's UPOS, LEMMA the best edit script that fits)."""
    from ..tasks.lemma_edits import apply_edit
    from ..tasks.tagging import Emissions, feats_allowed, masked_scores

    allowed = feats_allowed(model.vocabs) if "feats" in logits else None
    masked = masked_scores(Emissions(**{k: v[None].clone() for k, v in logits.items()}), allowed)
    scores = masked[name][0, word]  # (C,)
    probs = torch.softmax(scores, dim=-1)
    itos = model.vocabs.layer(name).itos
    if name != "lemma":
        c = int(scores.argmax())
        return c, itos[c], float(probs[c]), None
    form = tokens[word]
    for c in scores.argsort(descending=True).tolist():
        lemma = apply_edit(form, itos[c])
        if lemma is not None:
            upos = model.vocabs.upos.itos[int(masked["upos"][0, word].argmax())]
            known = model.vocabs.lemma_table.get(f"{form}\t{upos}")
            note = (f"the tagger takes the lemma of {form}/{upos} from its training table ({known[0]}); "
                    "this explains the edit-script head's own choice") if known else None
            return c, lemma, float(probs[c]), note
    raise ValueError(f"no edit script of the LEMMA head fits {form!r}")


def _score_function(model, word: int, heads: list[torch.nn.Module], classes: list[int]):
    """(m, n, D_in) -> (m, targets): each target's logit of ``word`` through the encoder."""
    encoder = model.model.encoder

    def scores(path: torch.Tensor) -> torch.Tensor:
        m, n, _ = path.shape
        h = encoder(path, torch.full((m,), n, dtype=torch.long))[:, word]  # (m, D)
        return torch.stack([head(h)[:, c] for head, c in zip(heads, classes)], dim=-1)

    return scores


def explain_word(
    model,
    tokens: Sequence[str],
    word: int,
    layers: Sequence[str] | str = "UPOS",
    *,
    steps: int = DEFAULT_STEPS,
    rule: str = "adaptive",
    inputs: torch.Tensor | None = None,
) -> list[Why] | Why:
    """Why word ``word`` (from 0) of ``tokens`` got its tag on ``layers`` (a name, or several:
    one forward pass serves them all), for a tagger's ``attnlab.viz.model.Explainable``.
    ``inputs`` (n, D_in): explain these word vectors instead of the sentence's own (the tag and
    its probability are then those of ``inputs``). Returns one ``Why`` per layer (or one)."""
    single = isinstance(layers, str)
    tokens = list(tokens)
    wanted = [layers] if isinstance(layers, str) else list(layers)
    names = [check_word_layer(model, tokens, word, layer) for layer in wanted]
    check_steps(steps, rule)  # bad steps or rule: say so before any work
    with model._lock:
        x = word_inputs(model, tokens) if inputs is None else inputs.detach().to(torch.float32)
        if x.shape[0] != len(tokens):
            raise ValueError(f"inputs have {x.shape[0]} rows for {len(tokens)} words")
        with torch.no_grad():
            h = model.model.encoder(x[None], torch.tensor([len(tokens)]))[0]  # (n, D)
            logits = {k: getattr(model.model, f"{k}_head")(h) for k in model.model.layers}
        chosen = [_predicted(model, tokens, word, name, logits) for name in names]
        heads = [getattr(model.model, f"{name}_head") for name in names]
        score = _score_function(model, word, heads, [c[0] for c in chosen])
        per_pass = max(1, TOKENS_PER_PASS // len(tokens))
        attributions, at_x, at_base, used = integrated_gradients(
            score, x, torch.zeros_like(x), targets=len(names), steps=steps, rule=rule, per_pass=per_pass)
    rolled, no_rollout = None, model.no_attention
    if no_rollout is None:
        rolled = rollout(model.attention(tokens)[2])[word]
    out = [Why(tokens, word, layer.upper(), label, p, float(at_x[k]), float(at_base[k]), attributions[k], rolled,
               used, rule, no_rollout, note)
           for k, (layer, (_, label, p, note)) in enumerate(zip(names, chosen))]
    return out[0] if single else out


PAGE_WORDS = 32  # up to this many words the page's answers take DEFAULT_STEPS gradient evaluations


def page_steps(n: int) -> int:
    """Gradient evaluations of the page's answer for a sentence of ``n`` words: DEFAULT_STEPS up
    to PAGE_WORDS words, then fewer (their cost grows with n), at least 32: 64 at 128 words,
    which the page then shows in about a second; the completeness gap it shows says what the
    fewer points cost."""
    return DEFAULT_STEPS if n <= PAGE_WORDS else max(32, DEFAULT_STEPS * PAGE_WORDS // n // 4 * 4)


def why_body(model, tokens: list[str], word: int, layer: str, *, steps: int | None = None,
             rule: str = "adaptive") -> dict:
    """The answer of ``/api/why``: ``explain_word`` as JSON-ready numbers (6 decimals), with
    ``page_steps`` gradient evaluations unless ``steps`` is given."""
    steps = page_steps(len(tokens)) if steps is None else steps
    return to_json(cast(Why, explain_word(model, tokens, word, layer, steps=steps, rule=rule)))


def to_json(w: Why) -> dict:
    from .payload import rounded, table

    return {"tokens": w.tokens, "word": w.word, "layer": w.layer, "tag": w.tag, "probability": rounded(w.probability),
            "score_name": SCORE, "score": rounded(w.score), "baseline_score": rounded(w.baseline_score),
            "difference": rounded(w.difference), "attributions": table(w.attributions), "share": table(w.share),
            "rollout": None if w.rollout is None else table(w.rollout), "no_rollout": w.no_rollout,
            "sum": rounded(w.attributions.sum()), "gap": rounded(w.gap), "relative_gap": float(f"{w.relative_gap:.3g}"),
            "steps": w.steps, "rule": w.rule, "baseline": BASELINE, "note": w.note}


def render_why(w: Why) -> str:
    """The table ``attnlab explain --why`` prints: every word's IG attribution, share and rollout
    weight, then the tag, its probability, the score difference and the completeness gap."""
    t = w.word
    width = max(4, *(len(tok) for tok in w.tokens))
    lines = [f'Why is word {t + 1} "{w.tokens[t]}" tagged {w.layer} {w.tag} (P = {w.probability:.4f})?',
             f"  integrated gradients (Sundararajan et al. 2017) of its {SCORE} over each word's input vector,",
             f"  {w.steps} gradient evaluations ({w.rule}); baseline: {BASELINE}.",
             f"  Rollout: attention rollout (Abnar & Zuidema 2020), row {t + 1}.",
             ""]
    if w.note:
        lines[-1:-1] = [f"  note: {w.note}"]
    lines.append(f"  {'i':>3}  {'word':<{width}}  {'IG':>10}  {'share':>7}  {'rollout':>7}")
    for i, tok in enumerate(w.tokens):
        roll = f"{w.rollout[i]:7.4f}" if w.rollout is not None else f"{'-':>7}"
        mark = "*" if i == t else " "
        lines.append(f"{mark} {i + 1:>3}  {tok:<{width}}  {w.attributions[i]:10.4f}  {w.share[i]:7.3f}  {roll}")
    lines += ["",
              f"  {SCORE} at the input {w.score:.4f} - at the baseline {w.baseline_score:.4f} = {w.difference:.4f}",
              f"  sum of attributions {w.attributions.sum():.4f}; completeness gap {w.gap:.2e} "
              f"({w.relative_gap:.2e} of the difference)"]
    if w.no_rollout:
        lines.append(f"  no rollout: {w.no_rollout}")
    return "\n".join(lines)




