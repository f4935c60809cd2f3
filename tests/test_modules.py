"""SelfAttention and MultiHeadSelfAttention: == the NumPy oracle, == torch.nn.MultiheadAttention."""

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given

import attnlab
from attnlab import MultiHeadSelfAttention, SelfAttention, masks, reference

NORMALIZERS = ("softmax", "relu", "sigmoid")


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def mhsa(d_model=8, heads=2, seed=0, dtype=torch.float64, **kw):
    torch.manual_seed(seed)
    layer = MultiHeadSelfAttention(d_model, heads, **kw).to(dtype).eval()
    with torch.no_grad():  # biases start at zero in nn.MultiheadAttention-style inits; make them count
        for p in layer.parameters():
            p.copy_(randn(*p.shape, seed=seed + p.numel()) * 0.5)
    return layer


def lengths_mask(lengths, n):
    return np.array([[j < lengths for j in range(n)] for _ in range(n)])


# -- against the NumPy oracle (float64, 1e-10) -------------------------------------------

@pytest.mark.parametrize("normalize", NORMALIZERS)
def test_self_attention_equals_reference_steps(normalize):
    rng = np.random.default_rng(0)
    n, d_in, d_k, d_v = 5, 6, 3, 4
    Wq, Wk, Wv = rng.normal(size=(d_k, d_in)), rng.normal(size=(d_k, d_in)), rng.normal(size=(d_v, d_in))
    layer = SelfAttention(d_in, d_k, d_v, normalize=normalize).double()
    with torch.no_grad():
        for lin, w in ((layer.Wq, Wq), (layer.Wk, Wk), (layer.Wv, Wv)):
            lin.weight.copy_(torch.from_numpy(w))
    a = rng.normal(size=(2, n, d_in))
    mask = rng.random((n, n)) < 0.6
    mask[1] = False
    y, w = layer(torch.from_numpy(a), return_weights=True)
    ym = layer(torch.from_numpy(a), attend_mask=torch.from_numpy(mask))
    yl = layer(torch.from_numpy(a), lengths=[5, 3])
    assert y.shape == (2, n, d_v) and w.shape == (2, n, n)
    for b in range(2):
        s = reference.self_attention_steps(a[b], Wq, Wk, Wv, normalize=normalize)
        np.testing.assert_allclose(y[b].detach().numpy(), s.b, atol=1e-10, rtol=0)
        np.testing.assert_allclose(w[b].detach().numpy(), s.alpha_prime, atol=1e-10, rtol=0)
        sm = reference.self_attention_steps(a[b], Wq, Wk, Wv, normalize=normalize, attend_mask=mask)
        np.testing.assert_allclose(ym[b].detach().numpy(), sm.b, atol=1e-10, rtol=0)
        sl = reference.self_attention_steps(a[b], Wq, Wk, Wv, normalize=normalize, attend_mask=lengths_mask([5, 3][b], n))
        np.testing.assert_allclose(yl[b].detach().numpy(), sl.b, atol=1e-10, rtol=0)
    # the matrix form, with I = a^T
    m = reference.self_attention_matrix(a[0].T, Wq, Wk, Wv, normalize=normalize)
    np.testing.assert_allclose(y[0].detach().numpy(), m.O.T, atol=1e-10, rtol=0)


@pytest.mark.parametrize("normalize", NORMALIZERS)
@pytest.mark.parametrize("impl", ["auto", "readable"])
def test_multi_head_equals_reference_steps_with_biases(normalize, impl):
    D, H, n = 12, 3, 6
    layer = mhsa(D, H, seed=1, normalize=normalize)
    Wq, Wk, Wv, Wo = (t.detach().numpy() for t in (layer.Wq, layer.Wk, layer.Wv, layer.Wo))
    bq, bk, bv = (t.detach().numpy() for t in layer.qkv.bias.split(D))
    bo = layer.out.bias.detach().numpy()
    a = randn(2, n, D, seed=1)
    rng = np.random.default_rng(1)
    mask = rng.random((n, n)) < 0.5
    mask[2] = False
    lengths = [6, 4]
    y, w = layer(a, return_weights=True)
    ym = layer(a, attend_mask=torch.from_numpy(mask), impl=impl)
    yl = layer(a, lengths=torch.tensor(lengths), attend_mask=torch.from_numpy(mask), impl=impl)
    assert w.shape == (2, H, n, n)
    for b in range(2):
        kw = dict(normalize=normalize, bq=bq, bk=bk, bv=bv, bo=bo)
        s = reference.multi_head_steps(a[b].numpy(), Wq, Wk, Wv, Wo, H, **kw)
        np.testing.assert_allclose(y[b].detach().numpy(), s.b, atol=1e-10, rtol=0)
        for h in range(H):
            np.testing.assert_allclose(w[b, h].detach().numpy(), s.heads[h].alpha_prime, atol=1e-10, rtol=0)
        sm = reference.multi_head_steps(a[b].numpy(), Wq, Wk, Wv, Wo, H, attend_mask=mask, **kw)
        np.testing.assert_allclose(ym[b].detach().numpy(), sm.b, atol=1e-10, rtol=0)
        both = mask & lengths_mask(lengths[b], n)
        sl = reference.multi_head_steps(a[b].numpy(), Wq, Wk, Wv, Wo, H, attend_mask=both, **kw)
        np.testing.assert_allclose(yl[b].detach().numpy(), sl.b, atol=1e-10, rtol=0)


def test_parameter_views_and_project():
    layer = mhsa(8, 2, seed=2)
    assert layer.Wq.shape == layer.Wk.shape == layer.Wv.shape == layer.Wo.shape == (8, 8)
    torch.testing.assert_close(torch.cat([layer.Wq, layer.Wk, layer.Wv]), layer.qkv.weight)
    x = randn(3, 5, 8, seed=2)
    q, k, v = layer.project(x)
    assert q.shape == (3, 5, 2, 4)
    bq, bk, bv = layer.qkv.bias.split(8)
    torch.testing.assert_close(q[:, :, 1], x @ layer.Wq[4:].T + bq[4:])
    torch.testing.assert_close(v[:, :, 0], x @ layer.Wv[:4].T + bv[:4])


# -- against torch.nn.MultiheadAttention (float32, 1e-5) -----------------------------------

def torch_mha(d_model=16, heads=4, seed=0, bias=True, batch_first=True):
    torch.manual_seed(seed)
    mha = nn.MultiheadAttention(d_model, heads, bias=bias, batch_first=batch_first).eval()
    if bias:
        with torch.no_grad():
            mha.in_proj_bias.normal_()
            mha.out_proj.bias.normal_()
    return mha


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("grad", [True, False])  # torch takes its fast path under no_grad
def test_from_torch_equals_torch_without_padding(bias, grad):
    mha = torch_mha(seed=3, bias=bias)
    ours = MultiHeadSelfAttention.from_torch(mha).eval()
    x = randn(3, 7, 16, seed=3, dtype=torch.float32)
    with torch.set_grad_enabled(grad):
        expected, _ = mha(x, x, x, need_weights=False)
        for impl in ("fused", "readable"):
            torch.testing.assert_close(ours(x, impl=impl), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("grad", [True, False])
def test_from_torch_equals_torch_with_padding(grad):
    mha = torch_mha(seed=4)
    ours = MultiHeadSelfAttention.from_torch(mha).eval()
    lengths = torch.tensor([7, 3, 1, 5])
    x = randn(4, 7, 16, seed=4, dtype=torch.float32)
    key_padding_mask = ~masks.from_lengths(lengths, 7)[:, 0, 0]  # torch: True = ignore
    real = masks.from_lengths(lengths, 7)[:, 0, 0]  # (B, N) real tokens
    with torch.set_grad_enabled(grad):
        expected, _ = mha(x, x, x, key_padding_mask=key_padding_mask, need_weights=False)
        for impl in ("fused", "readable"):
            y = ours(x, lengths=lengths, impl=impl)
            torch.testing.assert_close(y[real], expected[real], atol=1e-5, rtol=1e-5)
            assert torch.isfinite(y).all()


def test_from_torch_equals_torch_with_causal_mask_and_weights():
    mha = torch_mha(seed=5)
    ours = MultiHeadSelfAttention.from_torch(mha)
    x = randn(2, 6, 16, seed=5, dtype=torch.float32)
    causal = masks.causal(6)
    expected, expected_w = mha(x, x, x, attn_mask=~causal, need_weights=True, average_attn_weights=False)
    y, w = ours(x, attend_mask=causal, return_weights=True)
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w, expected_w, atol=1e-5, rtol=1e-5)


def test_from_torch_sequence_first_layer():
    mha = torch_mha(seed=6, batch_first=False)
    ours = MultiHeadSelfAttention.from_torch(mha)
    x = randn(2, 5, 16, seed=6, dtype=torch.float32)  # (B, N, D)
    expected, _ = mha(x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1), need_weights=False)
    torch.testing.assert_close(ours(x), expected.transpose(0, 1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
def test_to_torch_round_trip(bias):
    ours = mhsa(16, 4, seed=7, dtype=torch.float32, bias=bias)
    mha = ours.to_torch().eval()
    assert mha.batch_first and mha.num_heads == 4 and (mha.in_proj_bias is not None) == bias
    x = randn(2, 5, 16, seed=7, dtype=torch.float32)
    lengths = torch.tensor([5, 2])
    real = masks.from_lengths(lengths, 5)[:, 0, 0]
    expected, _ = mha(x, x, x, key_padding_mask=~real, need_weights=False)
    torch.testing.assert_close(ours(x, lengths=lengths)[real], expected[real], atol=1e-5, rtol=1e-5)
    back = MultiHeadSelfAttention.from_torch(mha)
    for (name, p), (name2, p2) in zip(ours.named_parameters(), back.named_parameters()):
        assert name == name2
        assert torch.equal(p, p2)
    assert back.qkv.weight.dtype == torch.float32


def test_from_torch_keeps_dtype():
    mha = torch_mha(seed=8).double()
    ours = MultiHeadSelfAttention.from_torch(mha)
    assert ours.qkv.weight.dtype == torch.float64
    x = randn(1, 4, 16, seed=8)
    torch.testing.assert_close(ours(x), mha(x, x, x, need_weights=False)[0], atol=1e-12, rtol=0)


# -- fused == readable ------------------------------------------------------------------------

@given(
    b=st.integers(1, 3), n=st.integers(1, 8), heads=st.sampled_from([1, 2, 4]),
    seed=st.integers(0, 2**16), pad=st.booleans(), causal=st.booleans(),
)
def test_module_fused_equals_readable(b, n, heads, seed, pad, causal):
    layer = mhsa(8, heads, seed=seed % 97, dtype=torch.float32)
    x = randn(b, n, 8, seed=seed, dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, n + 1, (b,), generator=g) if pad else None
    mask = masks.causal(n) if causal else None
    fused = layer(x, lengths=lengths, attend_mask=mask, impl="fused")
    readable = layer(x, lengths=lengths, attend_mask=mask, impl="readable")
    torch.testing.assert_close(fused, readable, atol=1e-5, rtol=1e-5)


# -- properties ---------------------------------------------------------------------------

@given(n=st.integers(2, 9), normalize=st.sampled_from(NORMALIZERS), impl=st.sampled_from(["auto", "readable"]), seed=st.integers(0, 2**16))
def test_permutation_equivariance_without_positions(n, normalize, impl, seed):
    layer = mhsa(8, 2, seed=seed % 89, normalize=normalize)
    x = randn(2, n, 8, seed=seed)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(layer(x[:, perm], impl=impl), layer(x, impl=impl)[:, perm], atol=1e-12, rtol=0)
    single = SelfAttention(8, 3, 5, normalize=normalize).double()
    torch.testing.assert_close(single(x[:, perm]), single(x)[:, perm], atol=1e-12, rtol=0)


@given(
    n=st.integers(1, 9), b=st.integers(1, 3), normalize=st.sampled_from(NORMALIZERS),
    impl=st.sampled_from(["auto", "readable"]), seed=st.integers(0, 2**16),
)
def test_padded_tokens_never_change_real_outputs(n, b, normalize, impl, seed):
    layer = mhsa(8, 2, seed=seed % 83, normalize=normalize)
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, n + 1, (b,), generator=g)
    real = masks.from_lengths(lengths, n)[:, 0, 0]  # (B, N)
    x = randn(b, n, 8, seed=seed)
    junk = x.clone()
    junk[~real] = randn(int((~real).sum()), 8, seed=seed + 1) * 100.0
    y, y_junk = layer(x, lengths=lengths, impl=impl), layer(junk, lengths=lengths, impl=impl)
    torch.testing.assert_close(y[real], y_junk[real], atol=1e-10, rtol=0)
    assert torch.isfinite(y_junk).all()
    # the single-head layer too
    single = SelfAttention(8, 3, 5, normalize=normalize).double()
    torch.testing.assert_close(single(x, lengths=lengths)[real], single(junk, lengths=lengths)[real], atol=1e-10, rtol=0)


def test_eval_disables_dropout_and_train_enables_it():
    layer = mhsa(8, 2, seed=9, dropout=0.5)
    plain = mhsa(8, 2, seed=9)
    x = randn(2, 6, 8, seed=9)
    torch.testing.assert_close(layer(x), plain(x), atol=0, rtol=0)
    layer.train()
    torch.manual_seed(0)
    assert (layer(x) - plain(x)).abs().max() > 1e-3


# -- gradients ----------------------------------------------------------------------------

@pytest.mark.parametrize("normalize", NORMALIZERS)
def test_gradcheck_module_inputs_and_parameters(normalize):
    layer = mhsa(6, 2, seed=10, normalize=normalize)
    x = randn(2, 4, 6, seed=10).requires_grad_(True)
    lengths = torch.tensor([4, 0])  # the second sequence is all padding: fully masked rows
    names = [n for n, _ in layer.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in layer.parameters())

    def f(x, *ps):
        return torch.func.functional_call(layer, dict(zip(names, ps)), (x,), {"lengths": lengths, "impl": "readable"})

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-7)


def test_gradcheck_single_head_layer():
    layer = SelfAttention(4, 3, 2).double()
    x = randn(1, 5, 4, seed=11).requires_grad_(True)
    mask = masks.window(5, 1)
    mask[2] = False
    assert torch.autograd.gradcheck(lambda x: layer(x, attend_mask=mask), (x,), eps=1e-6, atol=1e-8)


# -- bad input ----------------------------------------------------------------------------

def test_bad_input():
    with pytest.raises(ValueError, match=r"d_model = 10 must be divisible by heads = 4"):
        MultiHeadSelfAttention(10, 4)
    with pytest.raises(ValueError, match=r"d_model = 8 must be divisible by heads = 0"):
        MultiHeadSelfAttention(8, 0)
    with pytest.raises(ValueError, match=r"normalize='softmin' is unknown"):
        MultiHeadSelfAttention(8, 2, normalize="softmin")
    with pytest.raises(ValueError, match=r"normalize='tanh' is unknown"):
        SelfAttention(4, 2, 2, normalize="tanh")
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.5"):
        MultiHeadSelfAttention(8, 2, dropout=1.5)
    layer = MultiHeadSelfAttention(8, 2)
    x = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match=r"x must have shape \(B, N, D\), got \(5, 8\)"):
        layer(x[0])
    with pytest.raises(ValueError, match=r"x has width 7, expected D = 8 \(shape \(2, 5, 7\)\)"):
        layer(x[..., :7])
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(2,\), got \(3,\)"):
        layer(x, lengths=[1, 2, 3])
    with pytest.raises(ValueError, match=r"lengths must be >= 0, got \[5, -1\]"):
        layer(x, lengths=[5, -1])
    with pytest.raises(ValueError, match=r"lengths must be <= N = 5, got max 6"):
        layer(x, lengths=torch.tensor([6, 1]))
    with pytest.raises(ValueError, match=r"3-D attend_mask is \(B, N, N\) = \(2, 5, 5\), got \(3, 5, 5\)"):
        layer(x, attend_mask=torch.ones(3, 5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"attend_mask must be boolean .* got dtype torch.int64"):
        layer(x, attend_mask=torch.ones(5, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"impl='cuda' is unknown"):
        layer(x, impl="cuda")
    single = SelfAttention(8, 3, 3)
    with pytest.raises(ValueError, match=r"x has width 5, expected D = 8"):
        single(torch.randn(1, 4, 5))
    with pytest.raises(ValueError, match=r"attend_mask of shape \(4, 3\) does not broadcast to \(B, H, Nq, Nk\) = \(1, 1, 4, 4\)"):
        single(torch.randn(1, 4, 8), attend_mask=torch.ones(4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mha must be a torch.nn.MultiheadAttention, got Linear"):
        MultiHeadSelfAttention.from_torch(nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"kdim/vdim"):
        MultiHeadSelfAttention.from_torch(nn.MultiheadAttention(8, 2, kdim=4, vdim=4))
    with pytest.raises(ValueError, match=r"add_bias_kv or add_zero_attn"):
        MultiHeadSelfAttention.from_torch(nn.MultiheadAttention(8, 2, add_bias_kv=True))
    with pytest.raises(ValueError, match=r"only does softmax, this layer uses 'relu'"):
        MultiHeadSelfAttention(8, 2, normalize="relu").to_torch()


def test_a_three_dimensional_mask_is_per_sequence_never_per_head():
    import attnlab
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    m = torch.ones(2, 5, 5, dtype=torch.bool)
    m[0, :, 3:] = False  # sequence 0 may not look at its last two tokens; sequence 1 sees all
    for module in (attnlab.SelfAttention(8, 4, 4), attnlab.MultiHeadSelfAttention(8, 2)):
        with torch.no_grad():
            _, w = module(x, attend_mask=m, return_weights=True)
        w = w.reshape(2, -1, 5, 5)
        assert float(w[0, :, :, 3:].abs().max()) == 0.0
        assert float(w[1, :, :, 3:].min()) > 0.0
        four_d = module(x, attend_mask=m.unsqueeze(1))
        assert torch.allclose(module(x, attend_mask=m), four_d)
    with pytest.raises(ValueError, match=r"3-D attend_mask is \(B, N, N\) = \(2, 5, 5\), got \(3, 5, 5\)"):
        attnlab.MultiHeadSelfAttention(8, 2)(x, attend_mask=torch.ones(3, 5, 5, dtype=torch.bool))


def test_a_layer_given_another_dtype_raises_a_value_error_naming_both():
    layer = MultiHeadSelfAttention(8, 2)  # float32 weights
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"x has dtype torch.float64 but the layer's weights are torch.float32"):
        layer(x)
    with pytest.raises(ValueError, match=r"context has dtype torch.float64 but the layer's weights are torch.float32"):
        layer(x.float(), x)
    with pytest.raises(ValueError, match=r"tokens has dtype torch.float64 but the layer's weights are torch.float32"):
        layer.forward_packed(x[0], torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"x has dtype torch.float64 but the layer's weights are torch.float32"):
        SelfAttention(8, 4, 4)(x)
    encoder = attnlab.TransformerEncoder(8, 2, 1, 16)
    with pytest.raises(ValueError, match=r"x has dtype torch.float64 but the layer's weights are torch.float32"):
        encoder(x)
    with pytest.raises(ValueError, match=r"tokens has dtype torch.float64"):
        encoder.forward_packed(x[0], torch.tensor([0, 5]))


def test_cross_attention_with_a_cache_equals_the_whole_context_at_once():
    layer = mhsa(8, 2, seed=3)
    x, context = randn(2, 3, 8, seed=4), randn(2, 6, 8, seed=5)
    lengths = torch.tensor([6, 4])
    whole = layer(x, context, lengths=lengths)
    cache = {}
    steps = [layer(x[:, i: i + 1], context if i == 0 else None, lengths=lengths, cache=cache) for i in range(3)]
    torch.testing.assert_close(torch.cat(steps, dim=1), whole, atol=1e-12, rtol=0)
    torch.testing.assert_close(layer.attend(x, context, key_lengths=lengths), whole, atol=0, rtol=0)
    # self-attention with a growing cache and a causal mask: the same as the whole sequence at once
    causal = layer(x, attend_mask=masks.causal(3))
    cache = {}
    steps = [layer(x[:, i: i + 1], cache=cache) for i in range(3)]
    torch.testing.assert_close(torch.cat(steps, dim=1), causal, atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_rotary_encoder_runs_packed_in_bfloat16_and_float16_close_to_float32(dtype):
    # rotary positions turn q and k through a complex view, which half-precision dtypes lack
    torch.manual_seed(0)
    model = attnlab.TransformerEncoder(d_model=64, heads=4, layers=2, d_ff=128).eval()
    low = attnlab.TransformerEncoder(d_model=64, heads=4, layers=2, d_ff=128).eval()
    low.load_state_dict(model.state_dict())
    low = low.to(dtype)
    x, cu = torch.randn(10, 64), torch.tensor([0, 4, 10])
    with torch.no_grad():
        ref, out = model.forward_packed(x, cu), low.forward_packed(x.to(dtype), cu)
    assert out.dtype == dtype
    assert (out.float() - ref).abs().max().item() < 0.05 * ref.abs().max().item()
    rotary = attnlab.positions.RotaryPositions(8)
    q, pos = torch.randn(5, 2, 8), torch.arange(5)
    turned = rotary.rotate_(q.clone().to(dtype), pos)
    torch.testing.assert_close(turned.float(), rotary.rotate(q, pos), atol=0.02, rtol=0.02)
