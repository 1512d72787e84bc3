"""``poolkit explain OP --backward``: where the gradient of each output goes.

For an explained op and an upstream gradient ``g`` (one number per output; default ones),
:func:`explain_backward` gives every window the share of ``g[o]`` that reaches each of its cells,
``g[o] * dy[o]/dx[i]``, written from the numbers the forward explanation shows: the winner takes
all of it (max pooling), every counted cell ``1/n`` (average pooling, ``n`` the divisor shown),
``w_i (1 + x_i - y)`` for SoftPool (``w`` its softmax weights), the softmax of ``r x`` for
log-sum-exp, and so on. Summed over the windows they give the gradient with respect to the input,
which ``tests/test_explain_edges.py`` checks against the NumPy engine's ``*_backward`` functions
(and torch autograd through the layer, for the families). Two families take a second step,
shown as grids of their own (``grad_steps``): LIP's logits, whose gradient goes back through
the logit network (torch autograd of the layer's logit module: its instance norm mixes every
cell), and MaxBlur's max stage, from the max-pooled grid shown to the winners in the input.

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

ENGINE_OPS = ("max", "avg", "lp", "adaptive_max", "adaptive_avg", "fractional_max",
              "stochastic", "softpool", "gem", "lse", "mixed")
# Families computed by poolkit.nn layers (checked against torch autograd of that layer).
FAMILY_OPS = ("avgmax", "catavgmax", "lp_abs", "gated", "tree", "blur", "kmax",
              "dynamic_kmax", "spp", "lip", "attention", "maxblur")
BACKWARD_OPS = ENGINE_OPS + FAMILY_OPS
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
    "avgmax": "the winner takes g[o] / 2, every real cell g[o] / (2n)",
    "catavgmax": "average half: every real cell g[o] / n; max half: the winner g[o]",
    "lp_abs": "cell i takes g[o] * sign(x_i) |x_i|^(p-1) * y^(1-p)",
    "gated": "cell i takes g[o] * (g [i wins] + (1 - g) / n + g (1 - g) w_i (max - mean)): "
             "the gate moves with x too",
    "tree": "cell i takes g[o] * (g v1_i + (1 - g) v2_i + g (1 - g) w_i (v1.x - v2.x))",
    "blur": "cell i takes g[o] * its tap b_j (a padding tap goes to the cell it mirrors)",
    "kmax": "each kept value's cell takes its g[o]",
    "dynamic_kmax": "each kept value's cell takes its g[o]",
    "spp": "the winner of each bin takes g[o]",
    "lip": "through the values, cell i takes g[o] * w_i (w the softmax of the window's logits); "
           "through the logits, logit j takes g[o] * w_j * (x_j - y), which the logit network "
           "sends back to the cells it read",
    "attention": "cell i takes g[o] * W_out * a_i * (W_v + (v_i - sum_j a_j v_j) * q * W_k): "
                 "once as a value, once through its attention weight a_i",
    "maxblur": "blur step: cell j of M takes g[o] * its tap b_j (a padding tap goes to the cell "
               "it mirrors); max step: each cell of M passes its gradient to the winner of its "
               "max window in x",
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
        local = local_derivatives(explanation.op, window, explanation.arguments,
                                  explanation.parameters)
        shares = [None if d is None else upstream * d for d in local]
        for position, share in zip(window["positions"], shares, strict=True):
            if share is not None:  # blur's reflect padding: the mirrored cell
                grad_input[tuple(_mirror(i, n) for i, n in zip(position, x.shape,
                                                                strict=True))] += share
        window["grad_output"] = upstream
        window["gradient"] = shares
    explanation.grad_output = g
    explanation.grad_input = grad_input
    if explanation.op in _STEPS:
        _STEPS[explanation.op](explanation)
    explanation.notes.append(f"backward: {RULES[explanation.op]}; a cell in several windows "
                             "adds up its shares")
    return explanation


def _lip_steps(explanation) -> None:
    """LIP's second path: each window's share to the logits of its cells, summed per cell, then
    back through the logit network (a convolution, instance norm and sigmoid over the whole
    grid, so every cell feeds every logit: torch autograd of ``layer.logit`` does that step)."""
    import torch

    x = explanation.input
    to_logits = np.zeros_like(x, dtype=np.float64)
    for window in explanation.windows:
        upstream, y = window["grad_output"], window["result"]
        shares = [None if w is None else upstream * w * (v - y)
                  for w, v in zip(window["weights"], window["values"], strict=True)]
        for position, share in zip(window["positions"], shares, strict=True):
            if share is not None:
                to_logits[tuple(position)] += share
        window["logit_gradient"] = shares
    cells = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    logits = explanation.layer.logit(cells[None, None])[0, 0]
    (back,) = torch.autograd.grad(logits, cells, torch.from_numpy(to_logits),
                                  allow_unused=True)  # unused: one cell (a constant logit)
    through_network = np.zeros_like(to_logits) if back is None else back.numpy()
    through_values = explanation.grad_input
    explanation.grad_input = through_values + through_network
    explanation.grad_steps = [
        {"label": "through the values (the shares above, summed per cell)",
         "grid": through_values},
        {"label": "to each logit: g[o] * w_j * (x_j - y), summed over its windows",
         "grid": to_logits},
        {"label": "through the logit network (conv, instance norm, sigmoid; torch autograd): "
                  "what the logits send back to each cell", "grid": through_network},
    ]
    explanation.grad_input_label = "the input (the two paths summed)"


def _maxblur_steps(explanation) -> None:
    """MaxBlurPool's first step, max pooling with stride 1: each cell of M (the grid shown)
    passes its gradient to the winner of its max window in the given input."""
    from poolkit.numpy import pooling

    x, grad_m = explanation.given, explanation.grad_input
    taps = explanation.arguments.get("kernel_size") or 2
    max_pool = getattr(pooling, f"max_pool{x.ndim}d")
    _, index = max_pool(x[None].astype(np.float64), taps, 1, return_indices=True)
    grad_x = np.zeros(x.size, dtype=np.float64)
    np.add.at(grad_x, np.ravel(index), np.ravel(grad_m))
    explanation.grad_steps = [
        {"label": "gradient with respect to x, the given input (each cell of M passes its "
                  "gradient to the winner of its max window)", "grid": grad_x.reshape(x.shape)},
    ]
    explanation.grad_input_label = "M, the max-pooled grid shown (the shares summed per cell)"


_STEPS = {"lip": _lip_steps, "maxblur": _maxblur_steps}


def local_derivatives(op: str, window: dict[str, Any], arguments: dict[str, Any],
                      parameters: dict[str, Any] | None = None):
    """``dy[o]/dx[i]`` for every cell of the window (``None`` for padding), from the numbers the
    forward explanation shows (and its printed ``parameters``, for the learned families)."""
    if op in FAMILY_OPS:
        return _family_derivatives(op, window, arguments, parameters or {})
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


def _family_derivatives(op, window, arguments, parameters):
    values = [None if padded else v
              for v, padded in zip(window["values"], window["padding"], strict=True)]
    real = [v for v in values if v is not None]
    n, y = len(real), window["result"]
    first_max = next((i for i, v in enumerate(values) if v is not None and v == max(real)), None)
    if op in ("kmax", "dynamic_kmax", "spp"):
        winner = window["positions"].index(window["winner"])
        return _each(values, lambda i, v: float(i == winner))
    if op == "avgmax":
        return _each(values, lambda i, v: 0.5 * (i == first_max) + 0.5 / n)
    if op == "catavgmax":
        if window["half"] == "avg":
            return _each(values, lambda i, v: 1.0 / n)
        return _each(values, lambda i, v: float(i == first_max))
    if op == "lp_abs":
        p = arguments["p"]
        return _each(values, lambda i, v: 0.0 if y == 0 else
                     math.copysign(1.0, v) * (v != 0) * _pow(abs(v), p - 1) * _pow(y, 1 - p))
    if op in ("gated", "tree"):
        gate = window["gate"]
        mask = np.ravel(parameters["gate_mask"])
        if op == "gated":
            spread = window["max"] - window["mean"]
            return _each(values, lambda i, v: gate * (i == first_max) + (1 - gate) / n
                         + gate * (1 - gate) * mask[i] * spread)
        left, right = (np.ravel(leaf) for leaf in parameters["leaf_filters"])
        spread = window["leaves"][0] - window["leaves"][1]
        return _each(values, lambda i, v: gate * left[i] + (1 - gate) * right[i]
                     + gate * (1 - gate) * mask[i] * spread)
    if op in ("blur", "maxblur"):  # every tap, padding ones too: they read (and feed) a mirror
        return [float(w) for w in window["weights"]]
    if op == "lip":  # the values' path; the logits' path is added by _lip_steps
        return _each(values, lambda i, v: window["weights"][i])
    if op == "attention":
        (q_w, q_b), (k_w, _), (v_w, v_b), (o_w, _) = (
            parameters[name] for name in ("q_proj", "k_proj", "v_proj", "out_proj"))
        query = q_w * parameters["query"] + q_b
        a = window["weights"]
        mean_value = math.fsum(a_j * (v_w * v + v_b) for a_j, v in zip(a, real, strict=True))
        return _each(values, lambda i, v: o_w * a[i] * (v_w + (v_w * v + v_b - mean_value)
                                                         * query * k_w))
    raise ValueError(f"no backward rule for {op!r}")


def _mirror(i: int, n: int) -> int:
    """Where a reflect-padding position reads (inside positions are unchanged)."""
    return -i if i < 0 else 2 * (n - 1) - i if i >= n else i


def _each(values, rule) -> list[float | None]:
    return [None if v is None else float(rule(i, v)) for i, v in enumerate(values)]


def _pow(base: float, exponent: float) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.power(base, exponent))
