"""poolkit's modules as drop-in replacements of torch's: torch's argument names and order,
``return_indices``/``divisor_override``, unbatched and integer input, ``device``/``dtype``
factory arguments of the learnable pools, and channels-last memory format through every family
of the registry. torch.nn itself is the reference."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import poolkit.nn as pn
from poolkit.nn import create_pool, list_pools, pool_info

TWINS = [
    (getattr(pn, f"{kind}{d}d"), getattr(nn, f"{kind}{d}d"), d)
    for kind in ("MaxPool", "AvgPool", "LPPool")
    for d in (1, 2, 3)
]
TWIN_IDS = [f"{mine.__name__}" for mine, _, _ in TWINS]


def sample(dims, batch=2, channels=3, size=7, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((batch, channels, *([size] * dims)), generator=gen, dtype=dtype)


@pytest.mark.parametrize(("mine", "theirs", "dims"), TWINS, ids=TWIN_IDS)
def test_signature_starts_with_torchs(mine, theirs, dims):
    """Same names in the same order (so positional calls mean the same), then poolkit's own."""
    ours = [p for p in inspect.signature(mine.__init__).parameters if p != "self"]
    torchs = [p for p in inspect.signature(theirs.__init__).parameters if p != "self"]
    assert ours[: len(torchs)] == torchs


@pytest.mark.parametrize("dims", (1, 2, 3))
@pytest.mark.parametrize("ceil_mode", (False, True))
def test_max_pool_positional_arguments_and_indices(dims, ceil_mode):
    x = sample(dims)
    args = (3, 2, 1, 1, True, ceil_mode)  # kernel, stride, padding, dilation, indices, ceil
    mine = getattr(pn, f"MaxPool{dims}d")(*args)
    theirs = getattr(nn, f"MaxPool{dims}d")(*args)
    (out, index), (want, want_index) = mine(x), theirs(x)
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    assert torch.equal(index, want_index)
    unpooled = getattr(F, f"max_unpool{dims}d")(out, index, 3, 2, 1, output_size=x.shape[2:])
    assert unpooled.shape == x.shape


@pytest.mark.parametrize("dims", (1, 2, 3))
@pytest.mark.parametrize("divisor_override", (None, 5))
def test_avg_pool_positional_arguments(dims, divisor_override):
    x = sample(dims)
    args = (3, 2, 1, True, False)  # kernel, stride, padding, ceil_mode, count_include_pad
    mine = getattr(pn, f"AvgPool{dims}d")(*args, divisor_override)
    if dims == 1:  # torch's AvgPool1d has no divisor_override: its 2-D kernel on (N, C, 1, L)
        want = F.avg_pool2d(x.unsqueeze(2), (1, 3), (1, 2), (0, 1), True, False,
                            divisor_override).squeeze(2)
    else:
        want = getattr(nn, f"AvgPool{dims}d")(*args, divisor_override)(x)
    torch.testing.assert_close(mine(x), want)


@pytest.mark.parametrize("dims", (1, 2, 3))
def test_lp_pool_positional_arguments(dims):
    x = sample(dims).abs()
    args = (1.5, 2, 2, True)  # norm_type, kernel, stride, ceil_mode
    torch.testing.assert_close(getattr(pn, f"LPPool{dims}d")(*args)(x),
                               getattr(nn, f"LPPool{dims}d")(*args)(x))


@pytest.mark.parametrize(("mine", "theirs", "dims"), TWINS, ids=TWIN_IDS)
def test_unbatched_input(mine, theirs, dims):
    x = sample(dims, batch=1)[0].abs()  # (C, *S)
    args = (2.0, 3, 2) if "LP" in mine.__name__ else (3, 2)
    torch.testing.assert_close(mine(*args)(x), theirs(*args)(x))
    global_args = (2.0,) if "LP" in mine.__name__ else ()
    assert mine(*global_args)(x).shape == (x.shape[0],)  # global form: (C,) like (N, C)


@pytest.mark.parametrize("dims", (2, 3))
def test_fractional_max_pool_like_torch(dims):
    """torch's first four arguments in its order; unbatched input; the windows of torch's
    kernel at the same samples (eval mode: the fixed mid-point samples 0.5)."""
    mine = getattr(pn, f"FractionalMaxPool{dims}d")
    theirs = getattr(nn, f"FractionalMaxPool{dims}d")
    names = [p for p in inspect.signature(theirs.__init__).parameters if p != "self"]
    assert [p for p in inspect.signature(mine.__init__).parameters if p != "self"][:4] == names[:4]
    x = sample(dims, size=9)
    pool = mine(2, 4, None, True).eval()  # kernel_size, output_size, output_ratio, indices
    out, index = pool(x)
    samples = torch.full((*x.shape[:2], dims), 0.5, dtype=x.dtype)
    want, want_index = getattr(F, f"fractional_max_pool{dims}d")(
        x, 2, output_size=4, return_indices=True, _random_samples=samples)
    torch.testing.assert_close(out, want)
    assert torch.equal(index, want_index)
    single, single_index = pool(x[0])
    torch.testing.assert_close(single, out[0])
    assert torch.equal(single_index, index[0])


def test_unbatched_global_max_with_indices():
    x = sample(2, batch=1)[0]
    values, index = pn.MaxPool2d(return_indices=True)(x)
    want, want_index = F.adaptive_max_pool2d(x, 1, return_indices=True)
    torch.testing.assert_close(values, want.flatten())
    assert torch.equal(index, want_index.flatten())


@pytest.mark.parametrize("dtype", (torch.int64, torch.int32, torch.uint8))
@pytest.mark.parametrize("dims", (1, 2, 3))
def test_integer_input_like_torch(dims, dtype):
    """poolkit hands integer input to torch's kernels: equal where torch takes the dtype (max
    pooling of int64 in 2-D/3-D, say), torch's own error where it does not."""
    x = (sample(dims) * 50).abs().to(dtype)
    for mine, theirs in (
        (getattr(pn, f"MaxPool{dims}d")(3, 2), getattr(nn, f"MaxPool{dims}d")(3, 2)),
        (getattr(pn, f"AvgPool{dims}d")(2), getattr(nn, f"AvgPool{dims}d")(2)),
    ):
        try:
            want = theirs(x)
        except NotImplementedError as error:
            with pytest.raises(NotImplementedError, match=str(error)[:20]):
                mine(x)
        else:
            assert torch.equal(mine(x), want)
    assert torch.equal(pn.create_pool("max", dims)(x), x.flatten(2).amax(-1))


def test_integer_input_refused_where_torch_refuses():
    x = torch.arange(16).view(1, 1, 4, 4)
    with pytest.raises(TypeError, match="floating-point"):
        pn.SoftPool2d(2)(x)
    with pytest.raises(TypeError, match="floating-point"):
        pn.AvgPool2d()(x)  # the global mean of integers is not defined by torch either


def test_bad_divisor_override():
    with pytest.raises(ValueError, match=r"divisor_override \(0\) must be None or an int >= 1"):
        pn.AvgPool2d(2, divisor_override=0)(sample(2))


LEARNABLE = [name for name in list_pools() if pool_info(name).learnable]


def _learnable_kwargs(name):
    kwargs = {"channels": 3} if pool_info(name).needs_channels else {}
    if name in ("gated", "tree"):
        kwargs["kernel_size"] = 2
    return kwargs


def test_learnable_families_are_the_expected_ones():
    assert sorted(LEARNABLE) == ["aspp", "aspp_pooling", "attention", "gated", "gem", "lip",
                                 "mixed", "ppm", "tree"]


@pytest.mark.parametrize("name", LEARNABLE)
def test_device_and_dtype_factory_arguments(name):
    pool = create_pool(name, 2, device="meta", dtype=torch.float64, **_learnable_kwargs(name))
    tensors = [*pool.parameters(), *pool.buffers()]
    assert tensors and all(t.device.type == "meta" for t in tensors)
    assert all(t.dtype == torch.float64 for t in tensors if t.is_floating_point())
    pool = create_pool(name, 2, dtype=torch.float64, **_learnable_kwargs(name)).eval()
    assert pool(sample(2, dtype=torch.float64)).dtype == torch.float64


# --- channels-last memory format, every family of the registry ---------------------------------

_LOCAL = {
    "fractional_max": {"output_size": 3},
    "kmax": {"k": 2, "global_pool": False},
    "spp": {"levels": (1, 2)},
    "blur": {"kernel_size": 3, "stride": 2},
    "maxblur": {"kernel_size": 2, "stride": 2},
    "lp": {"kernel_size": 3, "stride": 2},
    # context modules: one form, chosen by channels=; the output keeps the spatial size
    "ppm": {"bins": (1, 2)}, "aspp_pooling": {}, "aspp": {"atrous_rates": (1, 2)},
}


def _spatial_forms():
    """(name, dims, kwargs) of every family's windowed forms whose output is (N, C, *S_out)."""
    for name in list_pools():
        info = pool_info(name)
        for dims in info.windowed_dims:
            if dims == 1 or name in ("spp",):  # (N, C, L) / (N, C, bins): no channels-last
                continue
            kwargs = dict(_LOCAL.get(name, {"kernel_size": 3, "stride": 2, "padding": 1}))
            if info.needs_channels:
                kwargs["channels"] = 4
            yield name, dims, kwargs


SPATIAL = list(_spatial_forms())


def test_every_spatial_family_is_checked():
    names = {name for name, *_ in SPATIAL}
    expected = {n for n in list_pools() if set(pool_info(n).windowed_dims) & {2, 3}} - {"spp"}
    assert names == expected


@pytest.mark.parametrize(("name", "dims", "kwargs"), SPATIAL,
                         ids=[f"{n}-{d}d" for n, d, _ in SPATIAL])
def test_channels_last_kept(name, dims, kwargs):
    torch.manual_seed(0)
    pool = create_pool(name, dims, **kwargs).eval()
    x = sample(dims, channels=4, size=8)
    layout = torch.channels_last if dims == 2 else torch.channels_last_3d
    out = pool(x.contiguous(memory_format=layout))
    assert out.is_contiguous(memory_format=layout)
    torch.testing.assert_close(out, pool(x))
