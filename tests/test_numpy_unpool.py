"""poolkit.numpy max_unpool against torch: round trips through max pooling, explicit
output sizes, gradients, invalid indices and sizes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import poolkit.numpy as pnp

torch = pytest.importorskip("torch")
F = torch.nn.functional


@st.composite
def unpool_cases(draw):
    dims = draw(st.sampled_from([1, 2, 3]))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    spatial = tuple(draw(st.integers(k, k + (6 if dims < 3 else 3))) for k in kernel)
    batched = draw(st.booleans())
    lead = (draw(st.sampled_from([0, 1, 2])), draw(st.integers(1, 2))) if batched else \
        (draw(st.integers(1, 2)),)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal(lead + spatial)
    use_size = draw(st.booleans())
    return dims, x.astype(dtype), kernel, stride, padding, spatial if use_size else None


@given(case=unpool_cases())
def test_unpool_round_trip_matches_torch(case):
    dims, x, kernel, stride, padding, output_size = case
    pooled, index = getattr(F, f"max_pool{dims}d")(torch.tensor(x), kernel, stride, padding,
                                                   return_indices=True)
    name = f"max_unpool{dims}d"
    try:
        expected = getattr(F, name)(pooled.clone().requires_grad_(), index, kernel, stride,
                                    padding, output_size)
    except (RuntimeError, ValueError) as error:  # e.g. default size smaller than an index
        with pytest.raises(ValueError, match="indices|output_size|output size"):
            getattr(pnp, name)(pooled.numpy(), index.numpy(), kernel, stride, padding,
                               output_size)
        assert str(error)
        return
    if expected.numel() == 0 and pooled.numel() > 0:
        # torch silently drops every value when the output plane is empty (e.g. a default
        # size of 0); poolkit refuses: the indices point outside it (deliberately stricter)
        with pytest.raises(ValueError, match="indices"):
            getattr(pnp, name)(pooled.numpy(), index.numpy(), kernel, stride, padding,
                               output_size)
        return
    ours = getattr(pnp, name)(pooled.numpy(), index.numpy(), kernel, stride, padding,
                              output_size)
    assert ours.dtype == x.dtype
    np.testing.assert_array_equal(ours, expected.detach().numpy())
    # gradient: the output gradient read back at the indices
    values = pooled.clone().requires_grad_()
    out = getattr(F, name)(values, index, kernel, stride, padding, output_size)
    g = np.random.default_rng(0).standard_normal(tuple(out.shape)).astype(x.dtype)
    out.backward(torch.tensor(g))
    our_grad = getattr(pnp, f"{name}_backward")(g, pooled.numpy(), index.numpy(), kernel,
                                                stride, padding, output_size)
    np.testing.assert_array_equal(our_grad, values.grad.numpy())


def test_unpool_hand_worked():
    x = np.array([[1.0, 3.0, 2.0, 0.0, 5.0, 4.0]])
    values, index = pnp.max_pool1d(x, 2, return_indices=True)  # [3, 2, 5] at [1, 2, 4]
    np.testing.assert_array_equal(index, [[1, 2, 4]])
    np.testing.assert_array_equal(pnp.max_unpool1d(values, index, 2), [[0, 3, 2, 0, 5, 0]])
    # an odd input size needs output_size to come back: 7 -> 3 -> default 6
    y = np.arange(7.0).reshape(1, 7)
    values, index = pnp.max_pool1d(y, 2, return_indices=True)
    assert pnp.max_unpool1d(values, index, 2).shape == (1, 6)
    np.testing.assert_array_equal(pnp.max_unpool1d(values, index, 2, output_size=(7,)),
                                  [[0, 1, 0, 3, 0, 5, 0]])
    # repeated indices: the last value written stays (PyTorch's CPU kernel)
    np.testing.assert_array_equal(
        pnp.max_unpool1d(np.array([[[1.0, 2.0]]]), np.array([[[0, 0]]]), 2), [[[2, 0, 0, 0]]])
    grad = pnp.max_unpool1d_backward(np.arange(6.0).reshape(1, 6), values[:, :3] * 0 + 1,
                                     np.array([[1, 3, 5]]), 2)
    np.testing.assert_array_equal(grad, [[1, 3, 5]])


@pytest.mark.parametrize(
    ("change", "exc", "word"),
    [
        ({"indices": "shape"}, ValueError, "indices"),
        ({"indices": "range"}, ValueError, "indices"),
        ({"indices": "negative"}, ValueError, "indices"),
        ({"indices": "float"}, TypeError, "indices"),
        ({"output_size": (6, 5)}, ValueError, "output_size"),
        ({"output_size": (5, 5, 5)}, ValueError, "output_size"),
        ({"padding": 3}, ValueError, "output size"),
        ({"input": "2d"}, ValueError, "input"),
        ({"input": "empty_channels"}, ValueError, "input"),
    ],
)
def test_unpool_invalid_arguments_refused_like_torch(change, exc, word):
    pooled, index = F.max_pool2d(torch.randn(1, 2, 4, 4, dtype=torch.float64), 2,
                                 return_indices=True)
    args = {"input": pooled, "indices": index, "kernel_size": 2, "stride": 2, "padding": 0,
            "output_size": None}
    kind = change.get("indices") or change.get("input")
    if kind == "shape":
        args["indices"] = index[..., :1]
    elif kind == "range":
        args["indices"] = index + 100
    elif kind == "negative":
        args["indices"] = index - 100
    elif kind == "float":
        args["indices"] = index.double()
    elif kind == "2d":
        args["input"], args["indices"] = pooled[0, 0], index[0, 0]
    elif kind == "empty_channels":
        args["input"], args["indices"] = pooled[:, :0], index[:, :0]
    else:
        args.update(change)
    with pytest.raises((RuntimeError, ValueError)):
        F.max_unpool2d(**args)
    ours = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    with pytest.raises(exc, match=word):
        pnp.max_unpool2d(**ours)
