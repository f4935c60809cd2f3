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
