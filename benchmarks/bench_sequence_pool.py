"""Masked mean and last-token pooling of (64, 512, 768) float32 token states: poolkit's
SequencePool against the mask-multiply formulation and sentence-transformers' ``Pooling``, as
speed ratios measured side by side, and as a fraction of the machine's memory bandwidth.

Masked mean reads the states once: ``bmm(mask (B, 1, T), states (B, T, H)) / count``. The
mask-multiply formulation ``(states * mask[..., None]).sum(1) / mask.sum(1)`` first writes a
second ``B*T*H`` tensor and reads it back. Bandwidth, two references measured in the same rounds:
the bytes a copy of the states into a preallocated tensor moves per second (read + write: the
target's definition), and the bytes a full ``states.sum()`` reads per second (read only; the mean
reads exactly these bytes, so this fraction is ``t_sum / t_mean``).

Every method runs once per round, rounds interleave the methods, and the fastest round counts.
The clock is the process's CPU time with one torch thread by default (``--clock wall`` and
``--threads N`` for wall time), so other jobs on a shared machine slow all methods alike.

    python benchmarks/bench_sequence_pool.py                # markdown table
    python benchmarks/bench_sequence_pool.py --json --rounds 20 --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from poolkit.nn.sequence import SequencePool  # noqa: E402


def mask_multiply_mean(states, mask):
    mask = mask.unsqueeze(-1).to(states.dtype)  # (B, T, 1)
    return (states * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


def sum_minus_one_last(states, mask):  # the common (and, under left padding, wrong) formula
    return states[torch.arange(states.shape[0]), mask.sum(1) - 1]


def st_pooling(mode: str, hidden: int):
    try:
        from sentence_transformers.models import Pooling
    except ImportError:
        return None
    pooling = Pooling(hidden, pooling_mode=mode)

    def run(states, mask):
        features = {"token_embeddings": states, "attention_mask": mask}
        return pooling(features)["sentence_embedding"]

    return run


def time_rounds(methods: dict, rounds: int, clock) -> dict[str, float]:
    """``{name: fastest time}`` of ``methods`` (name -> zero-argument callable)."""
    best = {name: float("inf") for name in methods}
    with torch.inference_mode():
        for method in methods.values():  # warm-up
            method()
        for _ in range(rounds):
            for name, method in methods.items():
                started = clock()
                method()
                best[name] = min(best[name], clock() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 512, 768],
                        metavar=("B", "T", "H"))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: process CPU time (robust on a busy machine); wall: elapsed")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu sums the CPU time of all threads: use it with --threads 1")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    batch, length, hidden = args.shape
    generator = torch.Generator().manual_seed(0)
    states = torch.randn(batch, length, hidden, generator=generator)
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    mask = (torch.arange(length) < lengths[:, None]).long()  # right padding, as HF encoders
    bytes_states = states.numel() * states.element_size()

    mean_methods = {"poolkit SequencePool('mean')": SequencePool("mean"),
                    "mask-multiply": mask_multiply_mean}
    last_methods = {"poolkit SequencePool('last')": SequencePool("last"),
                    "sum(mask) - 1 gather": sum_minus_one_last}
    for methods, mode in ((mean_methods, "mean"), (last_methods, "lasttoken")):
        reference = st_pooling(mode, hidden)
        if reference is not None:
            methods[f"sentence-transformers Pooling('{mode}')"] = reference
    # Same answers (right padding, where sum(mask) - 1 is right too).
    with torch.inference_mode():
        for methods in (mean_methods, last_methods):
            outputs = [method(states, mask) for method in methods.values()]
            for output in outputs[1:]:
                torch.testing.assert_close(output, outputs[0], rtol=1e-4, atol=1e-5)

    destination = torch.empty_like(states)  # preallocated: page faults are not bandwidth
    references = {"copy": lambda: destination.copy_(states), "sum": lambda: states.sum()}
    timed = {f"mean/{name}": (lambda m=method: m(states, mask)) for name, method in
             mean_methods.items()}
    timed.update({f"last/{name}": (lambda m=method: m(states, mask)) for name, method in
                  last_methods.items()})
    times = time_rounds({**references, **timed}, args.rounds, clock)
    copy_bandwidth = 2 * bytes_states / times["copy"]  # read + write
    read_bandwidth = bytes_states / times["sum"]

    rows = []
    for task in ("mean", "last"):
        ours = next(times[key] for key in timed if key.startswith(task + "/"))
        for key in [key for key in timed if key.startswith(task + "/")]:
            seconds = times[key]
            row = {"task": task, "method": key.split("/", 1)[1], "ms": 1e3 * seconds,
                   "slowdown_vs_poolkit": seconds / ours}
            if task == "mean":
                row["copy_bandwidth_fraction"] = (bytes_states / seconds) / copy_bandwidth
                row["read_bandwidth_fraction"] = (bytes_states / seconds) / read_bandwidth
            rows.append(row)
    report = {
        "shape": [batch, length, hidden],
        "dtype": "float32",
        "threads": torch.get_num_threads(),
        "clock": args.clock,
        "rounds": args.rounds,
        "copy_bandwidth_gb_s": copy_bandwidth / 1e9,
        "read_bandwidth_gb_s": read_bandwidth / 1e9,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"(B, T, H) = {tuple(args.shape)} float32 ({bytes_states / 1e6:.0f} MB), "
          f"{report['threads']} torch thread(s), {args.clock} clock, best of {args.rounds} "
          f"interleaved rounds; copy {report['copy_bandwidth_gb_s']:.1f} GB/s (read + write), "
          f"sum {report['read_bandwidth_gb_s']:.1f} GB/s (read)\n")
    print("| pooling | method | time | vs poolkit | of copy bandwidth | of read bandwidth |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        copy = f"{100 * row['copy_bandwidth_fraction']:.0f}%" if row["task"] == "mean" else "-"
        read = f"{100 * row['read_bandwidth_fraction']:.0f}%" if row["task"] == "mean" else "-"
        print(f"| {row['task']} | {row['method']} | {row['ms']:.2f} ms | "
              f"{row['slowdown_vs_poolkit']:.2f}x | {copy} | {read} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
