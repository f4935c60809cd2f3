"""The NumPy oracle: loops == matrix form == closed forms worked out by hand."""

import math

import numpy as np
import pytest

from attnlab import reference as R

NORMALIZERS = ("softmax", "relu", "sigmoid")


def random_problem(seed=0, n=5, d_in=6, d_k=3, d_v=4):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, d_in))
    return a, rng.normal(size=(d_k, d_in)), rng.normal(size=(d_k, d_in)), rng.normal(size=(d_v, d_in))


def test_two_orthogonal_inputs_by_hand():
    # a^1 = e1, a^2 = e2 and identity weights: q = k = v = a, alpha = I / sqrt(2).
    a = np.eye(2)
    s = R.self_attention_steps(a, np.eye(2), np.eye(2), np.eye(2))
    c = 1 / math.sqrt(2)
    np.testing.assert_allclose(s.alpha, [[c, 0.0], [0.0, c]], atol=1e-15)
    w_self = math.exp(c) / (math.exp(c) + 1.0)
    np.testing.assert_allclose(s.alpha_prime, [[w_self, 1 - w_self], [1 - w_self, w_self]], atol=1e-15)
    # b^1 = w_self * v^1 + (1 - w_self) * v^2
    np.testing.assert_allclose(s.b, [[w_self, 1 - w_self], [1 - w_self, w_self]], atol=1e-15)


def test_relu_and_sigmoid_follow_their_formulas():
    a, Wq, Wk, Wv = random_problem(1)
    n = a.shape[0]
    relu = R.self_attention_steps(a, Wq, Wk, Wv, normalize="relu")
    np.testing.assert_allclose(relu.alpha_prime, np.maximum(relu.alpha, 0) / n, atol=1e-15)
    sig = R.self_attention_steps(a, Wq, Wk, Wv, normalize="sigmoid")
    np.testing.assert_allclose(sig.alpha_prime, 1 / (1 + np.exp(-(sig.alpha - np.log(n)))), atol=1e-15)
    soft = R.self_attention_steps(a, Wq, Wk, Wv)
    np.testing.assert_allclose(soft.alpha_prime.sum(axis=1), np.ones(n), atol=1e-14)


@pytest.mark.parametrize("normalize", NORMALIZERS)
def test_loops_equal_matrix_form(normalize):
    a, Wq, Wk, Wv = random_problem(2)
    s = R.self_attention_steps(a, Wq, Wk, Wv, normalize=normalize)
    m = R.self_attention_matrix(a.T, Wq, Wk, Wv, normalize=normalize)
    # column convention: Q = [q^1 ... q^N], A[j, i] = alpha_{i,j}, O = [b^1 ... b^N]
    np.testing.assert_allclose(m.Q, s.q.T, atol=1e-12)
    np.testing.assert_allclose(m.K, s.k.T, atol=1e-12)
    np.testing.assert_allclose(m.V, s.v.T, atol=1e-12)
    np.testing.assert_allclose(m.A, s.alpha.T, atol=1e-12)
    np.testing.assert_allclose(m.A_prime, s.alpha_prime.T, atol=1e-12)
    np.testing.assert_allclose(m.O, s.b.T, atol=1e-10)


def test_loops_equal_vectorized_numpy_with_mask():
    a, Wq, Wk, Wv = random_problem(3, n=6)
    rng = np.random.default_rng(3)
    mask = rng.random((6, 6)) < 0.5
    mask[2] = False  # query 3 may attend to nothing
    s = R.self_attention_steps(a, Wq, Wk, Wv, attend_mask=mask)
    q, k, v = a @ Wq.T, a @ Wk.T, a @ Wv.T
    scores = q @ k.T / math.sqrt(Wq.shape[0])
    e = np.where(mask, np.exp(scores - scores.max(axis=1, keepdims=True)), 0.0)
    denom = e.sum(axis=1, keepdims=True)
    weights = np.divide(e, denom, out=np.zeros_like(e), where=denom > 0)
    np.testing.assert_allclose(s.alpha, scores, atol=1e-12)
    np.testing.assert_allclose(s.alpha_prime, weights, atol=1e-12)
    np.testing.assert_allclose(s.b, weights @ v, atol=1e-10)
    np.testing.assert_array_equal(s.b[2], np.zeros(v.shape[1]))
    assert s.alpha_prime[~mask].max() == 0.0


def test_biases_are_added_to_q_k_v():
    a, Wq, Wk, Wv = random_problem(4)
    rng = np.random.default_rng(4)
    bq, bk, bv = rng.normal(size=3), rng.normal(size=3), rng.normal(size=4)
    s = R.self_attention_steps(a, Wq, Wk, Wv, bq=bq, bk=bk, bv=bv)
    np.testing.assert_allclose(s.q, a @ Wq.T + bq, atol=1e-12)
    np.testing.assert_allclose(s.k, a @ Wk.T + bk, atol=1e-12)
    np.testing.assert_allclose(s.v, a @ Wv.T + bv, atol=1e-12)


@pytest.mark.parametrize("normalize", NORMALIZERS)
def test_multi_head_is_per_head_single_head_then_Wo(normalize):
    rng = np.random.default_rng(5)
    n, D, heads = 5, 6, 3
    d = D // heads
    a = rng.normal(size=(n, D))
    Wq, Wk, Wv, Wo = (rng.normal(size=(D, D)) for _ in range(4))
    mh = R.multi_head_steps(a, Wq, Wk, Wv, Wo, heads, normalize=normalize)
    assert len(mh.heads) == heads
    for h in range(heads):
        rows = slice(h * d, (h + 1) * d)
        single = R.self_attention_steps(a, Wq[rows], Wk[rows], Wv[rows], normalize=normalize)
        np.testing.assert_allclose(mh.heads[h].q, single.q, atol=1e-12)
        np.testing.assert_allclose(mh.heads[h].b, single.b, atol=1e-10)
        np.testing.assert_allclose(mh.concat[:, rows], single.b, atol=1e-10)
    np.testing.assert_allclose(mh.b, mh.concat @ Wo.T, atol=1e-10)


def test_one_head_with_identity_Wo_is_single_head():
    a, Wq, Wk, Wv = random_problem(6, d_k=4, d_v=4, d_in=4)
    mh = R.multi_head_steps(a, Wq, Wk, Wv, np.eye(4), heads=1)
    s = R.self_attention_steps(a, Wq, Wk, Wv)
    np.testing.assert_allclose(mh.b, s.b, atol=1e-12)


def test_head_projection_selects_rows():
    P = R.head_projection(1, 3, 6)
    x = np.arange(6.0)
    np.testing.assert_array_equal(P @ x, [2.0, 3.0])


def test_bad_input():
    a, Wq, Wk, Wv = random_problem(7)
    with pytest.raises(ValueError, match=r"a must be .*\(N, D_in\).*\(6,\)"):
        R.self_attention_steps(a[0], Wq, Wk, Wv)
    with pytest.raises(ValueError, match=r"Wq must have shape \(d, D_in=6\), got \(3, 5\)"):
        R.self_attention_steps(a, Wq[:, :5], Wk, Wv)
    with pytest.raises(ValueError, match=r"same size d_k: \(2, 6\) vs \(3, 6\)"):
        R.self_attention_steps(a, Wq[:2], Wk, Wv)
    with pytest.raises(ValueError, match=r"normalize='bogus' is unknown"):
        R.self_attention_steps(a, Wq, Wk, Wv, normalize="bogus")
    with pytest.raises(ValueError, match=r"attend_mask must have shape \(N, N\) = \(5, 5\), got \(5, 4\)"):
        R.self_attention_steps(a, Wq, Wk, Wv, attend_mask=np.ones((5, 4), bool))
    with pytest.raises(ValueError, match=r"I must have shape \(D_in, N\)"):
        R.self_attention_matrix(np.ones(3), Wq, Wk, Wv)
    D = 6
    W = np.ones((D, D))
    with pytest.raises(ValueError, match=r"D = 6 must be divisible by heads = 4"):
        R.multi_head_steps(np.ones((3, D)), W, W, W, W, heads=4)
    with pytest.raises(ValueError, match=r"Wo must have shape \(D_out, D=6\), got \(6, 5\)"):
        R.multi_head_steps(np.ones((3, D)), W, W, W, np.ones((6, 5)), heads=2)
