"""NaN, infinity and empty batches through every pooling family of ``list_pools()``.

The reference is torch's max pool: a window holding a NaN gives NaN, the other windows (and the
other samples) are untouched; a window holding ``+inf`` never gives a finite number; a batch of
zero samples gives zero outputs of the usual shape. A new family is checked by being registered.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from poolkit.nn import create_pool, list_pools, pool_info  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_nn_factory import C, global_kwargs, local_kwargs, spatial_shape  # noqa: E402

# Families whose windows reach beyond torch's for the same kernel (documented in
# docs/reliability.md): the NaN spreads further than max pooling's, never less.
SPREADS = {
    "lip": "the logit module's convolution and instance norm see neighbouring positions and "
           "every channel of the sample",
    "maxblur": "the blur after the max mixes neighbouring outputs",
}


def _forms(name):
    info = pool_info(name)
    forms = []
    if info.global_:
        forms += [("global", dims, global_kwargs(name)) for dims in info.dims]
    if info.local:
        forms += [("local", dims, local_kwargs(name)) for dims in info.windowed_dims]
    return forms


def _cases():
    for name in list_pools():
        for form, dims, kwargs in _forms(name):
            for training in (False, True):
                mode = "train" if training else "eval"
                yield pytest.param(name, dims, kwargs, training,
                                   id=f"{name}-{form}-{dims}d-{mode}")


@pytest.mark.parametrize("name, dims, kwargs, training", list(_cases()))
def test_nan_and_inf_reach_the_output_and_stay_in_their_sample(name, dims, kwargs, training):
    torch.manual_seed(0)
    pool = create_pool(name, dims=dims, **kwargs).train(training)
    x = torch.rand(2, C, *spatial_shape(dims)) + 0.1
    clean = pool(x)
    assert torch.isfinite(clean).all()
    for bad in (float("nan"), float("inf")):
        poisoned = x.clone()
        poisoned[0, 1].view(-1)[3] = bad
        y = pool(poisoned)
        assert not torch.isfinite(y[0]).all(), (name, bad)
        if bad != bad:
            assert torch.isnan(y[0]).any(), name
        assert torch.isfinite(y[1]).all(), (name, "leaks into the other sample")


@pytest.mark.parametrize("name, dims, kwargs, training", list(_cases()))
def test_an_empty_batch_gives_an_empty_result(name, dims, kwargs, training):
    pool = create_pool(name, dims=dims, **kwargs).train(training)
    full = pool(torch.rand(2, C, *spatial_shape(dims)))
    empty = pool(torch.rand(0, C, *spatial_shape(dims), requires_grad=True))
    assert empty.shape == (0, *full.shape[1:])
    empty.sum().backward()  # and it trains


def _plain_window_pools() -> list[str]:
    """Families whose windowed form takes ``kernel_size=3, stride=2`` and gives one value per
    window of torch's max pool (the others are covered by the tests above)."""
    names = []
    for name in list_pools():
        extra = {"channels": C} if name in ("lip", "attention") else {}
        try:
            pool = create_pool(name, dims=2, kernel_size=3, stride=2, **extra).eval()
        except (TypeError, ValueError):  # no kernel_size/stride windows (spp, fractional, ...)
            continue
        if pool(torch.rand(1, C, 9, 9)).shape == (1, C, 4, 4):
            names.append(name)
    return names


@pytest.mark.parametrize("name", _plain_window_pools())
def test_a_nan_decides_exactly_the_windows_of_torchs_max_pool(name):
    extra = {"channels": C} if name in ("lip", "attention") else {}
    pool = create_pool(name, dims=2, kernel_size=3, stride=2, **extra).eval()
    x = torch.rand(2, C, 9, 9) + 0.1
    x[0, 1, 4, 3] = float("nan")
    x[1, 2, 0, 0] = float("nan")
    y, reference = pool(x), F.max_pool2d(x, 3, 2)
    if name in SPREADS:
        assert (torch.isnan(y) >= torch.isnan(reference)).all()
    else:
        assert torch.equal(torch.isnan(y), torch.isnan(reference)), name


def test_the_plain_window_check_covers_the_usual_families():
    assert {"avg", "max", "lp", "lp_abs", "gem", "softpool", "lip", "lse", "mixed",
            "stochastic", "avgmax", "gated", "tree"} <= set(_plain_window_pools())


def test_gem_and_stochastic_by_hand():
    # windows (1, nan) and (2, 3): the first is NaN, the second what it is without the NaN
    x = torch.tensor([[[1.0, float("nan"), 2.0, 3.0]]])
    gem = create_pool("gem", dims=1, kernel_size=2, stride=2).eval()
    y = gem(x).detach()
    assert torch.isnan(y[0, 0, 0])
    assert float(y[0, 0, 1]) == pytest.approx(((2**3 + 3**3) / 2) ** (1 / 3), rel=1e-5)
    stochastic = create_pool("stochastic", dims=1, kernel_size=2, stride=2).eval()
    y = stochastic(x)
    assert torch.isnan(y[0, 0, 0]) and float(y[0, 0, 1]) == pytest.approx((4 + 9) / (2 + 3))
    # SoftPool: +inf wins its window; -inf has weight 0
    soft = create_pool("softpool", dims=1, kernel_size=2, stride=2)
    y = soft(torch.tensor([[[1.0, float("inf"), 0.0, float("-inf")]]]))
    assert float(y[0, 0, 0]) == float("inf") and float(y[0, 0, 1]) == pytest.approx(0.0)
