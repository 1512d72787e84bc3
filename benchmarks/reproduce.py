"""Every full-size training run behind a figure in README.md, one after another (``make
reproduce``). Hours on two CPU cores; each step is resumable, so running the same command again
after an interruption continues where it stopped and skips what is finished.

    python benchmarks/reproduce.py --out results                 # everything
    python benchmarks/reproduce.py --out results --only classic  # one group
    python benchmarks/reproduce.py --list

Groups and what they write under ``--out``:

- ``classic``: TextCNN-rand on MR (10-fold CV) and SST-2, ConvNet on MNIST
  (``benchmarks/reproduce_classic.py``; ``<out>/<task>.json``);
- ``compare``: ``poolkit compare`` on digits, MR and STS-B (every sequence pooling mode of the
  frozen MiniLM), 3 seeds (``<out>/compare-*/summary.md``);
- ``transformers``: MiniLM and SmolLM2 pooling heads fine-tuned on MR
  (``benchmarks/finetune_transformers.py``; ``<out>/finetune_transformers/results.md``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"


def steps(out: Path, data: Path) -> dict[str, list[list[str]]]:
    python = sys.executable
    poolkit = [python, "-m", "poolkit"]
    return {
        "classic": [
            [python, str(HERE / "reproduce_classic.py"), "--task", task, "--data", str(data),
             "--out", str(out), "--resume"]
            for task in ("mr-10fold", "sst2", "mnist")
        ],
        "compare": [
            [*poolkit, "compare", "--task", "digits", "--seeds", "3",
             "--out", str(out / "compare-digits")],
            [*poolkit, "compare", "--task", "mr", "--data", str(data / "mr"), "--seeds", "3",
             "--out", str(out / "compare-mr")],
            [*poolkit, "compare", "--task", "stsb", "--data", str(data / "stsb"), "--seeds", "3",
             "--out", str(out / "compare-stsb")],
        ],
        "transformers": [
            [python, str(HERE / "finetune_transformers.py"), "--data", str(data / "mr"),
             "--out", str(out / "finetune_transformers")],
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    default_data = Path(os.environ.get("POOLKIT_DATA", DEFAULT_DATA))
    parser.add_argument("--data", type=Path, default=default_data,
                        help="folder with mr/, sst2/, mnist/, stsb/ (default: ../shared/data)")
    parser.add_argument("--only", choices=["classic", "compare", "transformers"], action="append",
                        help="run only these groups (repeatable)")
    parser.add_argument("--list", action="store_true", help="print the commands and exit")
    args = parser.parse_args(argv)
    if not args.list and not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder (it must hold mr/, sst2/, mnist/)")
    groups = steps(args.out, args.data)
    failed = []
    for group, commands in groups.items():
        if args.only and group not in args.only:
            continue
        for command in commands:
            print(f"\n=== [{group}] {' '.join(command)}", flush=True)
            if args.list:
                continue
            start = time.perf_counter()
            if subprocess.run(command).returncode != 0:
                failed.append(" ".join(command))
            print(f"=== {time.perf_counter() - start:.0f} s", flush=True)
    if failed:
        print("failed:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
