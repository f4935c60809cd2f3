"""Functional attention: readable == fused == the NumPy oracle, masks, gradients, bad input."""

import logging
import math

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given

from attnlab import masks, reference
from attnlab.attention.functional import normalize_scores, scaled_dot_product_attention as sdpa

NORMALIZERS = ("softmax", "relu", "sigmoid")


def qkv(b=2, h=3, nq=5, nk=5, d=4, dv=None, dtype=torch.float64, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    shapes = ((b, h, nq, d), (b, h, nk, d), (b, h, nk, dv or d))
    return tuple(torch.randn(*s, generator=g, dtype=dtype).requires_grad_(requires_grad) for s in shapes)


def random_mask(shape, seed=0, p=0.6):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g) < p


def oracle(q, k, v, mask, normalize):
    """Run reference.attend_steps (loops, float64) on every (batch, head)."""
    B, H, Nq, _ = q.shape
    Nk = k.shape[2]
    full = torch.ones(B, H, Nq, Nk, dtype=torch.bool) if mask is None else mask.expand(B, H, Nq, Nk)
    out = np.zeros((B, H, Nq, v.shape[-1]))
    weights = np.zeros((B, H, Nq, Nk))
    for b in range(B):
        for h in range(H):
            s = reference.attend_steps(
                q[b, h].detach().double().numpy(), k[b, h].detach().double().numpy(),
                v[b, h].detach().double().numpy(), full[b, h].numpy(), normalize,
            )
            out[b, h], weights[b, h] = s.b, s.alpha_prime
    return torch.from_numpy(out), torch.from_numpy(weights)


# -- equal to the oracle ----------------------------------------------------------------

@pytest.mark.parametrize("normalize", NORMALIZERS)
@pytest.mark.parametrize("with_mask", [False, True])
def test_readable_equals_reference_loops(normalize, with_mask):
    q, k, v = qkv(seed=1)
    mask = random_mask((2, 3, 5, 5), seed=1) if with_mask else None
    if with_mask:
        mask[0, 1, 2] = False  # one fully masked row
    out, w = sdpa(q, k, v, attend_mask=mask, normalize=normalize, impl="readable", return_weights=True)
    ref_out, ref_w = oracle(q, k, v, mask, normalize)
    torch.testing.assert_close(out, ref_out, atol=1e-10, rtol=0)
    torch.testing.assert_close(w, ref_w, atol=1e-10, rtol=0)


def test_square_self_attention_with_rectangular_keys_and_value_width():
    q, k, v = qkv(nq=3, nk=7, dv=6, seed=2)
    out, w = sdpa(q, k, v, return_weights=True, impl="readable")
    assert out.shape == (2, 3, 3, 6) and w.shape == (2, 3, 3, 7)
    ref_out, _ = oracle(q, k, v, None, "softmax")
    torch.testing.assert_close(out, ref_out, atol=1e-10, rtol=0)
    torch.testing.assert_close(sdpa(q, k, v, impl="fused"), ref_out, atol=1e-10, rtol=0)


def test_explicit_scale():
    q, k, v = qkv(seed=3)
    out = sdpa(q, k, v, scale=0.5, impl="readable")
    expected = torch.softmax(q @ k.transpose(-1, -2) * 0.5, dim=-1) @ v
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(sdpa(q, k, v, scale=0.5, impl="fused"), expected, atol=1e-12, rtol=0)


# -- fused == readable --------------------------------------------------------------------

@given(
    b=st.integers(1, 3), h=st.integers(1, 3), nq=st.integers(1, 9), nk=st.integers(1, 9),
    d=st.integers(1, 8), mask_kind=st.sampled_from(["none", "full", "keys", "rows"]),
    seed=st.integers(0, 2**16),
)
def test_fused_equals_readable(b, h, nq, nk, d, mask_kind, seed):
    q, k, v = qkv(b, h, nq, nk, d, dtype=torch.float32, seed=seed)
    shape = {"none": None, "full": (b, h, nq, nk), "keys": (b, 1, 1, nk), "rows": (nq, nk)}[mask_kind]
    mask = None if shape is None else random_mask(shape, seed=seed)
    fused = sdpa(q, k, v, attend_mask=mask, impl="fused")
    readable = sdpa(q, k, v, attend_mask=mask, impl="readable")
    torch.testing.assert_close(fused, readable, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(fused).all()


def test_auto_takes_fused_and_equals_both():
    q, k, v = qkv(dtype=torch.float32, seed=4)
    mask = masks.causal(5)
    torch.testing.assert_close(sdpa(q, k, v, attend_mask=mask), sdpa(q, k, v, attend_mask=mask, impl="fused"), atol=0, rtol=0)


# -- properties ---------------------------------------------------------------------------

@given(
    normalize=st.sampled_from(NORMALIZERS), impl=st.sampled_from(["readable", "auto"]),
    b=st.integers(1, 2), h=st.integers(1, 3), nq=st.integers(1, 7), nk=st.integers(1, 7),
    mask_shape=st.sampled_from(["full", "2d", "keys"]), seed=st.integers(0, 2**16),
)
def test_all_true_mask_equals_no_mask(normalize, impl, b, h, nq, nk, mask_shape, seed):
    q, k, v = qkv(b, h, nq, nk, 4, seed=seed)
    shape = {"full": (b, h, nq, nk), "2d": (nq, nk), "keys": (b, 1, 1, nk)}[mask_shape]
    ones = torch.ones(shape, dtype=torch.bool)
    with_mask = sdpa(q, k, v, attend_mask=ones, normalize=normalize, impl=impl)
    without = sdpa(q, k, v, normalize=normalize, impl=impl)
    torch.testing.assert_close(with_mask, without, atol=1e-12, rtol=0)


@pytest.mark.parametrize("normalize,impl", [(n, "readable") for n in NORMALIZERS] + [("softmax", "fused"), ("relu", "auto"), ("sigmoid", "auto")])
def test_fully_masked_rows_give_zeros_and_finite_gradients(normalize, impl):
    q, k, v = qkv(seed=5, requires_grad=True)
    mask = random_mask((2, 3, 5, 5), seed=5)
    mask[:, :, 0] = False  # query 1 sees nothing in every (batch, head)
    mask[1, 2] = False  # every query of one head sees nothing
    mask[0, 0, 1] = True  # ... and one query sees everything
    out = sdpa(q, k, v, attend_mask=mask, normalize=normalize, impl=impl)
    dead = ~mask.any(dim=-1)  # (B, H, Nq)
    assert int(dead.sum()) >= 6
    assert (out[dead] == 0).all()
    assert (out[~dead].abs().sum(dim=-1) > 0).all()
    (out * torch.randn_like(out)).sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert (q.grad[dead] == 0).all()  # a dead query gets no gradient
    assert (k.grad[1, 2] == 0).all() and (v.grad[1, 2] == 0).all()  # nor do keys nobody sees
    ref_out, _ = oracle(q, k, v, mask, normalize)
    torch.testing.assert_close(out.detach(), ref_out, atol=1e-10, rtol=0)


@pytest.mark.parametrize("normalize", NORMALIZERS)
def test_readable_weights_fully_masked_rows_are_zero(normalize):
    q, k, v = qkv(seed=6)
    mask = torch.ones(5, 5, dtype=torch.bool)
    mask[3] = False
    _, w = sdpa(q, k, v, attend_mask=mask, normalize=normalize, return_weights=True)
    assert (w[:, :, 3] == 0).all()
    if normalize == "softmax":
        torch.testing.assert_close(w[:, :, [0, 1, 2, 4]].sum(-1), torch.ones(2, 3, 4, dtype=torch.float64))


@given(
    n=st.integers(1, 12), radius=st.integers(0, 5), normalize=st.sampled_from(NORMALIZERS),
    impl=st.sampled_from(["readable", "auto"]), seed=st.integers(0, 2**16),
)
def test_window_mask_equals_attention_restricted_to_the_band(n, radius, normalize, impl, seed):
    q, k, v = qkv(1, 2, n, n, 3, seed=seed)
    out = sdpa(q, k, v, attend_mask=masks.window(n, radius), normalize=normalize, impl=impl)
    for i in range(n):
        lo, hi = max(0, i - radius), min(n, i + radius + 1)
        band = sdpa(q[:, :, i:i + 1], k[:, :, lo:hi], v[:, :, lo:hi], normalize=normalize, impl="readable")
        torch.testing.assert_close(out[:, :, i:i + 1], band, atol=1e-12, rtol=0)


@given(n=st.integers(2, 9), normalize=st.sampled_from(NORMALIZERS), seed=st.integers(0, 2**16))
def test_permuting_keys_and_values_together_changes_nothing(n, normalize, seed):
    q, k, v = qkv(1, 2, 4, n, 3, seed=seed)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    a = sdpa(q, k, v, normalize=normalize)
    b = sdpa(q, k[:, :, perm], v[:, :, perm], normalize=normalize)
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_causal_outputs_do_not_see_the_future():
    q, k, v = qkv(seed=7)
    out = sdpa(q, k, v, attend_mask=masks.causal(5))
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 3:] += 5.0
    v2[:, :, 3:] -= 5.0
    out2 = sdpa(q, k2, v2, attend_mask=masks.causal(5))
    torch.testing.assert_close(out[:, :, :3], out2[:, :, :3], atol=1e-12, rtol=0)
    assert (out[:, :, 3:] - out2[:, :, 3:]).abs().max() > 1.0


def test_empty_key_set_gives_zeros_for_every_normalizer():
    q, k, v = qkv(nk=0, seed=8)
    for normalize in NORMALIZERS:
        out = sdpa(q, k, v, normalize=normalize, impl="readable")
        assert out.shape == (2, 3, 5, 4) and (out == 0).all()


def test_dropout_zeroes_or_rescales_each_weight():
    q, k, v = qkv(b=1, h=2, nq=40, nk=40, seed=9)
    _, plain = sdpa(q, k, v, return_weights=True)
    torch.manual_seed(0)
    out, dropped = sdpa(q, k, v, dropout=0.25, return_weights=True)
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], plain[kept] / 0.75, atol=1e-12, rtol=0)
    assert 0.6 < kept.double().mean() < 0.9
    torch.testing.assert_close(out, dropped @ v, atol=1e-12, rtol=0)


def test_normalize_scores_directly():
    scores = torch.tensor([[0.0, math.log(3.0), -1.0]], dtype=torch.float64)
    torch.testing.assert_close(normalize_scores(scores, None, "softmax"), torch.tensor([[0.2, 0.6, 0.2 * math.exp(-1)]], dtype=torch.float64) / (0.8 + 0.2 * math.exp(-1)))
    torch.testing.assert_close(normalize_scores(scores, None, "relu"), torch.tensor([[0.0, math.log(3.0) / 3, 0.0]], dtype=torch.float64))
    # sigmoid(s - log 3) at s = log 3 is 1/2
    assert normalize_scores(scores, None, "sigmoid")[0, 1].item() == pytest.approx(0.5, abs=1e-15)
    mask = torch.tensor([[True, False, True]])
    torch.testing.assert_close(normalize_scores(scores, mask, "relu"), torch.zeros(1, 3, dtype=torch.float64))
    assert normalize_scores(scores, mask, "sigmoid")[0, 0].item() == pytest.approx(1 / (1 + 2), abs=1e-15)


# -- gradients ----------------------------------------------------------------------------

@pytest.mark.parametrize("normalize", NORMALIZERS)
def test_gradcheck_readable_with_a_fully_masked_row(normalize):
    q, k, v = qkv(b=1, h=2, nq=4, nk=5, d=3, seed=10, requires_grad=True)
    mask = random_mask((1, 2, 4, 5), seed=10)
    mask[0, 0, 2] = False
    mask[0, 1, 0] = True
    # keep ReLU away from its kink at 0, where finite differences are meaningless
    with torch.no_grad():
        s = q @ k.transpose(-1, -2)
        assert s.abs().min() > 1e-3

    def f(q, k, v):
        return sdpa(q, k, v, attend_mask=mask, normalize=normalize, impl="readable")

    assert torch.autograd.gradcheck(f, (q, k, v), eps=1e-6, atol=1e-8)


def test_gradcheck_fused_with_a_fully_masked_row():
    q, k, v = qkv(b=1, h=2, nq=4, nk=5, d=3, seed=11, requires_grad=True)
    mask = random_mask((1, 2, 4, 5), seed=11)
    mask[0, 1, 3] = False
    assert torch.autograd.gradcheck(lambda q, k, v: sdpa(q, k, v, attend_mask=mask, impl="fused"), (q, k, v), eps=1e-6, atol=1e-8)


# -- the fused path says why it could not serve ----------------------------------------

def test_auto_logs_why_the_fused_path_was_not_used(caplog):
    q, k, v = qkv(dtype=torch.float32, seed=12)
    with caplog.at_level(logging.DEBUG, logger="attnlab.attention"):
        sdpa(q, k, v, normalize="relu")
        sdpa(q, k, v, return_weights=True)
    messages = [r.getMessage() for r in caplog.records if r.name == "attnlab.attention"]
    assert len(messages) == 2
    assert "normalize='relu'" in messages[0] and "softmax" in messages[0]
    assert "return_weights=True" in messages[1]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="attnlab.attention"):
        sdpa(q, k, v)
    assert not [r for r in caplog.records if r.name == "attnlab.attention"]


def test_forcing_fused_when_it_cannot_serve_is_an_error():
    q, k, v = qkv(seed=13)
    with pytest.raises(ValueError, match=r"impl='fused' cannot serve this call: normalize='sigmoid'"):
        sdpa(q, k, v, normalize="sigmoid", impl="fused")
    with pytest.raises(ValueError, match=r"impl='fused' cannot serve this call: return_weights=True"):
        sdpa(q, k, v, return_weights=True, impl="fused")


# -- bad input ----------------------------------------------------------------------------

def test_bad_input_names_the_argument_and_the_shapes():
    q, k, v = qkv(b=2, h=3, nq=5, nk=6, d=4, seed=14)
    with pytest.raises(ValueError, match=r"q must have rank 4 \(B, H, N, d\), got shape \(3, 5, 4\)"):
        sdpa(q[0], k, v)
    with pytest.raises(ValueError, match=r"v must have rank 4 .*\(2, 3, 6, 4, 1\)"):
        sdpa(q, k, v[..., None])
    with pytest.raises(ValueError, match=r"agree on \(B, H\): q \(2, 3, 5, 4\), k \(2, 2, 6, 4\)"):
        sdpa(q, k[:, :2], v)
    with pytest.raises(ValueError, match=r"agree on \(B, H\): .*k \(2, 3, 6, 4\), v \(1, 3, 6, 4\)"):
        sdpa(q, k, v[:1])
    with pytest.raises(ValueError, match=r"same head width d: q \(2, 3, 5, 4\), k \(2, 3, 6, 3\)"):
        sdpa(q, k[..., :3], v)
    with pytest.raises(ValueError, match=r"same number of keys Nk: k \(2, 3, 6, 4\), v \(2, 3, 5, 4\)"):
        sdpa(q, k, v[:, :, :5])
    with pytest.raises(ValueError, match=r"attend_mask of shape \(5, 5\) does not broadcast to \(B, H, Nq, Nk\) = \(2, 3, 5, 6\)"):
        sdpa(q, k, v, attend_mask=torch.ones(5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"attend_mask of shape \(1, 1, 2, 3, 5, 6\) does not broadcast"):
        sdpa(q, k, v, attend_mask=torch.ones(1, 1, 2, 3, 5, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"attend_mask must be boolean \(True = may attend\), got dtype torch.float32"):
        sdpa(q, k, v, attend_mask=torch.ones(5, 6))
    with pytest.raises(ValueError, match=r"normalize='softmin' is unknown; choose one of softmax, relu, sigmoid"):
        sdpa(q, k, v, normalize="softmin")
    with pytest.raises(ValueError, match=r"impl='flash' is unknown; choose one of auto, fused, readable"):
        sdpa(q, k, v, impl="flash")
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.0"):
        sdpa(q, k, v, dropout=1.0)


def test_mixed_dtypes_are_a_value_error_naming_them():
    q, k, v = qkv(seed=15)
    with pytest.raises(ValueError, match=r"q and k must have one dtype, got q torch.float32 and k torch.float64"):
        sdpa(q.float(), k, v)
    with pytest.raises(ValueError, match=r"q and v must have one dtype, got q torch.float64 and v torch.float32"):
        sdpa(q, k, v.float())


# -- non-finite inputs: one behaviour on every path -----------------------------------------

NAN, INF = float("nan"), float("inf")
PATHS = [("readable", "softmax"), ("fused", "softmax"), ("readable", "relu"), ("auto", "sigmoid")]


@pytest.mark.parametrize("normalize", NORMALIZERS)
@pytest.mark.parametrize("tensor,value", [("k", INF), ("k", -INF), ("k", NAN), ("v", INF), ("v", NAN), ("v", -INF)])
def test_masked_out_keys_never_reach_the_output_whatever_their_values(normalize, tensor, value):
    q, k, v = qkv(b=1, h=2, nq=4, nk=4, seed=16)
    mask = masks.causal(4)  # key 3 is masked out for queries 0, 1, 2
    clean = sdpa(q, k, v, attend_mask=mask, normalize=normalize, impl="readable")
    bad = {"k": k.clone(), "v": v.clone()}
    bad[tensor][0, :, 3, 1] = value
    outs = [sdpa(q, bad["k"], bad["v"], attend_mask=mask, normalize=normalize, impl=impl)
            for impl in (("readable", "fused") if normalize == "softmax" else ("readable",))]
    for out in outs:
        torch.testing.assert_close(out[:, :, :3], clean[:, :, :3], atol=1e-12, rtol=0)
        torch.testing.assert_close(out, outs[0], atol=1e-12, rtol=0, equal_nan=True)  # one answer
    if value != value:  # NaN where query 3 may attend: NaN (the whole row for a key)
        assert bool((outs[0][:, :, 3] if tensor == "k" else outs[0][:, :, 3, 1]).isnan().all())
    elif tensor == "v":  # inf in a value with a positive weight
        assert not bool(torch.isfinite(outs[0][:, :, 3, 1]).any())


@pytest.mark.parametrize("impl,normalize", PATHS)
@pytest.mark.parametrize("masked", [False, True])
def test_a_nan_query_gives_a_nan_row_on_every_path(impl, normalize, masked):
    q, k, v = qkv(b=1, h=1, nq=4, nk=5, seed=17)
    mask = torch.ones(4, 5, dtype=torch.bool) if masked else None
    if masked:
        mask[2] = False  # query 2 attends to nothing: zeros, whatever its query
    q[0, 0, 1, 2] = NAN
    q[0, 0, 2, 0] = NAN
    clean = sdpa(q.nan_to_num(0.0), k, v, attend_mask=mask, normalize=normalize, impl=impl)
    out = sdpa(q, k, v, attend_mask=mask, normalize=normalize, impl=impl)
    assert bool(out[0, 0, 1].isnan().all())
    torch.testing.assert_close(out[0, 0, [0, 3]], clean[0, 0, [0, 3]], atol=1e-12, rtol=0)
    if masked:
        assert bool((out[0, 0, 2] == 0).all())
    else:
        assert bool(out[0, 0, 2].isnan().all())


def test_non_finite_weights_follow_the_output():
    q, k, v = qkv(b=1, h=1, nq=3, nk=3, seed=18)
    k[0, 0, 2, 0] = NAN
    out, w = sdpa(q, k, v, attend_mask=masks.causal(3), return_weights=True)
    assert bool(torch.isfinite(out[0, 0, :2]).all()) and bool(w[0, 0, :2, 2].eq(0).all())
    torch.testing.assert_close(out[0, 0, :2], sdpa(q[:, :, :2], k[:, :, :2], v[:, :, :2], attend_mask=masks.causal(2))[0, 0])
    assert bool(out[0, 0, 2].isnan().all()) and bool(w[0, 0, 2].isnan().all())


def test_a_one_dimensional_key_mask_serves_both_paths():
    q, k, v = qkv(seed=19)
    keys = torch.tensor([True, True, False, True, False])
    readable = sdpa(q, k, v, attend_mask=keys, impl="readable")
    torch.testing.assert_close(sdpa(q, k, v, attend_mask=keys, impl="fused"), readable, atol=1e-12, rtol=0)
    torch.testing.assert_close(readable, sdpa(q, k[:, :, [0, 1, 3]], v[:, :, [0, 1, 3]]), atol=1e-12, rtol=0)
