"""Run every speed benchmark, one after another, and print each one's table (``make bench``).

Each benchmark measures its own ratios side by side in one process; running them one at a time
keeps them from competing for the cores. ``--quick`` passes ``--quick`` to those that have a
small size (a smoke run, not the figures in the docs).

    python benchmarks/run_all.py            # the sizes the docs report (tens of minutes on CPU)
    python benchmarks/run_all.py --quick
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (script, arguments for --quick): the docs that report each benchmark's numbers say how.
BENCHMARKS = [
    ("bench_numpy_pool.py", ["--quick"]),  # docs/numpy-engine.md
    ("bench_families.py", ["--quick"]),  # docs/pooling-families.md
    ("bench_sequence_pool.py", ["--rounds", "3"]),  # docs/sequence-pooling.md
    ("bench_textcnn.py", ["--rounds", "1", "--seconds", "1"]),  # docs/training.md
    ("bench_roi.py", ["--repeats", "3"]),  # docs/detection-segmentation.md
    ("bench_metaformer.py", ["--sizes", "28", "--repeats", "2"]),  # docs/poolformer.md
]
# Benchmarks run with fixed extra arguments (always, quick or not).
EXTRA = {"bench_textcnn.py": [[], ["--text", "mr"]]}  # random ids, then real MR batches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = parser.parse_args(argv)
    failed = []
    for script, quick_args in BENCHMARKS:
        for extra in EXTRA.get(script, [[]]):
            command = [sys.executable, str(HERE / script), *extra,
                       *(quick_args if args.quick else [])]
            print(f"\n=== {' '.join(command[1:])}", flush=True)
            start = time.perf_counter()
            if subprocess.run(command).returncode != 0:
                failed.append(" ".join([script, *extra]))
            print(f"=== {script}: {time.perf_counter() - start:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
