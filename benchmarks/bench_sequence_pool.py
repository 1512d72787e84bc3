"""Masked mean and last-token pooling of (64, 512, 768) float32 token states: poolkit's
SequencePool against the mask-multiply formulation and sentence-transformers' ``Pooling``, as
speed ratios measured side by side, and as a fraction of the machine's memory bandwidth.

Masked mean reads the states once: ``bmm(mask (B, 1, T), states (B, T, H)) / count``. The
mask-multiply formulation ``(states * mask[..., None]).sum(1) / mask.sum(1)`` first writes a
second ``B*T*H`` tensor and reads it back. Bandwidth: the mean's bytes read per second over the
bytes moved per second by a copy of the same tensor into a preallocated one (read + write) on
this machine, in the same run. Methods are timed in interleaved rounds and the fastest round is
kept, so a shared, busy machine slows all of them alike.

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


def time_rounds(methods: dict, args: tuple, rounds: int) -> dict[str, float]:
    best = {name: float("inf") for name in methods}
    with torch.inference_mode():
        for method in methods.values():  # warm-up
            method(*args)
        for _ in range(rounds):
            for name, method in methods.items():
                started = time.perf_counter()
                method(*args)
                best[name] = min(best[name], time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 512, 768],
                        metavar=("B", "T", "H"))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own choice)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
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
    destination.copy_(states)
    copy_time = time_rounds({"copy": destination.copy_}, (states,), args.rounds)["copy"]
    copy_bandwidth = 2 * bytes_states / copy_time  # read + write
    mean_times = time_rounds(mean_methods, (states, mask), args.rounds)
    last_times = time_rounds(last_methods, (states, mask), args.rounds)

    rows = []
    for task, times in (("mean", mean_times), ("last", last_times)):
        ours = next(iter(times.values()))
        for name, seconds in times.items():
            row = {"task": task, "method": name, "ms": 1e3 * seconds,
                   "slowdown_vs_poolkit": seconds / ours}
            if task == "mean":
                row["bandwidth_fraction"] = (bytes_states / seconds) / copy_bandwidth
            rows.append(row)
    report = {
        "shape": [batch, length, hidden],
        "dtype": "float32",
        "threads": torch.get_num_threads(),
        "copy_bandwidth_gb_s": copy_bandwidth / 1e9,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"(B, T, H) = {tuple(args.shape)} float32 ({bytes_states / 1e6:.0f} MB), "
          f"{report['threads']} torch threads, copy bandwidth {report['copy_bandwidth_gb_s']:.1f} "
          f"GB/s (read + write), best of {args.rounds} interleaved rounds\n")
    print("| pooling | method | time | vs poolkit | fraction of copy bandwidth |")
    print("|---|---|---|---|---|")
    for row in rows:
        fraction = f"{100 * row['bandwidth_fraction']:.0f}%" if "bandwidth_fraction" in row else "-"
        print(f"| {row['task']} | {row['method']} | {row['ms']:.2f} ms | "
              f"{row['slowdown_vs_poolkit']:.2f}x | {fraction} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
