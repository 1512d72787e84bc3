"""poolkit.nn's RoI layers: equal to the NumPy engine (itself checked against onnxruntime and a
naive loop in test_numpy_roi.py), gradcheck in float64, FPN level mapping by hand, the RoI
registry, invalid arguments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import poolkit.numpy as pnp
from poolkit.nn import (
    ROI_POOLS,
    MultiScaleRoIAlign,
    PSRoIAlign,
    RoIAlign,
    RoIPool,
    create_roi_pool,
    fpn_levels,
    list_roi_pools,
)
from poolkit.nn import functional as PF

torch = pytest.importorskip("torch")

BOXES = {
    "inside": [[0, 2.0, 3.0, 13.0, 11.0], [1, 4.4, 0.6, 9.7, 15.1]],
    "border": [[0, 0.0, 0.0, 22.0, 18.0], [1, 15.0, 10.0, 22.0, 18.0], [0, -1.0, -2.0, 3.0, 2.0]],
    "outside": [[1, -12.0, -9.0, -3.0, -4.0], [0, 30.0, 2.0, 40.0, 8.0]],
    "degenerate": [[0, 6.0, 6.0, 6.0, 6.0], [1, 8.0, 4.0, 3.0, 2.0], [0, 4.0, 4.0, 4.5, 12.0]],
}
TOL = {torch.float32: {"rtol": 1e-5, "atol": 1e-5}, torch.float64: {"rtol": 1e-10, "atol": 1e-10}}


def _input(dtype, channels=3, seed=0, requires_grad=False):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, channels, 9, 11, generator=generator, dtype=dtype)
    return x.requires_grad_(requires_grad)


def _grad_of(output):
    return torch.randn(output.shape, generator=torch.Generator().manual_seed(1),
                       dtype=output.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 1, 2])
@pytest.mark.parametrize("case", sorted(BOXES))
def test_roi_align_equals_numpy_engine(dtype, aligned, sampling_ratio, case):
    x = _input(dtype, requires_grad=True)
    boxes = torch.tensor(BOXES[case], dtype=dtype)
    out = PF.roi_align(x, boxes, (3, 2), 0.5, sampling_ratio, aligned)
    xn, bn = x.detach().numpy(), boxes.numpy()
    expected = pnp.roi_align(xn, bn, (3, 2), 0.5, sampling_ratio, aligned)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.detach().numpy(), expected, **TOL[dtype])
    grad = _grad_of(out)
    out.backward(grad)
    np.testing.assert_allclose(
        x.grad.numpy(),
        pnp.roi_align_backward(grad.numpy(), xn, bn, (3, 2), 0.5, sampling_ratio, aligned),
        **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", sorted(BOXES))
def test_roi_pool_equals_numpy_engine(dtype, case):
    x = _input(dtype, requires_grad=True)
    boxes = torch.tensor(BOXES[case], dtype=dtype)
    out = PF.roi_pool(x, boxes, (3, 2), 0.5)
    xn, bn = x.detach().numpy(), boxes.numpy()
    np.testing.assert_array_equal(out.detach().numpy(), pnp.roi_pool(xn, bn, (3, 2), 0.5))
    grad = _grad_of(out)
    out.backward(grad)
    np.testing.assert_allclose(x.grad.numpy(),
                               pnp.roi_pool_backward(grad.numpy(), xn, bn, (3, 2), 0.5),
                               **TOL[dtype])


def test_roi_pool_ties_and_nan_follow_the_scan():
    """Ties: the first maximum in row-major order takes the gradient; NaN never wins."""
    x = torch.tensor([[[[1.0, 3.0, 3.0], [3.0, float("nan"), 2.0], [0.0, 0.0, 0.0]]]],
                     dtype=torch.float64, requires_grad=True)
    out = PF.roi_pool(x, torch.tensor([[0, 0.0, 0.0, 2.0, 1.0]], dtype=torch.float64), 1)
    assert out.item() == 3.0
    out.sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0].numpy(), [[0, 1, 0], [0, 0, 0], [0, 0, 0]])
    _, index = pnp.roi_pool(x.detach().numpy(), np.array([[0, 0.0, 0.0, 2.0, 1.0]]), 1,
                            return_indices=True)
    assert index.item() == 1


@pytest.mark.parametrize("sampling_ratio", [-1, 2])
@pytest.mark.parametrize("case", ["inside", "border", "outside"])
def test_ps_roi_align_equals_numpy_engine(sampling_ratio, case):
    x = _input(torch.float64, channels=12, requires_grad=True)
    boxes = torch.tensor(BOXES[case], dtype=torch.float64)
    out = PSRoIAlign((3, 2), 0.5, sampling_ratio)(x, boxes)
    xn, bn = x.detach().numpy(), boxes.numpy()
    np.testing.assert_allclose(out.detach().numpy(),
                               pnp.ps_roi_align(xn, bn, (3, 2), 0.5, sampling_ratio), 1e-10, 1e-10)
    grad = _grad_of(out)
    out.backward(grad)
    np.testing.assert_allclose(
        x.grad.numpy(), pnp.ps_roi_align_backward(grad.numpy(), xn, bn, (3, 2), 0.5,
                                                  sampling_ratio), 1e-10, 1e-10)


@pytest.mark.parametrize("layer", [
    RoIAlign((2, 3), 0.5, 2, aligned=False), RoIAlign((2, 3), 0.5, -1, aligned=True),
    RoIPool((2, 3), 0.5), PSRoIAlign((2, 1), 0.5, 2),
])
def test_gradcheck(layer):
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    boxes = [torch.tensor([[2.0, 3.0, 9.0, 7.0], [-1.0, -2, 3, 2]], dtype=torch.float64),
             torch.tensor([[4.4, 0.6, 9.7, 11.1]], dtype=torch.float64)]
    assert torch.autograd.gradcheck(lambda v: layer(v, boxes), (x,))
    if not isinstance(layer, RoIPool):  # linear in x: the gradient of the gradient is 0
        assert torch.autograd.gradgradcheck(lambda v: layer(v, boxes), (x,))


def test_sparse_entries_built_in_chunks_are_the_same(monkeypatch):
    import poolkit.numpy.roi as numpy_roi

    x = _input(torch.float64, requires_grad=True)
    boxes = torch.tensor(BOXES["inside"] + BOXES["border"] + BOXES["degenerate"],
                         dtype=torch.float64)
    whole = PF.roi_align(x, boxes, (3, 2), 0.5, -1)
    monkeypatch.setattr(numpy_roi, "_ENTRY_CHUNK", 7)  # about one box per chunk
    torch.testing.assert_close(PF.roi_align(x, boxes, (3, 2), 0.5, -1), whole, rtol=0, atol=0)


def test_box_list_and_empty_boxes():
    x = _input(torch.float32)
    listed = [torch.tensor([[1.0, 2, 8, 9]]), torch.zeros((0, 4))]
    stacked = torch.tensor([[0, 1.0, 2, 8, 9]])
    for fn in (PF.roi_align, PF.roi_pool):
        torch.testing.assert_close(fn(x, listed, 2), fn(x, stacked, 2))
        empty = fn(x, torch.zeros((0, 5)), (3, 2))
        assert empty.shape == (0, 3, 3, 2) and empty.dtype == torch.float32


def test_float16_input():
    x = _input(torch.float32)
    boxes = torch.tensor(BOXES["inside"])
    half = PF.roi_align(x.half(), boxes, 2, 0.5)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), PF.roi_align(x.half().float(), boxes, 2, 0.5),
                               rtol=1e-3, atol=1e-3)


@given(n_boxes=st.integers(0, 5), h=st.integers(1, 7), w=st.integers(1, 7),
       ph=st.integers(1, 3), pw=st.integers(1, 3), sampling_ratio=st.integers(-1, 2),
       aligned=st.booleans(), seed=st.integers(0, 2**16))
def test_roi_layers_property(n_boxes, h, w, ph, pw, sampling_ratio, aligned, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, h, w))
    rois = np.concatenate([rng.integers(0, 2, (n_boxes, 1)),
                           rng.uniform(-3, 9, (n_boxes, 4))], axis=1)
    out = PF.roi_align(torch.from_numpy(x), torch.from_numpy(rois), (ph, pw), 1.0,
                       sampling_ratio, aligned)
    np.testing.assert_allclose(out.numpy(), pnp.roi_align(x, rois, (ph, pw), 1.0,
                                                          sampling_ratio, aligned), 1e-10, 1e-10)
    pooled = PF.roi_pool(torch.from_numpy(x), torch.from_numpy(rois), (ph, pw))
    np.testing.assert_array_equal(pooled.numpy(), pnp.roi_pool(x, rois, (ph, pw)))


# --------------------------------------------------------------------------------------------
# Multi-scale RoI Align
# --------------------------------------------------------------------------------------------


def test_fpn_levels_hand_worked():
    """k = floor(4 + log2(sqrt(wh) / 224) + 1e-6), clamped to [2, 5], minus 2: a 224 box is
    level 4 (index 2), 112 level 3, 448 level 5, 16 clamps to 2, 2000 clamps to 5."""
    sides = [224.0, 112.0, 448.0, 16.0, 2000.0, 223.0]
    boxes = [torch.tensor([[0.0, 0.0, s, s] for s in sides])]
    assert fpn_levels(boxes, 2, 5).tolist() == [2, 1, 3, 0, 3, 1]


def test_multiscale_roi_align_picks_each_boxs_level():
    torch.manual_seed(0)
    image_shapes = [(256, 256), (240, 256)]
    features = {"p2": torch.randn(2, 4, 64, 64), "p3": torch.randn(2, 4, 32, 32),
                "p4": torch.randn(2, 4, 16, 16), "p5": torch.randn(2, 4, 8, 8)}
    boxes = [torch.tensor([[0.0, 0, 30, 30], [10, 10, 240, 230]]),
             torch.tensor([[5.0, 5, 125, 125], [0, 0, 60, 70]])]
    layer = MultiScaleRoIAlign(["p2", "p3", "p4", "p5"], 7, 2)
    out = layer(features, boxes, image_shapes)
    assert out.shape == (4, 4, 7, 7)
    levels = fpn_levels(boxes, 2, 5).tolist()
    assert levels == [0, 2, 1, 0]  # sqrt(w h) = 30, 224.9, 120, 64.8
    rois = torch.tensor([[0, 0.0, 0, 30, 30], [0, 10, 10, 240, 230], [1, 5, 5, 125, 125],
                         [1, 0, 0, 60, 70]])
    for k, level in enumerate(levels):
        name, scale = f"p{level + 2}", 0.5 ** (level + 2)
        torch.testing.assert_close(out[k:k + 1], PF.roi_align(features[name], rois[k:k + 1], 7,
                                                              scale, 2))


def test_multiscale_single_level_and_errors():
    features = {"feat": torch.randn(1, 2, 16, 16)}
    boxes = [torch.tensor([[0.0, 0, 20, 20]])]
    layer = MultiScaleRoIAlign(["feat"], 3, 2)
    torch.testing.assert_close(layer(features, boxes, [(64, 64)]),
                               PF.roi_align(features["feat"], boxes, 3, 0.25, 2))
    with pytest.raises(ValueError, match="missing"):
        MultiScaleRoIAlign(["p9"], 3, 2)(features, boxes, [(64, 64)])
    with pytest.raises(ValueError, match="image_shapes"):
        layer(features, boxes, [])
    with pytest.raises(ValueError, match="featmap_names"):
        MultiScaleRoIAlign([], 3, 2)


# --------------------------------------------------------------------------------------------
# Registry and invalid arguments
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_roi_pools())
def test_every_registered_roi_pool(name):
    layer = create_roi_pool(name, 2, spatial_scale=0.5)
    assert isinstance(layer, ROI_POOLS[name].cls)
    x = _input(torch.float64, channels=8, requires_grad=True)
    out = layer(x, torch.tensor(BOXES["inside"], dtype=torch.float64))
    channels = 2 if name == "ps_roi_align" else 8
    assert out.shape == (2, channels, 2, 2)
    out.sum().backward()
    assert x.grad.abs().sum() > 0
    assert getattr(layer, "aligned", False) == (name == "roi_align_aligned")


def test_registry_errors():
    with pytest.raises(ValueError, match="roi_align_aligned"):
        create_roi_pool("roi_allign")
    with pytest.raises(TypeError, match="fixes"):
        create_roi_pool("roi_align_aligned", 7, aligned=False)
    with pytest.raises(TypeError, match=r"accepts \['spatial_scale'\]"):
        create_roi_pool("roi_pool", 7, sampling_ratio=2)
    layer = RoIAlign(7)
    assert create_roi_pool(layer) is layer


BAD = [
    (lambda x: PF.roi_align(x, torch.zeros(2, 4), 2), ValueError, "list with one array"),
    (lambda x: PF.roi_align(x, torch.tensor([[0, float("nan"), 0, 1, 1]]), 2), ValueError, "NaN"),
    (lambda x: PF.roi_pool(x, torch.tensor([[5.0, 0, 0, 1, 1]]), 2), ValueError, "batch index"),
    (lambda x: PF.roi_align(x, [torch.zeros(1, 4)], 2), ValueError, "batch size 2"),
    (lambda x: PF.roi_align(x, torch.zeros(1, 5), (2, 0)), ValueError, "output_size"),
    (lambda x: PF.roi_align(x, torch.zeros(1, 5), 2, 0.0), ValueError, "spatial_scale"),
    (lambda x: PF.ps_roi_align(x, torch.zeros(1, 5), 2), ValueError, "multiple"),
    (lambda x: PF.roi_align(x[0], torch.zeros(1, 5), 2), ValueError, "4-d"),
    (lambda x: PF.roi_align(x.long(), torch.zeros(1, 5), 2), TypeError, "floating"),
    (lambda x: RoIAlign(0), ValueError, "output_size"),
    (lambda x: RoIPool(2, spatial_scale=-0.5), ValueError, "spatial_scale"),
]


@pytest.mark.parametrize("call, error, match", BAD)
def test_invalid_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call(_input(torch.float32))
