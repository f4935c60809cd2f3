"""The calibrated choice of packed-attention path: its cache, its chooser, and that the
paths it chooses between compute the same function."""

import json
import logging

import pytest
import torch
from fake_clock import FakeClock

from attnlab import kernels, varlen_attention
from attnlab.attention.functional import scaled_dot_product_attention
from attnlab.attention.varlen import timed_attention
from attnlab.kernels import calibrate
from attnlab.packing import cu_seqlens_from_lengths

needs_kernels = pytest.mark.skipif(not kernels.available(), reason=f"native kernels: {kernels.unavailable_reason()}")
ROW = {"native_ms": 1.0, "buckets_ms": 2.0, "ratio": 2.0, "choice": "native", "why": "fake", "shape": "fake"}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache directory, measuring allowed, and measure() replaced by a counter."""
    monkeypatch.setenv("ATTNLAB_CACHE", str(tmp_path))
    monkeypatch.setenv("ATTNLAB_CALIBRATE", "1")
    measured = []

    def fake_measure(entry, dtype=torch.float32, rounds=None, *, attention):
        measured.append((entry, dtype))
        return {**ROW, "choice": "buckets", "why": "fake: buckets faster"}

    monkeypatch.setattr(calibrate, "measure", fake_measure)
    calibrate.clear()
    yield measured
    calibrate.clear()


# -- the cache -------------------------------------------------------------------------------------

def test_the_key_changes_with_each_part(cache, monkeypatch):
    base = calibrate.key_parts(torch.float32, threads=2)
    assert set(base) == {"build", "cpu", "torch", "threads", "dtype"}
    variants = [
        calibrate.key_parts(torch.float64, threads=2),
        calibrate.key_parts(torch.float32, threads=3),
    ]
    for target, name, value in ((calibrate, "cpu_model", lambda: "Another CPU"), (torch, "__version__", "0.0.1"),
                                (calibrate, "_build_key", lambda: "0" * 16)):
        with monkeypatch.context() as m:
            m.setattr(target, name, value)
            variants.append(calibrate.key_parts(torch.float32, threads=2))
    names = {calibrate.cache_path(p).name for p in [base, *variants]}
    assert len(names) == 6  # each part alone names another file
    assert [sum(base[k] != v[k] for k in base) for v in variants] == [1] * 5


def test_a_table_is_measured_once_kept_and_measured_again_when_the_key_changes(cache, monkeypatch):
    assert calibrate.choice("inference", 30, 64, torch.float32, timed_attention)[0] == "buckets"
    assert cache == [("inference n<=64 d<=64", torch.float32)]
    calibrate.choice("inference", 40, 64, torch.float32, timed_attention)  # same entry: from memory
    calibrate.clear()
    path, why = calibrate.choice("inference", 50, 64, torch.float32, timed_attention)  # from the file
    assert path == "buckets" and "calibrated" in why and len(cache) == 1
    written = json.loads(calibrate.cache_path(calibrate.key_parts()).read_text())
    assert written["key"] == calibrate.key_parts() and "inference n<=64 d<=64" in written["entries"]

    monkeypatch.setattr(torch, "__version__", "0.0.1")  # another PyTorch: the old table is not reused
    calibrate.choice("inference", 50, 64, torch.float32, timed_attention)
    assert len(cache) == 2
    calibrate.choice("inference", 50, 64, torch.float64, timed_attention)  # another dtype: its own table
    assert len(cache) == 3


def test_a_corrupt_or_foreign_file_is_ignored_with_a_warning_and_measured_again(cache, caplog):
    parts = calibrate.key_parts()
    path = calibrate.cache_path(parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    for text in ("{not json", json.dumps({"version": 1, "key": {**parts, "cpu": "other"}, "entries": {}}),
                 json.dumps({"version": 1, "key": parts, "entries": {"training n<=64 d<=64": {"choice": "gpu"}}})):
        path.write_text(text)
        calibrate.clear()
        cache.clear()
        with caplog.at_level(logging.WARNING, logger="attnlab.kernels"):
            assert calibrate.choice("training", 10, 64, torch.float32, timed_attention)[0] == "buckets"
        assert "ignoring the calibration file" in caplog.text and len(cache) == 1
        assert json.loads(path.read_text())["entries"]["training n<=64 d<=64"]["choice"] == "buckets"  # rewritten
        caplog.clear()


def test_off_and_cached_settings_never_measure(cache, monkeypatch):
    monkeypatch.setenv("ATTNLAB_CALIBRATE", "0")
    assert calibrate.choice("training", 300, 64, torch.float32, timed_attention) == ("buckets", "fixed rule (ATTNLAB_CALIBRATE=0)")
    assert calibrate.choice("training", 200, 64, torch.float32, timed_attention)[0] == "native"
    monkeypatch.setenv("ATTNLAB_CALIBRATE", "cached")
    assert calibrate.choice("inference", 5000, 64, torch.float32, timed_attention)[0] == "native"  # not calibrated: fixed rule
    assert cache == []


# -- the chooser -------------------------------------------------------------------------------------

def test_the_chooser_takes_the_faster_of_two_timed_paths_interleaved():
    clock = FakeClock()
    samples = calibrate.time_paths(
        {"native": clock.case("native", 0.5, 0.002, 0.009, 0.002), "buckets": clock.case("buckets", 0.5, 0.001)},
        rounds=4, clock=clock, min_sample=0.0,
    )
    assert samples == {"native": pytest.approx([0.002, 0.009, 0.002, 0.002]), "buckets": pytest.approx([0.001] * 4)}
    assert clock.log == ["native", "buckets"] + ["native", "buckets", "buckets", "native"] * 2  # interleaved
    assert calibrate.choose(samples, "native")[0] == "buckets"
    assert calibrate.choose(samples, "buckets")[0] == "buckets"
    assert calibrate.choose({"native": [0.00103] * 3, "buckets": [0.001] * 3}, "native")[0] == "native"  # margin
    assert calibrate.choose({"native": [0.0011] * 3, "buckets": [0.001] * 3}, "native")[0] == "buckets"
    # faster by the medians, but in only 3 of the 5 paired rounds: load, not speed; the rule stays
    noisy = {"native": [2.0] * 5, "buckets": [1.0, 1.0, 1.0, 3.0, 3.0]}
    path, why = calibrate.choose(noisy, "native")
    assert path == "native" and "noisy" in why


def test_entries_and_workloads_cover_the_buckets():
    assert [calibrate.n_bucket(n) for n in (1, 64, 65, 256, 1000, 4096, 5000, 16384, 100000)] == [
        "n<=64", "n<=64", "n<=256", "n<=256", "n<=1024", "n<=4096", "n<=16384", "n<=16384", "n<=16384"]
    assert [calibrate.d_bucket(d) for d in (8, 32, 33, 64, 128, 129)] == [
        "d<=32", "d<=32", "d<=64", "d<=64", "d<=128", "d>128"]
    for entry in calibrate.all_entries((16, 64, 256)):
        lengths, heads, d = calibrate.workload(entry)
        mode, nb, db = entry.split()
        assert calibrate.entry_key(mode, max(lengths), d) == entry  # the workload falls in its own entry
    with pytest.raises(ValueError, match="mode='eval' is unknown"):
        calibrate.entry_key("eval", 5, 64)
    with pytest.raises(ValueError, match="choices must be one of"):
        with calibrate.use({"inference n<=64 d<=64": "gpu"}):
            pass


# -- the choice drives varlen_attention ---------------------------------------------------------------

@needs_kernels
@pytest.mark.parametrize("train", [False, True])
def test_the_injected_table_drives_the_path_that_runs(train):
    torch.manual_seed(0)
    lengths = [300, 7, 120]  # longest 300: fixed rule says buckets for training, native at inference
    q, k, v = (torch.randn(sum(lengths), 2, 16, requires_grad=train) for _ in range(3))
    cu = cu_seqlens_from_lengths(lengths)
    entry = calibrate.entry_key("training" if train else "inference", 300, 16)
    outs = {}
    for path in ("native", "buckets"):
        with calibrate.use({entry: path}), kernels.record() as ran, torch.set_grad_enabled(train):
            outs[path] = varlen_attention(q, k, v, cu)
        assert ("native attention" in ran) == (path == "native")
    with calibrate.use({}), kernels.record() as ran, torch.set_grad_enabled(train):
        varlen_attention(q, k, v, cu)  # entry missing: the fixed rule
    assert ("native attention" in ran) == (not train)
    torch.testing.assert_close(outs["native"], outs["buckets"], atol=1e-5, rtol=1e-5)


def _reference(q, k, v, lengths, causal):
    """Each sequence alone through the readable path in float64: (T, H, d)."""
    outs, start = [], 0
    for n in lengths:
        qs, ks, vs = (t[start: start + n].double().transpose(0, 1)[None] for t in (q, k, v))
        mask = torch.ones(n, n, dtype=torch.bool).tril() if causal else None
        outs.append(scaled_dot_product_attention(qs, ks, vs, attend_mask=mask, impl="readable")[0].transpose(0, 1))
        start += n
    return torch.cat(outs)


@needs_kernels
@pytest.mark.parametrize("causal", [False, True])
def test_both_paths_compute_the_same_function_on_ragged_batches(causal):
    """float32: outputs and gradients of both paths within 1e-5 of each other and of a float64
    reference; bfloat16 (the bucketed path takes it, the native kernel does not): within 3e-2
    of the float32 answer (8 bits of mantissa, values of order 1)."""
    torch.manual_seed(1)
    lengths = [5, 0, 17, 1, 60, 33, 12]
    T = sum(lengths)
    cu = cu_seqlens_from_lengths(lengths)
    q, k, v = (torch.randn(T, 3, 16, requires_grad=True) for _ in range(3))
    grad = torch.randn(T, 3, 16)
    results = {}
    for impl in ("native", "buckets"):
        with kernels.record() as ran:
            out = varlen_attention(q, k, v, cu, causal=causal, impl=impl)
        assert ("native attention" in ran) == (impl == "native")
        results[impl] = (out, *torch.autograd.grad(out, (q, k, v), grad))
    ref = _reference(q, k, v, lengths, causal)
    ref_grads = torch.autograd.grad(ref, (q, k, v), grad.double())
    for impl, (out, *grads) in results.items():
        torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
        for g, r in zip(grads, ref_grads):
            torch.testing.assert_close(g.double(), r.double(), atol=1e-5, rtol=1e-5)

    bf = [t.detach().bfloat16() for t in (q, k, v)]
    with kernels.record() as ran:
        out_bf = varlen_attention(*bf, cu, causal=causal)  # auto: the native kernel cannot take bfloat16
    assert out_bf.dtype == torch.bfloat16 and "native attention" not in ran
    torch.testing.assert_close(out_bf.float(), results["buckets"][0].detach(), atol=3e-2, rtol=0)
    with pytest.raises(ValueError, match="impl='native' cannot serve this call"):
        varlen_attention(*bf, cu, impl="native")


# -- the command ---------------------------------------------------------------------------------------

def test_bench_calibrate_show_prints_the_kept_table_without_measuring(cache, capsys, tmp_path):
    from attnlab.cli import main

    assert main(["bench", "calibrate", "--show"]) == 0
    assert "no calibration kept" in capsys.readouterr().out
    entry = "training n<=4096 d<=64"
    calibrate.save(calibrate.key_parts(), {entry: {**ROW, "choice": "buckets", "why": "buckets 1.50x faster than native"}})
    calibrate.clear()
    out_json = tmp_path / "table.json"
    assert main(["bench", "calibrate", "--show", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert f"| {entry} | fake | 1.000 | 2.000 | 2.00 | buckets | buckets 1.50x faster than native |" in text
    assert json.loads(out_json.read_text())["entries"][entry]["choice"] == "buckets"
    assert cache == []  # nothing measured


@needs_kernels
def test_measuring_runs_both_paths_unseen_by_record_and_inside_inference_mode():
    with kernels.record() as ran, torch.inference_mode():
        row = calibrate.measure_batch("training", [5, 9, 3], 2, 8, rounds=1, attention=timed_attention)
    assert ran == set()  # the timing runs are not the caller's work
    assert row["native_ms"] > 0 and row["buckets_ms"] > 0 and row["choice"] in calibrate.PATHS
    assert row["ratio"] == pytest.approx(row["buckets_ms"] / row["native_ms"], rel=1e-2)
