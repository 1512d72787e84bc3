"""``poolkit explain`` for the families beyond the engine's plain window ops.

avgmax, catavgmax, Lp of |x|, gated, tree, LIP, BlurPool, MaxBlurPool, k-max, dynamic k-max,
spatial pyramid and attention pooling: for each, :func:`explain_family` returns every output's
window (input positions, values, padding marked), the result computed by the real op
(:func:`poolkit.nn.create_pool`, in float64), and what decided it: the max and mean halves, the
learned gate and leaf responses, the LIP and attention weights, the blur taps, the kept
positions of k-max, the winner of each pyramid bin. Learned parameters are drawn from a seeded
generator (``--seed``) so that a fresh layer is not trivially an average; they are printed, so
every result can be recomputed from what is shown (``tests/test_explain_edges.py`` does).
"""

from __future__ import annotations

import contextvars
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from poolkit import geometry

_LEARNED = ("gated", "tree", "lip", "attention")
_BUILT: contextvars.ContextVar[list] = contextvars.ContextVar("explain_family_layers")


@dataclass
class FamilyExplanation:
    """One pooling family on a small grid, window by window (:func:`explain_family`'s answer;
    :mod:`poolkit.experiments.explain_op` turns it into an ``OpExplanation``).

    Attributes:
        lines: how the output size (or ``k``, or the bins) comes about, one line each.
        windows: one dict per output value: ``output`` (its index), ``positions`` (the input
            positions of its window), ``padding`` (per position, whether it lies in the
            padding), ``values`` (the input there, ``None`` in the padding) and ``result``; plus
            what decided it for the family (``max`` and ``mean`` of avgmax, the gate and
            ``leaves`` of tree pooling, LIP or attention weights, blur taps, kept positions).
        output: the family's output, computed by the real :mod:`poolkit.nn` layer in float64;
            1-D or 2-D like the grid (catavgmax: the average half, then the max half, stacked
            on the first axis).
        notes: remarks printed under the result (padding rules, ties, what the layer fixed).
        padding: padding drawn around the grid, per dimension.
        parameters: the learned weights used (drawn from a seeded generator), printed so that
            every result can be recomputed by hand.
        input: the grid the windows read when it is not the given one (MaxBlurPool: the dense
            max map it blurs), else ``None``.
        layer: the :mod:`poolkit.nn` layer that computed ``output`` (float64, eval mode), or
            ``None``.
    """

    lines: list[str]  # how the output size (or k, or the bins) comes about
    windows: list[dict[str, Any]]
    output: np.ndarray
    notes: list[str] = field(default_factory=list)
    padding: tuple[int, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)  # learned weights, shown
    input: np.ndarray | None = None  # the grid explained, when it is not the given one
    layer: Any = None  # the poolkit.nn layer that computed the output (float64, eval)


def explain_family(name: str, x: np.ndarray, args: dict[str, Any]) -> FamilyExplanation:
    """Explain pooling family ``name`` on the grid ``x`` (1-D or 2-D) with ``args``."""
    built: list = []
    token = _BUILT.set(built)
    try:
        explanation = _HANDLERS[name](name, x, args)
    finally:
        _BUILT.reset(token)
    explanation.layer = built[-1] if built else None
    return explanation


# ---------------------------------------------------------------------------------------------
# Shared pieces


def _module(name: str, dims: int, args: dict[str, Any], **kwargs):
    """The real layer, float64, eval mode; learned parameters drawn with ``--seed``."""
    import torch

    from poolkit.nn import create_pool

    with torch.random.fork_rng():
        torch.manual_seed(args["seed"])
        module = create_pool(name, dims, **kwargs).double().eval()
        if name in _LEARNED:
            with torch.no_grad():
                for parameter in module.parameters():
                    parameter.copy_(torch.randn_like(parameter) * 0.5)
    _BUILT.get([]).append(module)
    return module


def _run(module, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(x)[None, None]).numpy()[0]  # (C', *out)


def _size_lines(shape: geometry.PoolGeometry) -> list[str]:
    return [f"dim {d}: L={s.input_size}, k={s.kernel_size}, s={s.stride}, p={s.padding}: "
            f"{s.explain()}" for d, s in enumerate(shape.output_sizes)]


def _regular(x: np.ndarray, args: dict[str, Any], name: str):
    """Lines, window positions per output and the geometry of a kernel/stride/padding call."""
    stride = args["stride"] if args["stride"] is not None else args["kernel_size"]
    shape = geometry.pool_geometry(x.shape, args["kernel_size"], stride, args["padding"],
                                   fn_name=name)
    tables = [shape.windows(d) for d in range(x.ndim)]

    def positions(out_index):
        return list(itertools.product(*(t.positions(o) for t, o in zip(tables, out_index,
                                                                          strict=True))))

    return shape, _size_lines(shape), positions


def _inside(position, shape) -> bool:
    return all(0 <= p < n for p, n in zip(position, shape, strict=True))


def _base(x: np.ndarray, out_index, positions, result: float) -> dict[str, Any]:
    return {
        "output": [int(o) for o in out_index],
        "positions": [list(p) for p in positions],
        "padding": [not _inside(p, x.shape) for p in positions],
        "values": [float(x[p]) if _inside(p, x.shape) else None for p in positions],
        "result": float(result),
    }


def _outputs(shape):
    return itertools.product(*(range(n) for n in shape))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


# ---------------------------------------------------------------------------------------------
# Windowed families: kernel_size / stride / padding


def _avgmax(name, x, args):
    shape, lines, positions = _regular(x, args, name)
    module = _module(name, x.ndim, args, kernel_size=args["kernel_size"], stride=args["stride"],
                     padding=args["padding"])
    out = _run(module, x)  # avgmax: (1, *out); catavgmax: (2, *out) = [mean; max]
    windows = []
    for half, channel in ((("avg", 0), ("max", 1)) if name == "catavgmax" else ((None, 0),)):
        for out_index in _outputs(shape.output_size):
            window = _base(x, out_index, positions(out_index), out[(channel, *out_index)])
            real = [v for v in window["values"] if v is not None]
            window.update(max=max(real), mean=math.fsum(real) / len(real))
            if half is not None:  # the two halves stacked along the first axis
                window["half"] = half
                window["output"][0] += channel * shape.output_size[0]
            windows.append(window)
    output = np.concatenate([out[0], out[1]], axis=0) if name == "catavgmax" else out[0]
    notes = ["padding takes part in neither the max nor the mean (count_include_pad=False)"]
    if name == "catavgmax":
        notes.append(f"output = [mean ; max] stacked: the first {shape.output_size[0]} "
                     f"{'rows' if x.ndim == 2 else 'values'} are the average half, the rest "
                     "the max half (feat_mult() == 2: twice the channels)")
    return FamilyExplanation(lines, windows, output, notes, shape.padding)


def _lp_abs(name, x, args):
    shape, lines, positions = _regular(x, args, name)
    module = _module(name, x.ndim, args, norm_type=args["p"], kernel_size=args["kernel_size"],
                     stride=args["stride"], padding=args["padding"])
    out = _run(module, x)[0]
    windows = [_base(x, o, positions(o), out[o]) for o in _outputs(shape.output_size)]
    notes = ["|x| makes it safe on signed input (lp gives NaN there); padding adds 0"]
    return FamilyExplanation(lines, windows, out, notes, shape.padding)


def _mask_response(mask: np.ndarray, values) -> float:
    """``w . x_window`` with padding as 0 (the layer's strided convolution zero-pads)."""
    return math.fsum(w * (v or 0.0) for w, v in zip(mask.ravel(), values, strict=True))


def _gated(name, x, args):
    shape, lines, positions = _regular(x, args, name)
    module = _module(name, x.ndim, args, kernel_size=args["kernel_size"], stride=args["stride"],
                     padding=args["padding"])
    out = _run(module, x)[0]
    mask = module.gate_weight.detach().numpy().reshape(-1)
    windows = []
    for o in _outputs(shape.output_size):
        window = _base(x, o, positions(o), out[o])
        real = [v for v in window["values"] if v is not None]
        response = _mask_response(mask, window["values"])
        window.update(response=response, gate=_sigmoid(response), max=max(real),
                      mean=math.fsum(real) / len(real))
        windows.append(window)
    notes = [f"gate mask w (seeded, --seed {args['seed']}; a trained layer learns it), one "
             "weight per window cell in scan order: g = sigmoid(w . x), padding as 0",
             "g near 1: the window acts as max pooling; near 0: as average pooling"]
    return FamilyExplanation(lines, windows, out, notes, shape.padding,
                             {"gate_mask": mask.tolist()})


def _tree(name, x, args):
    shape, lines, positions = _regular(x, args, name)
    module = _module(name, x.ndim, args, kernel_size=args["kernel_size"], stride=args["stride"],
                     padding=args["padding"])
    out = _run(module, x)[0]
    leaves = module.leaf_weight.detach().numpy().reshape(2, -1)
    gate = module.gate_weight.detach().numpy().reshape(1, -1)[0]
    windows = []
    for o in _outputs(shape.output_size):
        window = _base(x, o, positions(o), out[o])
        response = _mask_response(gate, window["values"])
        window.update(leaves=[_mask_response(v, window["values"]) for v in leaves],
                      response=response, gate=_sigmoid(response))
        windows.append(window)
    notes = [f"depth 2: two leaf filters v1, v2 and one gate mask w (seeded, --seed "
             f"{args['seed']}): y = g * (v1 . x) + (1 - g) * (v2 . x), g = sigmoid(w . x)"]
    return FamilyExplanation(lines, windows, out, notes, shape.padding,
                             {"leaf_filters": leaves.tolist(), "gate_mask": gate.tolist()})


def _lip(name, x, args):
    import torch

    shape, lines, positions = _regular(x, args, name)
    module = _module(name, x.ndim, args, channels=1, kernel_size=args["kernel_size"],
                     stride=args["stride"], padding=args["padding"])
    out = _run(module, x)[0]
    with torch.no_grad():
        logits = module.logit(torch.from_numpy(x)[None, None]).numpy()[0, 0]
    windows = []
    for o in _outputs(shape.output_size):
        window = _base(x, o, positions(o), out[o])
        cell_logits = [float(logits[p]) if _inside(p, x.shape) else None for p in positions(o)]
        real = np.array([v for v in cell_logits if v is not None])
        weights = iter((np.exp(real - real.max()) / np.exp(real - real.max()).sum()).tolist())
        window.update(logits=cell_logits,
                      weights=[None if v is None else next(weights) for v in cell_logits])
        windows.append(window)
    notes = [f"logits l = 12 * sigmoid(instance_norm(conv3x3(x))) for every cell, the conv "
             f"seeded (--seed {args['seed']}); a fresh layer (zero conv) is average pooling",
             "weights = softmax of the window's logits over its real cells; y = sum w * x"]
    return FamilyExplanation(lines, windows, out, notes, shape.padding,
                             {"logits": logits.tolist()})


# ---------------------------------------------------------------------------------------------
# Blur: binomial taps on a reflect-padded grid, then subsample


def _reflect(i: int, n: int) -> int:
    return -i if i < 0 else 2 * (n - 1) - i if i >= n else i


def _blur_windows(grid: np.ndarray, taps: int, stride, out: np.ndarray) -> list[dict[str, Any]]:
    import torch

    from poolkit.nn.blur import binomial_filter

    weights = binomial_filter(taps, grid.ndim, torch.float64).numpy().ravel()
    before = (taps - 1) // 2
    strides = geometry.normalize_tuple(stride, grid.ndim, "stride")
    windows = []
    for o in _outputs(out.shape):
        positions = list(itertools.product(*(range(oi * s - before, oi * s - before + taps)
                                             for oi, s in zip(o, strides, strict=True))))
        window = _base(grid, o, positions, out[o])
        window["values"] = [float(grid[tuple(_reflect(i, n) for i, n in
                                             zip(p, grid.shape, strict=True))])
                            for p in positions]  # padding reads the mirrored cell
        window["weights"] = weights.tolist()
        windows.append(window)
    return windows


def _blur(name, x, args):
    taps = 3 if args["kernel_size"] is None else args["kernel_size"]
    stride = 2 if args["stride"] is None else args["stride"]
    if name == "blur":
        grid = x
        module = _module(name, x.ndim, args, kernel_size=taps, stride=stride)
        notes = []
    else:
        taps = 2 if args["kernel_size"] is None else args["kernel_size"]  # the max window
        module = _module(name, x.ndim, args, kernel_size=taps, stride=stride)
        out = _run(module, x)[0]  # first: the layer checks its arguments (ValueError)
        import torch

        from poolkit.nn.functional import max_pool1d, max_pool2d

        pool = max_pool2d if x.ndim == 2 else max_pool1d
        grid = pool(torch.from_numpy(x)[None, None], taps, 1).numpy()[0, 0]
        notes = [f"step 1: M = max_pool(x, kernel {taps}, stride 1), shown as the input; "
                 f"step 2 blurs M with 3 binomial taps, subsampled with stride {stride}"]
        taps = 3  # blur_size, the layer's default
    if name == "blur":
        out = _run(module, x)[0]
    before, after = (taps - 1) // 2, taps // 2
    lines = [f"dim {d}: L={n}, padding {before} before and {after} after (reflect), taps={taps}, "
             f"s={s}: ceil(L / s) = {out.shape[d]}"
             for d, (n, s) in enumerate(zip(grid.shape, geometry.normalize_tuple(
                 stride, grid.ndim, "stride"), strict=True))]
    notes.append("taps b = binomial(k-1, j) / 2^(k-1), outer product per dim; padding cells "
                 "mirror the grid (reflect): their values are shown")
    return FamilyExplanation(lines, _blur_windows(grid, taps, stride, out), out, notes,
                             (max(before, after),) * x.ndim, {}, None if name == "blur" else grid)


# ---------------------------------------------------------------------------------------------
# Global families: k-max, spatial pyramid, attention


def _kmax(name, x, args):
    from poolkit.nn.kmax import dynamic_k

    length = x.size
    if name == "dynamic_kmax":
        if x.ndim != 1:
            raise ValueError("dynamic_kmax pools one sequence: give one row of input")
        layer = 1 if args["layer"] is None else args["layer"]
        num_layers = 2 if args["num_layers"] is None else args["num_layers"]
        k_top = 1 if args["k"] is None else args["k"]
        k = dynamic_k(length, k_top, layer, num_layers)
        module = _module(name, 1, args, k_top=k_top, layer=layer, num_layers=num_layers)
        lines = [f"k = max(k_top, ceil((num_layers - layer) / num_layers * L)) = max({k_top}, "
                 f"ceil(({num_layers} - {layer}) / {num_layers} * {length})) = {k}"]
    else:
        k = 2 if args["k"] is None else args["k"]
        module = _module(name, x.ndim, args, k=k)
        lines = [f"k = {k} of the L = {length} values (the whole grid, in scan order)"]
    if not 1 <= k <= length:
        raise ValueError(f"k ({k}) must be between 1 and the input size ({length})")
    out = _run(module, x).reshape(-1)
    kept = sorted(np.argsort(-x.ravel(), kind="stable")[:k].tolist())  # original order
    positions = [tuple(int(v) for v in np.unravel_index(i, x.shape)) for i in range(length)]
    windows = []
    for j, flat in enumerate(kept):
        window = _base(x, (j,), positions, out[j])
        window["winner"] = list(positions[flat])
        windows.append(window)
    notes = ["the k largest values are kept in their original order (not sorted by size): "
             "the order of features in a sentence survives the pooling"]
    return FamilyExplanation(lines, windows, out, notes, (0,) * x.ndim)


def _spp(name, x, args):
    import poolkit.numpy as pnp

    levels = geometry.pyramid_levels(args["levels"] or (1, 2))
    module = _module(name, x.ndim, args, levels=levels)
    out = _run(module, x).reshape(-1)
    adaptive = getattr(pnp, f"adaptive_max_pool{x.ndim}d")
    lines, windows = [], []
    for level in levels:
        bins = [geometry.adaptive_bins(n, level) for n in x.shape]
        lines.append(f"level {level}: {level}^{x.ndim} bins, per dim [floor(iL/l), "
                     f"ceil((i+1)L/l)) = " + " x ".join(str(b) for b in bins))
        _, index = adaptive(x[None], level, return_indices=True)
        for o in _outputs((level,) * x.ndim):
            positions = list(itertools.product(*(range(*bins[d][i]) for d, i in enumerate(o))))
            window = _base(x, (len(windows),), positions, out[len(windows)])
            window["level"] = level
            window["winner"] = [int(v) for v in np.unravel_index(int(index[(0, *o)]), x.shape)]
            windows.append(window)
    notes = ["one max per bin, levels concatenated: the output size is sum l^dims, whatever "
             "the input size (the point of SPP: fixed-size features from any image)"]
    return FamilyExplanation(lines, windows, out, notes, (0,) * x.ndim)


def _attention(name, x, args):
    import torch

    module = _module(name, x.ndim, args, channels=1)
    out = _run(module, x).reshape(-1)
    tokens = torch.from_numpy(x.reshape(-1, 1))  # (L, C=1): every cell is a token
    with torch.no_grad():
        q = module.q_proj(module.query.view(1, 1))
        keys = module.k_proj(tokens)
        weights = torch.softmax((keys @ q.T)[:, 0], 0).numpy()  # scale 1/sqrt(d), d = 1
    projections = {n: [float(getattr(module, n).weight.detach()),
                       float(getattr(module, n).bias.detach())]
                   for n in ("q_proj", "k_proj", "v_proj", "out_proj")}
    positions = [tuple(int(v) for v in np.unravel_index(i, x.shape)) for i in range(x.size)]
    window = _base(x, (0,), positions, out[0])
    window["weights"] = weights.tolist()
    lines = [f"one learned query attends to all {x.size} cells: one output per channel"]
    notes = [f"query and projections seeded (--seed {args['seed']}): q = q_proj(query), "
             "k_i = k_proj(x_i), a = softmax(q k_i), y = out_proj(sum a_i v_proj(x_i))",
             "the weights say which cells the pooling looked at; a trained layer learns them",
             "one channel: each projection is printed as [weight, bias]"]
    parameters = {"query": float(module.query.detach()), **projections}
    return FamilyExplanation(lines, [window], out, notes, (0,) * x.ndim, parameters)


_HANDLERS = {
    "avgmax": _avgmax, "catavgmax": _avgmax, "lp_abs": _lp_abs, "gated": _gated,
    "tree": _tree, "lip": _lip, "blur": _blur, "maxblur": _blur, "kmax": _kmax,
    "dynamic_kmax": _kmax, "spp": _spp, "attention": _attention,
}
