"""SoftPool with ``-inf`` in a window, in every engine (poolkit.nn eager and traced,
poolkit.numpy, poolkit.keras), against a naive reference built on ``torch.softmax``.

``torch.softmax`` gives a ``-inf`` logit weight exactly 0, and ``x e^x -> 0`` as ``x -> -inf``,
so a window's value is the softmax-weighted average of its other values; a window of only
``-inf`` gives ``-inf`` (its max, as torch's max pool gives). Before the fix the eager path gave
0 for every window holding a ``-inf`` (``0 * -inf = NaN`` in the numerator, turned into 0).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from poolkit.nn.exponential import soft_pool1d, soft_pool2d  # noqa: E402
from poolkit.numpy import families as numpy_families  # noqa: E402

INF = float("inf")


def naive_soft_pool1d(x: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """Loop over windows: ``sum(softmax(w) * w)`` with ``-inf`` terms taken as 0 (their weight
    is 0); padding takes no part; a window of only ``-inf`` gives ``-inf``."""
    x = x.double()
    length = x.shape[-1]
    starts = range(-padding, length + padding - kernel + 1, stride)
    out = torch.empty(*x.shape[:-1], len(starts), dtype=torch.float64)
    for j, start in enumerate(starts):
        window = x[..., max(start, 0):min(start + kernel, length)]
        weights = torch.softmax(window, dim=-1)
        value = (weights * torch.where(torch.isneginf(window), 0.0, window)).sum(-1)
        out[..., j] = torch.where(torch.isneginf(window).all(-1), -INF, value)
    return out


CASES = [
    ([1.0, -INF, 2.0, 3.0, -INF, -INF], 2, 2, 0),
    ([1.0, -INF, 2.0, 3.0, -INF, -INF], 3, 1, 0),
    ([-INF, -INF, 1.0], 2, 1, 1),
    ([0.5, -INF, -INF, -INF, 4.0], 3, 2, 1),
]


@pytest.mark.parametrize("values, kernel, stride, padding", CASES)
def test_softpool_ignores_neg_inf_in_every_engine(values, kernel, stride, padding):
    x = torch.tensor([[values]])
    expected = naive_soft_pool1d(x, kernel, stride, padding)
    eager = soft_pool1d(x, kernel, stride, padding).double()
    engine = torch.from_numpy(numpy_families.soft_pool1d(x.numpy().astype(np.float64), kernel,
                                                         stride, padding))
    for got in (eager, engine):
        assert torch.equal(torch.isneginf(got), torch.isneginf(expected))
        assert torch.allclose(got, expected, atol=1e-6, equal_nan=False)


def test_softpool_hand_worked_window():
    # window (1, -inf): the -inf has weight e^-inf / (e^1 + e^-inf) = 0, so the value is 1
    y = soft_pool1d(torch.tensor([[[1.0, -INF]]]), 2)
    assert float(y) == 1.0


def test_softpool_traced_path_agrees_with_eager():
    from poolkit.nn import _traceable
    from poolkit.nn._utils import resolve_window

    x = torch.tensor([[[1.0, -INF, -INF, -INF, 2.0, INF, float("nan"), 1.0, 3.0, -INF]]])
    for size, stride in ((2, 2), (3, 1)):
        kernel, step, pad = resolve_window(x, size, stride, 0, 1)
        traced = _traceable.exp_weighted_pool(x, None, kernel, step, pad, 1, False)
        torch.testing.assert_close(traced, soft_pool1d(x, size, stride), equal_nan=True)
    assert soft_pool1d(x, 2, 2).tolist()[0][0][:3] == [1.0, -INF, INF]


def test_softpool_gradient_with_neg_inf_matches_the_numpy_engine_and_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    x[0, 1, 2, 3] = x[1, 2, 0, 0] = x[1, 2, 0, 1] = -INF
    x.requires_grad_(True)
    y = soft_pool2d(x, 2, 2)
    grad_output = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, grad_output)
    reference = numpy_families.soft_pool2d_backward(grad_output.numpy(), x.detach().numpy(), 2, 2)
    assert torch.isfinite(grad).all()
    assert torch.allclose(grad, torch.from_numpy(reference), atol=1e-10)
    assert float(grad[0, 1, 2, 3]) == 0.0  # a -inf value gets no gradient

    finite = x.detach().clone().requires_grad_(True)
    mask = torch.isneginf(finite.detach())

    def with_neg_inf(z):
        return soft_pool2d(torch.where(mask, -INF, z), 2, 2)

    assert torch.autograd.gradcheck(with_neg_inf, (finite,))


def test_keras_softpool_ignores_neg_inf():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    from poolkit.keras.pooling import SoftPool

    values, kernel, stride, padding = CASES[1]
    expected = naive_soft_pool1d(torch.tensor([[values]]), kernel, stride, padding)
    layer = SoftPool(kernel, stride, padding, dims=1)
    got = np.asarray(keras.ops.convert_to_numpy(layer(np.array(values, "float32")[None, :, None])))
    np.testing.assert_allclose(got.ravel(), expected.numpy().ravel(), rtol=1e-5)
