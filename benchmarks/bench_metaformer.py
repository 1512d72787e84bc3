"""MetaFormer inference throughput by token mixer: PoolFormer's pooling against its attention twin.

For each mixer (default ``pool,attention,identity,max``) the same MetaFormer (dims 32, 64, two
blocks a stage, the ``mnist-metaformer`` model) classifies a batch of random 1-channel images of
each side in ``--sizes``; images per second are the best of ``--repeats`` timed forward passes
(``torch.inference_mode``), the mixers alternating within each repeat so that a busy machine
slows all of them alike, on ``--threads`` intra-op threads (default 1, the same for every mixer).
Two clocks: wall time, and the CPU time of the calling thread (``time.thread_time``), which with
one thread counts the work itself and not the time other processes held the core: on a shared
machine the wall figures swing with the load, the CPU-time ones hardly.
Pooling costs O(HW) per stage, attention O((HW)^2): the gap widens with the image side.

    python benchmarks/bench_metaformer.py                  # sides 28 and 56, batch 64
    python benchmarks/bench_metaformer.py --sizes 28 --json
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from rich.console import Console
from rich.table import Table

from poolkit.models.metaformer import MetaFormer, MetaFormerConfig


def measure(mixers: list[str], sizes: list[int], batch: int, repeats: int) -> list[dict]:
    """One row per (side, mixer): parameters, best images/s and the ratio to the first mixer."""
    rows = []
    for side in sizes:
        torch.manual_seed(0)
        models = {m: MetaFormer(MetaFormerConfig(image_size=side, mixer=m)).eval()
                  for m in mixers}
        images = torch.rand(batch, 1, side, side)
        wall = dict.fromkeys(mixers, float("inf"))
        cpu = dict.fromkeys(mixers, float("inf"))
        with torch.inference_mode():
            for model in models.values():
                model(images)  # warm-up
            for _ in range(repeats):
                for name, model in models.items():
                    start, start_cpu = time.perf_counter(), time.thread_time()
                    model(images)
                    cpu[name] = min(cpu[name], time.thread_time() - start_cpu)
                    wall[name] = min(wall[name], time.perf_counter() - start)
        for name, model in models.items():
            height, width = model.config.stage_sizes[0]
            rows.append({
                "side": side, "tokens_stage1": height * width, "mixer": name,
                "params": sum(p.numel() for p in model.parameters()),
                "images_per_cpu_s": batch / cpu[name], "images_per_s": batch / wall[name],
                f"cpu_vs_{mixers[0]}": cpu[mixers[0]] / cpu[name],
                f"wall_vs_{mixers[0]}": wall[mixers[0]] / wall[name],
            })
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mixers", default="pool,attention,identity,max")
    parser.add_argument("--sizes", default="28,56", help="image sides, comma-separated")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    mixers = [m.strip() for m in args.mixers.split(",") if m.strip()]
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = measure(mixers, sizes, args.batch, args.repeats)
    if args.json:
        print(json.dumps({"threads": args.threads, "batch": args.batch, "rows": rows}, indent=2))
        return
    table = Table(title=f"MetaFormer inference, batch {args.batch}, {args.threads} thread(s)")
    first = mixers[0]
    for column in ("side", "stage-1 tokens", "mixer", "params", "images / CPU s",
                   f"vs {first} (CPU)", "images / s (wall)", f"vs {first} (wall)"):
        table.add_column(column, justify="left" if column == "mixer" else "right")
    for row in rows:
        table.add_row(str(row["side"]), str(row["tokens_stage1"]), row["mixer"],
                      f"{row['params']:,}", f"{row['images_per_cpu_s']:,.0f}",
                      f"{row[f'cpu_vs_{first}']:.2f}x", f"{row['images_per_s']:,.0f}",
                      f"{row[f'wall_vs_{first}']:.2f}x")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
