"""poolkit.numpy's RoI ops against independent references.

- onnxruntime's ``RoiAlign`` (opset 16; ``coordinate_transformation_mode`` ``half_pixel`` is
  ``aligned=True``, ``output_half_pixel`` is ``aligned=False``; mode ``avg``) and
  ``MaxRoiPool``, which follow the same Caffe2/Detectron kernels as torchvision's C++ ones;
- a naive per-box, per-bin, per-sample loop written from the papers (Fast R-CNN's quantised
  bins, Mask R-CNN's bilinear samples) with torchvision's border rules;
- hand-worked values; finite differences for the gradients.

onnxruntime differs from torchvision in one case, tested against the naive loop instead: with
``aligned=True`` and adaptive sampling, a box whose corners are swapped (``x2 < x1`` or
``y2 < y1``) gets a negative number of samples per bin (``ceil(roi / P) < 0``); torchvision loops
over no sample and returns 0, onnxruntime sizes a buffer by that count and fails with "Integer
overflow" -- see ``test_onnxruntime_quirk_inverted_box``. onnxruntime's ``MaxRoiPool`` has no
float64 kernel, so RoI pooling is compared in float32 (and float64 against the naive loop).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import poolkit.numpy as pnp
from poolkit.numpy import use_backend
from poolkit.numpy._backend import numba_available

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

BACKENDS = ["numpy"] + (["numba"] if numba_available() else [])
TOL = {np.float32: {"rtol": 1e-5, "atol": 1e-5}, np.float64: {"rtol": 1e-10, "atol": 1e-10}}


# --------------------------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------------------------


def _bilinear_weights(y, x, height, width):
    """The (row, col, weight) terms of one sample, torchvision's border rules: outside
    [-1, H] x [-1, W] nothing; otherwise clamp to the map and interpolate."""
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return []
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= height - 1:
        y0 = y1 = height - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= width - 1:
        x0 = x1 = width - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return [(y0, x0, (1 - ly) * (1 - lx)), (y0, x1, (1 - ly) * lx),
            (y1, x0, ly * (1 - lx)), (y1, x1, ly * lx)]


def naive_roi_align(x, rois, output_size, scale, sampling_ratio, aligned, ps=False):
    """Per box, bin and sample, in float64. Returns (output, weights) where weights[k][(c, ph,
    pw)] lists (c_in, row, col, weight) so that the gradient is the same loop transposed."""
    x = np.asarray(x, np.float64)
    _, channels, height, width = x.shape
    ph_n, pw_n = output_size
    c_out = channels // (ph_n * pw_n) if ps else channels
    out = np.zeros((len(rois), c_out, ph_n, pw_n))
    terms = []
    for k, (b, x1, y1, x2, y2) in enumerate(np.asarray(rois, np.float64)):
        off = 0.5 if aligned or ps else 0.0
        sx, sy, ex, ey = x1 * scale - off, y1 * scale - off, x2 * scale - off, y2 * scale - off
        rw, rh = ex - sx, ey - sy
        if not aligned and not ps:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / ph_n)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / pw_n)
        count = gh * gw if ps else max(gh * gw, 1)
        box_terms = {}
        for c in range(c_out):
            for i in range(ph_n):
                for j in range(pw_n):
                    c_in = (c * ph_n + i) * pw_n + j if ps else c
                    bin_terms = []
                    for iy in range(max(gh, 0)):
                        y = sy + i * rh / ph_n + (iy + 0.5) * rh / ph_n / gh
                        for ix in range(max(gw, 0)):
                            xx = sx + j * rw / pw_n + (ix + 0.5) * rw / pw_n / gw
                            for r, col, w in _bilinear_weights(y, xx, height, width):
                                bin_terms.append((c_in, r, col, w / count))
                    total = sum(w * x[int(b), ci, r, col] for ci, r, col, w in bin_terms)
                    out[k, c, i, j] = total if count else np.nan
                    box_terms[(c, i, j)] = bin_terms
        terms.append(box_terms)
    return out, terms


def naive_roi_align_backward(grad, x_shape, rois, terms):
    grad_input = np.zeros(x_shape)
    for k, box_terms in enumerate(terms):
        b = int(rois[k][0])
        for (c, i, j), bin_terms in box_terms.items():
            for c_in, r, col, w in bin_terms:
                grad_input[b, c_in, r, col] += grad[k, c, i, j] * w
    return grad_input


def naive_roi_pool(x, rois, output_size, scale):
    """Fast R-CNN's quantised max pooling, per bin: (output, argmax)."""
    x = np.asarray(x, np.float64)
    _, channels, height, width = x.shape
    ph_n, pw_n = output_size
    out = np.zeros((len(rois), channels, ph_n, pw_n))
    arg = np.full(out.shape, -1)
    for k, (b, *corners) in enumerate(np.asarray(rois, np.float64)):
        x1, y1, x2, y2 = (int(math.copysign(math.floor(abs(v * scale) + 0.5), v))
                          for v in corners)
        bh, bw = max(y2 - y1 + 1, 1) / ph_n, max(x2 - x1 + 1, 1) / pw_n
        for i in range(ph_n):
            h0 = min(max(math.floor(i * bh) + y1, 0), height)
            h1 = min(max(math.ceil((i + 1) * bh) + y1, 0), height)
            for j in range(pw_n):
                w0 = min(max(math.floor(j * bw) + x1, 0), width)
                w1 = min(max(math.ceil((j + 1) * bw) + x1, 0), width)
                for c in range(channels):
                    if h1 <= h0 or w1 <= w0:
                        continue
                    window = x[int(b), c, h0:h1, w0:w1]
                    flat = int(np.argmax(window))
                    out[k, c, i, j] = window.flat[flat]
                    arg[k, c, i, j] = (h0 + flat // (w1 - w0)) * width + w0 + flat % (w1 - w0)
    return out, arg


def ort_session(nodes, inputs, outputs, opset=16):
    graph = helper.make_graph(nodes, "roi", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _elem(dtype):
    return TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE


def ort_roi_align(x, rois, output_size, scale, sampling_ratio, aligned):
    elem = _elem(x.dtype)
    node = helper.make_node(
        "RoiAlign", ["X", "rois", "batch_indices"], ["Y"], mode="avg",
        output_height=output_size[0], output_width=output_size[1],
        sampling_ratio=max(sampling_ratio, 0), spatial_scale=float(scale),
        coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel")
    session = ort_session(
        [node],
        [helper.make_tensor_value_info("X", elem, None),
         helper.make_tensor_value_info("rois", elem, None),
         helper.make_tensor_value_info("batch_indices", TensorProto.INT64, None)],
        [helper.make_tensor_value_info("Y", elem, None)])
    return session.run(None, {"X": x, "rois": np.ascontiguousarray(rois[:, 1:], x.dtype),
                              "batch_indices": rois[:, 0].astype(np.int64)})[0]


def ort_max_roi_pool(x, rois, output_size, scale):
    elem = _elem(x.dtype)
    node = helper.make_node("MaxRoiPool", ["X", "rois"], ["Y"], pooled_shape=list(output_size),
                            spatial_scale=float(scale))
    session = ort_session(
        [node],
        [helper.make_tensor_value_info("X", elem, None),
         helper.make_tensor_value_info("rois", elem, None)],
        [helper.make_tensor_value_info("Y", elem, None)])
    return session.run(None, {"X": x, "rois": rois.astype(x.dtype)})[0]


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

H, W = 9, 11
#: boxes (batch, x1, y1, x2, y2) in image coordinates (spatial_scale 0.5 maps them to the map)
CASES = {
    "inside": [[0, 2.0, 3.0, 13.0, 11.0], [1, 4.4, 0.6, 9.7, 15.1]],
    "border": [[0, 0.0, 0.0, 22.0, 18.0], [1, 15.0, 10.0, 22.0, 18.0], [0, -1.0, -2.0, 3.0, 2.0]],
    "outside": [[1, -12.0, -9.0, -3.0, -4.0], [0, 30.0, 2.0, 40.0, 8.0],
                [1, 20.0, 16.0, 60.0, 50.0]],
    "degenerate": [[0, 6.0, 6.0, 6.0, 6.0], [1, 8.0, 4.0, 3.0, 2.0], [0, 4.0, 4.0, 4.5, 12.0]],
}


def _input(dtype, channels=3, seed=0):
    return np.random.default_rng(seed).standard_normal((2, channels, H, W)).astype(dtype)


def _boxes(case, dtype):
    return np.array(CASES[case], dtype)


def _ort_rejects(rois, sampling_ratio, aligned):
    """onnxruntime's quirk: aligned, adaptive, corners swapped (see module doc)."""
    if not aligned or sampling_ratio > 0:
        return False
    return bool(np.any((rois[:, 3] < rois[:, 1]) | (rois[:, 4] < rois[:, 2])))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 1, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_roi_align_matches_onnxruntime_and_naive(backend, dtype, aligned, sampling_ratio, case):
    x, rois, size, scale = _input(dtype), _boxes(case, dtype), (3, 2), 0.5
    with use_backend(backend):
        out = pnp.roi_align(x, rois, size, scale, sampling_ratio, aligned)
    expected, terms = naive_roi_align(x, rois, size, scale, sampling_ratio, aligned)
    assert out.dtype == dtype and out.shape == (len(rois), 3, 3, 2)
    np.testing.assert_allclose(out, expected, **TOL[dtype])
    if not _ort_rejects(rois, sampling_ratio, aligned):
        np.testing.assert_allclose(out, ort_roi_align(x, rois, size, scale, sampling_ratio,
                                                      aligned), **TOL[dtype])
    grad = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    with use_backend(backend):
        grad_input = pnp.roi_align_backward(grad, x, rois, size, scale, sampling_ratio, aligned)
    np.testing.assert_allclose(grad_input, naive_roi_align_backward(grad, x.shape, rois, terms),
                               **TOL[dtype])


def test_onnxruntime_quirk_inverted_box():
    """Swapped corners, aligned, adaptive: torchvision (and poolkit) give 0, onnxruntime
    fails."""
    x, rois = _input(np.float32), np.array([[0, 8.0, 2.0, 3.0, 9.0]], np.float32)
    with pytest.raises(Exception, match="overflow"):
        ort_roi_align(x, rois, (2, 2), 1.0, -1, True)
    np.testing.assert_array_equal(pnp.roi_align(x, rois, 2, 1.0, -1, True), 0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_roi_pool_matches_onnxruntime_and_naive(backend, dtype, case):
    x, rois, size, scale = _input(dtype), _boxes(case, dtype), (3, 2), 0.5
    with use_backend(backend):
        out, index = pnp.roi_pool(x, rois, size, scale, return_indices=True)
        plain = pnp.roi_pool(x, rois, size, scale)
    expected, arg = naive_roi_pool(x, rois, size, scale)
    np.testing.assert_array_equal(out, plain)
    np.testing.assert_allclose(out, expected, **TOL[dtype])
    np.testing.assert_array_equal(index, arg)
    if dtype == np.float32:  # onnxruntime has no float64 MaxRoiPool
        np.testing.assert_allclose(out, ort_max_roi_pool(x, rois, size, scale), **TOL[dtype])
    grad = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    with use_backend(backend):
        grad_input = pnp.roi_pool_backward(grad, x, rois, size, scale)
        again = pnp.roi_pool_backward(grad, x, rois, size, scale, indices=index)
    expected_grad = np.zeros(x.shape)
    for k, c, i, j in zip(*np.nonzero(arg >= 0), strict=True):
        b = int(rois[k, 0])
        expected_grad[b, c].flat[arg[k, c, i, j]] += grad[k, c, i, j]
    np.testing.assert_allclose(grad_input, expected_grad, **TOL[dtype])
    np.testing.assert_array_equal(grad_input, again)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sampling_ratio", [-1, 1, 2])
@pytest.mark.parametrize("case", ["inside", "border", "outside"])
def test_ps_roi_align_matches_naive(dtype, sampling_ratio, case):
    x, rois, size, scale = _input(dtype, channels=12), _boxes(case, dtype), (3, 2), 0.5
    out = pnp.ps_roi_align(x, rois, size, scale, sampling_ratio)
    expected, terms = naive_roi_align(x, rois, size, scale, sampling_ratio, True, ps=True)
    assert out.shape == (len(rois), 2, 3, 2)
    np.testing.assert_allclose(out, expected, **TOL[dtype])
    grad = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    np.testing.assert_allclose(pnp.ps_roi_align_backward(grad, x, rois, size, scale,
                                                         sampling_ratio),
                               naive_roi_align_backward(grad, x.shape, rois, terms), **TOL[dtype])


def test_ps_roi_align_degenerate_box_is_nan_like_torchvision():
    """PS RoI Align keeps a zero-size box as it is: no adaptive samples, 0 / 0."""
    x = _input(np.float64, channels=4)
    out = pnp.ps_roi_align(x, np.array([[0, 3.0, 3.0, 3.0, 3.0]]), 2)
    assert np.isnan(out).all()
    grad = pnp.ps_roi_align_backward(np.ones_like(out), x, np.array([[0, 3.0, 3, 3, 3]]), 2)
    np.testing.assert_array_equal(grad, 0)


# --------------------------------------------------------------------------------------------
# Hand-worked values
# --------------------------------------------------------------------------------------------


def test_roi_align_hand_worked():
    """x[h, w] = 10 h + w on a 4 x 4 map; box (0.5, 0.5)-(2.5, 2.5), aligned=False, one bin,
    sampling_ratio 2: samples at 1.0 and 2.0 in each axis -> values 11, 12, 21, 22, mean 16.5.
    aligned=True shifts the box by -0.5: samples at 0.5 and 1.5 -> 5.5, 6.5, 15.5, 16.5 -> 11.
    """
    x = (10 * np.arange(4.0)[:, None] + np.arange(4.0)[None, :])[None, None]
    box = np.array([[0, 0.5, 0.5, 2.5, 2.5]])
    assert pnp.roi_align(x, box, 1, 1.0, 2, aligned=False)[0, 0, 0, 0] == pytest.approx(16.5)
    assert pnp.roi_align(x, box, 1, 1.0, 2, aligned=True)[0, 0, 0, 0] == pytest.approx(11.0)
    # the gradient of the aligned=False value: each of the 4 samples sits on a pixel, 1/4 each
    grad = pnp.roi_align_backward(np.ones((1, 1, 1, 1)), x, box, 1, 1.0, 2)
    np.testing.assert_allclose(grad[0, 0], [[0, 0, 0, 0], [0, 0.25, 0.25, 0], [0, 0.25, 0.25, 0],
                                            [0, 0, 0, 0]])


def test_roi_pool_hand_worked():
    """Box (0.4, 0.6)-(2.5, 3.4) rounds to (0, 1)-(3, 3) (2.5 rounds away from zero): a 3-row
    x 4-column box; 2 x 2 bins of 1.5 x 2 cells -> rows [1, 3) and [2, 4), cols [0, 2), [2, 4)."""
    x = (10 * np.arange(5.0)[:, None] + np.arange(5.0)[None, :])[None, None]
    out, index = pnp.roi_pool(x, np.array([[0, 0.4, 0.6, 2.5, 3.4]]), 2, return_indices=True)
    np.testing.assert_array_equal(out[0, 0], [[21, 23], [31, 33]])
    np.testing.assert_array_equal(index[0, 0], [[11, 13], [16, 18]])


def test_box_list_equals_batch_index_array():
    x = _input(np.float64)
    per_image = [np.array([[1.0, 2, 8, 9]]), np.array([[0.0, 0, 4, 4], [3, 3, 12, 10]])]
    stacked = np.array([[0, 1.0, 2, 8, 9], [1, 0, 0, 4, 4], [1, 3, 3, 12, 10]])
    for fn in (pnp.roi_align, pnp.roi_pool):
        np.testing.assert_array_equal(fn(x, per_image, 2), fn(x, stacked, 2))


@pytest.mark.parametrize("fn", [pnp.roi_align, pnp.roi_pool])
def test_empty_boxes(fn):
    x = _input(np.float32)
    for boxes in (np.zeros((0, 5)), [np.zeros((0, 4)), np.zeros((0, 4))]):
        out = fn(x, boxes, (3, 2))
        assert out.shape == (0, 3, 3, 2) and out.dtype == np.float32
    backward = getattr(pnp, fn.__name__ + "_backward")
    grad = backward(np.zeros((0, 3, 3, 2), np.float32), x, np.zeros((0, 5)), (3, 2))
    assert grad.shape == x.shape and not grad.any()


def test_float16_is_computed_in_float32():
    x = _input(np.float32)
    rois = _boxes("inside", np.float32)
    half = pnp.roi_align(x.astype(np.float16), rois, 2, 0.5)
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, pnp.roi_align(x.astype(np.float16).astype(np.float32),
                                                   rois, 2, 0.5), rtol=1e-3, atol=1e-3)


# --------------------------------------------------------------------------------------------
# Gradients by finite differences
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_backward_finite_differences(aligned):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 6, 7))
    rois = np.array([[0, 0.3, 1.2, 9.1, 8.7], [1, -2.0, -1.0, 5.5, 4.0]])
    weights = rng.standard_normal((2, 2, 2, 3))

    def loss(v):
        return float((pnp.roi_align(v, rois, (2, 3), 0.7, 2, aligned) * weights).sum())

    grad = pnp.roi_align_backward(weights, x, rois, (2, 3), 0.7, 2, aligned)
    eps = 1e-6
    numeric = np.zeros_like(x)
    for pos in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[pos] = eps
        numeric[pos] = (loss(x + step) - loss(x - step)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------------------------
# Properties and invalid arguments
# --------------------------------------------------------------------------------------------


@given(
    n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 6), w=st.integers(1, 6),
    ph=st.integers(1, 3), pw=st.integers(1, 3), sampling_ratio=st.integers(-1, 3),
    aligned=st.booleans(), seed=st.integers(0, 2**16),
    n_boxes=st.integers(0, 4), scale=st.sampled_from([0.25, 0.5, 1.0, 1.5]),
)
def test_roi_align_property_against_naive(n, c, h, w, ph, pw, sampling_ratio, aligned, seed,
                                          n_boxes, scale):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    corners = rng.uniform(-3, 10, size=(n_boxes, 4))
    rois = np.concatenate([rng.integers(0, n, (n_boxes, 1)), corners], axis=1)
    expected, terms = naive_roi_align(x, rois, (ph, pw), scale, sampling_ratio, aligned)
    grad = rng.standard_normal(expected.shape)
    for backend in BACKENDS:
        with use_backend(backend):
            out = pnp.roi_align(x, rois, (ph, pw), scale, sampling_ratio, aligned)
            grad_input = pnp.roi_align_backward(grad, x, rois, (ph, pw), scale, sampling_ratio,
                                                aligned)
            pooled, index = pnp.roi_pool(x, rois, (ph, pw), scale, return_indices=True)
        np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(grad_input, naive_roi_align_backward(grad, x.shape, rois,
                                                                        terms),
                                   rtol=1e-10, atol=1e-10)
        expected_pool, arg = naive_roi_pool(x, rois, (ph, pw), scale)
        np.testing.assert_array_equal(pooled, expected_pool)
        np.testing.assert_array_equal(index, arg)


BAD = [
    (lambda x: pnp.roi_align(x, np.zeros((2, 4)), 2), ValueError, "list with one array"),
    (lambda x: pnp.roi_align(x, np.zeros((2, 6)), 2), ValueError, r"\(K, 5\)"),
    (lambda x: pnp.roi_align(x, np.array([[0, np.nan, 0, 1, 1]]), 2), ValueError, "NaN"),
    (lambda x: pnp.roi_align(x, np.array([[2, 0, 0, 1, 1.0]]), 2), ValueError, r"\[0, 2\)"),
    (lambda x: pnp.roi_align(x, np.array([[0.5, 0, 0, 1, 1]]), 2), ValueError, "batch index"),
    (lambda x: pnp.roi_align(x, [np.zeros((1, 4))], 2), ValueError, "batch size 2"),
    (lambda x: pnp.roi_align(x, [np.zeros((1, 4)), np.zeros((1, 5))], 2), ValueError,
     r"boxes\[1\]"),
    (lambda x: pnp.roi_align(x, np.zeros((1, 5)), 0), ValueError, "output_size"),
    (lambda x: pnp.roi_pool(x, np.zeros((1, 5)), (2, -1)), ValueError, "output_size"),
    (lambda x: pnp.roi_align(x, np.zeros((1, 5)), 2, spatial_scale=0.0), ValueError,
     "spatial_scale"),
    (lambda x: pnp.roi_align(x, np.zeros((1, 5)), 2, spatial_scale=-1), ValueError,
     "spatial_scale"),
    (lambda x: pnp.roi_align(x, np.zeros((1, 5)), 2, sampling_ratio=1.5), TypeError,
     "sampling_ratio"),
    (lambda x: pnp.roi_align(x[0], np.zeros((1, 5)), 2), ValueError, "4-d"),
    (lambda x: pnp.ps_roi_align(x, np.zeros((1, 5)), 2), ValueError, "multiple"),
    (lambda x: pnp.roi_align_backward(np.zeros((1, 3, 2, 3)), x, np.zeros((1, 5)), 2),
     ValueError, "grad_output"),
    (lambda x: pnp.roi_align(x.astype(int), np.zeros((1, 5)), 2), TypeError, "floating"),
]


@pytest.mark.parametrize("call, error, match", BAD)
def test_invalid_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call(_input(np.float64))


@given(size=st.one_of(st.integers(-3, 0), st.tuples(st.integers(-2, 3), st.integers(-2, 0))),
       scale=st.floats(-2, 0) | st.just(float("nan")) | st.just(float("inf")))
def test_invalid_sizes_and_scales_property(size, scale):
    x = _input(np.float64)
    with pytest.raises(ValueError, match="output_size"):
        pnp.roi_align(x, np.zeros((1, 5)), size)
    with pytest.raises(ValueError, match="spatial_scale"):
        pnp.roi_pool(x, np.zeros((1, 5)), 2, scale)


@given(index=st.one_of(st.integers(-5, -1), st.integers(2, 9),
                       st.floats(0.01, 1.99).filter(lambda v: v != 1.0)),
       k=st.integers(1, 4), nan_column=st.integers(1, 4), seed=st.integers(0, 99))
def test_invalid_boxes_property(index, k, nan_column, seed):
    """Any bad batch index, anywhere in the array, and any NaN coordinate is named."""
    x = _input(np.float64)
    rng = np.random.default_rng(seed)
    boxes = np.concatenate([rng.integers(0, 2, (k, 1)), rng.uniform(0, 9, (k, 4))], axis=1)
    bad = int(rng.integers(0, k))
    wrong_index = boxes.copy()
    wrong_index[bad, 0] = index
    with pytest.raises(ValueError, match=rf"boxes\[{bad}, 0\] \(batch index"):
        pnp.roi_align(x, wrong_index, 2)
    with_nan = boxes.copy()
    with_nan[bad, nan_column] = np.nan
    with pytest.raises(ValueError, match=rf"box {bad} has a NaN"):
        pnp.roi_pool(x, with_nan, 2)
