"""varlen_attention == scaled_dot_product_attention run on every sequence alone (values and gradients)."""

import itertools

import pytest
import torch

import attnlab
from attnlab import kernels, masks
from attnlab.attention.varlen import VarlenPlan, varlen_attention, varlen_attention_qkv
from attnlab.packing import cu_seqlens_from_lengths
from attnlab.positions import RotaryPositions

LENGTHS = [5, 0, 17, 3, 3, 9, 30, 1, 16, 16, 0]


def randn(*shape, seed=0, dtype=torch.float64, grad=False):
    t = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return t.requires_grad_(grad)


def pattern(n, causal, window):
    mask = masks.causal(n) if causal else None
    if window is not None:
        mask = masks.window(n, window) if mask is None else mask & masks.window(n, window)
    return mask


def per_sequence(q, k, v, cu, causal=False, window=None, normalize="softmax"):
    """The oracle: attnlab.scaled_dot_product_attention on each sequence alone -> (T, H, dv)."""
    outs = []
    for s, e in zip(cu[:-1].tolist(), cu[1:].tolist()):
        if e == s:
            continue
        qs, ks, vs = (t[s:e].transpose(0, 1).unsqueeze(0) for t in (q, k, v))  # (1, H, n, d)
        out = attnlab.scaled_dot_product_attention(
            qs, ks, vs, attend_mask=pattern(e - s, causal, window), normalize=normalize
        )
        outs.append(out[0].transpose(0, 1))
    return torch.cat(outs)


def grads(out, inputs, seed=1):
    g = randn(*out.shape, seed=seed, dtype=out.dtype)
    return torch.autograd.grad(out, inputs, g)


needs_kernels = pytest.mark.skipif(not kernels.available(), reason=f"native kernels: {kernels.unavailable_reason()}")

# Paths: the native kernel, or buckets whose choice the width steers: 8 -> everything in
# one padded bucket, 256 -> a few, 10**6 -> nearly one bucket per distinct length.
PATHS = [("buckets", w) for w in (8, 256, 10**6)]
SOFTMAX = [(False, None, "softmax"), (True, None, "softmax"), (False, 2, "softmax"), (True, 4, "softmax")]
OTHERS = [(c, w, n) for n in ("relu", "sigmoid") for c, w in ((False, None), (True, 3))]


CASES = [(*path, *case, 8) for path in PATHS for case in SOFTMAX + OTHERS]
# d = 12 runs the kernel's generic loops, d = 16 its SIMD tiles
CASES += [pytest.param("native", 256, *case, d, marks=needs_kernels) for case in SOFTMAX for d in (12, 16)]


@pytest.mark.parametrize("impl, width, causal, window, normalize, d", CASES)
def test_equals_per_sequence_attention_forward_and_backward(impl, width, causal, window, normalize, d):
    cu = cu_seqlens_from_lengths(LENGTHS)
    t, h = int(cu[-1]), 3
    q, k, v = (randn(t, h, d, seed=i, grad=True) for i in range(3))
    plan = VarlenPlan(cu, width=width)
    out = varlen_attention(q, k, v, cu, causal=causal, window=window, normalize=normalize, plan=plan, impl=impl)
    ref = per_sequence(q, k, v, cu, causal, window, normalize)
    assert out.shape == (t, h, d)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)
    for a, b in zip(grads(out, (q, k, v)), grads(ref, (q, k, v))):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("impl", [pytest.param("native", marks=needs_kernels), "buckets"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("d", [32, 64, 12])
def test_float32_within_1e_5_and_stacked_qkv_is_the_same(impl, causal, d):
    cu = cu_seqlens_from_lengths([40, 7, 7, 23, 1, 64, 301, 1100])  # long ones: query pieces, key chunks
    t, h = int(cu[-1]), 2
    qkv = randn(t, 3, h, d, seed=5, dtype=torch.float32, grad=True)
    out = varlen_attention_qkv(qkv, cu, causal=causal, impl=impl)
    q, k, v = qkv.unbind(1)
    ref = per_sequence(q, k, v, cu, causal)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(varlen_attention(q, k, v, cu, causal=causal, impl=impl), out, atol=1e-6, rtol=0)
    (ga,), (gb,) = grads(out, (qkv,)), grads(ref, (qkv,))
    torch.testing.assert_close(ga, gb, atol=1e-5, rtol=0)


def test_stacked_qkv_takes_the_options_of_varlen_attention_and_no_others():
    cu = cu_seqlens_from_lengths([5, 3])
    qkv = randn(8, 3, 2, 4, seed=1)
    out = varlen_attention_qkv(qkv, cu, window=1, normalize="relu", impl="buckets")
    ref = varlen_attention(*qkv.unbind(1), cu, window=1, normalize="relu", impl="buckets")
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    with pytest.raises(TypeError, match="casual"):
        varlen_attention_qkv(qkv, cu, casual=True)


def test_plan_covers_every_token_once_and_identity_layouts_copy_nothing():
    plan = VarlenPlan(cu_seqlens_from_lengths(LENGTHS), width=256)
    assert sorted(s for b in plan.buckets for s in b.seqs) == [i for i, n in enumerate(LENGTHS) if n]
    assert not plan.identity and plan.padded_total >= plan.total
    tokens = torch.arange(plan.total)
    assert torch.equal(plan.scatter(plan.gather(tokens)), tokens)
    for lengths in ([300], [6, 6, 6], [2, 0, 5]):
        cu = cu_seqlens_from_lengths(lengths)
        plan = VarlenPlan(cu, width=10**6)
        assert plan.identity and plan.padded_total == plan.total
        q = randn(plan.total, 2, 4, seed=3)
        out = varlen_attention(q, q, q, cu, plan=plan, impl="buckets")
        torch.testing.assert_close(out, per_sequence(q, q, q, cu), atol=1e-10, rtol=0)


@pytest.mark.parametrize("normalize", attnlab.NORMALIZERS)
def test_return_weights_per_sequence(normalize):
    lengths = [4, 0, 6]
    cu = cu_seqlens_from_lengths(lengths)
    q, k, v = (randn(10, 2, 4, seed=i) for i in range(3))
    out, weights = varlen_attention(q, k, v, cu, causal=True, normalize=normalize, return_weights=True)
    torch.testing.assert_close(out, per_sequence(q, k, v, cu, True, None, normalize), atol=1e-10, rtol=0)
    assert [tuple(w.shape) for w in weights] == [(2, 4, 4), (2, 0, 0), (2, 6, 6)]
    for (s, e), w in zip(itertools.pairwise(cu.tolist()), weights):
        if e == s:
            continue
        _, ref = attnlab.scaled_dot_product_attention(
            *(t[s:e].transpose(0, 1)[None] for t in (q, k, v)),
            attend_mask=masks.causal(e - s), normalize=normalize, return_weights=True,
        )
        torch.testing.assert_close(w, ref[0], atol=1e-12, rtol=0)
        assert float(w.triu(1).abs().max()) == 0.0  # causal: nothing above the diagonal


@pytest.mark.parametrize("impl", [pytest.param("native", marks=needs_kernels), "buckets"])
def test_zero_length_sequences_yield_nothing_and_no_nan(impl):
    cu = torch.tensor([0, 0, 0])
    q = randn(0, 2, 16, grad=True)
    out = varlen_attention(q, q, q, cu, impl=impl)
    assert out.shape == (0, 2, 16)
    cu = torch.tensor([0, 0, 1, 1])
    q = randn(1, 2, 16, grad=True)
    out = varlen_attention(q, q, q, cu, causal=True, window=0, impl=impl)
    (g,) = grads(out, (q,))
    torch.testing.assert_close(out, q.detach(), atol=1e-12, rtol=0)  # one token attends to itself
    assert torch.isfinite(g).all()


@needs_kernels
def test_native_attention_dropout_is_repeatable_and_unbiased():
    cu = cu_seqlens_from_lengths([30, 50])
    qkv = randn(80, 3, 2, 16, seed=4, grad=True)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        outs.append(varlen_attention_qkv(qkv, cu, dropout=0.3, impl="native"))
    torch.testing.assert_close(outs[0], outs[1], atol=0, rtol=0)  # the seed comes from torch's generator
    plain = varlen_attention_qkv(qkv, cu, impl="native")
    assert float((outs[0] - plain).detach().abs().max()) > 1e-3
    # gradient check of the dropped-out attention: the same seed gives the same mask
    torch.manual_seed(5)
    (g,) = grads(varlen_attention_qkv(qkv, cu, dropout=0.3, impl="native"), (qkv,))
    eps, i = 1e-6, (7, 1, 0, 3)
    bumped = qkv.detach().clone()
    bumped[i] += eps
    gout = randn(80, 2, 16, seed=1)
    values = []
    for x in (bumped, qkv.detach()):
        torch.manual_seed(5)
        values.append(float((varlen_attention_qkv(x, cu, dropout=0.3, impl="native") * gout).sum()))
    assert abs((values[0] - values[1]) / eps - float(g[i])) < 1e-5
    # averaged over many masks, dropout leaves the output unbiased
    with torch.no_grad():
        plain = varlen_attention_qkv(qkv, cu, impl="native")
        mean = torch.stack([varlen_attention_qkv(qkv, cu, dropout=0.3, impl="native") for _ in range(200)]).mean(0)
    assert float((mean - plain).abs().mean()) < 0.1 * float(plain.abs().mean())


@needs_kernels
def test_native_refuses_what_it_cannot_do():
    q = randn(6, 2, 4)
    with pytest.raises(ValueError, match="only does softmax"):
        varlen_attention(q, q, q, torch.tensor([0, 6]), normalize="relu", impl="native")
    with pytest.raises(ValueError, match="dtype torch.int64"):
        x = torch.ones(6, 2, 4, dtype=torch.long)
        varlen_attention(x, x, x, torch.tensor([0, 6]), impl="native")


def test_bad_inputs_raise_with_values():
    q = randn(6, 2, 4)
    cu = torch.tensor([0, 2, 6])
    with pytest.raises(ValueError, match=r"number of heads H: q \(6, 2, 4\), k \(6, 3, 4\)"):
        varlen_attention(q, randn(6, 3, 4), q, cu)
    with pytest.raises(ValueError, match=r"same head width d: q \(6, 2, 4\), k \(6, 2, 5\)"):
        varlen_attention(q, randn(6, 2, 5), q, cu)
    with pytest.raises(ValueError, match="number of tokens T"):
        varlen_attention(q, randn(5, 2, 4), q, cu)
    with pytest.raises(ValueError, match=r"\(T, H, d\)"):
        varlen_attention(q[0], q, q, cu)
    with pytest.raises(ValueError, match=r"end at T = 6"):
        varlen_attention(q, q, q, torch.tensor([0, 2, 5]))
    with pytest.raises(ValueError, match="start at 0"):
        varlen_attention(q, q, q, torch.tensor([1, 6]))
    with pytest.raises(ValueError, match="must not decrease"):
        varlen_attention(q, q, q, torch.tensor([0, 4, 3, 6]))
    with pytest.raises(ValueError, match="window"):
        varlen_attention(q, q, q, cu, window=-1)
    with pytest.raises(ValueError, match="different cu_seqlens"):
        varlen_attention(q, q, q, cu, plan=VarlenPlan(torch.tensor([0, 3, 6])))
    with pytest.raises(ValueError, match="normalize"):
        varlen_attention(q, q, q, cu, normalize="max")


def test_rotary_turns_pairs_and_scores_depend_on_offsets_only():
    rot = RotaryPositions(4, base=100.0)
    x = randn(3, 4)
    pos = torch.tensor([0, 1, 5])
    y = rot.rotate(x, pos)
    theta = torch.tensor([1.0, 100.0 ** -0.5], dtype=torch.float64)
    for t in range(3):
        for i in range(2):
            a = pos[t] * theta[i]
            c, s = torch.cos(a), torch.sin(a)
            x0, x1 = x[t, 2 * i], x[t, 2 * i + 1]
            torch.testing.assert_close(y[t, 2 * i: 2 * i + 2], torch.stack([c * x0 - s * x1, s * x0 + c * x1]))
    z = x.clone()
    rot.rotate_(z, pos)
    torch.testing.assert_close(z, y, atol=0, rtol=0)
    q, k = randn(1, 4, seed=1).expand(6, 4), randn(1, 4, seed=2).expand(6, 4)
    p = torch.arange(6)
    qr, kr = rot.rotate(q, p), rot.rotate(k, p)
    torch.testing.assert_close(qr[1] @ kr[0], qr[5] @ kr[4])  # same offset, same score
    assert abs(float(qr[2] @ kr[0] - qr[1] @ kr[0])) > 1e-3


def test_mixed_dtypes_are_a_value_error_naming_them():
    q = randn(6, 2, 4)
    with pytest.raises(ValueError, match=r"q and k must have one dtype, got q torch.float64 and k torch.float32"):
        varlen_attention(q, q.float(), q, torch.tensor([0, 6]))


NON_FINITE_PATHS = [pytest.param("native", marks=needs_kernels), "buckets"]


@pytest.mark.parametrize("impl", NON_FINITE_PATHS)
@pytest.mark.parametrize("causal,window", [(True, None), (False, 1), (True, 2)])
@pytest.mark.parametrize("tensor,value", [("k", float("inf")), ("k", float("nan")), ("v", float("inf")), ("v", float("nan"))])
def test_masked_out_keys_never_reach_the_output(impl, causal, window, tensor, value):
    """The padded paths' rule: a key outside a query's range does not reach it; inside, the
    same arithmetic as attnlab.scaled_dot_product_attention on the sequence alone."""
    cu = cu_seqlens_from_lengths([6, 7, 3])
    q, k, v = (randn(16, 2, 8, seed=s) for s in (20, 21, 22))
    clean = varlen_attention(q, k, v, cu, causal=causal, window=window, impl=impl)
    bad = {"k": k.clone(), "v": v.clone()}
    bad[tensor][6 + 4, :, 3] = value  # token 4 of the second sequence
    out = varlen_attention(q, bad["k"], bad["v"], cu, causal=causal, window=window, impl=impl)
    expected = per_sequence(q, bad["k"], bad["v"], cu, causal, window)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0, equal_nan=True)
    allowed = pattern(7, causal, window)[:, 4]  # the second sequence's queries that may see token 4
    keep = torch.cat([torch.ones(6, dtype=torch.bool), ~allowed, torch.ones(3, dtype=torch.bool)])
    torch.testing.assert_close(out[keep], clean[keep], atol=1e-12, rtol=0)
    if value != value:
        assert bool((out[6:13][allowed] if tensor == "k" else out[6:13][allowed][..., 3]).isnan().all())


@pytest.mark.parametrize("impl", NON_FINITE_PATHS)
@pytest.mark.parametrize("causal", [False, True])
def test_a_nan_query_gives_a_nan_row(impl, causal):
    cu = cu_seqlens_from_lengths([4, 4])
    qkv = randn(8, 3, 2, 8, seed=23)
    clean = varlen_attention_qkv(qkv, cu, causal=causal, impl=impl)
    qkv[5, 0, 1, 2] = float("nan")  # the query of token 5, head 1
    out = varlen_attention_qkv(qkv, cu, causal=causal, impl=impl)
    assert bool(out[5, 1].isnan().all())
    out[5, 1] = clean[5, 1]
    torch.testing.assert_close(out, clean, atol=1e-12, rtol=0)
