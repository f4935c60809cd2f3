"""`attnlab explain --steps`: one head of a trained model, in the seed's notation.

For the tokens a^1..a^n of a sentence (the head's layer input, one vector per token):
q^i, k^i, v^i, the scaled scores alpha_(i,j) = q^i . k^j / sqrt(d), the weights
alpha'_(i,j) = normalize_j(alpha_(i,j)) and the outputs b^i = sum_j alpha'_(i,j) v^j.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _vec(x) -> str:
    return "[" + " ".join(f"{v:8.4f}" for v in np.atleast_1d(x)) + "]"


def _table(m: np.ndarray, tokens: Sequence[str], indent: str = "  ") -> list[str]:
    """Rows i (queries) by columns j (keys), both numbered from 1, with the token beside each row."""
    width = max(len(t) for t in tokens)
    head = indent + " " * (width + 8) + "".join(f"{'j=' + str(j + 1):>9}" for j in range(m.shape[1]))
    lines = [head]
    for i, row in enumerate(m):
        lines.append(f"{indent}i={i + 1:<3} {tokens[i]:<{width}}   " + "".join(f"{v:9.4f}" for v in row))
    return lines


def render_steps(
    tokens: Sequence[str],
    steps,
    *,
    layer: int,
    head: int,
    normalize: str = "softmax",
    tags: Sequence[str] | None = None,
    rotary: bool = False,
) -> str:
    """Text of one head's computation; ``steps`` is an ``attnlab.reference.Steps`` (rows = tokens),
    ``layer`` and ``head`` are numbered from 0."""
    n, d = steps.q.shape
    if n != len(tokens):
        raise ValueError(f"steps cover {n} tokens, the sentence has {len(tokens)}")
    L, h = layer + 1, head + 1
    out: list[str] = []
    w = out.append
    w(f'Layer {L}, head {h} on "{" ".join(tokens)}"  (d = {d}, {normalize})')
    w("=" * 66)
    w(f"a^i is token i's vector entering layer {L} (after the layer norm); W^(q,{h}), W^(k,{h}), W^(v,{h})")
    w(f"are head {h}'s rows of the layer's W^q, W^k, W^v (with their biases)" + (
        ";\nq^i and k^i are then turned by token i's position (rotary positions)." if rotary else "."))
    w("")
    w(f"Step 1. q^i = W^(q,{h}) a^i,  k^i = W^(k,{h}) a^i,  v^i = W^(v,{h}) a^i")
    for i, tok in enumerate(tokens):
        tag = f" ({tags[i]})" if tags is not None else ""
        w(f"  a^{i + 1} = {tok}{tag}")
        w(f"    q^{i + 1} = {_vec(steps.q[i])}")
        w(f"    k^{i + 1} = {_vec(steps.k[i])}")
        w(f"    v^{i + 1} = {_vec(steps.v[i])}")
    w("")
    w(f"Step 2. alpha_(i,j) = q^i . k^j / sqrt(d),  sqrt({d}) = {np.sqrt(d):.4f}")
    out.extend(_table(steps.alpha, tokens))
    w("")
    w(f"Step 3. alpha'_(i,j) = {normalize}_j(alpha_(i,j))   (row i: how much token i attends to each token j)")
    out.extend(_table(steps.alpha_prime, tokens))
    sums = steps.alpha_prime.sum(axis=1)
    w("  row sums: " + " ".join(f"{s:.4f}" for s in sums))
    for i, tok in enumerate(tokens):
        j = int(np.argmax(steps.alpha_prime[i]))
        w(f"  {tok!r} (i={i + 1}) attends most to {tokens[j]!r} (j={j + 1}): alpha'_({i + 1},{j + 1}) = {steps.alpha_prime[i, j]:.4f}")
    w("")
    w("Step 4. b^i = sum_j alpha'_(i,j) v^j   (the head's output; the heads are then concatenated and")
    w("        multiplied by W^O)")
    for i in range(n):
        w(f"  b^{i + 1} = {_vec(steps.b[i])}")
    return "\n".join(out)
