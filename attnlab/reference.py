"""The seed's derivation in NumPy, step by step: the oracle the fast code is tested against.

Everything here is float64 and written with explicit loops where the seed
writes one output at a time, so each line can be read against the formulas.

Convention (the seed's): vectors are **columns**. An input a^i has D_in entries
and ``W^q`` has shape (d_k, D_in), so q^i = W^q a^i. In the matrix form the
inputs are the columns of I (D_in, N), Q = W^q I is (d_k, N), A = K^T Q is
(N_keys, N_queries) and O = V A' is (d_v, N).

Mapping to the row-major torch code: a batch there is X (N, D_in) with one
input per **row**, i.e. X = I^T. ``torch.nn.Linear(D_in, d_k, bias=False)``
stores exactly W^q as its ``weight`` and computes X W^q^T = (W^q I)^T = Q^T,
so the torch code works with Q^T, K^T, V^T, its score matrix is
Q^T K = A^T (queries on rows, keys on columns) and its output is A'^T V^T = O^T.
The weights are the same numbers; only the transposes differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NORMALIZERS = ("softmax", "relu", "sigmoid")


def check_normalize(normalize: str) -> str:
    """``normalize`` if it names one of ``NORMALIZERS``, else ValueError."""
    if normalize not in NORMALIZERS:
        raise ValueError(f"normalize={normalize!r} is unknown; choose one of {', '.join(NORMALIZERS)}")
    return normalize


def _normalize_row(scores: np.ndarray, allowed: np.ndarray, normalize: str) -> np.ndarray:
    """alpha'_{i,.} from alpha_{i,.} over the allowed keys of one query (1-D arrays)."""
    out = np.zeros_like(scores)
    n_allowed = int(allowed.sum())
    if n_allowed == 0:
        return out  # a query that may attend to nothing gets b^i = 0
    s = scores[allowed]
    if normalize == "softmax":
        e = np.exp(s - s.max())
        out[allowed] = e / e.sum()
    elif normalize == "relu":
        out[allowed] = np.maximum(s, 0.0) / n_allowed
    elif normalize == "sigmoid":
        out[allowed] = 1.0 / (1.0 + np.exp(-(s - np.log(n_allowed))))
    else:
        check_normalize(normalize)
    return out


@dataclass(frozen=True)
class Steps:
    """Every intermediate of single-head self-attention (row i belongs to a^i)."""

    q: np.ndarray  # (N, d_k): q[i] = q^i = W^q a^i
    k: np.ndarray  # (N, d_k): k[i] = k^i = W^k a^i
    v: np.ndarray  # (N, d_v): v[i] = v^i = W^v a^i
    alpha: np.ndarray  # (N, N): alpha[i, j] = alpha_{i,j} = q^i . k^j / sqrt(d_k)
    alpha_prime: np.ndarray  # (N, N): alpha'[i, j], normalized over j
    b: np.ndarray  # (N, d_v): b[i] = b^i = sum_j alpha'_{i,j} v^j


def _as_inputs(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"a must be a sequence of input vectors, shape (N, D_in); got {a.shape}")
    return a


def _check_weight(name: str, w, d_in: int) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != d_in:
        raise ValueError(f"{name} must have shape (d, D_in={d_in}), got {w.shape}")
    return w


def self_attention_steps(a, Wq, Wk, Wv, normalize: str = "softmax", attend_mask=None, bq=None, bk=None, bv=None) -> Steps:
    """The seed, literally: one output b^i at a time, one key j at a time.

    a: (N, D_in), a[i] is the input vector a^i. Wq, Wk: (d_k, D_in), Wv: (d_v, D_in).
    attend_mask: optional (N, N) booleans, [i, j] True = query i may attend to key j.
    bq, bk, bv: optional biases (q^i = W^q a^i + b_q), to compare with biased layers.
    """
    a = _as_inputs(a)
    n, d_in = a.shape
    Wq, Wk, Wv = (_check_weight(nm, w, d_in) for nm, w in (("Wq", Wq), ("Wk", Wk), ("Wv", Wv)))
    if Wq.shape[0] != Wk.shape[0]:
        raise ValueError(f"Wq and Wk must give vectors of the same size d_k: {Wq.shape} vs {Wk.shape}")
    check_normalize(normalize)
    mask = np.ones((n, n), dtype=bool) if attend_mask is None else np.asarray(attend_mask, dtype=bool)
    if mask.shape != (n, n):
        raise ValueError(f"attend_mask must have shape (N, N) = ({n}, {n}), got {mask.shape}")
    d_k, d_v = Wq.shape[0], Wv.shape[0]
    zero = np.zeros

    # q^i = W^q a^i, k^i = W^k a^i, v^i = W^v a^i  (each a column vector)
    q, k, v = zero((n, d_k)), zero((n, d_k)), zero((n, d_v))
    for i in range(n):
        q[i] = Wq @ a[i] + (0.0 if bq is None else np.asarray(bq, dtype=np.float64))
        k[i] = Wk @ a[i] + (0.0 if bk is None else np.asarray(bk, dtype=np.float64))
        v[i] = Wv @ a[i] + (0.0 if bv is None else np.asarray(bv, dtype=np.float64))

    return attend_steps(q, k, v, mask, normalize)


def attend_steps(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray, normalize: str) -> Steps:
    """From given q^i, k^j, v^j (rows) to alpha, alpha' and b, one pair (i, j) at a time.

    q: (Nq, d_k), k: (Nk, d_k), v: (Nk, d_v), mask: (Nq, Nk). In self-attention Nq = Nk = N.
    """
    n_q, d_k = q.shape
    n_k = k.shape[0]
    # alpha_{i,j} = q^i . k^j / sqrt(d)
    alpha = np.zeros((n_q, n_k))
    for i in range(n_q):
        for j in range(n_k):
            alpha[i, j] = float(np.dot(q[i], k[j])) / np.sqrt(d_k)

    # alpha'_{i,.} = normalize_j(alpha_{i,.})
    alpha_prime = np.zeros((n_q, n_k))
    for i in range(n_q):
        alpha_prime[i] = _normalize_row(alpha[i], mask[i], normalize)

    # b^i = sum_j alpha'_{i,j} v^j
    b = np.zeros((n_q, v.shape[1]))
    for i in range(n_q):
        for j in range(n_k):
            b[i] += alpha_prime[i, j] * v[j]
    return Steps(q=q, k=k, v=v, alpha=alpha, alpha_prime=alpha_prime, b=b)


@dataclass(frozen=True)
class MatrixSteps:
    """The matrix form, in the seed's column convention."""

    Q: np.ndarray  # (d_k, N) = W^q I
    K: np.ndarray  # (d_k, N) = W^k I
    V: np.ndarray  # (d_v, N) = W^v I
    A: np.ndarray  # (N keys, N queries) = K^T Q / sqrt(d_k)
    A_prime: np.ndarray  # (N keys, N queries), each column normalized over the keys
    O: np.ndarray  # (d_v, N) = V A'


def self_attention_matrix(I, Wq, Wk, Wv, normalize: str = "softmax") -> MatrixSteps:
    """Q = W^q I, K = W^k I, V = W^v I; A = K^T Q / sqrt(d); A' = normalize each column; O = V A'.

    I: (D_in, N), the inputs as columns.
    """
    I = np.asarray(I, dtype=np.float64)
    if I.ndim != 2:
        raise ValueError(f"I must have shape (D_in, N), got {I.shape}")
    d_in, n = I.shape
    Wq, Wk, Wv = (_check_weight(nm, w, d_in) for nm, w in (("Wq", Wq), ("Wk", Wk), ("Wv", Wv)))
    Q, K, V = Wq @ I, Wk @ I, Wv @ I
    A = K.T @ Q / np.sqrt(Q.shape[0])
    mask = np.ones(n, dtype=bool)
    A_prime = np.stack([_normalize_row(A[:, i], mask, normalize) for i in range(n)], axis=1)
    O = V @ A_prime
    return MatrixSteps(Q=Q, K=K, V=V, A=A, A_prime=A_prime, O=O)


@dataclass(frozen=True)
class MultiHeadSteps:
    q: np.ndarray  # (N, D): q^i = W^q a^i
    heads: tuple[Steps, ...]  # per head h: q^{i,h}, k^{i,h}, v^{i,h}, alpha, alpha', b^{i,h}
    concat: np.ndarray  # (N, D): [b^{i,1}; b^{i,2}; ...]
    b: np.ndarray  # (N, D_out): b^i = W^O concat^i


def head_projection(h: int, heads: int, d_model: int) -> np.ndarray:
    """W^{q,h}: the (d, D) matrix that takes q^i to q^{i,h}.

    The seed learns W^{q,h} on top of W^q. Since a product of two learned linear
    maps is one linear map, attnlab (like PyTorch) folds W^{q,h} W^q into the
    rows h*d ... (h+1)*d - 1 of one W^q; here W^{q,h} is therefore the block
    [0 ... I_d ... 0] that selects those rows, written out so the step exists.
    """
    d = d_model // heads
    P = np.zeros((d, d_model))
    P[:, h * d:(h + 1) * d] = np.eye(d)
    return P


def multi_head_steps(
    a, Wq, Wk, Wv, Wo, heads: int, normalize: str = "softmax", attend_mask=None,
    bq=None, bk=None, bv=None, bo=None,
) -> MultiHeadSteps:
    """The seed's multi-head self-attention.

    q^i = W^q a^i; q^{i,h} = W^{q,h} q^i (same for k, v); head h computes b^{i,h}
    from q^{.,h}, k^{.,h}, v^{.,h} only; b^i = W^O [b^{i,1}; ...; b^{i,H}].
    Wq, Wk, Wv: (D, D_in); Wo: (D_out, D). D must be divisible by ``heads``.
    """
    a = _as_inputs(a)
    n, d_in = a.shape
    Wq, Wk, Wv = (_check_weight(nm, w, d_in) for nm, w in (("Wq", Wq), ("Wk", Wk), ("Wv", Wv)))
    d_model = Wq.shape[0]
    if heads < 1 or d_model % heads:
        raise ValueError(f"D = {d_model} must be divisible by heads = {heads}")
    Wo = np.asarray(Wo, dtype=np.float64)
    if Wo.ndim != 2 or Wo.shape[1] != d_model:
        raise ValueError(f"Wo must have shape (D_out, D={d_model}), got {Wo.shape}")

    def bias(x):
        return 0.0 if x is None else np.asarray(x, dtype=np.float64)

    q = np.stack([Wq @ a[i] + bias(bq) for i in range(n)])
    k = np.stack([Wk @ a[i] + bias(bk) for i in range(n)])
    v = np.stack([Wv @ a[i] + bias(bv) for i in range(n)])
    check_normalize(normalize)
    mask = np.ones((n, n), dtype=bool) if attend_mask is None else np.asarray(attend_mask, dtype=bool)
    if mask.shape != (n, n):
        raise ValueError(f"attend_mask must have shape (N, N) = ({n}, {n}), got {mask.shape}")
    per_head = []
    for h in range(heads):
        P = head_projection(h, heads, d_model)
        qh = np.stack([P @ q[i] for i in range(n)])  # q^{i,h}
        kh = np.stack([P @ k[i] for i in range(n)])
        vh = np.stack([P @ v[i] for i in range(n)])
        per_head.append(attend_steps(qh, kh, vh, mask, normalize))
    concat = np.concatenate([s.b for s in per_head], axis=1)  # (N, D)
    b = np.stack([Wo @ concat[i] + bias(bo) for i in range(n)])
    return MultiHeadSteps(q=q, heads=tuple(per_head), concat=concat, b=b)


def rotary_angles(d: int, base: float = 10000.0) -> np.ndarray:
    """(d/2,) theta_m = base^(-2m/d), m = 0 .. d/2 - 1: how far pair m of a head's q and k turns
    per position (Su et al. 2021, RoFormer)."""
    if d % 2:
        raise ValueError(f"rotary positions need an even head width, got d = {d}")
    return base ** (-np.arange(0, d, 2, dtype=np.float64) / d)


def rotate_pairs(x, positions, theta) -> np.ndarray:
    """Rotary positions, one pair at a time: row t of x (T, d) has each pair (x_2m, x_2m+1)
    turned by the angle positions[t] * theta[m]:

        x'_2m   = x_2m cos(p theta_m) - x_2m+1 sin(p theta_m)
        x'_2m+1 = x_2m sin(p theta_m) + x_2m+1 cos(p theta_m)

    so that (R(p) q) . (R(r) k) depends on p - r only."""
    x = np.asarray(x, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2 * theta.shape[0]:
        raise ValueError(f"x must have shape (T, d = {2 * theta.shape[0]}), got {x.shape}")
    out = np.zeros_like(x)
    for t, p in enumerate(np.asarray(positions, dtype=np.float64)):
        for m, th in enumerate(theta):
            c, s = np.cos(p * th), np.sin(p * th)
            out[t, 2 * m] = x[t, 2 * m] * c - x[t, 2 * m + 1] * s
            out[t, 2 * m + 1] = x[t, 2 * m] * s + x[t, 2 * m + 1] * c
    return out
