"""attnlab.hf in bfloat16: a tiny checkpoint loaded with ``dtype=torch.bfloat16`` runs and stays
near its float32 self; ``hidden_difference`` measures exactly what it says.

Tolerance: bfloat16 keeps 8 significant bits, so one rounding costs up to 2^-9 ~ 2e-3 of a
value. The final LayerNorm's output alone is rounded once; every layer adds a few roundings
(weights, matmul inputs, the residual sums, softmax), and three layers stay below ~2e-2
relative (1e-2 to 2e-2 measured across families). 5e-2 leaves room for other CPUs' summation
orders; a wrong result (weights lost or garbled in the cast) is off by ~1 relative. The cosine
of two vectors at relative error e is about 1 - e^2 / 2, so 0.995 per piece is the same bound
with room for the worst single piece. Above 1e-4 relative, bfloat16 really ran.
"""

from __future__ import annotations

import pytest
import torch

from attnlab.bench.hf.bf16 import hidden_difference
from attnlab.hf import load_encoder
from tiny_hf import FAMILIES, VOCAB, hf_model, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
RELATIVE, COSINE = 5e-2, 0.995


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_encoder_stays_near_fp32(family, tmp_path):
    save_checkpoint(hf_model(family), tmp_path)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (47,), generator=generator)
    cu = torch.tensor([0, 9, 12, 29, 30, 47])  # ragged, one sentence of a single piece
    with torch.inference_mode():
        fp32, bf16 = (load_encoder(tmp_path, dtype=dt).forward_packed(ids, cu).last_hidden_state
                      for dt in (torch.float32, torch.bfloat16))
    assert bf16.dtype == torch.bfloat16 and bf16.shape == fp32.shape
    d = hidden_difference(fp32, bf16)
    assert 1e-4 < d["relative"] < RELATIVE, d
    assert d["min_cosine"] > COSINE and d["mean_cosine"] >= d["min_cosine"], d
    assert d["mean_abs"] <= d["max_abs"]


def test_hidden_difference_numbers():
    fp32 = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    other = torch.tensor([[3.0, 4.5], [0.0, 1.0]], dtype=torch.bfloat16)
    d = hidden_difference(fp32, other)
    assert d["max_abs"] == 1.0 and d["mean_abs"] == pytest.approx(2.5 / 4)
    assert d["relative"] == pytest.approx((0.25 + 2) ** 0.5 / (26 ** 0.5))
    assert d["min_cosine"] == pytest.approx(0.0, abs=1e-7)  # (1, 0) against (0, 1)
    assert d["mean_cosine"] == pytest.approx((3 * 3 + 4 * 4.5) / (5 * (9 + 20.25) ** 0.5) / 2)
