"""Every registered pool through graph capture: ``torch.compile(fullgraph=True)`` (backend
"eager": graph capture without a C compiler; a few families also through inductor),
``torch.export`` with a dynamic batch (and spatial size where the family allows it), the ONNX
exporter (dynamo) checked with onnxruntime, and ``torch.jit.trace``. The forms come from the
registry, so a new family cannot skip these tests. Stochastic families export their eval mode."""

from __future__ import annotations

import math
import shutil
import warnings

import pytest
import torch

from poolkit.nn import create_pool, list_pools, pool_info
from poolkit.nn import functional as PF

C = 8
NEEDS_CHANNELS = {"channels": C}
LOCAL = {
    # context modules: their one form is chosen by channels= (size stays; convolutions around)
    "ppm": {}, "aspp_pooling": {}, "aspp": {},
    "fractional_max": {"output_size": 5},
    "spp": {"levels": (1, 2)},
    "kmax": {"k": 3, "global_pool": False},
    "dynamic_kmax": {"k_top": 3, "layer": 1, "num_layers": 2},
    "blur": {"kernel_size": 3, "stride": 2},
    "maxblur": {"kernel_size": 2, "stride": 2},
    "lp": {"kernel_size": 3, "stride": 2},
}
GLOBAL = {"kmax": {"k": 3}, "dynamic_kmax": {"k_top": 3}, "spp": {"levels": (1, 2)}}
# families exported with a dynamic batch but a fixed spatial size, and why
STATIC_SPATIAL = {
    # the regions' widest extent, ceil(S / S_out), sets how many offsets the graph tries
    "fractional_max": "region width is part of the graph",
    # k = max(k_top, ceil((L - l) / L * s)) is computed from the length in Python
    "dynamic_kmax": "k is computed from the input length",
}
# and those whose ONNX graph needs the spatial size it was exported with
ONNX_STATIC_SPATIAL = {
    # the exporter turns adaptive pooling into fixed windows for the traced size (an ONNX graph
    # exported with a dynamic size would give wrong numbers for other sizes)
    "spp": "adaptive pooling windows are fixed at export",
    "ppm": "its bins are adaptive pooling windows, fixed at export",
}


def forms():
    """(name, form, dims, kwargs): the 2-D windowed and global forms of every family (1-D where
    a family has no 2-D form)."""
    for name in list_pools():
        info = pool_info(name)
        extra = NEEDS_CHANNELS if info.needs_channels else {}
        if info.local:
            dims = 2 if 2 in info.windowed_dims else info.windowed_dims[0]
            kwargs = LOCAL.get(name, {"kernel_size": 3, "stride": 2, "padding": 1})
            yield name, "local", dims, {**kwargs, **extra}
        if info.global_:
            kwargs = {**GLOBAL.get(name, {}), **extra}
            if name == "spp":
                kwargs["global_pool"] = True
            yield name, "global", 2 if 2 in info.dims else info.dims[0], kwargs


FORMS = list(forms())
IDS = [f"{name}-{form}-{dims}d" for name, form, dims, _ in FORMS]


def build(name, dims, kwargs, seed=0):
    torch.manual_seed(seed)
    pool = create_pool(name, dims=dims, **kwargs).eval()
    with torch.no_grad():  # move learned parameters off their neutral initial values
        for parameter in pool.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return pool


def sample(dims, batch=2, size=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((batch, C, *([size] * dims)), generator=gen)


def test_every_family_has_a_form():
    assert sorted({name for name, *_ in FORMS}) == list_pools()


@pytest.mark.parametrize(("name", "form", "dims", "kwargs"), FORMS, ids=IDS)
def test_compile_fullgraph(name, form, dims, kwargs):
    pool = build(name, dims, kwargs)
    torch._dynamo.reset()
    compiled = torch.compile(pool, fullgraph=True, backend="eager")
    for x in (sample(dims), sample(dims, batch=3, seed=1)):
        torch.testing.assert_close(compiled(x), pool(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "form", "dims", "kwargs"), FORMS, ids=IDS)
def test_compiled_gradients_match_eager(name, form, dims, kwargs):
    """The graph path's autograd equals the eager path's hand-written backward passes
    (training mode; eval mode for stochastic families, whose draws differ between calls)."""
    pool = build(name, dims, kwargs).train(not pool_info(name).stochastic)
    x = sample(dims).double().requires_grad_()
    pool = pool.double()
    eager_out = pool(x)
    eager_grads = torch.autograd.grad(eager_out.square().sum(), [x, *pool.parameters()])
    torch._dynamo.reset()
    compiled_out = torch.compile(pool, fullgraph=True, backend="aot_eager")(x)
    compiled_grads = torch.autograd.grad(compiled_out.square().sum(), [x, *pool.parameters()])
    torch.testing.assert_close(compiled_out, eager_out)
    for got, want in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(got, want)


def _dynamic_shapes(name, dims, static=()):
    batch = torch.export.Dim("batch", min=1, max=64)
    shape = {0: batch}
    if name not in STATIC_SPATIAL and name not in static:
        for d in range(dims):
            shape[2 + d] = torch.export.Dim(f"size{d}", min=8, max=64)
    return ({k: v for k, v in shape.items()},)


def _other_input(name, dims, static=()):
    size = 12 if name in STATIC_SPATIAL or name in static else 15
    return sample(dims, batch=5, size=size, seed=3)


@pytest.mark.parametrize(("name", "form", "dims", "kwargs"), FORMS, ids=IDS)
def test_export_dynamic_batch_and_size(name, form, dims, kwargs):
    pool = build(name, dims, kwargs)
    dynamic = _dynamic_shapes(name, dims)
    exported = torch.export.export(pool, (sample(dims),), dynamic_shapes=dynamic)
    for x in (sample(dims), _other_input(name, dims)):
        torch.testing.assert_close(exported.module()(x), pool(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "form", "dims", "kwargs"), FORMS, ids=IDS)
def test_onnx_matches_onnxruntime(name, form, dims, kwargs):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    pool = build(name, dims, kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(pool, (sample(dims),), dynamo=True, verbose=False,
                                    dynamic_shapes=_dynamic_shapes(name, dims, ONNX_STATIC_SPATIAL))
    session = ort.InferenceSession(program.model_proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    for x in (sample(dims), _other_input(name, dims, ONNX_STATIC_SPATIAL)):
        (got,) = session.run(None, {input_name: x.numpy()})
        torch.testing.assert_close(torch.from_numpy(got), pool(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "form", "dims", "kwargs"), FORMS, ids=IDS)
def test_jit_trace(name, form, dims, kwargs):
    pool = build(name, dims, kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(pool, (sample(dims),), check_trace=False)
    x = sample(dims, seed=4)
    torch.testing.assert_close(traced(x), pool(x), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                    reason="inductor needs a C compiler")
@pytest.mark.parametrize("name", ["gem", "softpool", "lse"])
def test_inductor(name):
    pool = build(name, 2, {"kernel_size": 3, "stride": 2, "padding": 1})
    torch._dynamo.reset()
    compiled = torch.compile(pool, fullgraph=True, backend="inductor")
    x = sample(2)
    torch.testing.assert_close(compiled(x), pool(x), rtol=1e-5, atol=1e-5)


def test_graph_path_limits_on_underflow():
    """One plane spanning 200 in float32: the eager path retries the far windows in float64, the
    graph path (float32 only) takes each family's limit there (module doc of _traceable)."""
    x = torch.zeros(1, 1, 4, 4)
    x[..., 0, 0] = 200.0  # the weights of the three windows without it underflow in float32
    soft = torch.compile(lambda t: PF.soft_pool2d(t, 2), fullgraph=True, backend="eager")
    torch.testing.assert_close(soft(x), PF.soft_pool2d(x, 2))  # their limit is their max, 0
    lse = torch.compile(lambda t: PF.lse_pool2d(t, 2), fullgraph=True, backend="eager")
    eager, graph = PF.lse_pool2d(x, 2), lse(x)
    assert eager[0, 0, 0, 0] == graph[0, 0, 0, 0]
    assert torch.equal(eager[0, 0].flatten()[1:], torch.zeros(3))  # log(mean(e^0)) = 0
    # graph: the lower bound max - log(|w|) / r of LSE, here -log 4
    assert torch.allclose(graph[0, 0].flatten()[1:], torch.full((3,), -math.log(4.0)))


@pytest.mark.parametrize("name, form, dims, kwargs", FORMS, ids=IDS)
def test_compiled_nan_and_inf_as_eager(name, form, dims, kwargs):
    """The graph path keeps the eager path's non-finite rules (tests/test_nn_nonfinite.py): a
    NaN gives NaN in exactly the windows eager gives it, a ``+inf`` the same limits, and the
    other windows the same numbers."""
    pool = build(name, dims, kwargs)
    x = sample(dims)
    x[0, 1].view(-1)[5] = float("nan")
    x[1, 2].view(-1)[3] = float("inf")
    compiled = torch.compile(pool, fullgraph=True, backend="eager")
    eager, graph = pool(x), compiled(x)
    torch.testing.assert_close(graph, eager, equal_nan=True, rtol=1e-5, atol=1e-5)
