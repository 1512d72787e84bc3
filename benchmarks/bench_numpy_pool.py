"""Speed of poolkit.numpy's max and average pooling, beside the memory limit and torch (not a
test).

Times float32 ``(32, 64, 112, 112)`` with 2x2/stride 2 and 3x3/stride 2/padding 1, forward
(values; max with indices) and backward, on one thread AND on all threads in one run:

- poolkit.numpy with the numba kernels (when numba is installed): a plain call, and with
  ``out=`` (a reused output buffer, as in a training loop: no fresh pages to fault in);
- poolkit.numpy's pure-NumPy path (one thread only: NumPy does not thread these loops);
- torch.nn.functional on NCHW and on channels-last tensors (backward: the aten backward
  kernels fed the saved indices, i.e. without the forward).

Each time is the FASTEST of ``--repeats`` runs after one warm-up run (which also compiles the
numba kernels): the minimum, not the median, because on a shared machine the noise only ever
adds time. Every cell shows the time and its ratio to the memory-bandwidth limit: bytes read +
written by the op divided by the bandwidth ``np.copyto`` reaches on the same tensor, split over
as many threads as the row uses (also the fastest of the runs, timed right before each op so
that both see the same load). poolkit's
max backward recomputes the argmax from the input (its signature is ``f_backward(grad_output,
input, ...)``), so its limit counts reading the input; torch's reads the saved int64 indices
instead.

Run::

    python benchmarks/bench_numpy_pool.py                 # full size, fastest of 5
    python benchmarks/bench_numpy_pool.py --quick         # (8, 16, 56, 56), fastest of 3
    python benchmarks/bench_numpy_pool.py --markdown      # the README's table (machine, date)
    python benchmarks/bench_numpy_pool.py --crossover     # where threads start to pay
    python benchmarks/bench_numpy_pool.py --threads 1 --clock cpu  # 1 thread on a busy box
    python benchmarks/bench_numpy_pool.py --json out.json # also save the rows
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(_var, "1")  # NumPy's BLAS stays out of it; torch and numba are set

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import poolkit.numpy as pnp  # noqa: E402
from poolkit.geometry import pool_geometry  # noqa: E402
from poolkit.numpy import _backend  # noqa: E402
from poolkit.numpy._backend import numba_available, use_backend  # noqa: E402

CONFIGS = {"2x2/s2": (2, 2, 0), "3x3/s2/p1": (3, 2, 1)}
OPS = ("max fwd", "max fwd+idx", "avg fwd", "max bwd", "avg bwd")
IMPLEMENTATIONS = ("numba", "numba out=", "numpy", "torch NCHW", "torch CL")


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
_clock = time.perf_counter


def fastest_ms(fn, repeats: int) -> float:
    """The fastest of ``repeats`` runs after one warm-up run, in ms (wall clock, or with
    ``--clock cpu`` this thread's CPU time: blind to waiting for a core on a busy machine)."""
    fn()  # warm-up (and numba compilation)
    best = float("inf")
    for _ in range(repeats):
        start = _clock()
        fn()
        best = min(best, _clock() - start)
    return 1e3 * best


def bytes_moved(op: str, x: np.ndarray, out_elems: int) -> int:
    item = x.itemsize
    return {
        "max fwd": x.nbytes + out_elems * item,
        "avg fwd": x.nbytes + out_elems * item,
        "max fwd+idx": x.nbytes + out_elems * (item + 8),
        "max bwd": out_elems * item + 2 * x.nbytes,  # read g and x, write grad_input
        "avg bwd": out_elems * item + x.nbytes,  # read g, write grad_input
    }[op]


def poolkit_call(op, x, g, k, s, p, reuse: bool):
    """The poolkit call for ``op``; with ``reuse``, writing into buffers made once."""
    fwd_shape = g.shape
    out = {}
    if reuse:
        out = {"out": np.empty(fwd_shape, x.dtype)}
        if op == "max fwd+idx":
            out = {"out": (np.empty(fwd_shape, x.dtype), np.empty(fwd_shape, np.int64))}
        elif op.endswith("bwd"):
            out = {"out": np.empty_like(x)}
    return {
        "max fwd": lambda: pnp.max_pool2d(x, k, s, p, **out),
        "max fwd+idx": lambda: pnp.max_pool2d(x, k, s, p, return_indices=True, **out),
        "avg fwd": lambda: pnp.avg_pool2d(x, k, s, p, **out),
        "max bwd": lambda: pnp.max_pool2d_backward(g, x, k, s, p, **out),
        "avg bwd": lambda: pnp.avg_pool2d_backward(g, x, k, s, p, **out),
    }[op]


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


def set_threads(torch, n: int) -> None:
    if numba_available():
        pnp.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def time_op(torch, op, config, x, g, threads, repeats) -> dict:
    """One row: every implementation of ``op`` on ``threads`` threads."""
    k, s, p = CONFIGS[config]
    bandwidth = copy_bandwidth(x, repeats, threads)  # beside the op: the same load
    limit_ms = 1e3 * bytes_moved(op, x, g.size) / bandwidth
    calls = {}
    if numba_available():
        calls["numba"] = ("numba", poolkit_call(op, x, g, k, s, p, False))
        calls["numba out="] = ("numba", poolkit_call(op, x, g, k, s, p, True))
    if threads == 1:
        calls["numpy"] = ("numpy", poolkit_call(op, x, g, k, s, p, False))
    ms = {}
    for name, (backend, fn) in calls.items():
        with use_backend(backend):
            ms[name] = fastest_ms(fn, repeats)
    if torch is not None:
        ms["torch NCHW"] = fastest_ms(torch_call(torch, op, x, g, k, s, p, False), repeats)
        ms["torch CL"] = fastest_ms(torch_call(torch, op, x, g, k, s, p, True), repeats)
    return {"op": op, "window": config, "threads": threads, "limit_ms": limit_ms,
            "bandwidth": bandwidth, "ms": ms}


def copy_bandwidth(x: np.ndarray, repeats: int, threads: int = 1) -> float:
    """Bytes per second (read + write) of ``np.copyto`` on ``x``, fastest of the runs, split
    over ``threads`` Python threads (NumPy releases the GIL while copying): the limit of the
    rows on that many threads. On a machine whose memory one core saturates, it does not
    grow with the threads, and neither can any op's speed."""
    target = np.empty_like(x)
    flat_x, flat_t = x.reshape(x.shape[0], -1), target.reshape(x.shape[0], -1)
    bounds = np.linspace(0, x.shape[0], threads + 1).astype(int)

    def copy_all():
        workers = [threading.Thread(target=np.copyto, args=(flat_t[a:b], flat_x[a:b]))
                   for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    return 2 * x.nbytes / (fastest_ms(copy_all, max(repeats, 5)) / 1e3)


def run(args, torch) -> list[dict]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(tuple(args.shape), dtype=np.float32)
    rows = []
    for config in args.configs:
        k, s, p = CONFIGS[config]
        out_shape = tuple(args.shape[:2]) + pool_geometry(args.shape[2:], k, s, p).output_size
        g = rng.standard_normal(out_shape, dtype=np.float32)
        for threads in args.threads:
            set_threads(torch, threads)
            for op in args.ops:
                print(f"  {op} {config} threads={threads}", file=sys.stderr, flush=True)
                rows.append(time_op(torch, op, config, x, g, threads, args.repeats))
    set_threads(torch, 1)
    return rows


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {_backend.max_threads()} threads available"


def cell(ms: float | None, limit_ms: float) -> str:
    return "-" if ms is None else f"{ms:.1f} ms ({ms / limit_ms:.2f}x)"


def table_lines(rows, markdown: bool) -> list[str]:
    """The rows as a text or markdown table: each cell is the time and its ratio to the
    limit; ``speed-up`` is numba on one thread over numba on this row's threads."""
    one = {(r["op"], r["window"]): r["ms"].get("numba") for r in rows if r["threads"] == 1}
    head = ["op", "window", "threads", "limit", *IMPLEMENTATIONS, "speed-up"]
    lines = []
    for r in rows:
        numba_ms = r["ms"].get("numba")
        base = one.get((r["op"], r["window"]))
        speedup = f"{base / numba_ms:.2f}x" if base and numba_ms and r["threads"] > 1 else "-"
        lines.append([r["op"], r["window"], str(r["threads"]), f"{r['limit_ms']:.1f} ms",
                      *(cell(r["ms"].get(i), r["limit_ms"]) for i in IMPLEMENTATIONS), speedup])
    if markdown:
        return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + \
            ["| " + " | ".join(line) + " |" for line in lines]
    widths = [max(len(str(c)) for c in column) for column in zip(head, *lines, strict=True)]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
            for line in [head, *lines]]


def describe(args, rows, torch) -> str:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    versions = f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch else "")
    if numba_available():
        import numba

        versions += f", numba {numba.__version__}"
    gbs = [r["bandwidth"] / 1e9 for r in rows]
    clock = "wall clock" if args.clock == "wall" else "CPU time of the calling thread"
    return (f"float32 {tuple(args.shape)}; {machine()}; each time the fastest of "
            f"{args.repeats} runs ({clock}) and, in brackets, its ratio to the bandwidth "
            f"limit (bytes read + written at the speed of np.copyto on the row's threads, "
            f"timed beside each op: "
            f"{min(gbs):.1f}-{max(gbs):.1f} GB/s); "
            f"CL = channels-last; {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
            f"load average {load}; {versions}, python {platform.python_version()}.")


def crossover(torch, repeats: int) -> None:
    """One thread against all on growing stacks of 56 x 56 float32 planes: where threads
    start to pay (:data:`poolkit.numpy._backend.PARALLEL_MIN_BYTES`)."""
    threads = _backend.max_threads()
    _backend.PARALLEL_MIN_BYTES = 0  # let every size run on ``threads``
    rng = np.random.default_rng(0)
    print(f"planes  KiB  | 1 thread: max fwd, max bwd, avg fwd (us) | {threads} threads")
    for planes in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        x = rng.standard_normal((planes, 56, 56), dtype=np.float32)
        g = np.ones((planes, 28, 28), np.float32)
        calls = (lambda x=x: pnp.max_pool2d(x, 2),
                 lambda x=x, g=g: pnp.max_pool2d_backward(g, x, 2),
                 lambda x=x: pnp.avg_pool2d(x, 2))
        cells = []
        for n in (1, threads):
            pnp.set_num_threads(n)
            cells += [f"{1e3 * fastest_ms(fn, repeats):7.0f}" for fn in calls]
        print(f"{planes:6d} {x.nbytes // 1024:5d} | {' '.join(cells[:3])} | "
              f"{' '.join(cells[3:])}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs=4, default=(32, 64, 112, 112))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="(8, 16, 56, 56), 3 repeats")
    parser.add_argument("--threads", type=int, nargs="*",
                        help="thread counts to time (default: 1 and all available)")
    parser.add_argument("--ops", nargs="*", default=list(OPS), choices=OPS)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--markdown", action="store_true",
                        help="print the README's markdown table, with machine and date")
    parser.add_argument("--crossover", action="store_true",
                        help="time growing inputs on 1 and all threads, then stop")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="wall clock (default), or the thread's CPU time (one thread only: "
                             "robust on a machine busier than its cores)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    global _clock
    _clock = CLOCKS[args.clock]
    if args.quick:
        args.shape, args.repeats = (8, 16, 56, 56), 3
    args.threads = args.threads or sorted({1, _backend.max_threads()})
    if args.clock == "cpu" and args.threads != [1]:
        parser.error("--clock cpu measures one thread: add --threads 1")
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("torch is not installed: skipping the torch columns", file=sys.stderr)
    if args.crossover:
        crossover(torch, max(args.repeats, 20))
        return 0
    rows = run(args, torch)
    print("\n".join(table_lines(rows, args.markdown)))
    print()
    print(describe(args, rows, torch))
    if args.json:
        args.json.write_text(json.dumps({"shape": list(args.shape), "clock": args.clock,
                                         "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
