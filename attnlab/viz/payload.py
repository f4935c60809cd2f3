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


def steps_body(model, tokens: list[str], layer: int, head: int, *, weights: bool = True) -> dict:
    """Head ``head`` of layer ``layer`` (from 0) on ``tokens``, as the model computes it: the seed's
    q, k, v, b ([n][d], row i = token i; q and k as attention uses them), alpha and alpha' ([n][n])
    and the normalizer of each query; then what the model adds ("additions", named, in the seed's
    plain notation): a ([n][D], the layer's input after its norm), the head's rows of W^q, W^k,
    W^v ("W": {"q", "k", "v"}, [d][D] each), their biases ("bias", or null), and with rotary
    positions q and k before the turn ("q_projected", "k_projected") and the angles "theta"
    ([d/2]; else all three null). Without ``weights``, "W" is null (a saved page carries the
    matrices of the head it opens on only: they are most of an answer's size)."""
    s = model.steps(tokens, layer, head)
    formula, values = model.normalizers(s.alpha)
    rotary = s.theta is not None
    return {"tokens": tokens, "layer": layer, "head": head, "d": int(s.q.shape[1]), "normalize": model.normalize,
            "q": table(s.q), "k": table(s.k), "v": table(s.v), "alpha": table(s.alpha),
            "alpha_prime": table(s.alpha_prime), "b": table(s.b),
            "normalizer": table(values), "normalizer_formula": formula,
            "additions": model.additions(layer, head), "D": int(s.a.shape[1]), "a": table(s.a),
            "W": {"q": table(s.Wq), "k": table(s.Wk), "v": table(s.Wv)} if weights else None,
            "bias": None if s.bq is None else {"q": table(s.bq), "k": table(s.bk), "v": table(s.bv)},
            "q_projected": table(s.q_projected) if rotary else None,
            "k_projected": table(s.k_projected) if rotary else None,
            "theta": table(s.theta) if rotary else None}
