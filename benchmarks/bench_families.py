"""Pooling families: poolkit's composition of fast primitives vs the unfold formulation.

For each family, forward + backward on float32 ``(32, 64, 56, 56)``, 3x3 windows, stride 2:

- time: the fastest of ``--repeats`` wall-time runs of each, the two formulations alternating
  in one process, on ``--threads`` intra-op threads (default 1: on a busy shared machine the
  thread barriers of every op, not the arithmetic, dominate multi-threaded timings);
- peak memory: the largest amount of tensor memory allocated *during* forward + backward above
  what was allocated before it (the input and parameters), from PyTorch's profiler allocation
  events (``torch.profiler.profile(profile_memory=True)``: every CPU tensor allocation and free,
  with the allocator's running total).

Ratios > 1 favour poolkit (``speedup`` = unfold time / poolkit time, ``memory`` = unfold peak /
poolkit peak). Targets: speedup >= 3, memory >= 4.

    python benchmarks/bench_families.py              # the full size (a few minutes)
    python benchmarks/bench_families.py --quick      # (8, 16, 28, 28)
    python benchmarks/bench_families.py --json       # machine-readable
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

import poolkit.nn.functional as PF

K, S = 3, 2


def _windows(x: torch.Tensor) -> torch.Tensor:
    """(N, C, K*K, L): every window copied (the formulation poolkit avoids)."""
    n, c = x.shape[:2]
    return F.unfold(x, K, stride=S).view(n, c, K * K, -1)


def _fold_shape(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    side = (x.shape[-1] - K) // S + 1
    return y.view(*x.shape[:2], side, side)


def unfold_softpool(x, _):
    u = _windows(x)
    return _fold_shape((u * u.softmax(2)).sum(2), x)


def unfold_lip(x, logits):
    u, w = _windows(x), _windows(logits).softmax(2)
    return _fold_shape((u * w).sum(2), x)


def unfold_gem(x, p):
    u = _windows(x)
    return _fold_shape(u.clamp_min(1e-6).pow(p).mean(2).pow(1.0 / p), x)


def unfold_lse(x, _):
    u = _windows(x)
    return _fold_shape((torch.logsumexp(u, 2) - math.log(K * K)), x)


def unfold_lp_abs(x, _):
    u = _windows(x)
    return _fold_shape(u.abs().pow(1.5).sum(2).pow(1 / 1.5), x)


def unfold_stochastic(x, _):
    u = _windows(x)
    a = u.clamp_min(0)
    probs = a / a.sum(2, keepdim=True).clamp_min(1e-12)
    draw = torch.rand(probs.shape[0], probs.shape[1], 1, probs.shape[3])
    index = (probs.cumsum(2) < draw).sum(2, keepdim=True).clamp_max(K * K - 1)
    return _fold_shape(a.gather(2, index).squeeze(2), x)


def unfold_mixed(x, _):
    u = _windows(x)
    return _fold_shape(0.3 * u.amax(2) + 0.7 * u.mean(2), x)


FAMILIES: dict[str, tuple[Callable, Callable]] = {
    "softpool": (lambda x, _: PF.soft_pool2d(x, K, S), unfold_softpool),
    "lip": (lambda x, logits: PF.lip_pool2d(x, logits, K, S), unfold_lip),
    "gem": (lambda x, p: PF.gem_pool2d(x, K, S, p=p), unfold_gem),
    "lse": (lambda x, _: PF.lse_pool2d(x, K, S), unfold_lse),
    "lp_abs": (lambda x, _: PF.lp_abs_pool2d(x, 1.5, K, S), unfold_lp_abs),
    "stochastic": (lambda x, _: PF.stochastic_pool2d(x, K, S, training=True), unfold_stochastic),
    "mixed": (lambda x, _: PF.mixed_pool2d(x, K, S, alpha=0.3), unfold_mixed),
}


def _inputs(name: str, shape, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen)
    if name == "gem":
        return x.abs_().add_(0.1).requires_grad_(), torch.tensor(3.0, requires_grad=True)
    if name == "lip":
        return x.requires_grad_(), torch.randn(shape, generator=gen).requires_grad_()
    return x.requires_grad_(), None


def _step(function, x, extra) -> None:
    y = function(x, extra)
    y.backward(torch.ones_like(y))


def _clear(x, extra) -> None:
    for t in (x, extra):
        if isinstance(t, torch.Tensor):
            t.grad = None


def time_pair(ours, unfold, x, extra, repeats: int, clock=time.perf_counter):
    """Fastest forward+backward of each, alternating so that both see the same load."""
    times: dict[int, list[float]] = {0: [], 1: []}
    for function in (ours, unfold):  # warm-up
        _step(function, x, extra)
        _clear(x, extra)
    for _ in range(repeats):
        for key, function in enumerate((ours, unfold)):
            start = clock()
            _step(function, x, extra)
            times[key].append(clock() - start)
            _clear(x, extra)
    return min(times[0]), min(times[1])


def peak_memory(function, x, extra) -> int:
    """Peak bytes allocated during forward + backward above the level before it."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    _clear(x, extra)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _step(function, x, extra)
    _clear(x, extra)
    events = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation:
            events.append((node.start_time_ns, node.extra_fields))
        stack.extend(node.children)
    events.sort(key=lambda e: e[0])
    if not events:
        return 0
    first = events[0][1]
    baseline = first.total_allocated - first.alloc_size
    return max(fields.total_allocated for _, fields in events) - baseline


def run(shape, repeats: int, names, clock=time.perf_counter) -> list[dict]:
    rows = []
    for name in names:
        ours, unfold = FAMILIES[name]
        x, extra = _inputs(name, shape)
        row = {"family": name}
        row["poolkit_s"], row["unfold_s"] = time_pair(ours, unfold, x, extra, repeats, clock)
        row["poolkit_peak_mb"] = peak_memory(ours, x, extra) / 2**20
        row["unfold_peak_mb"] = peak_memory(unfold, x, extra) / 2**20
        row["speedup"] = row["unfold_s"] / row["poolkit_s"]
        row["memory_ratio"] = row["unfold_peak_mb"] / max(row["poolkit_peak_mb"], 1e-9)
        rows.append(row)
        del x, extra
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="(8, 16, 28, 28) instead")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--json", action="store_true", help="print JSON rows only")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="wall",
                        help="wall time (default) or process CPU time")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads (default 1: on a shared machine, thread "
                             "barriers under load dominate many-op formulations)")
    args = parser.parse_args(argv)
    shape = (8, 16, 28, 28) if args.quick else (32, 64, 56, 56)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    rows = run(shape, args.repeats, args.families, clock)
    if args.json:
        print(json.dumps({"shape": shape, "kernel": K, "stride": S, "clock": args.clock,
                          "threads": torch.get_num_threads(), "rows": rows}, indent=2))
        return 0
    table = Table(title=f"forward+backward, float32 {shape}, {K}x{K} stride {S}, "
                        f"{torch.get_num_threads()} threads, {args.clock} time "
                        "(ratios > 1 favour poolkit)")
    for column in ("family", "poolkit ms", "unfold ms", "speedup", "poolkit MiB", "unfold MiB",
                   "memory ratio"):
        table.add_column(column, justify="left" if column == "family" else "right")
    for r in rows:
        table.add_row(
            r["family"], f"{r['poolkit_s'] * 1e3:.1f}", f"{r['unfold_s'] * 1e3:.1f}",
            f"{r['speedup']:.2f}x", f"{r['poolkit_peak_mb']:.1f}", f"{r['unfold_peak_mb']:.1f}",
            f"{r['memory_ratio']:.2f}x",
        )
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
