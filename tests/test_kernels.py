"""Native kernels: counter-based dropout (values, gradients, repeatability) and the fallback switch."""

import subprocess
import sys

import pytest
import torch

from attnlab import kernels

pytestmark = pytest.mark.skipif(not kernels.available(), reason=f"native kernels: {kernels.unavailable_reason()}")


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dropout_add_keeps_about_1_minus_p_and_scales(dtype):
    x, res = torch.ones(400, 500, dtype=dtype), randn(400, 500, seed=1, dtype=dtype)
    y = kernels.dropout_add(x, res, 0.3)
    kept = (y - res).abs() > 0.5
    assert abs(float(kept.double().mean()) - 0.7) < 0.005
    torch.testing.assert_close((y - res)[kept], torch.full_like(y[kept], 1 / 0.7))
    assert float((y - res)[~kept].abs().max()) < 1e-6


def test_dropout_add_gradient_reuses_the_forward_mask():
    x = randn(50, 40, seed=2).requires_grad_(True)
    res = randn(50, 40, seed=3).requires_grad_(True)
    torch.manual_seed(0)
    y = kernels.dropout_add(x, res, 0.25)
    g = randn(50, 40, seed=4)
    y.backward(g)
    mask = (y - res).detach() != 0  # x has no zeros, so y - res == 0 exactly where dropped
    torch.testing.assert_close(x.grad, g * mask / 0.75, atol=1e-12, rtol=0)
    torch.testing.assert_close(res.grad, g, atol=0, rtol=0)
    torch.manual_seed(0)
    torch.testing.assert_close(kernels.dropout_add(x, res, 0.25), y, atol=0, rtol=0)  # same seed, same mask


def test_relu_dropout_in_place_and_gradient():
    h0 = randn(300, 64, seed=5).requires_grad_(True)
    h = h0 * 1.0  # a non-leaf we may overwrite
    out = kernels.relu_dropout_(h, 0.2)
    assert out.data_ptr() == h.data_ptr()
    pos = h0.detach() > 0
    nonzero = out.detach() != 0
    assert not bool((nonzero & ~pos).any())  # nothing negative survives
    assert abs(float(nonzero.double().sum() / pos.double().sum()) - 0.8) < 0.02
    torch.testing.assert_close(out.detach()[nonzero], h0.detach()[nonzero] / 0.8)
    g = randn(300, 64, seed=6)
    out.backward(g)
    torch.testing.assert_close(h0.grad, g * nonzero / 0.8, atol=1e-12, rtol=0)


def test_p_zero_is_plain_relu_and_add():
    h = randn(20, 30, seed=7)
    torch.testing.assert_close(kernels.relu_dropout_(h.clone(), 0.0), h.relu())
    x, r = randn(20, 30, seed=8), randn(20, 30, seed=9)
    torch.testing.assert_close(kernels.dropout_add(x, r, 0.0), x + r)


def test_encoder_training_step_is_repeatable_and_its_gradient_is_right():
    """Training mode with dropout through every native kernel: a finite-difference check."""
    from attnlab import TransformerEncoder
    from attnlab.packing import cu_seqlens_from_lengths

    torch.manual_seed(0)
    enc = TransformerEncoder(16, 2, 2, 32, dropout=0.2, positions="rotary").double().train()
    cu = cu_seqlens_from_lengths([5, 9, 3])
    x = randn(17, 16, seed=10)
    g = randn(17, 16, seed=11)

    def loss(seed):
        torch.manual_seed(seed)
        return (enc.forward_packed(x, cu) * g).sum()

    value = loss(1)
    value.backward()
    value = float(value.detach())
    w = enc.layers[0].ff1.weight
    analytic = float(w.grad[3, 5])
    eps = 1e-6
    with torch.no_grad():
        w[3, 5] += eps
        up = float(loss(1))
        w[3, 5] -= 2 * eps
        down = float(loss(1))
        w[3, 5] += eps
    assert abs((up - down) / (2 * eps) - analytic) < 1e-6
    with torch.no_grad():
        assert float(loss(1)) == value  # same seed, same masks
        assert abs(float(loss(2)) - value) > 1e-6  # another seed, other masks


def test_switch_off_falls_back_with_a_reason(tmp_path):
    code = (
        "import torch; from attnlab import kernels, varlen_attention;"
        "q = torch.randn(5, 1, 16);"
        "out = varlen_attention(q, q, q, torch.tensor([0, 5]));"
        "print(kernels.available(), kernels.unavailable_reason())"
    )
    env = {"ATTNLAB_KERNELS": "0", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False ATTNLAB_KERNELS=0"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(37, 21), (64, 48), (5, 3), (0, 4)])
def test_transposed_copies(dtype, shape):
    x = randn(*shape, seed=12, dtype=dtype)
    for src in (x, randn(shape[0], shape[1] + 7, seed=13, dtype=dtype)[:, 3: 3 + shape[1]]):
        out = kernels.transposed(src)
        assert out.is_contiguous() and out.shape == (shape[1], shape[0])
        assert torch.equal(out, src.t())


# -- the build cache ----------------------------------------------------------------------------

TINY = "extern \"C\" int attnlab_answer() { return 42; }\n"


def test_build_is_keyed_by_source_flags_and_torch_version_and_respects_the_umask(tmp_path, monkeypatch):
    import ctypes
    import os
    import shutil

    from attnlab.kernels import native

    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    monkeypatch.setenv("ATTNLAB_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "tiny.cpp"
    source.write_text(TINY)
    flags = ("-O1", "-shared", "-fPIC")
    old = os.umask(0o022)
    try:
        built = native.build(compiler, source, flags)
    finally:
        os.umask(old)
    assert built.stat().st_mode & 0o777 in (0o644, 0o755)  # not 0600: the umask decides
    assert ctypes.CDLL(str(built)).attnlab_answer() == 42
    assert native.build(compiler, source, flags) == built  # reused
    assert sorted(p.name for p in built.parent.iterdir()) == [built.name]  # no temporary left
    key = native.build_key(TINY.encode(), compiler, flags)
    assert built.name == f"attnlab_kernels_{key}.so"
    assert native.build_key(TINY.encode() + b"\n", compiler, flags) != key  # another source
    assert native.build_key(TINY.encode(), compiler, ("-O2", "-shared", "-fPIC")) != key  # other flags
    monkeypatch.setattr(torch, "__version__", "0.0.1")
    assert native.build_key(TINY.encode(), compiler, flags) != key  # another PyTorch


# -- switching the fast paths off, and seeing which ran ------------------------------------------

def test_disabled_turns_every_fast_path_off_and_record_names_those_that_ran():
    from attnlab import TransformerEncoder
    from attnlab.packing import cu_seqlens_from_lengths

    torch.manual_seed(0)
    enc = TransformerEncoder(16, 2, 1, 32, dropout=0.1).train()
    x, cu = torch.randn(9, 16), cu_seqlens_from_lengths([4, 5])
    with kernels.record() as ran:
        enc.forward_packed(x, cu)
    assert {"native attention", "native dropout"} <= ran
    assert ("onednn linear" in ran) == (kernels.onednn_unsupported_reason() is None)
    with kernels.record() as ran, kernels.disabled():
        assert kernels.native_unsupported_reason(x) == "switched off by attnlab.kernels.disabled()"
        assert kernels.onednn_unsupported_reason(x) is not None
        enc.forward_packed(x, cu)
    assert ran == set()
    with kernels.record() as ran, kernels.disabled(onednn=False):
        enc.forward_packed(x, cu)
    assert "native attention" not in ran and "native dropout" not in ran
    assert kernels.native_unsupported_reason(x) is None  # back on after the block
    assert kernels.native_unsupported_reason(x.long()) == "dtype torch.int64 (the kernels take float32 and float64)"
