"""What the explorer's page is given: the answers of ``/api/attention`` and ``/api/steps`` as
JSON-ready dicts (numbers rounded to 6 decimals), built from an ``Explainable``. The server
sends them; ``attnlab.viz.show`` embeds them in a self-contained page."""

from __future__ import annotations

import numpy as np


def rounded(x: float) -> float:
    return round(float(x), 6)


def table(x) -> list:
    """An array as nested lists of numbers rounded to 6 decimals."""
    return np.round(np.asarray(x, dtype=np.float64), 6).tolist()


def attention_body(model, tokens: list[str]) -> dict:
    """Tags (every layer the model predicts, UPOS first, in "annotations"), and the weights
    [L][H][n][n] of every layer and head; a model without attention: no weights and why; a
    model without tags (a checkpoint's word pieces): no tags and why ("no_tags")."""
    annotations = [{**a, "probabilities": [rounded(p) for p in a["probabilities"]]} for a in model.annotate(tokens)]
    first = annotations[0] if annotations else {"tags": [], "probabilities": []}
    body = {"tokens": tokens, "tags": first["tags"], "probabilities": first["probabilities"],
            "annotations": annotations, "layers": model.layers, "heads": model.heads, "normalize": model.normalize,
            "no_tags": getattr(model, "no_tags", None)}
    if model.no_attention is not None:
        return {**body, "weights": [], "no_attention": model.no_attention}
    tags, probs, weights = model.attention(tokens)
    return {**body, "tags": tags, "probabilities": [rounded(p) for p in probs], "weights": table(weights)}


def steps_body(model, tokens: list[str], layer: int, head: int) -> dict:
    """The seed's intermediates of head ``head`` of layer ``layer`` (from 0) on ``tokens``:
    q, k, v, b ([n][d], row i = token i), alpha and alpha' ([n][n]) and the normalizer of each query."""
    s = model.steps(tokens, layer, head)
    formula, values = model.normalizers(s.alpha)
    return {"tokens": tokens, "layer": layer, "head": head, "d": int(s.q.shape[1]), "normalize": model.normalize,
            "q": table(s.q), "k": table(s.k), "v": table(s.v), "alpha": table(s.alpha),
            "alpha_prime": table(s.alpha_prime), "b": table(s.b),
            "normalizer": table(values), "normalizer_formula": formula}
