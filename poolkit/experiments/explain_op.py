"""``poolkit explain OP``: one pooling operation, window by window, computed by poolkit.numpy.

For an input grid and the pooling arguments, :func:`explain_op` returns an :class:`OpExplanation`:
the formula, the output-size computation (from :mod:`poolkit.geometry`, the one place that knows
it), and for every output position its window (input positions, padding marked), the values
there, the result, and what decided it: the winner for max-like pooling, the sampling
probabilities of stochastic pooling, the weights of SoftPool. The results themselves come from
:mod:`poolkit.numpy`; nothing here re-implements a pooling op.

The default is the tutorial's worked example: the 4x4 grid 1..16 with 2x2 windows, stride 2:
max gives ``[[6, 8], [14, 16]]`` and average ``[[3.5, 5.5], [11.5, 13.5]]`` (the tutorial we
start from prints ``3 5 / 11 13`` for the average, which is wrong).

Example:
    >>> e = explain_op("max")
    >>> e.output.tolist()
    [[6.0, 8.0], [14.0, 16.0]]
    >>> e.windows[0]["values"], e.windows[0]["winner"]
    ([1.0, 2.0, 5.0, 6.0], [1, 1])
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from poolkit.pools import POOLS

WORKED_EXAMPLE = "1 2 3 4; 5 6 7 8; 9 10 11 12; 13 14 15 16"
SEQUENCE_EXAMPLE = "3 1 4 1 5 9 2 6"
TUTORIAL_NOTE = (
    "The tutorial we start from prints 3 5 / 11 13 for average pooling of this grid; that is "
    "wrong: (1+2+5+6)/4 = 3.5, (3+4+7+8)/4 = 5.5, (9+10+13+14)/4 = 11.5, (11+12+15+16)/4 = 13.5."
)


def parse_grid(text: str) -> np.ndarray:
    """``"1 2; 3 4"`` -> a float64 array: rows split by ``;`` or new lines, values by spaces or
    commas. One row gives a 1-D array (1-D pooling).

    >>> parse_grid("1 2 3 4; 5 6 7 8").shape, parse_grid("1, 2, 3").shape
    ((2, 4), (3,))
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("input must be a non-empty grid of numbers like '1 2; 3 4'")
    rows = [row for row in text.replace("\n", ";").split(";") if row.strip()]
    values: list[list[float]] = []
    for number, row in enumerate(rows, start=1):
        cells = row.replace(",", " ").split()
        parsed = []
        for cell in cells:
            try:
                parsed.append(float(cell))
            except ValueError:
                raise ValueError(f"input value {cell!r} in row {number} is not a number") from None
        values.append(parsed)
    widths = {len(row) for row in values}
    if len(widths) != 1:
        lengths = ", ".join(f"row {i + 1}: {len(r)}" for i, r in enumerate(values))
        raise ValueError(f"input rows must all have the same number of values ({lengths})")
    array = np.asarray(values, dtype=np.float64)
    return array[0] if len(values) == 1 else array


# ---------------------------------------------------------------------------------------------
# The operations


@dataclass(frozen=True)
class OpSpec:
    """How to explain one operation: the kind of windows and the engine call (its title,
    formula and paper are the op's entry in :data:`poolkit.pools.POOLS`)."""

    name: str
    windows: str  # "window" (kernel/stride/padding), "adaptive" (bins) or "fractional"
    arguments: tuple[str, ...]  # the CLI arguments it takes
    call: Callable[..., Any]  # (x, dims, args) -> (output, flat winner indices or None)
    has_winner: bool = False
    weights: str | None = None  # "probabilities" (stochastic) or "softmax" (SoftPool)


def _engine(name: str, dims: int):
    import poolkit.numpy as pnp

    function = getattr(pnp, f"{name}{dims}d", None)
    if function is None:
        raise ValueError(f"poolkit.numpy has no {name}{dims}d (the op needs a {dims}-D input?)")
    return function


def _window_args(args: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: args[name] for name in names}


def _call_max(x, dims, args):
    out, index = _engine("max_pool", dims)(
        x,
        return_indices=True,
        **_window_args(args, "kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    )
    return out, index


def _call_avg(x, dims, args):
    override = {}
    if args["divisor_override"] is not None:
        if dims == 1:
            raise ValueError("divisor_override is avg_pool2d's and avg_pool3d's; avg_pool1d "
                             "(one row of input) has none, as in torch")
        override = {"divisor_override": args["divisor_override"]}
    out = _engine("avg_pool", dims)(
        x,
        count_include_pad=args["count_include_pad"],
        **override,
        **_window_args(args, "kernel_size", "stride", "padding", "ceil_mode"),
    )
    return out, None


def _call_lp(x, dims, args):
    out = _engine("lp_pool", dims)(
        x, args["p"], **_window_args(args, "kernel_size", "stride", "ceil_mode")
    )
    return out, None


def _call_adaptive_max(x, dims, args):
    return _engine("adaptive_max_pool", dims)(x, args["output_size"], return_indices=True)


def _call_adaptive_avg(x, dims, args):
    return _engine("adaptive_avg_pool", dims)(x, args["output_size"]), None


def _call_fractional(x, dims, args):
    if dims != 2:
        raise ValueError("fractional_max needs a 2-D input grid (rows separated by ';')")
    out, index = _engine("fractional_max_pool", dims)(
        x[None],
        args["kernel_size"],
        output_size=args["output_size"],
        return_indices=True,
        _random_samples=args["samples"],
    )  # batched (1, 1, *out): the samples are per (batch, channel)
    return out[0], index[0]


def _family(name: str, dims: int):
    from poolkit.numpy import families

    return getattr(families, f"{name}{dims}d")


def _family_window(args):
    return _window_args(args, "kernel_size", "stride", "padding")


def _call_stochastic(x, dims, args):
    # One draw of uniforms (seeded) decides both the sampled positions and the training output.
    noise = np.random.default_rng(args["seed"]).random(x.shape)
    window = _family_window(args)
    out = _family("stochastic_pool", dims)(x, **window, training=True, noise=noise)
    from poolkit.numpy.families import stochastic_indices

    winners = stochastic_indices(x, **window, noise=noise, dims=dims)
    args["eval_output"] = _family("stochastic_pool", dims)(x, **window, training=False)
    return out, winners


def _call_softpool(x, dims, args):
    return _family("soft_pool", dims)(x, **_family_window(args)), None


def _call_gem(x, dims, args):
    return _family("gem_pool", dims)(x, **_family_window(args), p=args["p"]), None


def _call_lse(x, dims, args):
    return _family("lse_pool", dims)(x, **_family_window(args), r=args["p"]), None


def _call_mixed(x, dims, args):
    return _family("mixed_pool", dims)(x, **_family_window(args), alpha=args["alpha"]), None


def _call_family(x, dims, args):
    raise AssertionError("family ops are explained by explain_families.explain_family")


_WINDOWED = ("kernel_size", "stride", "padding", "ceil_mode")
_FAMILY_WINDOW = ("kernel_size", "stride", "padding")
# Every key is an entry of poolkit.pools.POOLS with a formula (tests/test_explain.py checks it).
OPS: dict[str, OpSpec] = {spec.name: spec for spec in (
    OpSpec("max", "window", (*_WINDOWED, "dilation"), _call_max, has_winner=True),
    OpSpec("avg", "window", (*_WINDOWED, "count_include_pad", "divisor_override"), _call_avg),
    OpSpec("lp", "window", ("kernel_size", "stride", "ceil_mode", "p"), _call_lp),
    OpSpec("adaptive_max", "adaptive", ("output_size",), _call_adaptive_max, has_winner=True),
    OpSpec("adaptive_avg", "adaptive", ("output_size",), _call_adaptive_avg),
    OpSpec("fractional_max", "fractional", ("kernel_size", "output_size", "seed"),
           _call_fractional, has_winner=True),
    OpSpec("stochastic", "window", (*_FAMILY_WINDOW, "seed"), _call_stochastic,
           has_winner=True, weights="probabilities"),
    OpSpec("softpool", "window", _FAMILY_WINDOW, _call_softpool, weights="weights"),
    OpSpec("gem", "window", (*_FAMILY_WINDOW, "p"), _call_gem),
    OpSpec("lse", "window", (*_FAMILY_WINDOW, "p"), _call_lse),
    OpSpec("mixed", "window", (*_FAMILY_WINDOW, "alpha"), _call_mixed),
    # Explained by explain_families: the real poolkit.nn layer, window by window.
    *(OpSpec(name, "family", arguments, _call_family) for name, arguments in (
        ("avgmax", _FAMILY_WINDOW), ("catavgmax", _FAMILY_WINDOW),
        ("lp_abs", (*_FAMILY_WINDOW, "p")), ("gated", (*_FAMILY_WINDOW, "seed")),
        ("tree", (*_FAMILY_WINDOW, "seed")), ("lip", (*_FAMILY_WINDOW, "seed")),
        ("blur", ("kernel_size", "stride")), ("maxblur", ("kernel_size", "stride")),
        ("kmax", ("k",)), ("dynamic_kmax", ("k", "layer", "num_layers")),
        ("spp", ("levels",)), ("attention", ("seed",)),
    )),
)}


def list_ops() -> list[str]:
    return list(OPS)


# ---------------------------------------------------------------------------------------------
# The explanation


@dataclass
class OpExplanation:
    """One pooling operation on a small grid, window by window (:func:`explain_op`'s answer).

    Attributes:
        op: the op's name, a key of :data:`OPS` (``"max"``, ``"avg"``, ``"softpool"``...).
        title: its human name, from :data:`poolkit.pools.POOLS`.
        formula: its formula, one line of plain text.
        paper: where it comes from.
        input: the grid pooled, 1-D or 2-D (float64).
        arguments: the arguments used, defaults filled in (those the op takes).
        output_size: how each dimension's output size comes about, one line per dimension.
        windows: one dict per output value: ``output`` (its index), ``positions`` (the
            window's input positions), ``padding`` (per position, in the padding or not),
            ``values`` and ``result``, and what decided it (the ``winner`` of max-like pooling,
            stochastic pooling's ``probabilities``, SoftPool's weights...).
        output: the op's output, computed by :mod:`poolkit.numpy` (or by the :mod:`poolkit.nn`
            layer for the families beyond the engine).
        notes: remarks printed under the result (edge cases, the tutorial's wrong average).
        padding: padding drawn around the grid, per dimension.
        parameters: learned weights used (seeded), printed so every result can be recomputed.
        grad_output: the upstream gradient, one value per output, once
            :func:`~poolkit.experiments.explain_backward.explain_backward` has run (else
            ``None``).
        grad_input: the gradient with respect to ``input`` it gives (else ``None``).
        layer: for the families, the :mod:`poolkit.nn` layer used (else ``None``).
        given: the grid the user gave, when ``input`` is one computed from it (MaxBlur's
            max-pooled grid; else ``None``).
        grad_steps: the backward's steps beyond the shares (LIP's logit path, MaxBlur's max
            step), each ``{"label", "grid"}``; empty for a one-step op.
        grad_input_label: what ``grad_input`` is the gradient with respect to, in words.
    """

    op: str
    title: str
    formula: str
    paper: str
    input: np.ndarray
    arguments: dict[str, Any]
    output_size: list[str]  # one line per dimension: the computation
    windows: list[dict[str, Any]]
    output: np.ndarray
    notes: list[str] = field(default_factory=list)
    padding: list[int] = field(default_factory=list)  # padding drawn around the grid, per dim
    parameters: dict[str, Any] = field(default_factory=dict)  # learned weights (seeded), shown
    grad_output: np.ndarray | None = None  # set by explain_backward
    grad_input: np.ndarray | None = None
    layer: Any = field(default=None, repr=False)  # families: the poolkit.nn layer used
    given: np.ndarray | None = None  # the grid given, when ``input`` is one computed from it
    # backward steps beyond the shares (LIP's logit path, MaxBlur's max step): label + grid
    grad_steps: list[dict[str, Any]] = field(default_factory=list)
    grad_input_label: str = "the input (the shares summed per cell)"

    def to_json(self) -> dict[str, Any]:
        backward = {} if self.grad_input is None else {
            "grad_output": self.grad_output.tolist(), "grad_input": self.grad_input.tolist(),
            "grad_steps": [{"label": step["label"], "grid": np.asarray(step["grid"]).tolist()}
                           for step in self.grad_steps]}
        return {
            **backward,
            "op": self.op,
            "title": self.title,
            "formula": self.formula,
            "paper": self.paper,
            "input": self.input.tolist(),
            "arguments": dict(self.arguments),
            "output_size": self.output_size,
            "windows": self.windows,
            "output": self.output.tolist(),
            "notes": self.notes,
            "padding": self.padding,
            "parameters": self.parameters,
        }


_DEFAULTS = {
    "kernel_size": 2,
    "stride": None,
    "padding": 0,
    "dilation": 1,
    "ceil_mode": False,
    "count_include_pad": True,
    "divisor_override": None,
    "p": None,
    "output_size": None,
    "seed": 0,
    "alpha": None,
    "k": None,
    "levels": None,
    "layer": None,
    "num_layers": None,
}


def _op_name(op: str) -> tuple[str, int | None]:
    """``op`` as a key of :data:`OPS` and the dimensionality its name states: ``"max"`` ->
    ``("max", None)``; torch's functional names are accepted too, ``"max_pool2d"`` -> ``("max",
    2)``, ``"adaptive_avg_pool1d"`` -> ``("adaptive_avg", 1)``."""
    if isinstance(op, str):
        match = re.fullmatch(r"(\w+?)_pool([123])d", op)
        if op in OPS:
            return op, None
        if match and match.group(1) in OPS:
            return match.group(1), int(match.group(2))
    raise ValueError(
        f"op ({op!r}) must be one of {', '.join(OPS)} (or torch's name, e.g. max_pool2d)"
    )


def explain_op(op: str, input: str | np.ndarray | None = None, **arguments: Any) -> OpExplanation:
    """Explain pooling ``op`` on ``input`` (a grid string or an array; default the worked
    example) window by window. ``arguments``: ``kernel_size``, ``stride``, ``padding``,
    ``dilation`` (each an int or one int per dim), ``ceil_mode``, ``count_include_pad``,
    ``divisor_override``, ``p``, ``output_size``, ``seed``, ``alpha`` (``None`` means the
    default); one the op does not take raises ``ValueError``."""
    op, named_dims = _op_name(op)
    spec = OPS[op]
    given = {k: v for k, v in arguments.items() if v is not None}
    unknown = sorted(set(given) - set(_DEFAULTS))
    if unknown:
        raise TypeError(f"explain_op got unknown argument(s) {unknown}; known: {sorted(_DEFAULTS)}")
    not_taken = sorted(set(given) - set(spec.arguments))
    if not_taken:
        raise ValueError(
            f"{', '.join(not_taken)} do(es) not apply to {op}; it takes {', '.join(spec.arguments)}"
        )
    x = _input_grid(input, op, named_dims)
    args = _arguments(op, spec, given)
    if spec.windows == "family":
        return _explain_family(op, x, args)
    notes: list[str] = []
    table = _windows(spec, x, args, notes)
    output, index = spec.call(x[None], x.ndim, args)  # (1, *out): one channel, unbatched
    output = np.asarray(output)[0]
    index = np.asarray(index)[0] if index is not None else None
    windows = [
        _window(spec, x, args, table, output, index, out_index)
        for out_index in itertools.product(*(range(n) for n in output.shape))
    ]
    notes.extend(_edge_notes(spec, args, windows))
    worked_example = x.shape == (4, 4) and (x == np.arange(1, 17).reshape(4, 4)).all()
    if worked_example and op in ("avg", "adaptive_avg") and _is_worked_example(args, op):
        notes.append(TUTORIAL_NOTE)
    shown = {k: args[k] for k in spec.arguments
             if k in args and not (k == "divisor_override" and args[k] is None)}
    if spec.windows == "fractional":
        shown["samples (u per dim)"] = [float(v) for v in args["samples"][0, 0][::-1]]
    info = POOLS[op]
    return OpExplanation(
        op=op, title=info.title, formula=info.formula, paper=info.paper, input=x,
        arguments=shown, output_size=table.lines, windows=windows, output=output, notes=notes,
        padding=list(table.padding),
    )


def _explain_family(op: str, x: np.ndarray, args: dict[str, Any]) -> OpExplanation:
    from poolkit.experiments.explain_families import explain_family

    family = explain_family(op, x, args)
    info = POOLS[op]
    return OpExplanation(
        op=op, title=info.title, formula=info.formula, paper=info.paper,
        input=x if family.input is None else family.input,
        arguments={k: args[k] for k in OPS[op].arguments if args.get(k) is not None},
        output_size=family.lines, windows=family.windows, output=family.output,
        notes=family.notes, padding=list(family.padding), parameters=family.parameters,
        layer=family.layer, given=None if family.input is None else x,
    )


def _input_grid(input, op: str, named_dims: int | None) -> np.ndarray:
    if input is None and POOLS[op].dims == (1,):
        input = SEQUENCE_EXAMPLE  # a 1-D-only family (dynamic k-max) gets a sequence
    x = (
        parse_grid(WORKED_EXAMPLE if input is None else input)
        if input is None or isinstance(input, str)
        else np.asarray(input, dtype=np.float64)
    )
    if x.ndim not in (1, 2):
        raise ValueError(f"input must be 1-D or 2-D, got shape {x.shape}")
    if named_dims is not None and named_dims != x.ndim:
        hint = {1: "give one row", 2: "give rows split by ';'"}.get(
            named_dims, "explain draws 1-D and 2-D grids only")
        raise ValueError(
            f"op ({op}_pool{named_dims}d) pools {named_dims}-D input but the input grid is "
            f"{x.ndim}-D (shape {x.shape}): {hint}"
        )
    return x


def _arguments(op: str, spec: OpSpec, given: dict[str, Any]) -> dict[str, Any]:
    given = {  # (2,) is 2: the 1-D functions (lp_pool1d) take plain ints, like torch's
        k: v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v for k, v in given.items()
    }
    args = {**_DEFAULTS, **given}
    family_defaults = {"kmax": {"k": 2}, "dynamic_kmax": {"k": 1, "layer": 1, "num_layers": 2},
                       "spp": {"levels": (1, 2)}}.get(op, {})
    for name, value in family_defaults.items():  # shown on the arguments line
        if args[name] is None:
            args[name] = value
    if op in ("blur", "maxblur"):  # taps (blur: 3) or the max window (maxblur: 2), stride 2
        args["kernel_size"] = given.get("kernel_size", 3 if op == "blur" else 2)
        args["stride"] = given.get("stride", 2)
    if args["p"] is None:
        args["p"] = {"gem": 3.0, "lse": 1.0}.get(op, 2.0)
    if args["alpha"] is None:
        args["alpha"] = 0.5
    if args["stride"] is None and "stride" in spec.arguments:
        args["stride"] = args["kernel_size"]  # PyTorch's default: non-overlapping windows
    return args


def _window(spec, x, args, table, output, index, out_index) -> dict[str, Any]:
    """One output position: its window's cells, values, result, and what decided it."""
    positions = table.positions(out_index)
    values = [float(x[p]) if _inside(p, x.shape) else None for p in positions]
    window: dict[str, Any] = {
        "output": list(out_index),
        "positions": [list(p) for p in positions],
        "padding": [not _inside(p, x.shape) for p in positions],
        "values": values,
        "result": float(output[out_index]),
    }
    if table.clipped is not None and table.clipped(out_index):
        window["beyond_padding"] = table.clipped(out_index)
    real_sum = math.fsum(v for v in values if v is not None)
    if spec.name == "avg":
        padded, real = table.counts(out_index)
        divisor = args["divisor_override"] or (padded if args["count_include_pad"] else real)
        window.update(sum=real_sum, divisor=int(divisor))
    elif spec.name == "mixed":  # the two halves alpha mixes (padding in neither)
        real = [v for v in values if v is not None]
        window.update(max=max(real), mean=real_sum / len(real))
    elif spec.name == "lp":
        _, real = table.counts(out_index)
        window["scale"] = math.prod(_as_tuple(args["kernel_size"], x.ndim)) / real
    if spec.has_winner and index is not None:
        winner = np.unravel_index(int(index[out_index]), x.shape)
        window["winner"] = [int(v) for v in winner]
    if spec.weights is not None:
        window[spec.weights] = _window_weights(spec.weights, values)
    if "eval_output" in args:
        window["eval_result"] = float(np.asarray(args["eval_output"])[0][out_index])
    return window


def _as_tuple(value, dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims


def _edge_notes(spec: OpSpec, args: dict[str, Any], windows: list[dict[str, Any]]) -> list[str]:
    """Where a result surprises: clipped ceil-mode windows, Lp's scaling and NaN, ties."""
    notes = []
    clipped = [tuple(w["output"]) for w in windows if w.get("beyond_padding")]
    if clipped:
        notes.append(
            f"window(s) {', '.join(map(str, clipped))} reach past the padding (ceil mode): "
            "PyTorch reads only the cells inside the padded input and counts only those"
        )
    if spec.name == "avg":
        rule = (f"divisor_override={args['divisor_override']}" if args["divisor_override"]
                else "cells inside the padded input (count_include_pad=True)"
                if args["count_include_pad"] else "real cells only (count_include_pad=False)")
        notes.append(f"n = the divisor of each window, as PyTorch computes it: {rule}")
    if spec.name == "lp" and any(w["scale"] != 1 for w in windows):
        notes.append(
            "PyTorch computes lp as (K * avg_pool(x^p))^(1/p), K = the kernel's cells: a "
            "partial ceil-mode window's sum is scaled by K/n (the scale column)"
        )
    if spec.name == "lp" and any(math.isnan(w["result"]) for w in windows):
        notes.append(
            f"nan: a window whose sum of x^p is negative (negative input, p={args['p']}) has no "
            "real p-th root, and a negative x to a fractional p is already NaN; PyTorch gives NaN "
            "too. For signed input use lp_abs (|x|^p)"
        )
    ties = [tuple(w["output"]) for w in windows
            if "winner" in w and spec.weights is None
            and sum(v == w["result"] for v in w["values"] if v is not None) > 1]
    if ties:
        notes.append(f"tie(s) in window(s) {', '.join(map(str, ties))}: the first maximum in "
                     "scan order wins (PyTorch's rule)")
    return notes


def _window_weights(kind: str, values: list[float | None]) -> list[float | None]:
    """What each position weighs in its window (display only; results come from the engine):
    stochastic pooling's probabilities max(x, 0) / sum, SoftPool's softmax. Padding: None."""
    real = np.array([v for v in values if v is not None], dtype=np.float64)
    if kind == "probabilities":
        positive = np.maximum(real, 0.0)
        total = positive.sum()
        weights = positive / total if total > 0 else np.full(real.shape, np.nan)
    else:
        exp = np.exp(real - real.max()) if real.size else real
        weights = exp / exp.sum() if real.size else exp
    iterator = iter(weights.tolist())
    return [None if v is None else _nan_to_none(next(iterator)) for v in values]


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _is_worked_example(args, op) -> bool:
    if op == "adaptive_avg":
        return args["output_size"] in (None, 2, (2, 2), [2, 2])
    return (
        _as_tuple(args["kernel_size"], 2) == (2, 2)
        and _as_tuple(args["stride"], 2) == (2, 2)
        and _as_tuple(args["padding"], 2) == (0, 0)
        and not args["ceil_mode"]
        and not args["divisor_override"]
    )


def _inside(position, shape) -> bool:
    return all(0 <= p < n for p, n in zip(position, shape, strict=True))


@dataclass(frozen=True)
class _WindowTable:
    """The op's windows as the engine sees them: output-size lines, ``positions(out_index)``
    (clipped to the padded input, as PyTorch clips), the padding drawn around the grid, and
    for average/Lp pooling ``counts(out_index) -> (n_padded, n_real)`` from
    :meth:`poolkit.geometry.DimWindows.count`."""

    lines: list[str]
    positions: Callable[[tuple[int, ...]], list[tuple[int, ...]]]
    padding: tuple[int, ...]
    counts: Callable[[tuple[int, ...]], tuple[int, int]] | None = None
    clipped: Callable[[tuple[int, ...]], int] | None = None


def _windows(spec: OpSpec, x: np.ndarray, args: dict[str, Any], notes: list[str]) -> _WindowTable:
    """The window table of the op's kind of windows (regular, adaptive or fractional)."""
    if spec.windows == "window":
        return _regular_windows(spec, x, args)
    if spec.windows == "adaptive":
        return _adaptive_windows(x, args)
    return _fractional_windows(x, args, notes)


def _regular_windows(spec: OpSpec, x: np.ndarray, args: dict[str, Any]) -> _WindowTable:
    from poolkit import geometry

    dims = x.ndim
    dilation = args["dilation"] if "dilation" in spec.arguments else 1
    padding = args["padding"] if "padding" in spec.arguments else 0
    ceil_mode = args["ceil_mode"] if "ceil_mode" in spec.arguments else False
    shape = geometry.pool_geometry(
        x.shape, args["kernel_size"], args["stride"], padding, dilation, ceil_mode,
        fn_name=spec.name,
    )
    names = ("rows", "columns") if dims == 2 else ("length",)
    lines = [
        f"dim {d} ({names[d]}): L={size.input_size}, k={size.kernel_size}, s={size.stride}, "
        f"p={size.padding}, d={size.dilation}: {size.explain()}"
        for d, size in enumerate(shape.output_sizes)
    ]
    tables = [shape.windows(d) for d in range(dims)]
    pads = shape.padding

    def per_dim(out_index):  # PyTorch reads a window only within [-p, L + p)
        return [[i for i in t.positions(o) if -p <= i < t.input_size + p]
                for t, o, p in zip(tables, out_index, pads, strict=True)]

    def counts(out_index):
        padded = math.prod(t.count(o, p) for t, o, p in zip(tables, out_index, pads, strict=True))
        real = math.prod(t.count(o, 0) for t, o in zip(tables, out_index, strict=True))
        return padded, real

    def clipped(out_index):
        full = math.prod(t.length(o) for t, o in zip(tables, out_index, strict=True))
        return full - math.prod(len(p) for p in per_dim(out_index))

    return _WindowTable(lines, lambda out_index: list(itertools.product(*per_dim(out_index))),
                        pads, counts, clipped)


def _adaptive_windows(x: np.ndarray, args: dict[str, Any]) -> _WindowTable:
    from poolkit import geometry

    dims = x.ndim
    output_size = args["output_size"] if args["output_size"] is not None else 2
    sizes = geometry.normalize_output_size(output_size, dims, x.shape)
    bins = [geometry.adaptive_bins(length, out) for length, out in zip(x.shape, sizes, strict=True)]
    lines = [
        f"dim {d}: L={length}, O={out}: bins [floor(i*L/O), ceil((i+1)*L/O)) = "
        + ", ".join(f"[{a}, {b})" for a, b in bins[d])
        for d, (length, out) in enumerate(zip(x.shape, sizes, strict=True))
    ]
    args["output_size"] = sizes

    def adaptive_positions(out_index):
        ranges = [range(*bins[d][o]) for d, o in enumerate(out_index)]
        return list(itertools.product(*ranges))

    return _WindowTable(lines, adaptive_positions, (0,) * dims)


def _fractional_windows(x: np.ndarray, args: dict[str, Any], notes: list[str]) -> _WindowTable:
    from poolkit import geometry

    dims = x.ndim
    kernel = geometry.normalize_tuple(args["kernel_size"], dims, "kernel_size")
    if args["output_size"] is None:
        args["output_size"] = tuple(max(1, n // 2) for n in x.shape)
    sizes = geometry.fractional_output_size(x.shape, args["output_size"], None)
    geometry.check_fractional_sizes(x.shape, kernel, sizes)
    args["output_size"] = sizes
    rng = np.random.default_rng(args["seed"])
    samples = rng.random((1, 1, dims))  # torch's order for 2-d: (width, height)
    args["samples"] = samples
    per_dim = samples[0, 0][::-1] if dims == 2 else samples[0, 0]
    starts = [
        geometry.fractional_intervals(float(u), n, o, k, precision="float64")
        for u, n, o, k in zip(per_dim, x.shape, sizes, kernel, strict=True)
    ]
    lines = []
    for d, (u, n, o, k) in enumerate(zip(per_dim, x.shape, sizes, kernel, strict=True)):
        alpha = (n - k) / (o - 1) if o > 1 else math.nan
        lines.append(
            f"dim {d}: L={n}, k={k}, O={o}, u={u:.4f}, a=(L-k)/(O-1)={alpha:.4f}: window starts "
            f"{starts[d]}"
        )
    notes.append(f"samples u drawn with numpy.random.default_rng({args['seed']}) (--seed)")

    def fractional_positions(out_index):
        ranges = [range(starts[d][o], starts[d][o] + kernel[d]) for d, o in enumerate(out_index)]
        return list(itertools.product(*ranges))

    return _WindowTable(lines, fractional_positions, (0,) * dims)


# ---------------------------------------------------------------------------------------------
# The figure


def plot_op(explanation: OpExplanation, path) -> Any:
    """Draw the input grid with every window outlined (winners filled) and the output grid
    beside it, each output cell in its window's colour. PNG, written atomically."""
    import io

    from poolkit._io import atomic_write_bytes
    from poolkit.experiments.plots import pyplot

    plt = pyplot()
    x, out = explanation.input, explanation.output
    grid = x if x.ndim == 2 else x[None]
    out_grid = out if out.ndim == 2 else out[None]
    pad_lo, pad_hi = _padding_extent(explanation, grid.shape)
    width_in = grid.shape[1] + pad_lo[1] + pad_hi[1]
    height_in = grid.shape[0] + pad_lo[0] + pad_hi[0]
    scale = 0.62
    figure, (ax_in, ax_out) = plt.subplots(
        1,
        2,
        figsize=(scale * (width_in + out_grid.shape[1]) + 2.4, scale * max(height_in, 2) + 1.6),
        gridspec_kw={"width_ratios": [max(width_in, 1), max(out_grid.shape[1], 1)]},
    )
    colours = plt.get_cmap("tab10").colors
    _draw_input_grid(ax_in, grid, pad_lo, pad_hi, reflect=explanation.op in _REFLECT)
    if explanation.grad_input is not None:
        _draw_gradient(ax_in, explanation)
    _draw_windows(ax_in, explanation, colours)
    _draw_output_grid(ax_out, explanation, out_grid.shape, colours)
    for ax in (ax_in, ax_out):
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    figure.suptitle(f"{explanation.title}: {explanation.formula}", fontsize=9, wrap=True)
    figure.text(0.5, -0.02, _legend(explanation), ha="center", va="top", fontsize=8,
                color="#333333", wrap=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())


def _legend(explanation: OpExplanation) -> str:
    """What every colour of the picture means."""
    parts = ["each coloured outline is one window; its output cell has the same colour"]
    if explanation.op in _REFLECT:
        parts.append("grey cells in (): reflect padding, holding the mirrored value")
    elif any(any(w["padding"]) for w in explanation.windows):
        parts.append("grey 'pad' cells: padding (-inf for max, 0 and counted or not for avg, "
                     "taking no part in the others)")
    if any("winner" in w for w in explanation.windows):
        parts.append("filled cell: the window's winner (its value is the output)")
    if explanation.grad_input is not None:
        parts.append("backward: 'g' over an output is its upstream gradient; blue (red) shade and "
                     "'grad' under an input value: the gradient reaching that cell, positive "
                     "(negative), the shares of all its windows summed")
        if explanation.op == "maxblur":
            parts.append("the grid is M = max_pool(x, k, stride 1) and its gradient; the text "
                         "output carries it on to the winners in x")
        elif explanation.op == "lip":
            parts.append("LIP: the values' path and the logits' path together (the text output "
                         "shows each)")
    if any("divisor" in w for w in explanation.windows):
        parts.append("small numbers under an output: sum / n, n the divisor PyTorch uses")
    return "legend: " + "; ".join(parts)


def _as_2d(position, ndim: int) -> list[int]:
    """A position of a 1-D or 2-D grid as (row, column); 1-D grids are drawn as one row."""
    return list(position) if ndim == 2 else [0, *position]


def _padding_extent(explanation: OpExplanation, shape) -> tuple[list[int], list[int]]:
    """The padding drawn before and after the grid, per dim: the op's own (``padding``), the
    same geometry the engine uses; windows never reach past it."""
    pad = _as_2d(explanation.padding or [0] * explanation.input.ndim, explanation.input.ndim)
    return list(pad), list(pad)


_REFLECT = ("blur", "maxblur")  # reflect padding: a padding cell holds the mirrored value


def _mirror(i: int, n: int) -> int:
    return -i if i < 0 else 2 * (n - 1) - i if i >= n else i


def _draw_input_grid(ax, grid: np.ndarray, pad_lo, pad_hi, reflect: bool = False) -> None:
    """The input values, and the padding cells around them, as a table of cells."""
    from matplotlib.patches import Rectangle

    rows, cols = grid.shape
    ax.set_xlim(-pad_lo[1] - 0.5, cols + pad_hi[1] - 0.5)
    ax.set_ylim(rows + pad_hi[0] - 0.5, -pad_lo[0] - 0.5)
    for r in range(-pad_lo[0], rows + pad_hi[0]):
        for c in range(-pad_lo[1], cols + pad_hi[1]):
            inside = 0 <= r < rows and 0 <= c < cols
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, linewidth=0.8, edgecolor="#bbbbbb",
                                   facecolor="white" if inside else "#eeeeee"))
            label = short_number(grid[r, c]) if inside else "pad"
            if reflect and not inside:
                label = f"({short_number(grid[_mirror(r, rows), _mirror(c, cols)])})"
            ax.text(c, r, label, ha="center",
                    va="center", fontsize=9 if inside else 7,
                    color="black" if inside else "#999999")


def _draw_gradient(ax, explanation: OpExplanation) -> None:
    """Backward: each input cell shaded by the gradient reaching it (blue +, red -), the number
    under its value."""
    from matplotlib.patches import Rectangle

    grad = explanation.grad_input if explanation.grad_input.ndim == 2 else \
        explanation.grad_input[None]
    scale = float(np.abs(grad).max()) or 1.0
    for (r, c), value in np.ndenumerate(grad):
        colour = "#1f77b4" if value >= 0 else "#d62728"
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=colour,
                               alpha=0.45 * abs(value) / scale, linewidth=0))
        ax.text(c, r + 0.3, f"grad {short_number(float(value))}", ha="center", va="center",
                fontsize=6.5, color=colour)


def _draw_windows(ax, explanation: OpExplanation, colours) -> None:
    """Each window outlined in its colour (nested insets keep overlaps apart), winners filled."""
    from matplotlib.patches import Rectangle

    ndim = explanation.input.ndim
    for number, window in enumerate(explanation.windows):
        colour = colours[number % len(colours)]
        positions = [_as_2d(p, ndim) for p in window["positions"]]
        r0, r1 = min(p[0] for p in positions), max(p[0] for p in positions)
        c0, c1 = min(p[1] for p in positions), max(p[1] for p in positions)
        inset = 0.06 + 0.05 * (number % 3)
        ax.add_patch(Rectangle((c0 - 0.5 + inset, r0 - 0.5 + inset), c1 - c0 + 1 - 2 * inset,
                               r1 - r0 + 1 - 2 * inset, fill=False, edgecolor=colour,
                               linewidth=2))
        winner = window.get("winner")
        if winner is not None:
            wr, wc = _as_2d(winner, ndim)
            ax.add_patch(Rectangle((wc - 0.5, wr - 0.5), 1, 1, facecolor=colour, alpha=0.3))
    ax.set_title(
        f"input {'x'.join(map(str, explanation.input.shape))}: windows outlined"
        + (", winners filled" if any("winner" in w for w in explanation.windows) else ""),
        fontsize=9,
    )


def _draw_output_grid(ax, explanation: OpExplanation, shape, colours) -> None:
    """The output values, each cell in its window's colour."""
    from matplotlib.patches import Rectangle

    ax.set_xlim(-0.5, shape[1] - 0.5)
    ax.set_ylim(shape[0] - 0.5, -0.5)
    for number, window in enumerate(explanation.windows):
        o = _as_2d(window["output"], explanation.output.ndim)
        colour = colours[number % len(colours)]
        ax.add_patch(Rectangle((o[1] - 0.5, o[0] - 0.5), 1, 1, facecolor=colour, alpha=0.25,
                               edgecolor=colour, linewidth=2))
        ax.text(o[1], o[0], short_number(window["result"]), ha="center", va="center", fontsize=9)
        if "grad_output" in window:
            ax.text(o[1], o[0] - 0.3, f"g {short_number(window['grad_output'])}", ha="center",
                    va="center", fontsize=7, color="#1f77b4")
        if "divisor" in window:  # how the result follows from its window: sum / n
            ax.text(o[1], o[0] + 0.3, f"{short_number(window['sum'])} / {window['divisor']}",
                    ha="center", va="center", fontsize=7, color="#444444")
    ax.set_title(f"{explanation.op} output {'x'.join(map(str, explanation.output.shape))}",
                 fontsize=9)


def short_number(value: float) -> str:
    """Short number: integers without decimals, else up to 4 significant digits."""
    if value is None:
        return "·"
    if math.isfinite(value) and float(value).is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.4g}"

