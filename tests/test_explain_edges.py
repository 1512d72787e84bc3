"""explain at every edge: each shown window's result recomputed from the printed numbers alone
(JSON and text), checked against the engine and PyTorch; golden outputs for the tutorial's
examples and the ceil-mode case whose divisor is not the window size."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from poolkit.cli import run
from poolkit.experiments.explain_backward import ENGINE_OPS, FAMILY_OPS, explain_backward
from poolkit.experiments.explain_op import OPS, explain_op

GOLDEN = Path(__file__).parent / "golden"
CEIL_CASE = ["avg_pool2d", "--kernel", "3", "--stride", "2", "--padding", "1", "--ceil-mode"]


def _real(window) -> list[float]:
    return [v for v in window["values"] if v is not None]


def _recompute(op: str, window, arguments, parameters=None) -> float:
    """A window's result from the numbers ``explain --json`` prints, and nothing else."""
    real = np.array(_real(window))
    p, alpha = arguments.get("p"), arguments.get("alpha")
    if op in ("max", "adaptive_max", "fractional_max"):
        return float(real.max())
    if op == "avg":
        return math.fsum(real) / window["divisor"]
    if op == "adaptive_avg":
        return float(real.mean())
    if op == "lp":
        with np.errstate(invalid="ignore"):
            return float((window["scale"] * np.sum(real**p)) ** (1 / p))
    if op == "stochastic":  # training: the sampled cell; the eval mean is checked too
        a = np.maximum(real, 0)
        eval_mean = float((a * a).sum() / a.sum()) if a.sum() > 0 else 0.0
        assert window["eval_result"] == pytest.approx(eval_mean, rel=1e-9, abs=1e-12)
        return max(0.0, float(window["values"][window["positions"].index(window["winner"])]))
    if op == "softpool":
        weights = np.exp(real - real.max()) / np.exp(real - real.max()).sum()
        return float(weights @ real)
    if op == "gem":
        return float(np.mean(np.maximum(real, 1e-6) ** p) ** (1 / p))
    if op == "lse":
        return float(np.log(np.mean(np.exp(p * real))) / p)
    if op == "mixed":
        return float(alpha * real.max() + (1 - alpha) * real.mean())
    return _recompute_family(op, window, arguments, real, parameters)


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def _dot(mask, values) -> float:
    return float(np.dot(np.ravel(mask), [0.0 if v is None else v for v in values]))


def _recompute_family(op: str, window, arguments, real, parameters) -> float:
    """The families explained by explain_families, from their printed windows and parameters."""
    if op in ("avgmax", "catavgmax"):
        assert (window["max"], window["mean"]) == pytest.approx((real.max(), real.mean()))
        if op == "catavgmax":
            return window["mean"] if window["half"] == "avg" else window["max"]
        return (real.max() + real.mean()) / 2
    if op == "lp_abs":
        return float(np.sum(np.abs(real) ** arguments["p"]) ** (1 / arguments["p"]))
    if op == "gated":
        gate = _sigmoid(_dot(parameters["gate_mask"], window["values"]))
        return gate * real.max() + (1 - gate) * real.mean()
    if op == "tree":
        gate = _sigmoid(_dot(parameters["gate_mask"], window["values"]))
        left, right = (_dot(v, window["values"]) for v in parameters["leaf_filters"])
        return gate * left + (1 - gate) * right
    if op == "lip":
        logits = np.array([parameters["logits"][p[0]][p[1]] if len(p) == 2
                           else parameters["logits"][p[0]]
                           for p, v in zip(window["positions"], window["values"], strict=True)
                           if v is not None])
        weights = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        return float(weights @ real)
    if op in ("blur", "maxblur"):
        return float(np.dot(window["weights"], window["values"]))
    if op in ("kmax", "dynamic_kmax"):
        return float(window["values"][window["positions"].index(window["winner"])])
    if op == "spp":
        return float(real.max())
    if op == "attention":
        (qw, qb), (kw, kb), (vw, vb), (ow, ob) = (
            parameters[n] for n in ("q_proj", "k_proj", "v_proj", "out_proj"))
        scores = (qw * parameters["query"] + qb) * (kw * real + kb)
        weights = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        assert weights == pytest.approx(window["weights"], rel=1e-9, abs=1e-12)
        return float(ow * (weights @ (vw * real + vb)) + ob)
    raise AssertionError(f"no recomputation for {op}")


def _torch_reference(op: str, x: np.ndarray, arguments) -> np.ndarray | None:
    """PyTorch's own result for the ops it has, as an independent reference."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(x)[None]
    dims = x.ndim
    a = arguments
    if op == "max":
        f = getattr(F, f"max_pool{dims}d")
        out = f(t, a["kernel_size"], a["stride"], a["padding"], a["dilation"], a["ceil_mode"])
    elif op == "avg":
        f = getattr(F, f"avg_pool{dims}d")
        kwargs = {"divisor_override": a.get("divisor_override")} if dims == 2 else {}
        if dims == 1 and a.get("divisor_override"):
            return None  # avg_pool1d has no divisor_override
        out = f(t, a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"],
                a["count_include_pad"], **kwargs)
    elif op == "lp":
        f = getattr(F, f"lp_pool{dims}d")
        out = f(t, a["p"], a["kernel_size"], a["stride"], a["ceil_mode"])
    else:
        return None
    return out[0].numpy()


def _sizes(draw, dims: int, low: int, high: int):
    values = tuple(draw(st.integers(low, high)) for _ in range(dims))
    return values[0] if draw(st.booleans()) and len(set(values)) == 1 else values


@st.composite
def _cases(draw, ops=tuple(sorted(OPS))):
    op = draw(st.sampled_from(ops))
    spec = OPS[op]
    dims = 2 if op == "fractional_max" else draw(st.sampled_from([1, 2]))
    # a 2-D grid needs two rows or more: one row is read as 1-D
    shape = tuple(draw(st.integers(1 if dims == 1 else 2, 6)) for _ in range(dims))
    values = draw(st.lists(st.integers(-9, 9), min_size=math.prod(shape),
                           max_size=math.prod(shape)))
    x = np.array(values, dtype=np.float64).reshape(shape)
    kernel = _sizes(draw, dims, 1, 4)
    kernel_t = kernel if isinstance(kernel, tuple) else (kernel,) * dims
    arguments = {"kernel_size": kernel}
    options = {
        "stride": lambda: _sizes(draw, dims, 1, 3),
        "padding": lambda: tuple(draw(st.integers(0, k // 2)) for k in kernel_t),
        "dilation": lambda: _sizes(draw, dims, 1, 2),
        "ceil_mode": lambda: draw(st.booleans()),
        "count_include_pad": lambda: draw(st.booleans()),
        "divisor_override": lambda: draw(st.sampled_from([None, None, 1, 3])),
        "p": lambda: draw(st.sampled_from([1.0, 2.0, 3.0] if op != "lse" else [0.5, 1.0, 2.0])),
        "alpha": lambda: draw(st.sampled_from([0.0, 0.3, 1.0])),
        "seed": lambda: draw(st.integers(0, 5)),
        "output_size": lambda: tuple(draw(st.integers(1, n)) for n in shape),
        "k": lambda: draw(st.integers(1, 3)),
        "levels": lambda: draw(st.sampled_from([(1,), (1, 2), (2, 3)])),
        "layer": lambda: draw(st.integers(1, 2)),
        "num_layers": lambda: draw(st.integers(2, 3)),
    }
    for name in spec.arguments:
        if name in options and name != "kernel_size":
            arguments[name] = options[name]()
    if "kernel_size" not in spec.arguments:
        arguments.pop("kernel_size")
    if op == "fractional_max":
        arguments["kernel_size"] = tuple(min(k, n) for k, n in zip(kernel_t, shape, strict=True))
        arguments["output_size"] = tuple(
            draw(st.integers(1, n - k + 1))
            for n, k in zip(shape, arguments["kernel_size"], strict=True))
    return op, x, arguments


def _cli_options(arguments) -> list[str]:
    argv = []
    for name, value in arguments.items():
        if value is None:
            continue
        flag = {"kernel_size": "--kernel"}.get(name, "--" + name.replace("_", "-"))
        if isinstance(value, bool):
            on = {"ceil_mode": "--ceil-mode", "count_include_pad": "--count-include-pad"}[name]
            off = {"ceil_mode": "--floor-mode", "count_include_pad": "--no-count-include-pad"}
            argv.append(on if value else off[name])
        else:
            argv += [flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return argv


def _grid_text(x: np.ndarray) -> str:
    rows = x if x.ndim == 2 else x[None]
    return "; ".join(" ".join(str(int(v)) for v in row) for row in rows)


_FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FIXTURE_OK
@given(case=_cases())
def test_every_shown_window_recomputes_from_the_printed_numbers(case, capsys):
    op, x, arguments = case
    try:
        explain_op(op, x, **arguments)
    except ValueError:
        assume(False)  # the geometry is refused (output size < 1, padding > k/2 ...)
    argv = ["explain", op, "--input", _grid_text(x), *_cli_options(arguments), "--json"]
    assert run(argv) == 0, capsys.readouterr().err
    payload = json.loads(capsys.readouterr().out)
    output = np.array(payload["output"], dtype=np.float64)
    for window in payload["windows"]:
        shown = _recompute(op, window, payload["arguments"], payload["parameters"])
        result = math.nan if window["result"] is None else window["result"]  # JSON: NaN is null
        assert result == pytest.approx(shown, rel=1e-9, abs=1e-9, nan_ok=True)
        assert output[tuple(window["output"])] == pytest.approx(shown, rel=1e-9, nan_ok=True)
        for position in window["positions"]:  # drawn cells lie inside the padded input
            for i, n, p in zip(position, x.shape, payload["padding"], strict=True):
                assert -p <= i < n + p
        if op == "avg" and not payload["arguments"].get("divisor_override"):
            counted = (len(window["positions"]) if payload["arguments"]["count_include_pad"]
                       else len(_real(window)))
            assert window["divisor"] == counted
    if "winner" in payload["windows"][0] and op in ("kmax", "dynamic_kmax"):
        kept = [x[tuple(w["winner"])] for w in payload["windows"]]  # the k largest, in order
        assert sorted(kept) == sorted(np.sort(x.ravel())[::-1][:len(kept)])
        flat = [np.ravel_multi_index(w["winner"], x.shape) for w in payload["windows"]]
        assert flat == sorted(flat)
    reference = _torch_reference(op, x, payload["arguments"])
    if reference is not None:
        np.testing.assert_allclose(output, reference, rtol=1e-6, atol=1e-9)


_TEXT_ROW = re.compile(r"^\s*\(([\d, ]+)\)\s.*\s(\S+)\s+(\S+) / (\d+)\s*$")


@_FIXTURE_OK
@given(case=_cases(ops=("avg",)))
def test_avg_text_rows_say_sum_over_divisor(case, capsys):
    op, x, arguments = case
    try:
        e = explain_op(op, x, **arguments)
    except ValueError:
        assume(False)
    assert run(["explain", op, "--input", _grid_text(x), *_cli_options(arguments)]) == 0
    rows = [_TEXT_ROW.match(line) for line in capsys.readouterr().out.splitlines()]
    rows = [m for m in rows if m]
    assert len(rows) == len(e.windows)
    for match, window in zip(rows, e.windows, strict=True):
        result, total, divisor = float(match[2]), float(match[3]), int(match[4])
        assert divisor == window["divisor"] and total == pytest.approx(window["sum"], rel=1e-3)
        assert result == pytest.approx(total / divisor, rel=1e-3)


def test_ceil_mode_window_past_the_padding_divides_by_the_cells_inside():
    e = explain_op("avg_pool2d", kernel_size=3, stride=2, padding=1, ceil_mode=True)
    corner = e.windows[2]  # output (0, 2): rows -1..1, cols 3..4 (col 5 is past the padding)
    assert corner["output"] == [0, 2]
    assert corner["values"] == [None, None, 4, None, 8, None]
    assert (corner["sum"], corner["divisor"], corner["result"]) == (12, 6, 2)
    assert e.windows[8]["divisor"] == 4 and e.windows[8]["result"] == 4  # (2, 2): 16 / 4
    assert e.padding == [1, 1]
    assert any("reach past the padding" in note for note in e.notes)
    no_pad = explain_op("avg", kernel_size=3, stride=2, padding=1, ceil_mode=True,
                        count_include_pad=False)
    assert no_pad.windows[2]["divisor"] == 2 and no_pad.windows[2]["result"] == 6
    override = explain_op("avg", kernel_size=3, stride=2, padding=1, ceil_mode=True,
                          divisor_override=5)
    assert override.windows[2]["result"] == pytest.approx(12 / 5)


def test_rectangular_kernel_stride_and_padding():
    e = explain_op("max", kernel_size=(2, 3), stride=(2, 1), padding=(0, 1))
    assert e.output.shape == (2, 4)
    assert e.windows[0]["positions"] == [[0, -1], [0, 0], [0, 1], [1, -1], [1, 0], [1, 1]]
    assert e.output.tolist() == [[6, 7, 8, 8], [14, 15, 16, 16]]


def test_lp_ceil_mode_scale_and_negative_input_note():
    e = explain_op("lp", "1 2 3", kernel_size=2, ceil_mode=True)
    assert [w["scale"] for w in e.windows] == [1, 2]  # the partial window counts twice
    assert e.windows[1]["result"] == pytest.approx(math.sqrt(2 * 9))
    signed = explain_op("lp", "-3 1 2 2", kernel_size=2, p=3)
    assert math.isnan(signed.windows[0]["result"])
    assert any("nan" in note and "lp_abs" in note for note in signed.notes)


def test_ties_are_noted():
    e = explain_op("max", "5 5 1 2")
    assert e.windows[0]["winner"] == [0]
    assert any("first maximum" in note for note in e.notes)


@pytest.mark.parametrize(("name", "argv"), [
    ("tutorial_max", ["max"]),
    ("tutorial_avg", ["avg"]),
    ("ceil_mode_avg", CEIL_CASE),
])
def test_golden_outputs(name, argv, capsys):
    """The tutorial's 4x4 examples (its average corrected to 3.5 5.5 / 11.5 13.5) and the ceil-mode
    case, exactly as printed; regenerate with POOLKIT_REGENERATE_GOLDEN=1 and read the diff."""
    import os

    assert run(["explain", *argv]) == 0
    text = capsys.readouterr().out
    path = GOLDEN / f"explain_{name}.txt"
    if os.environ.get("POOLKIT_REGENERATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_every_registered_pool_is_explained():
    """Iterates list_pools(): each family has a formula, a worked example computed by the real
    op, says per window what decided the output, and has a --backward; a context module (ppm,
    aspp) is refused with the list of ops."""
    from poolkit.nn import list_pools
    from poolkit.pools import POOLS

    deciders = {"winner", "weights", "probabilities", "divisor", "scale", "max", "gate", "leaves"}
    pure = {"lp_abs", "gem", "lse"}  # a fixed function of every value in the window
    for name in list_pools():
        if POOLS[name].context:  # convolutions around a pooling: no window-by-window formula
            assert name not in OPS and not POOLS[name].formula, name
            with pytest.raises(ValueError, match=f"op \\({name!r}\\) must be one of"):
                explain_op(name)
            continue
        assert name in OPS and POOLS[name].formula, name
        assert name in ENGINE_OPS + FAMILY_OPS, f"{name} has no explain --backward"
        e = explain_op(name)
        assert e.windows and e.title == POOLS[name].title
        for window in e.windows:
            assert window["result"] == pytest.approx(e.output[tuple(window["output"])])
            assert name in pure or deciders & set(window), (name, window)


# ---------------------------------------------------------------------------------------------
# Backward: the shares explain shows, summed, are the engine's gradient


def _engine_backward(op: str, g: np.ndarray, x: np.ndarray, a) -> np.ndarray:
    """The NumPy engine's own ``*_backward`` for the explained call (one channel, unbatched)."""
    import poolkit.numpy as pnp
    from poolkit.numpy import families

    dims, xs, gs = x.ndim, x[None], g[None]
    window = (a.get("kernel_size"), a.get("stride"), a.get("padding"))
    if op == "max":
        f = getattr(pnp, f"max_pool{dims}d_backward")
        grad = f(gs, xs, *window, a["dilation"], a["ceil_mode"])
    elif op == "avg":
        f = getattr(pnp, f"avg_pool{dims}d_backward")
        extra = (a.get("divisor_override"),) if dims > 1 else ()
        grad = f(gs, xs, *window, a["ceil_mode"], a["count_include_pad"], *extra)
    elif op == "lp":
        f = getattr(pnp, f"lp_pool{dims}d_backward")
        grad = f(gs, xs, a["p"], a["kernel_size"], a["stride"], a["ceil_mode"])
    elif op in ("adaptive_max", "adaptive_avg"):
        grad = getattr(pnp, f"{op}_pool{dims}d_backward")(gs, xs, tuple(a["output_size"]))
    elif op == "fractional_max":
        samples = np.array(a["samples (u per dim)"][::-1])[None, None]
        grad = pnp.fractional_max_pool2d_backward(
            gs[None], xs[None], a["kernel_size"], output_size=tuple(a["output_size"]),
            _random_samples=samples)[0]
    elif op == "stochastic":
        noise = np.random.default_rng(a["seed"]).random(xs.shape)
        f = getattr(families, f"stochastic_pool{dims}d_backward")
        grad = f(gs, xs, *window, training=True, noise=noise)
    else:
        name, extra = {"softpool": ("soft_pool", {}), "gem": ("gem_pool", {"p": a.get("p")}),
                       "lse": ("lse_pool", {"r": a.get("p")}),
                       "mixed": ("mixed_pool", {"alpha": a.get("alpha")})}[op]
        grad = getattr(families, f"{name}{dims}d_backward")(gs, xs, *window, **extra)
    return np.asarray(grad)[0]


@_FIXTURE_OK
@given(case=_cases(ops=ENGINE_OPS), seed=st.integers(0, 2**16))
def test_backward_shares_sum_to_the_engine_gradient(case, seed, capsys):
    op, x, arguments = case
    try:
        e = explain_op(op, x, **arguments)
    except ValueError:
        assume(False)
    g = np.random.default_rng(seed).integers(-3, 4, e.output.shape).astype(np.float64)
    argv = ["explain", op, "--input", _grid_text(x), *_cli_options(arguments), "--backward",
            "--grad-output", _grid_text(g), "--json"]
    if g.ndim == 2 and g.shape[0] == 1:  # one row of gradient would read as 1-D: use the API
        payload = explain_backward(e, g).to_json()
    else:
        assert run(argv) == 0, capsys.readouterr().err
        payload = json.loads(capsys.readouterr().out)
    want = _engine_backward(op, g, x, payload["arguments"])
    got = np.array(payload["grad_input"], dtype=np.float64)
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-7, atol=1e-9)
    total = np.zeros_like(x)
    for window in payload["windows"]:
        for position, share in zip(window["positions"], window["gradient"], strict=True):
            if not _inside(position, x.shape):
                assert share is None  # padding takes no gradient (null is also JSON's NaN)
            elif share is not None:
                total[tuple(position)] += share
    np.testing.assert_allclose(total[np.isfinite(got)], got[np.isfinite(got)], rtol=1e-9,
                               atol=1e-12)


@given(case=_cases(ops=FAMILY_OPS), seed=st.integers(0, 2**16))
def test_family_backward_shares_sum_to_autograd_of_the_layer(case, seed):
    """The families computed by poolkit.nn layers: the shares written from the printed numbers
    (gates, leaves, taps, winners) against torch autograd through the very layer."""
    _check_family_backward(*case, seed)


@given(case=_cases(ops=("lip", "attention", "maxblur")), seed=st.integers(0, 2**16))
def test_backward_of_the_two_path_families_against_autograd(case, seed):
    """More examples for the families whose gradient takes two paths (LIP: values and logits;
    attention: value and weight; MaxBlur: blur then max)."""
    _check_family_backward(*case, seed)


def _check_family_backward(op, x, arguments, seed):
    import torch

    try:
        e = explain_op(op, x, **arguments)
    except ValueError:
        assume(False)
    g = np.random.default_rng(seed).integers(-3, 4, e.output.shape).astype(np.float64)
    explain_backward(e, g)
    t = torch.from_numpy(x).requires_grad_()
    out = e.layer(t[None, None])
    # catavgmax's two halves are stacked along the first axis of the shown output
    upstream = np.stack(np.split(g, 2, axis=0)) if op == "catavgmax" else g
    out.backward(torch.from_numpy(upstream.reshape(out.shape)))
    # maxblur shows M = max_pool(x, k, 1): its last step carries the gradient back to x
    got = e.grad_steps[-1]["grid"] if op == "maxblur" else e.grad_input
    np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-7, atol=1e-9)
    if op == "maxblur":  # and the shares sum to autograd's gradient with respect to M
        m = torch.from_numpy(e.input).requires_grad_()
        from poolkit.nn.blur import blur_pool

        layer = e.layer
        blurred = blur_pool(m[None, None], layer.blur_size, layer.stride, layer.padding_mode,
                            dims=m.ndim)
        blurred.backward(torch.from_numpy(upstream.reshape(out.shape)))
        np.testing.assert_allclose(e.grad_input, m.grad.numpy(), rtol=1e-7, atol=1e-9)


def _inside(position, shape) -> bool:
    return all(0 <= p < n for p, n in zip(position, shape, strict=True))


def test_backward_hand_worked_shares():
    """max: the winner takes it all; avg: 1/n per counted cell (12/6 window: 1/6 each);
    SoftPool: w_i (1 + x_i - y)."""
    e = explain_backward(explain_op("max"))
    assert e.grad_input.tolist() == [[0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0], [0, 1, 0, 1]]
    corner = explain_backward(explain_op("avg", kernel_size=3, stride=2, padding=1,
                                         ceil_mode=True)).windows[2]
    assert corner["gradient"] == [None, None, pytest.approx(1 / 6), None, pytest.approx(1 / 6),
                                  None]
    soft = explain_backward(explain_op("softpool"), "2 0; 0 0").windows[0]
    w = np.exp([1.0, 2, 5, 6]) / np.exp([1.0, 2, 5, 6]).sum()
    y = float(w @ [1, 2, 5, 6])
    assert soft["gradient"] == pytest.approx((2 * w * (1 + np.array([1, 2, 5, 6]) - y)).tolist())


def test_backward_hand_worked_lip_attention_maxblur():
    """maxblur on 1 3 2 5 (k=2): M = 3 3 5; taps 1/4 1/2 1/4, stride 2, reflect padding: M
    takes 1/2, 1/4 + 1/2 + 1/4 (two windows, one tap mirrored), 1/2; x: M's first two go to
    the 3, the last to the 5."""
    e = explain_backward(explain_op("maxblur", "1 3 2 5"))
    assert e.grad_input.tolist() == [0.5, 1.0, 0.5]
    assert e.grad_steps[-1]["grid"].tolist() == [0.0, 1.5, 0.0, 0.5]
    # attention: once as a value, once through its weight; the shares add to the total
    a = explain_backward(explain_op("attention", "0 1 2"))
    window = a.windows[0]
    (qw, qb), (kw, _), (vw, vb), (ow, _) = (a.parameters[n] for n in
                                            ("q_proj", "k_proj", "v_proj", "out_proj"))
    v = vw * np.array([0.0, 1, 2]) + vb
    weights = np.array(window["weights"])
    expected = ow * weights * (vw + (v - weights @ v) * (qw * a.parameters["query"] + qb) * kw)
    assert window["gradient"] == pytest.approx(expected.tolist())
    # LIP: the values' path is the softmax weights; the two paths sum to the gradient
    lip = explain_backward(explain_op("lip"))
    assert lip.windows[0]["gradient"] == pytest.approx(lip.windows[0]["weights"])
    steps = {step["label"].split(" (")[0]: step["grid"] for step in lip.grad_steps}
    np.testing.assert_allclose(steps["through the values"] + steps["through the logit network"],
                               lip.grad_input)


@pytest.mark.parametrize("argv", [
    ["explain", "max", "--grad-output", "1 1; 1 1"],               # needs --backward
    ["explain", "max", "--backward", "--grad-output", "1 1 1"],    # wrong shape
    ["explain", "roi_align", "--backward"],                        # not covered
    ["explain", "seq:mean", "--backward"],                         # not covered
])
def test_backward_bad_usage_exits_2(argv, capsys):
    assert run(argv) == 2
    assert "poolkit: error:" in capsys.readouterr().err


def test_backward_png_and_text(tmp_path, capsys):
    png = tmp_path / "back.png"
    assert run(["explain", "avg", "--backward", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "gradient with respect to the input" in out and "(0, 0):0.25" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
