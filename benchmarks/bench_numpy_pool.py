"""Speed of poolkit.numpy's max and average pooling (not a test).

Times, in one process and one thread, on float32 ``(32, 64, 112, 112)`` with 2x2/stride 2 and
3x3/stride 2/padding 1, forward and backward:

- poolkit.numpy with the numba kernels (when numba is installed) and with pure NumPy;
- torch.nn.functional on NCHW and on channels-last tensors (backward: the aten backward kernels
  fed the saved indices, i.e. without the forward);
- the naive per-window Python loop, timed on a small slice of planes and extrapolated
  linearly to the full tensor (it would take minutes otherwise; the table says so).

Each time is the median of ``--repeats`` runs after one warm-up run (which also compiles the
numba kernels). Every row shows the ratio to torch NCHW and to the memory-bandwidth limit:
bytes read + written by the op divided by the bandwidth ``np.copyto`` reaches on the same
tensor. poolkit's max backward recomputes the argmax from the input (its signature is
``f_backward(grad_output, input, ...)``), so its limit counts reading the input; torch's reads
the saved int64 indices instead. The machine may be shared: read the ratios, not the absolute
times, and rerun when in doubt.

Run::

    python benchmarks/bench_numpy_pool.py                 # full size, 5 repeats
    python benchmarks/bench_numpy_pool.py --quick         # (8, 16, 56, 56), 3 repeats
    python benchmarks/bench_numpy_pool.py --json out.json # also save the rows
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"  # before numpy/torch/numba are imported

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

import poolkit.numpy as pnp  # noqa: E402
from poolkit.geometry import pool_geometry  # noqa: E402
from poolkit.numpy._backend import numba_available, use_backend  # noqa: E402

CONFIGS = {"2x2/s2": (2, 2, 0), "3x3/s2/p1": (3, 2, 1)}
OPS = ("max fwd", "max fwd+idx", "avg fwd", "max bwd", "avg bwd")


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up (and numba compilation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


# --- the naive per-window loop (the definition, one window at a time) ----------------------


def naive(op: str, x: np.ndarray, g: np.ndarray, k: int, s: int, p: int) -> np.ndarray:
    planes = x.reshape(-1, *x.shape[-2:])
    fill = -np.inf if op.startswith("max") else 0.0
    padded = np.pad(planes, ((0, 0), (p, p), (p, p)), constant_values=fill)
    oh, ow = pool_geometry(x.shape[-2:], k, s, p).output_size
    if op.endswith("fwd") or op == "max fwd+idx":
        out = np.empty((planes.shape[0], oh, ow), x.dtype)
        for n in range(planes.shape[0]):
            for i in range(oh):
                for j in range(ow):
                    window = padded[n, i * s:i * s + k, j * s:j * s + k]
                    out[n, i, j] = window.max() if op.startswith("max") else window.sum() / (k * k)
        return out
    grads = g.reshape(-1, oh, ow)
    grad = np.zeros_like(padded)
    for n in range(planes.shape[0]):
        for i in range(oh):
            for j in range(ow):
                window = padded[n, i * s:i * s + k, j * s:j * s + k]
                if op.startswith("max"):
                    a, b = np.unravel_index(np.argmax(window), window.shape)
                    grad[n, i * s + a, j * s + b] += grads[n, i, j]
                else:
                    grad[n, i * s:i * s + k, j * s:j * s + k] += grads[n, i, j] / (k * k)
    return grad[:, p:p + x.shape[-2], p:p + x.shape[-1]]


# --- one benchmark row per (op, config, implementation) -----------------------------------


def bytes_moved(op: str, x: np.ndarray, out_elems: int) -> int:
    item = x.itemsize
    return {
        "max fwd": x.nbytes + out_elems * item,
        "avg fwd": x.nbytes + out_elems * item,
        "max fwd+idx": x.nbytes + out_elems * (item + 8),
        "max bwd": out_elems * item + 2 * x.nbytes,  # read g and x, write grad_input
        "avg bwd": out_elems * item + x.nbytes,  # read g, write grad_input
    }[op]


def poolkit_call(op, x, g, k, s, p):
    if op == "max fwd":
        return lambda: pnp.max_pool2d(x, k, s, p)
    if op == "max fwd+idx":
        return lambda: pnp.max_pool2d(x, k, s, p, return_indices=True)
    if op == "avg fwd":
        return lambda: pnp.avg_pool2d(x, k, s, p)
    if op == "max bwd":
        return lambda: pnp.max_pool2d_backward(g, x, k, s, p)
    return lambda: pnp.avg_pool2d_backward(g, x, k, s, p)


def torch_call(torch, op, x, g, k, s, p, channels_last):
    F = torch.nn.functional
    xt = torch.from_numpy(x)
    gt = torch.from_numpy(g)
    if channels_last:
        xt = xt.contiguous(memory_format=torch.channels_last)
        gt = gt.contiguous(memory_format=torch.channels_last)
    if op == "max fwd":
        return lambda: F.max_pool2d(xt, k, s, p)
    if op == "max fwd+idx":
        return lambda: F.max_pool2d(xt, k, s, p, return_indices=True)
    if op == "avg fwd":
        return lambda: F.avg_pool2d(xt, k, s, p)
    if op == "max bwd":
        _, index = F.max_pool2d(xt, k, s, p, return_indices=True)
        return lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            gt, xt, [k, k], [s, s], [p, p], [1, 1], False, index)
    return lambda: torch.ops.aten.avg_pool2d_backward(gt, xt, [k, k], [s, s], [p, p], False,
                                                      True, None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs=4, default=(32, 64, 112, 112))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="(8, 16, 56, 56), 3 repeats")
    parser.add_argument("--naive-planes", type=int, default=2,
                        help="planes the naive loop runs on before extrapolating")
    parser.add_argument("--ops", nargs="*", default=list(OPS), choices=OPS)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.shape, args.repeats = (8, 16, 56, 56), 3

    console = Console(width=max(100, Console().width))
    err = Console(stderr=True)
    torch = None
    if not args.no_torch:
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:
            err.print("torch is not installed: skipping the torch rows")
    rng = np.random.default_rng(0)
    x = rng.standard_normal(tuple(args.shape), dtype=np.float32)
    copy_target = np.empty_like(x)
    copy_ms = median_ms(lambda: np.copyto(copy_target, x), max(args.repeats, 5))
    bandwidth = 2 * x.nbytes / (copy_ms / 1e3)  # bytes per second, read + write

    backends = (["numba"] if numba_available() else []) + ["numpy"]
    rows = []
    total = len(args.configs) * len(args.ops)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("benchmarking", total=total)
        for config in args.configs:
            k, s, p = CONFIGS[config]
            out_shape = tuple(args.shape[:2]) + pool_geometry(args.shape[2:], k, s, p).output_size
            out_elems = int(np.prod(out_shape))
            g = rng.standard_normal(out_shape, dtype=np.float32)
            for op in args.ops:
                progress.update(task, description=f"{op} {config}")
                limit_ms = 1e3 * bytes_moved(op, x, out_elems) / bandwidth
                timings = {}
                for backend in backends:
                    with use_backend(backend):
                        timings[f"poolkit {backend}"] = median_ms(
                            poolkit_call(op, x, g, k, s, p), args.repeats)
                if torch is not None:
                    timings["torch NCHW"] = median_ms(
                        torch_call(torch, op, x, g, k, s, p, False), args.repeats)
                    timings["torch NHWC"] = median_ms(
                        torch_call(torch, op, x, g, k, s, p, True), args.repeats)
                n = args.naive_planes
                xs, gs = x.reshape(-1, 1, *x.shape[2:])[:n], g.reshape(-1, 1, *g.shape[2:])[:n]
                start = time.perf_counter()
                naive(op, xs, gs, k, s, p)
                scale = args.shape[0] * args.shape[1] / n
                timings["naive loop*"] = 1e3 * (time.perf_counter() - start) * scale
                reference = timings.get("torch NCHW")
                for impl, ms in timings.items():
                    rows.append({
                        "op": op, "window": config, "implementation": impl, "ms": ms,
                        "speedup_vs_torch_nchw": reference / ms if reference else None,
                        "x_bandwidth_limit": ms / limit_ms, "limit_ms": limit_ms,
                    })
                progress.advance(task)

    table = Table(title=f"poolkit.numpy pooling, float32 {tuple(args.shape)}, 1 thread, "
                        f"median of {args.repeats}")
    for column in ("op", "window", "implementation", "ms", "torch NCHW / this",
                   "this / bandwidth limit"):
        table.add_column(column, justify="right" if column not in ("op", "implementation",
                                                                    "window") else "left")
    for row in rows:
        speed = row["speedup_vs_torch_nchw"]
        table.add_row(row["op"], row["window"], row["implementation"], f"{row['ms']:.1f}",
                      "-" if speed is None else f"{speed:.2f}x",
                      f"{row['x_bandwidth_limit']:.2f}x")
    console.print(table)
    console.print(
        f"* naive loop: timed on {args.naive_planes} of {args.shape[0] * args.shape[1]} planes "
        f"and extrapolated linearly. torch NHWC = channels-last memory format."
    )
    console.print(
        f"np.copyto bandwidth: {bandwidth / 1e9:.1f} GB/s (read + write, {copy_ms:.1f} ms for "
        f"{x.nbytes / 1e6:.0f} MB); bandwidth limit = bytes read + written / that bandwidth. "
        f"numpy {np.__version__}"
        + (f", torch {torch.__version__}" if torch is not None else "")
        + f", python {sys.version.split()[0]}"
    )
    if args.json:
        args.json.write_text(json.dumps({"shape": list(args.shape), "bandwidth": bandwidth,
                                         "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
