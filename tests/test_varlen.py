"""varlen_attention == scaled_dot_product_attention run on every sequence alone (values and gradients)."""

import itertools

import pytest
import torch

import attnlab
from attnlab import masks
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


# Widths steer the bucket choice: 8 -> everything in one padded bucket, 256 -> a few,
# 10**6 -> nearly one bucket per distinct length.
@pytest.mark.parametrize("width", [8, 256, 10**6])
@pytest.mark.parametrize(
    "causal, window, normalize",
    [(False, None, "softmax"), (True, None, "softmax"), (False, 2, "softmax"), (True, 4, "softmax")]
    + [(c, w, n) for n in ("relu", "sigmoid") for c, w in ((False, None), (True, 3))],
)
def test_equals_per_sequence_attention_forward_and_backward(width, causal, window, normalize):
    cu = cu_seqlens_from_lengths(LENGTHS)
    t, h, d = int(cu[-1]), 3, 8
    q, k, v = (randn(t, h, d, seed=i, grad=True) for i in range(3))
    plan = VarlenPlan(cu, width=width)
    out = varlen_attention(q, k, v, cu, causal=causal, window=window, normalize=normalize, plan=plan)
    ref = per_sequence(q, k, v, cu, causal, window, normalize)
    assert out.shape == (t, h, d)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)
    for a, b in zip(grads(out, (q, k, v)), grads(ref, (q, k, v))):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("causal", [False, True])
def test_float32_within_1e_5_and_stacked_qkv_is_the_same(causal):
    cu = cu_seqlens_from_lengths([40, 7, 7, 23, 1, 64])
    t, h, d = int(cu[-1]), 4, 16
    qkv = randn(t, 3, h, d, seed=5, dtype=torch.float32, grad=True)
    out = varlen_attention_qkv(qkv, cu, causal=causal)
    q, k, v = qkv.unbind(1)
    ref = per_sequence(q, k, v, cu, causal)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(varlen_attention(q, k, v, cu, causal=causal), out, atol=1e-6, rtol=0)
    (ga,), (gb,) = grads(out, (qkv,)), grads(ref, (qkv,))
    torch.testing.assert_close(ga, gb, atol=1e-5, rtol=0)


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
        out = varlen_attention(q, q, q, cu, plan=plan)
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


def test_zero_length_sequences_yield_nothing_and_no_nan():
    cu = torch.tensor([0, 0, 0])
    q = randn(0, 2, 4, grad=True)
    out = varlen_attention(q, q, q, cu)
    assert out.shape == (0, 2, 4)
    cu = torch.tensor([0, 0, 1, 1])
    q = randn(1, 2, 4, grad=True)
    out = varlen_attention(q, q, q, cu, causal=True, window=0)
    (g,) = grads(out, (q,))
    torch.testing.assert_close(out, q.detach(), atol=1e-12, rtol=0)  # one token attends to itself
    assert torch.isfinite(g).all()


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
