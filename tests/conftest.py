"""Shared test settings: small, deterministic hypothesis runs (no deadline: torch's first calls are slow)."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "attnlab",
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("attnlab")


import os

import pytest
import torch

# impl="auto" takes the fixed rule in tests: no timing runs inside them, the same choice on
# every machine (tests of the calibration inject their tables, attnlab.kernels.calibrate.use)
os.environ.setdefault("ATTNLAB_CALIBRATE", "0")


@pytest.fixture
def one_thread():
    """Tiny tensors: one torch thread is faster than two competing ones (use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
