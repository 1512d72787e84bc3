"""Optimisers and learning-rate schedules.

Optimisers: ``"adamw"`` (default lr 1e-3) and ``"adadelta"`` (Kim 2014 / Zeiler 2012: rho 0.95,
eps 1e-6, lr 1.0). Schedules multiply the base learning rate by a factor of the step
:math:`s` out of :math:`S` total steps, after a linear warmup over :math:`W` steps:

.. math::

    f(s) = \\begin{cases} (s + 1) / W & s < W \\\\
    1 & \\text{constant} \\\\
    1 - p & \\text{linear} \\\\
    \\tfrac12 (1 + \\cos \\pi p) & \\text{cosine} \\end{cases}
    \\qquad p = \\frac{s - W}{\\max(1, S - W)}

The factor is a pure function of the step, so resuming needs only the step count (no scheduler
object to serialise).

Example:
    >>> [round(lr_factor(s, total_steps=10, schedule="linear", warmup_steps=2), 2)
    ...  for s in (0, 1, 2, 6, 9)]
    [0.5, 1.0, 1.0, 0.5, 0.12]
"""

from __future__ import annotations

import contextlib
import math

import torch

__all__ = [
    "OPTIMIZERS", "SCHEDULES", "Adadelta", "WeightAverage", "build_optimizer", "default_lr",
    "layer_decay_groups", "lr_factor",
]

OPTIMIZERS = ("adamw", "adadelta", "sgd")
SCHEDULES = ("constant", "linear", "cosine")


def default_lr(optimizer: str) -> float:
    return {"adamw": 1e-3, "adadelta": 1.0, "sgd": 0.1}[_check_optimizer(optimizer)]


def _check_optimizer(name: str) -> str:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer ({name!r}) must be one of {list(OPTIMIZERS)}")
    return name


def build_optimizer(
    parameters, name: str = "adamw", lr: float | None = None, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """AdamW, Adadelta (rho 0.95 as in Kim) or SGD with momentum 0.9 over ``parameters``
    (those with ``requires_grad``): tensors, or param-group dicts (``{"params": [...],
    "lr_scale": 0.5}``: the trainer sets each group's lr to the scheduled lr times its
    ``lr_scale``)."""
    name = _check_optimizer(name)
    lr = default_lr(name) if lr is None else float(lr)
    if lr <= 0:
        raise ValueError(f"lr ({lr}) must be positive")
    if weight_decay < 0:
        raise ValueError(f"weight_decay ({weight_decay}) must be >= 0")
    parameters = list(parameters)
    if parameters and isinstance(parameters[0], dict):
        groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in parameters]
        parameters = [g for g in groups if g["params"]]
        tensors = [p for g in parameters for p in g["params"]]
    else:
        parameters = tensors = [p for p in parameters if p.requires_grad]
    if name == "adamw":
        # the fused kernel is one pass over each tensor (~8x faster on a large embedding)
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in tensors)
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, fused=fused or None)
    if name == "adadelta":
        return Adadelta(parameters, lr=lr, rho=0.95, eps=1e-6, weight_decay=weight_decay)
    return torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=weight_decay)


class Adadelta(torch.optim.Optimizer):
    """Adadelta (Zeiler, 2012) that skips the rows a step does not touch, exactly.

    .. math::

        s_t = \\rho s_{t-1} + (1 - \\rho) g_t^2, \\quad
        \\Delta_t = \\frac{\\sqrt{a_{t-1} + \\epsilon}}{\\sqrt{s_t + \\epsilon}} g_t, \\quad
        a_t = \\rho a_{t-1} + (1 - \\rho) \\Delta_t^2, \\quad
        \\theta_t = \\theta_{t-1} - \\eta \\Delta_t

    A row (first index) whose gradient is all zero — an embedding row of a word not in the batch —
    only decays: :math:`s, a \\leftarrow \\rho s, \\rho a`, :math:`\\theta` unchanged. Instead of
    touching all of a 19k x 300 embedding every step (most of the step's time on a CPU), each row
    remembers the step it was last updated and catches up with :math:`\\rho^k` when it is next
    touched. The result is ``torch.optim.Adadelta``'s up to float rounding of :math:`\\rho^k`
    (tested). With ``weight_decay`` every row is touched and the update is dense.

    State per parameter: ``step``, ``square_avg`` (:math:`s`), ``acc_delta`` (:math:`a`) as in
    torch, plus ``last_step`` (one int per row) for parameters with 2 or more dimensions.
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0):
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"rho ({rho}) must be in [0, 1]")
        if not eps >= 0.0:
            raise ValueError(f"eps ({eps}) must be >= 0")
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, rho, eps, decay = group["lr"], group["rho"], group["eps"], group["weight_decay"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if decay:
                    grad = grad.add(param, alpha=decay)
                state = self.state[param]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["square_avg"] = torch.zeros_like(param)
                    state["acc_delta"] = torch.zeros_like(param)
                    if param.ndim >= 2:
                        state["last_step"] = torch.zeros(param.shape[0], dtype=torch.int64,
                                                         device=param.device)
                state["step"] += 1
                step = int(state["step"].item())
                square_avg, acc_delta = state["square_avg"], state["acc_delta"]
                if "last_step" in state:
                    last = state["last_step"]
                    flat = grad.flatten(1)  # (rows, rest); max and min avoid an abs() copy
                    rows = ((flat.amax(dim=1) != 0) | (flat.amin(dim=1) != 0)).nonzero()
                    rows = rows.squeeze(1)
                    if not decay and len(rows) < param.shape[0] // 2:
                        shape = (-1,) + (1,) * (param.ndim - 1)
                        # catch up the steps a row skipped: s, a <- rho^k s, rho^k a
                        skipped = (step - 1 - last.index_select(0, rows)).to(param.dtype)
                        catch_up = torch.pow(torch.full_like(skipped, rho), skipped).view(shape)
                        g = grad.index_select(0, rows)
                        s = square_avg.index_select(0, rows).mul_(catch_up)
                        s.mul_(rho).addcmul_(g, g, value=1 - rho)
                        a = acc_delta.index_select(0, rows).mul_(catch_up)
                        delta = a.add(eps).sqrt_().div_(s.add(eps).sqrt_()).mul_(g)
                        a.mul_(rho).addcmul_(delta, delta, value=1 - rho)
                        square_avg.index_copy_(0, rows, s)
                        acc_delta.index_copy_(0, rows, a)
                        param.index_add_(0, rows, delta, alpha=-lr)
                        last.index_fill_(0, rows, step)
                        continue
                    # a dense step: first bring every row up to date
                    skipped = (step - 1 - last).to(param.dtype)
                    if bool((skipped > 0).any()):
                        catch_up = torch.pow(torch.full_like(skipped, rho), skipped)
                        catch_up = catch_up.view((-1,) + (1,) * (param.ndim - 1))
                        square_avg.mul_(catch_up)
                        acc_delta.mul_(catch_up)
                    last.fill_(step)
                square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
                delta = acc_delta.add(eps).sqrt_().div_(square_avg.add(eps).sqrt_()).mul_(grad)
                acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
                param.add_(delta, alpha=-lr)
        return loss


def lr_factor(step: int, total_steps: int, schedule: str = "constant", warmup_steps: int = 0
              ) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule ({schedule!r}) must be one of {list(SCHEDULES)}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def layer_decay_groups(layers, decay: float) -> list[dict]:
    """Param groups for layer-wise learning-rate decay (discriminative fine-tuning, Howard &
    Ruder 2018; ELECTRA, Clark et al. 2020): ``layers`` lists the parameter lists from the
    bottom (embeddings) to the top (the head); layer :math:`i` of :math:`n` trains at
    :math:`\\text{decay}^{\\,n-1-i}` times the learning rate, so the head gets the full lr
    and the pretrained bottom the least.

    Example:
        >>> import torch
        >>> layers = [[torch.nn.Parameter(torch.zeros(1))] for _ in range(3)]
        >>> [g["lr_scale"] for g in layer_decay_groups(layers, 0.5)]
        [0.25, 0.5, 1.0]
    """
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"layer_lr_decay ({decay}) must be in (0, 1]")
    layers = [list(params) for params in layers]
    count = len(layers)
    seen: set[int] = set()
    groups = []
    for index, params in enumerate(layers):
        for param in params:
            if id(param) in seen:
                raise ValueError("a parameter appears in two layers of the lr decay groups")
            seen.add(id(param))
        groups.append({"params": params, "lr_scale": decay ** (count - 1 - index)})
    return groups


class WeightAverage:
    """Exponential moving average of a model's trainable weights (Polyak averaging), bias
    corrected as Adam's moments are: after :math:`t` updates with weights
    :math:`\\theta_1 \\dots \\theta_t`,

    .. math::

        \\bar\\theta_t = \\frac{\\sum_{s=1}^{t} (1 - d)\\, d^{\\,t-s}\\, \\theta_s}{1 - d^{\\,t}}

    so the starting weights (a random head) carry no weight however few steps were taken.
    Only parameters with ``requires_grad`` are shadowed (frozen ones never change, so a LoRA
    model costs the adapters only). :meth:`swapped` puts the average into the model for
    evaluation and the training weights back afterwards; :meth:`copy_to` keeps it there.
    ``state_dict``/``load_state_dict`` make it resumable. ``torch.optim.swa_utils.AveragedModel``
    averages a deep copy of the whole model, frozen backbone included, without the correction.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema ({decay}) must be in (0, 1)")
        self.decay = float(decay)
        self.updates = 0
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.shadow = {n: torch.zeros_like(p, dtype=torch.float32)
                       for n, p in self.params.items()}

    @torch.no_grad()
    def update(self) -> None:
        names = list(self.params)
        torch._foreach_lerp_([self.shadow[n] for n in names],
                             [self.params[n].detach().float() for n in names], 1.0 - self.decay)
        self.updates += 1

    @torch.no_grad()
    def copy_to(self) -> None:
        """Write the average into the model (nothing before the first update)."""
        if self.updates == 0:
            return
        correction = 1.0 - self.decay**self.updates
        for name, param in self.params.items():
            param.copy_(self.shadow[name] / correction)

    @contextlib.contextmanager
    def swapped(self):
        """Context manager: the model holds the averaged weights inside the block."""
        saved = {n: p.detach().clone() for n, p in self.params.items()}
        self.copy_to()
        try:
            yield
        finally:
            with torch.no_grad():
                for name, param in self.params.items():
                    param.copy_(saved[name])

    def state_dict(self) -> dict:
        return {"updates": self.updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        shadow = state.get("shadow", {})
        missing = sorted(set(self.shadow) - set(shadow))
        if missing:
            raise ValueError(f"weight average state lacks {missing[:3]}")
        for name, tensor in self.shadow.items():
            tensor.copy_(shadow[name])
        self.updates = int(state["updates"])
