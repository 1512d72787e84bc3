"""``poolkit explain OP --backward``: where the gradient of each output goes.

For an explained op and an upstream gradient ``g`` (one number per output; default ones),
:func:`explain_backward` gives every window the share of ``g[o]`` that reaches each of its cells,
``g[o] * dy[o]/dx[i]``, written from the numbers the forward explanation shows: the winner takes
all of it (max pooling), every counted cell ``1/n`` (average pooling, ``n`` the divisor shown),
``w_i (1 + x_i - y)`` for SoftPool (``w`` its softmax weights), the softmax of ``r x`` for
log-sum-exp, and so on. Summed over the windows they give the gradient with respect to the input,
which ``tests/test_explain_edges.py`` checks against the NumPy engine's ``*_backward`` functions.

Example:
    >>> from poolkit.experiments.explain_op import explain_op
    >>> e = explain_backward(explain_op("max"))
    >>> e.grad_input.tolist()[1]
    [0.0, 1.0, 0.0, 1.0]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

BACKWARD_OPS = ("max", "avg", "lp", "adaptive_max", "adaptive_avg", "fractional_max",
                "stochastic", "softpool", "gem", "lse", "mixed")
RULES = {
    "max": "the winner takes g[o]; every other cell 0",
    "adaptive_max": "the winner takes g[o]; every other cell 0",
    "fractional_max": "the winner takes g[o]; every other cell 0",
    "avg": "every cell the divisor counts takes g[o] / n (padding's share is lost)",
    "adaptive_avg": "every cell of the bin takes g[o] / n",
    "lp": "cell i takes g[o] * scale * x_i^(p-1) * y^(1-p)",
    "stochastic": "training: the sampled cell takes g[o] (if it is positive)",
    "softpool": "cell i takes g[o] * w_i * (1 + x_i - y), w the softmax weights",
    "gem": "cell i takes g[o] * x_i^(p-1) * y^(1-p) / n (0 where x_i <= eps)",
    "lse": "cell i takes g[o] * softmax(r x)_i",
    "mixed": "the winner takes alpha * g[o], every real cell (1 - alpha) * g[o] / n",
}
_GEM_EPS = 1e-6


def explain_backward(explanation, grad_output: np.ndarray | str | None = None):
    """Fill ``explanation`` (an :class:`OpExplanation`) with the backward pass: ``grad_output``,
    ``grad_input``, the rule, and per window ``grad_output`` and ``gradient`` (the share reaching
    each cell; ``None`` for padding). Returns the same object."""
    from poolkit.experiments.explain_op import parse_grid

    if explanation.op not in BACKWARD_OPS:
        raise ValueError(
            f"--backward covers {', '.join(BACKWARD_OPS)}; got op {explanation.op!r}"
        )
    if grad_output is None:
        g = np.ones_like(explanation.output, dtype=np.float64)
    else:
        g = parse_grid(grad_output) if isinstance(grad_output, str) else np.asarray(
            grad_output, dtype=np.float64)
        if g.shape != explanation.output.shape:
            raise ValueError(f"grad_output must have the output's shape "
                             f"{explanation.output.shape}, got {g.shape}")
    x = explanation.input
    grad_input = np.zeros_like(x, dtype=np.float64)
    for window in explanation.windows:
        upstream = float(g[tuple(window["output"])])
        local = local_derivatives(explanation.op, window, explanation.arguments)
        shares = [None if d is None else upstream * d for d in local]
        for position, share in zip(window["positions"], shares, strict=True):
            if share is not None:
                grad_input[tuple(position)] += share
        window["grad_output"] = upstream
        window["gradient"] = shares
    explanation.grad_output = g
    explanation.grad_input = grad_input
    explanation.notes.append(f"backward: {RULES[explanation.op]}; a cell in several windows "
                             "adds up its shares")
    return explanation


def local_derivatives(op: str, window: dict[str, Any], arguments: dict[str, Any]):
    """``dy[o]/dx[i]`` for every cell of the window (``None`` for padding), from the numbers the
    forward explanation shows."""
    values = window["values"]
    real = [v for v in values if v is not None]
    y = window["result"]
    if op in ("max", "adaptive_max", "fractional_max", "stochastic"):
        winner = window["positions"].index(window["winner"])
        gate = 1.0 if op != "stochastic" or values[winner] > 0 else 0.0
        return _each(values, lambda i, v: gate if i == winner else 0.0)
    if op == "avg":
        return _each(values, lambda i, v: 1.0 / window["divisor"])
    if op == "adaptive_avg":
        return _each(values, lambda i, v: 1.0 / len(real))
    if op == "lp":
        p = arguments["p"]
        if not math.isfinite(p):
            raise ValueError(f"--backward needs a finite p for lp, got {p}")
        return _each(values, lambda i, v: 0.0 if y == 0 else window["scale"] * _pow(v, p - 1)
                     * _pow(y, 1 - p))
    if op == "softpool":
        return _each(values, lambda i, v: window["weights"][i] * (1 + v - y))
    if op == "gem":
        p = arguments["p"]
        return _each(values, lambda i, v: 0.0 if v <= _GEM_EPS else
                     v ** (p - 1) * y ** (1 - p) / len(real))
    if op == "lse":
        r = arguments["p"]
        peak = max(real)
        total = math.fsum(math.exp(r * (v - peak)) for v in real)
        return _each(values, lambda i, v: math.exp(r * (v - peak)) / total)
    if op == "mixed":
        alpha = arguments["alpha"]
        first_max = next(i for i, v in enumerate(values) if v is not None and v == max(real))
        return _each(values, lambda i, v: alpha * (i == first_max) + (1 - alpha) / len(real))
    raise ValueError(f"no backward rule for {op!r}")


def _each(values, rule) -> list[float | None]:
    return [None if v is None else float(rule(i, v)) for i, v in enumerate(values)]


def _pow(base: float, exponent: float) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.power(base, exponent))
