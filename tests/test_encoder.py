"""The packed TransformerEncoder: packed == padded == one sentence at a time, positions, torch parity."""

import pytest
import torch
import torch.nn as nn

import attnlab
from attnlab import TransformerEncoder, kernels
from attnlab.packing import cu_seqlens_from_lengths, pack, pack_padded

POSITIONS = ("none", "sinusoidal", "learned", "rotary")


def encoder(positions="rotary", seed=0, dtype=torch.float32, **kw):
    torch.manual_seed(seed)
    kw = {"dropout": 0.0, **kw}
    enc = TransformerEncoder(16, 4, 2, 32, positions=positions, max_len=64, **kw).to(dtype).eval()
    with torch.no_grad():  # LayerNorm and biases start at 1 / 0; make every parameter count
        for p in enc.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return enc


def padded_batch(lengths, dtype=torch.float32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(len(lengths), max(lengths), 16, generator=g, dtype=dtype), torch.tensor(lengths)


@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize("norm_first", [True, False])
def test_packed_equals_padded_equals_one_sentence_at_a_time(positions, norm_first):
    enc = encoder(positions, norm_first=norm_first)
    x, lengths = padded_batch([7, 1, 12, 0, 12, 3])
    with torch.no_grad():
        y = enc(x, lengths)  # (B, N, D)
        tokens, cu = pack_padded(x, lengths)
        packed = enc.forward_packed(tokens, cu)  # (T, D)
        assert packed.shape == (int(lengths.sum()), 16)
        for b, n in enumerate(lengths.tolist()):
            start = int(cu[b])
            torch.testing.assert_close(y[b, :n], packed[start: start + n], atol=1e-5, rtol=0)
            assert bool((y[b, n:] == 0).all())  # padding rows are zeros
            if n:
                alone = enc(x[b: b + 1, :n])[0]
                torch.testing.assert_close(alone, y[b, :n], atol=1e-5, rtol=0)


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("train", [False, True])
def test_fast_paths_equal_plain_torch_ops(norm_first, train):
    """oneDNN products with fused relu / residual and the native kernels == F.linear and torch ops."""
    enc = encoder("rotary", norm_first=norm_first).train(train)
    x, lengths = padded_batch([7, 1, 12, 0, 12, 3])
    tokens, cu = pack_padded(x, lengths)
    tokens.requires_grad_(True)

    def run():
        enc.zero_grad()
        tokens.grad = None
        out = enc.forward_packed(tokens, cu)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads = [p.grad.clone() for p in enc.parameters()] + [tokens.grad.clone()]
        with torch.no_grad():
            return out.detach(), grads, enc.forward_packed(tokens, cu)

    with kernels.record() as ran:
        fast = run()
    expected = set()
    if kernels.available():
        expected.add("native attention")
    if kernels.onednn_unsupported_reason() is None:
        expected.add("onednn linear")
    if not expected:
        pytest.skip(f"no fast path here: native kernels: {kernels.unavailable_reason()}; "
                    f"oneDNN: {kernels.onednn_unsupported_reason()}")
    assert expected <= ran
    with kernels.record() as ran_plain, kernels.disabled():
        plain = run()
    assert not ran_plain
    torch.testing.assert_close(fast[0], plain[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(fast[2], plain[2], atol=1e-5, rtol=0)
    for a, b in zip(fast[1], plain[1]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("norm_first", [True, False])
def test_equals_torch_transformer_encoder(norm_first):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, batch_first=True, norm_first=norm_first)
    theirs = nn.TransformerEncoder(
        layer, 2, norm=nn.LayerNorm(16) if norm_first else None, enable_nested_tensor=False
    ).eval()
    mine = TransformerEncoder.from_torch(theirs).eval()
    x, lengths = padded_batch([5, 9, 2])
    keep = torch.arange(9)[None, :] < lengths[:, None]
    with torch.no_grad():
        expected = theirs(x, src_key_padding_mask=~keep)
        got = mine(x, lengths)
    torch.testing.assert_close(got[keep], expected[keep], atol=1e-5, rtol=0)


def test_the_two_saws_need_positions():
    """ "I saw a saw": one embedding table, so both "saw" enter as the same vector."""
    vocab = {"I": 0, "saw": 1, "a": 2}
    table = torch.randn(3, 16, generator=torch.Generator().manual_seed(7))
    sentence = table[torch.tensor([vocab[w] for w in "I saw a saw".split()])]  # (4, D)
    tokens, cu = pack([sentence, table[torch.tensor([2, 1])]])  # a second sentence: "a saw"
    for positions in POSITIONS:
        with torch.no_grad():
            out = encoder(positions).forward_packed(tokens, cu)
        gap = float((out[1] - out[3]).abs().max())
        if positions == "none":
            assert gap < 1e-6, positions
        else:
            assert gap > 1e-3, positions


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_gradients_flow_and_match_between_packed_and_padded(positions):
    enc = encoder(positions, dtype=torch.float64).train()
    x, lengths = padded_batch([4, 6, 1], dtype=torch.float64)
    x.requires_grad_(True)
    keep = (torch.arange(6)[None, :] < lengths[:, None]).unsqueeze(-1)
    (enc(x, lengths) * keep).pow(2).sum().backward()
    padded_grads = {n: p.grad.clone() for n, p in enc.named_parameters()}
    grad_x = x.grad.clone()
    enc.zero_grad()
    tokens, cu = pack_padded(x.detach(), lengths)
    tokens.requires_grad_(True)
    enc.forward_packed(tokens, cu).pow(2).sum().backward()
    torch.testing.assert_close(tokens.grad, grad_x[keep.expand_as(x)].view(-1, 16), atol=1e-10, rtol=0)
    for name, p in enc.named_parameters():
        if name.startswith("position_table") and positions == "learned":
            used = p.grad[: int(lengths.max())]
            assert used.abs().sum() > 0 and float(p.grad[6:].abs().max()) == 0.0
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert float(p.grad.abs().max()) > 0, name
        torch.testing.assert_close(p.grad, padded_grads[name], atol=1e-10, rtol=0)


def test_return_weights_per_layer_and_sequence():
    enc = encoder("rotary", normalize="softmax")
    x, lengths = padded_batch([3, 5])
    with torch.no_grad():
        y, weights = enc(x, lengths, return_weights=True)
        fast = enc(x, lengths)
    torch.testing.assert_close(y, fast, atol=1e-5, rtol=0)
    assert len(weights) == 2 and all(len(w) == 2 for w in weights)
    assert [tuple(w.shape) for w in weights[0]] == [(4, 3, 3), (4, 5, 5)]
    torch.testing.assert_close(weights[1][1].sum(-1), torch.ones(4, 5))


@pytest.mark.parametrize("normalize", ["relu", "sigmoid"])
def test_other_normalizers_packed_equals_padded(normalize):
    enc = encoder("sinusoidal", normalize=normalize, causal=True)
    x, lengths = padded_batch([2, 8, 5])
    with torch.no_grad():
        y = enc(x, lengths)
        for b, n in enumerate(lengths.tolist()):
            torch.testing.assert_close(enc(x[b: b + 1, :n])[0], y[b, :n], atol=1e-5, rtol=0)


def test_bad_input_raises():
    enc = encoder("learned")
    with pytest.raises(ValueError, match=r"end at T = 5"):
        enc.forward_packed(torch.zeros(5, 16), torch.tensor([0, 2, 4]))
    with pytest.raises(ValueError, match=r"must not decrease"):
        enc.forward_packed(torch.zeros(5, 16), torch.tensor([0, 3, 2, 5]))
    with pytest.raises(ValueError, match=r"tokens has width 8, expected D = 16"):
        enc.forward_packed(torch.zeros(5, 8), cu_seqlens_from_lengths([5]))
    with pytest.raises(ValueError, match="max_len = 64"):
        enc.forward_packed(torch.zeros(65, 16), cu_seqlens_from_lengths([65]))
    with pytest.raises(ValueError, match="positions="):
        TransformerEncoder(16, 4, 1, 32, positions="absolute")
    with pytest.raises(ValueError, match="divisible"):
        TransformerEncoder(16, 3, 1, 32)
    assert attnlab.TransformerEncoder is TransformerEncoder


# -- the benchmark's pieces (the timings themselves are benchmark figures, never tested) ------

def test_bench_lengths_from_conllu_and_the_shipped_histogram(tmp_path):
    from attnlab.bench.encoder import conllu_lengths, length_source, shipped_lengths

    good = tmp_path / "x-train.conllu"
    row = "\t".join(["{}", "w", "w", "X", "_", "_", "0", "dep", "_", "_"])
    good.write_text("# text = a b\n" + "\n".join(row.format(i) for i in ("1", "2-3", "2", "3")) + "\n\n"
                    + row.format("1") + "\n" + row.format("1.1") + "\n")
    assert conllu_lengths(good) == [3, 1]  # multiword ranges and empty nodes are not words
    assert length_source(str(tmp_path))[0] == [3, 1]
    bad = tmp_path / "bad.conllu"
    bad.write_text(row.format("1") + "\nonly\tthree\tcolumns\n")
    with pytest.raises(ValueError, match=r"bad.conllu:2: expected 10 tab-separated"):
        conllu_lengths(bad)
    lengths, source = shipped_lengths()
    assert len(lengths) == 12544 and sum(lengths) == 204577 and max(lengths) == 159
    assert "lengths_ewt.json" in source


def test_bench_runs_end_to_end_on_a_tiny_configuration():
    from attnlab.bench.encoder import EncoderBenchConfig, format_report, run

    cfg = EncoderBenchConfig(
        batch=4, layers=1, d_model=32, heads=2, d_ff=64, batches=1, repeats=1, norm_first=(True,),
        long_sizes=(64,), long_repeats=1, measure_memory=False, matmul_sizes=(64,), malloc_tuning=False,
    )
    report = run(cfg, log=lambda line: None)
    assert report["settings"][0]["max_abs_diff"] < 1e-5  # both encoders compute the same function
    modes = {(s["mode"], name) for s in report["settings"] for name in s["cases"]}
    assert ("training", "attnlab") in modes and ("inference", "torch") in modes
    assert report["long"][0]["n"] == 64 and report["long"][0]["ratio"] > 0
    text = format_report(report)
    assert "targets:" in text and "speed-up vs torch" in text
