"""`attnlab steps`: the seed's walk-through, with numbers, on four input vectors."""

from __future__ import annotations

import numpy as np

from . import reference as R


def example(seed: int = 0, n: int = 4, d_in: int = 4, d: int = 2):
    """Small, rounded inputs and weights so every number fits on a line."""
    rng = np.random.default_rng(seed)
    a = np.round(rng.uniform(-1, 1, size=(n, d_in)), 1) + 0.0  # + 0.0 turns -0.0 into 0.0
    Wq, Wk, Wv = (np.round(rng.uniform(-1, 1, size=(d, d_in)), 1) + 0.0 for _ in range(3))
    return a, Wq, Wk, Wv


def _vec(x) -> str:
    return "[" + ", ".join(f"{v:7.4f}" for v in np.atleast_1d(x)) + "]"


def _mat(m, indent: str = "    ") -> str:
    return "\n".join(indent + _vec(row) for row in np.atleast_2d(m))


def render(seed: int = 0, normalize: str = "softmax") -> str:
    a, Wq, Wk, Wv = example(seed)
    n, d = a.shape[0], Wq.shape[0]
    s = R.self_attention_steps(a, Wq, Wk, Wv, normalize=normalize)
    out: list[str] = []
    w = out.append
    w("Self-attention, one output at a time (the seed, sections 2.4-2.5)")
    w("=" * 66)
    w(f"Inputs: {n} vectors a^1..a^{n} of size {a.shape[1]} (columns in the seed; printed as rows).")
    for i in range(n):
        w(f"  a^{i + 1} = {_vec(a[i])}")
    w(f"Learned matrices, each ({d} x {a.shape[1]}):")
    for name, m in (("W^q", Wq), ("W^k", Wk), ("W^v", Wv)):
        w(f"  {name} =\n{_mat(m)}")
    w("")
    w("Step 1. q^i = W^q a^i,  k^i = W^k a^i,  v^i = W^v a^i")
    for i in range(n):
        w(f"  q^{i + 1} = {_vec(s.q[i])}   k^{i + 1} = {_vec(s.k[i])}   v^{i + 1} = {_vec(s.v[i])}")
    w("")
    w(f"Step 2. alpha_(1,i) = q^1 . k^i / sqrt(d),  d = {d}")
    for j in range(n):
        w(f"  alpha_(1,{j + 1}) = {_vec(s.q[0])} . {_vec(s.k[j])} / {np.sqrt(d):.4f} = {s.alpha[0, j]:8.4f}")
    w("")
    w(f"Step 3. alpha'_(1,i) = {normalize}_i(alpha_(1,i))")
    w("  " + "  ".join(f"alpha'_(1,{j + 1}) = {s.alpha_prime[0, j]:.4f}" for j in range(n)))
    w(f"  (sum = {s.alpha_prime[0].sum():.4f})")
    w("")
    w("Step 4. b^1 = sum_i alpha'_(1,i) v^i")
    terms = " + ".join(f"{s.alpha_prime[0, j]:.4f}*v^{j + 1}" for j in range(n))
    w(f"  b^1 = {terms}")
    w(f"      = {_vec(s.b[0])}")
    w("Every b^i is computed the same way, independently (in parallel):")
    for i in range(n):
        w(f"  b^{i + 1} = {_vec(s.b[i])}")
    w("")

    m = R.self_attention_matrix(a.T, Wq, Wk, Wv, normalize=normalize)
    w("Matrix form (section 2.6): I holds the inputs as columns")
    w("=" * 66)
    w(f"  Q = W^q I  ({d} x {n}) =\n{_mat(m.Q)}")
    w(f"  K = W^k I  ({d} x {n}) =\n{_mat(m.K)}")
    w(f"  V = W^v I  ({d} x {n}) =\n{_mat(m.V)}")
    w(f"  A = K^T Q / sqrt(d)  ({n} x {n}; column i holds alpha_(i,.)) =\n{_mat(m.A)}")
    w(f"  A' = {normalize} of each column of A =\n{_mat(m.A_prime)}")
    w(f"  O = V A'  ({d} x {n}; column i is b^i) =\n{_mat(m.O)}")
    w(f"  max |O^T - b| = {np.abs(m.O.T - s.b).max():.2e}  (the loops and the matrix form agree)")
    w("")

    heads = 2
    rng = np.random.default_rng(seed + 1)
    D = a.shape[1]
    Wq2, Wk2, Wv2, Wo = (np.round(rng.uniform(-1, 1, size=(D, D)), 1) + 0.0 for _ in range(4))
    mh = R.multi_head_steps(a, Wq2, Wk2, Wv2, Wo, heads, normalize=normalize)
    w(f"Multi-head self-attention with {heads} heads (section 2.7), W^q, W^k, W^v, W^O each ({D} x {D})")
    w("=" * 66)
    w(f"  q^1 = W^q a^1 = {_vec(mh.q[0])}")
    for h, hs in enumerate(mh.heads, start=1):
        w(f"  head {h}: q^(1,{h}) = W^(q,{h}) q^1 = {_vec(hs.q[0])}")
        w("          alpha'_(1,.) = " + _vec(hs.alpha_prime[0]))
        w(f"          b^(1,{h}) = {_vec(hs.b[0])}")
    w(f"  concat [b^(1,1); b^(1,2)] = {_vec(mh.concat[0])}")
    w(f"  b^1 = W^O concat = {_vec(mh.b[0])}")
    return "\n".join(out)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "steps",
        help="print the seed's self-attention walk-through with numbers",
        description=(
            "Follow the seed line by line on 4 input vectors: q, k, v, the scaled scores "
            "alpha_(1,i), the normalized weights alpha'_(1,i) and b^1; then the matrix form "
            "and multi-head attention with 2 heads. Computed by attnlab.reference (NumPy, float64)."
        ),
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the example (default 0)")
    p.add_argument("--normalize", default="softmax", choices=R.NORMALIZERS, help="how scores become weights (default softmax)")
    p.set_defaults(func=lambda args: print(render(args.seed, args.normalize)))
