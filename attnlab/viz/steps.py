"""The seed's steps as text, with numbers.

Two texts in the seed's notation (q^i = W^q a^i, alpha_(i,j) = q^i . k^j / sqrt(d),
alpha'_(i,j) = normalize_j(alpha_(i,j)), b^i = sum_j alpha'_(i,j) v^j):

* ``render_walkthrough``: the worked example of `attnlab steps`: four small rounded input
  vectors, one output b^1 at a time, then the matrix form and two heads;
* ``render_steps``: one head of a trained model on a sentence (`attnlab explain --steps`),
  every query token at once.

Both take their numbers from ``attnlab.reference`` (NumPy, float64) and only format them.
"""

from __future__ import annotations

import textwrap
from typing import Sequence

import numpy as np

from .. import reference as R

RULE = "=" * 66


def _vec(x, width: int = 8, sep: str = " ") -> str:
    return "[" + sep.join(f"{v:{width}.4f}" for v in np.atleast_1d(x)) + "]"


# -- the worked example (`attnlab steps`) ------------------------------------------------

def example(seed: int = 0, n: int = 4, d_in: int = 4, d: int = 2):
    """Small, rounded inputs a (n, d_in) and weights W^q, W^k, W^v (d, d_in), so every number fits on a line."""
    rng = np.random.default_rng(seed)
    a = np.round(rng.uniform(-1, 1, size=(n, d_in)), 1) + 0.0  # + 0.0 turns -0.0 into 0.0
    Wq, Wk, Wv = (np.round(rng.uniform(-1, 1, size=(d, d_in)), 1) + 0.0 for _ in range(3))
    return a, Wq, Wk, Wv


def multi_head_example(seed: int = 0, d_model: int = 4):
    """W^q, W^k, W^v, W^O (d_model, d_model) of the two-head part of the walk-through."""
    rng = np.random.default_rng(seed + 1)
    return tuple(np.round(rng.uniform(-1, 1, size=(d_model, d_model)), 1) + 0.0 for _ in range(4))


def _wvec(x) -> str:
    """A vector as the walk-through prints it."""
    return _vec(x, width=7, sep=", ")


def _wmat(m, indent: str = "    ") -> str:
    return "\n".join(indent + _wvec(row) for row in np.atleast_2d(m))


def render_walkthrough(seed: int = 0, normalize: str = "softmax") -> str:
    """The text of `attnlab steps`: sections 2.4-2.7 of the seed on ``example(seed)``."""
    a, Wq, Wk, Wv = example(seed)
    W = (Wq, Wk, Wv)
    loops = R.self_attention_steps(a, *W, normalize=normalize)
    sections = (
        _one_output_at_a_time(a, W, loops, normalize),
        _matrix_form(a, W, loops.b, normalize),
        _two_heads(a, multi_head_example(seed, a.shape[1]), normalize),
    )
    return "\n".join(line for section in sections for line in section)


def _one_output_at_a_time(a, W, s, normalize: str) -> list[str]:
    """Sections 2.4-2.5: q, k, v of every input, then alpha, alpha' and b^1 of the first query."""
    Wq, Wk, Wv = W
    n, d = a.shape[0], Wq.shape[0]
    out = ["Self-attention, one output at a time (the seed, sections 2.4-2.5)", RULE,
           f"Inputs: {n} vectors a^1..a^{n} of size {a.shape[1]} (columns in the seed; printed as rows)."]
    out += [f"  a^{i + 1} = {_wvec(a[i])}" for i in range(n)]
    out.append(f"Learned matrices, each ({d} x {a.shape[1]}):")
    out += [f"  {name} =\n{_wmat(m)}" for name, m in (("W^q", Wq), ("W^k", Wk), ("W^v", Wv))]
    out += ["", "Step 1. q^i = W^q a^i,  k^i = W^k a^i,  v^i = W^v a^i"]
    out += [f"  q^{i + 1} = {_wvec(s.q[i])}   k^{i + 1} = {_wvec(s.k[i])}   v^{i + 1} = {_wvec(s.v[i])}"
            for i in range(n)]
    out += ["", f"Step 2. alpha_(1,i) = q^1 . k^i / sqrt(d),  d = {d}"]
    out += [f"  alpha_(1,{j + 1}) = {_wvec(s.q[0])} . {_wvec(s.k[j])} / {np.sqrt(d):.4f} = {s.alpha[0, j]:8.4f}"
            for j in range(n)]
    out += ["", f"Step 3. alpha'_(1,i) = {normalize}_i(alpha_(1,i))",
            "  " + "  ".join(f"alpha'_(1,{j + 1}) = {s.alpha_prime[0, j]:.4f}" for j in range(n)),
            f"  (sum = {s.alpha_prime[0].sum():.4f})"]
    terms = " + ".join(f"{s.alpha_prime[0, j]:.4f}*v^{j + 1}" for j in range(n))
    out += ["", "Step 4. b^1 = sum_i alpha'_(1,i) v^i", f"  b^1 = {terms}", f"      = {_wvec(s.b[0])}",
            "Every b^i is computed the same way, independently (in parallel):"]
    out += [f"  b^{i + 1} = {_wvec(s.b[i])}" for i in range(n)]
    return out + [""]


def _matrix_form(a, W: tuple[np.ndarray, np.ndarray, np.ndarray], b, normalize: str) -> list[str]:
    """Section 2.6: Q, K, V, A, A' and O, checked against the b^i of the loops."""
    n, d = a.shape[0], W[0].shape[0]
    m = R.self_attention_matrix(a.T, *W, normalize=normalize)
    return [
        "Matrix form (section 2.6): I holds the inputs as columns", RULE,
        f"  Q = W^q I  ({d} x {n}) =\n{_wmat(m.Q)}",
        f"  K = W^k I  ({d} x {n}) =\n{_wmat(m.K)}",
        f"  V = W^v I  ({d} x {n}) =\n{_wmat(m.V)}",
        f"  A = K^T Q / sqrt(d)  ({n} x {n}; column i holds alpha_(i,.)) =\n{_wmat(m.A)}",
        f"  A' = {normalize} of each column of A =\n{_wmat(m.A_prime)}",
        f"  O = V A'  ({d} x {n}; column i is b^i) =\n{_wmat(m.O)}",
        f"  max |O^T - b| = {np.abs(m.O.T - b).max():.2e}  (the loops and the matrix form agree)",
        "",
    ]


def _two_heads(a, weights, normalize: str, heads: int = 2) -> list[str]:
    """Section 2.7: b^1 of each head, concatenated and multiplied by W^O."""
    Wq, Wk, Wv, Wo = weights
    D = a.shape[1]
    mh = R.multi_head_steps(a, Wq, Wk, Wv, Wo, heads, normalize=normalize)
    out = [f"Multi-head self-attention with {heads} heads (section 2.7), W^q, W^k, W^v, W^O each ({D} x {D})",
           RULE, f"  q^1 = W^q a^1 = {_wvec(mh.q[0])}"]
    for h, hs in enumerate(mh.heads, start=1):
        out += [f"  head {h}: q^(1,{h}) = W^(q,{h}) q^1 = {_wvec(hs.q[0])}",
                "          alpha'_(1,.) = " + _wvec(hs.alpha_prime[0]),
                f"          b^(1,{h}) = {_wvec(hs.b[0])}"]
    return out + [f"  concat [b^(1,1); b^(1,2)] = {_wvec(mh.concat[0])}", f"  b^1 = W^O concat = {_wvec(mh.b[0])}"]


# -- one head of a trained model (`attnlab explain --steps`) -----------------------------

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
    additions: Sequence[dict] | None = None,
) -> str:
    """Text of one head's computation: the seed's formula, then what the model adds (``additions``,
    from ``AttentionModel.additions``), then the numbers of every token. ``steps`` is an
    ``attnlab.viz.heads.HeadSteps`` (or a bare ``attnlab.reference.Steps``: the seed's numbers
    only); rows = tokens; ``layer`` and ``head`` are numbered from 0."""
    n, d = steps.q.shape
    if n != len(tokens):
        raise ValueError(f"steps cover {n} tokens, the sentence has {len(tokens)}")
    L, h = layer + 1, head + 1
    a = getattr(steps, "a", None)
    size = f"d = {d}" + (f", D = {a.shape[1]}" if a is not None else "")
    out = [f'Layer {L}, head {h} on "{" ".join(tokens)}"  ({size}, {normalize})', RULE,
           "The seed's formula:",
           "  q^i = W^q a^i,  k^i = W^k a^i,  v^i = W^v a^i",
           "  alpha_(i,j) = q^i . k^j / sqrt(d)",
           f"  alpha'_(i,j) = {normalize}_j(alpha_(i,j))",
           "  b^i = sum_j alpha'_(i,j) v^j"]
    if additions:
        out.append("What this model adds, in the order it applies them:")
        for number, add in enumerate(additions, start=1):
            out.append(f"  {number}. {add['name']}: {add['formula']}")
            out += textwrap.wrap(add["text"], width=94, initial_indent="     ", subsequent_indent="     ")
    elif rotary:
        out.append("q^i and k^i are turned by token i's position (rotary positions).")
    out.append("")
    if a is not None:
        out += _inputs(tokens, steps, L, tags)
    out += _projections(tokens, steps, h, tags)
    out += ["", f"Step 2. alpha_(i,j) = q^i . k^j / sqrt(d),  sqrt({d}) = {np.sqrt(d):.4f}"]
    out += _table(steps.alpha, tokens)
    out += _products(tokens, steps)
    out += ["", f"Step 3. alpha'_(i,j) = {normalize}_j(alpha_(i,j))   (row i: how much token i attends to each token j)"]
    out += _weights(tokens, steps.alpha_prime)
    out += ["", f"Step 4. b^i = sum_j alpha'_(i,j) v^j   (head {h}'s output; the heads are then concatenated and",
            "        multiplied by W^O)"]
    out += [f"  b^{i + 1} = {_vec(steps.b[i])}" for i in range(n)]
    return "\n".join(out)


def _wrapped(x, indent: str, per_line: int = 8) -> list[str]:
    """A long vector as lines of ``per_line`` numbers."""
    x = np.atleast_1d(x)
    return [indent + " ".join(f"{v:8.4f}" for v in x[k:k + per_line]) for k in range(0, len(x), per_line)]


PRINTED_WEIGHTS = 256  # W^(q,h) and the others are printed up to this many numbers each


def _inputs(tokens: Sequence[str], steps, L: int, tags: Sequence[str] | None) -> list[str]:
    """Step 0: a^i of every token (wrapped, 8 numbers a line)."""
    D = steps.a.shape[1]
    out = [f"Step 0. a^i: token i's vector entering layer {L}, after the layer's norm (D = {D} numbers each)"]
    for i, tok in enumerate(tokens):
        tag = f" ({tags[i]})" if tags is not None else ""
        out += [f"  a^{i + 1} = {tok}{tag}:"] + _wrapped(steps.a[i], "    ")
    return out + [""]


def _projections(tokens: Sequence[str], steps, h: int, tags: Sequence[str] | None) -> list[str]:
    a = getattr(steps, "a", None)
    if a is None:  # the seed's numbers only
        out = [f"Step 1. q^i = W^(q,{h}) a^i,  k^i = W^(k,{h}) a^i,  v^i = W^(v,{h}) a^i"]
        for i, tok in enumerate(tokens):
            tag = f" ({tags[i]})" if tags is not None else ""
            out += [f"  a^{i + 1} = {tok}{tag}", f"    q^{i + 1} = {_vec(steps.q[i])}",
                    f"    k^{i + 1} = {_vec(steps.k[i])}", f"    v^{i + 1} = {_vec(steps.v[i])}"]
        return out
    d, D = steps.Wq.shape
    biased = steps.bq is not None
    plus = (lambda name: f" + b^({name},{h})") if biased else (lambda name: "")
    rotated = steps.theta is not None
    out = [f"Step 1. q^i = W^(q,{h}) a^i{plus('q')},  k^i = W^(k,{h}) a^i{plus('k')},  v^i = W^(v,{h}) a^i{plus('v')}"
           + ("; then q^i and k^i are turned by the rotary positions" if rotated else "")]
    for name in "qkv":
        W = getattr(steps, "W" + name)
        if W.size <= PRINTED_WEIGHTS:
            out += [f"  W^({name},{h}) ({d} x {D}) ="] + [line for row in W for line in _wrapped(row, "    ", per_line=16)]
        else:
            out.append(f"  W^({name},{h}): {d} x {D} numbers (not printed; the explorer draws them)")
    if biased:
        out += [f"  b^({name},{h}) = {_vec(getattr(steps, 'b' + name))}" for name in "qkv"]
    if rotated:
        out.append("  theta_m = " + _vec(steps.theta) + "   (angle of pair m per position)")
    for i, tok in enumerate(tokens):
        tag = f" ({tags[i]})" if tags is not None else ""
        out.append(f"  i={i + 1} {tok}{tag}")
        if rotated:
            out += [f"    W^(q,{h}) a^{i + 1}{plus('q')} = {_vec(steps.q_projected[i])}   (before the turn)",
                    f"    q^{i + 1} = {_vec(steps.q[i])}   (turned by {i} * theta)",
                    f"    W^(k,{h}) a^{i + 1}{plus('k')} = {_vec(steps.k_projected[i])}   (before the turn)",
                    f"    k^{i + 1} = {_vec(steps.k[i])}   (turned by {i} * theta)"]
        else:
            out += [f"    q^{i + 1} = {_vec(steps.q[i])}", f"    k^{i + 1} = {_vec(steps.k[i])}"]
        out.append(f"    v^{i + 1} = {_vec(steps.v[i])}")
    return out


def _products(tokens: Sequence[str], steps) -> list[str]:
    """q^i o k^j entry by entry for each query's most attended key: they sum to q^i . k^j."""
    d = steps.q.shape[1]
    out = [f"  q^i o k^j entry by entry, for each query i and the key j it attends to most "
           f"(they sum to q^i . k^j; / sqrt({d}) = alpha_(i,j)):"]
    for i in range(len(tokens)):
        j = int(np.argmax(steps.alpha_prime[i]))
        product = steps.q[i] * steps.k[j]
        out += [f"  i={i + 1} j={j + 1}: sum = {product.sum():.4f},  / {np.sqrt(d):.4f} = {product.sum() / np.sqrt(d):.4f}"]
        out += _wrapped(product, "    ")
    return out


def _weights(tokens: Sequence[str], alpha_prime: np.ndarray) -> list[str]:
    """The table of alpha'_(i,j), its row sums, and the key each query attends to most."""
    out = _table(alpha_prime, tokens)
    out.append("  row sums: " + " ".join(f"{s:.4f}" for s in alpha_prime.sum(axis=1)))
    for i, tok in enumerate(tokens):
        j = int(np.argmax(alpha_prime[i]))
        out.append(f"  {tok!r} (i={i + 1}) attends most to {tokens[j]!r} (j={j + 1}): "
                   f"alpha'_({i + 1},{j + 1}) = {alpha_prime[i, j]:.4f}")
    return out
