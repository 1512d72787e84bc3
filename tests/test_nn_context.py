"""Context modules for segmentation (PSPNet's pyramid pooling, DeepLab's ASPP) against a naive
re-computation: bins by explicit loops, 1x1 convs as sums, batch norm by its formula, bilinear
upsampling by the half-pixel formula; gradcheck; shapes (hypothesis); bad arguments."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from poolkit.nn import ASPP, ASPPPooling, PyramidPooling, create_pool
from poolkit.nn.context import adaptive_pool, bin_bounds


def randomise_norms(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial batch-norm statistics and affine parameters (eval mode uses them)."""
    gen = torch.Generator().manual_seed(seed)
    for layer in module.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            n = layer.num_features
            layer.running_mean.copy_(torch.randn(n, generator=gen, dtype=layer.running_mean.dtype))
            layer.running_var.copy_(torch.rand(n, generator=gen, dtype=layer.running_var.dtype)
                                    + 0.5)
            layer.weight.data.copy_(torch.randn(n, generator=gen, dtype=layer.weight.dtype))
            layer.bias.data.copy_(torch.randn(n, generator=gen, dtype=layer.bias.dtype))
    return module.eval()


def naive_bins(x: np.ndarray, bins: int, reduce=np.mean) -> np.ndarray:
    """(N, C, H, W) -> (N, C, bins, bins), bin i covering [floor(iH/b), ceil((i+1)H/b))."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, bins, bins))
    for i, j in itertools.product(range(bins), range(bins)):
        h0, h1 = (i * h) // bins, -(-(i + 1) * h // bins)
        w0, w1 = (j * w) // bins, -(-(j + 1) * w // bins)
        out[:, :, i, j] = reduce(x[:, :, h0:h1, w0:w1], axis=(2, 3))
    return out


def naive_linear_weights(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) matrix of 1-D linear interpolation with half-pixel centres
    (``align_corners=False``): source = (i + 0.5) * in / out - 0.5, clamped at 0."""
    weights = np.zeros((size_out, size_in))
    for i in range(size_out):
        source = max((i + 0.5) * size_in / size_out - 0.5, 0.0)
        low = min(int(np.floor(source)), size_in - 1)
        high = min(low + 1, size_in - 1)
        frac = source - low
        weights[i, low] += 1 - frac
        weights[i, high] += frac
    return weights


def naive_conv_norm_relu(x: np.ndarray, block) -> np.ndarray:
    """1x1 conv as a sum over input channels, batch norm (eval) by its formula, ReLU."""
    conv, norm = block[0], block[1]
    weight = conv.weight.detach().numpy()[:, :, 0, 0]  # (out, in)
    y = np.einsum("oc,nchw->nohw", weight, x)
    mean, var = norm.running_mean.numpy(), norm.running_var.numpy()
    gamma, beta = norm.weight.detach().numpy(), norm.bias.detach().numpy()
    y = (y - mean[:, None, None]) / np.sqrt(var[:, None, None] + norm.eps)
    y = y * gamma[:, None, None] + beta[:, None, None]
    return np.maximum(y, 0)


def test_pyramid_pooling_matches_naive_recomputation():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 11, 7, dtype=torch.float64)
    ppm = randomise_norms(PyramidPooling(6, bins=(1, 2, 3, 6), branch_channels=3).double())
    got = ppm(x).detach().numpy()
    xs = x.numpy()
    expected = [xs]
    for bins, branch in zip((1, 2, 3, 6), ppm.branches, strict=True):
        reduced = naive_conv_norm_relu(naive_bins(xs, bins), branch)
        up_h, up_w = naive_linear_weights(bins, 11), naive_linear_weights(bins, 7)
        expected.append(np.einsum("ha,wb,ncab->nchw", up_h, up_w, reduced))
    np.testing.assert_allclose(got, np.concatenate(expected, axis=1), rtol=1e-10, atol=1e-12)
    assert ppm.out_channels == 6 + 4 * 3


def test_pyramid_pooling_hand_worked_value():
    # one bin, identity-like branch: conv weight 1, no norm -> relu(mean) broadcast everywhere
    x = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]]]])
    ppm = PyramidPooling(1, bins=(1,), branch_channels=1, norm="none")
    with torch.no_grad():
        ppm.branches[0][0].weight.fill_(1.0)
        ppm.branches[0][0].bias.zero_()
    y = ppm(x)
    assert y[0, 0].tolist() == [[1.0, 2.0], [3.0, 6.0]]
    assert y[0, 1].tolist() == [[3.0, 3.0], [3.0, 3.0]]  # (1 + 2 + 3 + 6) / 4


@pytest.mark.parametrize("pool,reduce", [("gem", None), ("max", np.max), ("lse", None)])
def test_bins_of_any_zoo_pool_equal_loops(pool, reduce):
    x = torch.rand(2, 3, 7, 5, dtype=torch.float64) + 0.1
    module = create_pool(pool, global_pool=True, flatten=False).double()
    got = adaptive_pool(x, 3, module, dims=2)
    assert got.shape == (2, 3, 3, 3)
    if reduce is None:  # the family's own global form on each bin region, by loops
        def reduce(region, axis):
            return module(torch.from_numpy(region)).detach().numpy()[:, :, 0, 0]
    np.testing.assert_allclose(got.detach().numpy(), naive_bins(x.numpy(), 3, reduce), rtol=1e-12)
    if pool == "max":  # the generic per-bin path equals PyTorch's adaptive kernel
        torch.testing.assert_close(got, F.adaptive_max_pool2d(x, 3))


def test_bin_bounds_cover_and_overlap_like_adaptive_pooling():
    assert bin_bounds(7, 3) == [(0, 3), (2, 5), (4, 7)]
    assert bin_bounds(2, 3) == [(0, 1), (0, 2), (1, 2)]  # more bins than positions: repeated


def test_aspp_matches_naive_recomputation():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64)
    aspp = randomise_norms(ASPP(4, atrous_rates=(1, 3), out_channels=5).double())

    def conv_norm_relu(block, inputs, dilation=1):
        conv, norm = block[0], block[1]
        y = F.conv2d(inputs, conv.weight, padding=dilation * (conv.kernel_size[0] // 2),
                     dilation=dilation)
        y = (y - norm.running_mean[:, None, None]) / torch.sqrt(
            norm.running_var[:, None, None] + norm.eps)
        return torch.relu(y * norm.weight[:, None, None] + norm.bias[:, None, None])

    branches = [conv_norm_relu(aspp.branches[0], x)]
    branches += [conv_norm_relu(aspp.branches[k + 1], x, rate) for k, rate in enumerate((1, 3))]
    image = conv_norm_relu(aspp.image_pool.branch, x.mean((2, 3), keepdim=True))
    branches.append(image.expand(-1, -1, 9, 8))
    expected = conv_norm_relu(aspp.project[0], torch.cat(branches, 1))
    torch.testing.assert_close(aspp(x), expected)
    # the image-level branch alone: one value per channel, the same at every position
    pooled = aspp.image_pool(x)
    assert pooled.shape == (2, 5, 9, 8)
    torch.testing.assert_close(pooled, image.expand(-1, -1, 9, 8))


@pytest.mark.parametrize("module", [
    lambda: PyramidPooling(3, bins=(1, 2, 3), branch_channels=2, pool="gem"),
    lambda: PyramidPooling(3, bins=(1, 4), branch_channels=2, pool="catavgmax"),
    lambda: ASPP(3, atrous_rates=(1, 2), out_channels=2, pool="max"),
    lambda: ASPPPooling(3, 2, pool="softpool"),
], ids=["ppm-gem", "ppm-catavgmax", "aspp-max", "aspp_pooling-softpool"])
def test_gradcheck(module):
    torch.manual_seed(0)
    layer = randomise_norms(module().double())
    x = (torch.rand(1, 3, 6, 5, dtype=torch.float64) + 0.2).requires_grad_()
    assert torch.autograd.gradcheck(layer, (x,), eps=1e-6, atol=1e-5)


def test_training_mode_trains_every_branch():
    torch.manual_seed(0)
    for layer in (PyramidPooling(4), ASPP(4, atrous_rates=(1, 2), out_channels=4)):
        layer.train()
        layer(torch.randn(3, 4, 8, 8)).square().mean().backward()
        for name, parameter in layer.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@settings(max_examples=25, deadline=None)
@given(dims=st.sampled_from([1, 2, 3]), size=st.integers(1, 9),
       bins=st.lists(st.integers(1, 6), min_size=1, max_size=4, unique=True),
       channels=st.integers(1, 6))
def test_shapes(dims, size, bins, channels):
    x = torch.randn(2, channels, *([size] * dims))
    ppm = create_pool("ppm", dims=dims, channels=channels, bins=bins).eval()
    y = ppm(x)
    width = max(1, channels // len(bins))
    assert y.shape == (2, channels + len(bins) * width, *x.shape[2:]) and ppm.out_channels == (
        y.shape[1])
    torch.testing.assert_close(y[:, :channels], x)  # the input passes through first
    aspp = create_pool("aspp", dims=dims, channels=channels, atrous_rates=(1, 2)).eval()
    assert aspp(x).shape == x.shape and aspp.feat_mult() == 1


BAD = [
    (lambda: PyramidPooling(0), "channels"),
    (lambda: PyramidPooling(4, bins=()), "bins"),
    (lambda: PyramidPooling(4, bins=(1, 0)), "bins"),
    (lambda: PyramidPooling(4, branch_channels=0), "branch_channels"),
    (lambda: PyramidPooling(4, norm="layer"), "norm"),
    (lambda: PyramidPooling(4, pool="blur"), "pool"),
    (lambda: PyramidPooling(4, pool="identity"), "pool"),
    (lambda: PyramidPooling(4, dims=4), "dims"),
    (lambda: ASPP(4, atrous_rates=(0,)), "atrous_rates"),
    (lambda: ASPP(4, dropout=1.5), "dropout"),
    (lambda: ASPPPooling(4, out_channels=0), "out_channels"),
    (lambda: create_pool("ppm"), "no global form"),
    (lambda: PyramidPooling(4)(torch.randn(2, 3, 5, 5)), "channels"),
    (lambda: ASPP(4)(torch.randn(2, 4, 5)), "input must have shape"),
]


@pytest.mark.parametrize("build,message", BAD, ids=[m for _, m in BAD])
def test_bad_arguments_name_them(build, message):
    with pytest.raises(ValueError, match=message):
        build()
    with pytest.raises(TypeError, match="unexpected argument.*'kernel_size'"):
        create_pool("ppm", channels=4, kernel_size=2)
