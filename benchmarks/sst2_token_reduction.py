"""SST-2 accuracy against speed per token-reduction level, on a MiniLM classifier.

1. Fine-tune MiniLM (all-MiniLM-L6-v2, mean pooling, full fine-tuning) on a stratified subset of
   SST-2 train (``--train-limit`` phrases; GLUE's dev set is the report split), with
   ``poolkit train transformer``.
2. Off the shelf: the same checkpoint with each reduction level (``reduce_tokens``), dev
   accuracy and the CPU time of the dev pass (1 thread, fastest of ``--rounds``; tokenisation
   included, so the ratio understates the encoder's own speed-up).
3. Optionally (``--finetune-reduce SCHEDULE``) fine-tune again with that schedule in the
   forward pass (``--reduce``) and evaluate it the same way.

    python benchmarks/sst2_token_reduction.py --data ../shared/data/sst2 \\
        --out results/sst2-reduce --train-limit 4000 --finetune-reduce "merge:rate=0.3"

Data: SST-2 from GLUE (https://gluebenchmark.com/tasks), ``train.tsv`` and ``dev.tsv``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from poolkit.cli import run  # noqa: E402
from poolkit.data.text import read_sst2  # noqa: E402
from poolkit.models import reduce_tokens  # noqa: E402
from poolkit.train.checkpoint import atomic_write_json, atomic_write_text  # noqa: E402
from poolkit.train.inference import Predictor  # noqa: E402

LEVELS = ["none", "merge:rate=0.1,start=3", "merge:rate=0.2,start=2", "merge:rate=0.3,start=3",
          "merge:rate=0.15", "merge:rate=0.3", "strided:after=4", "strided:after=2",
          "prune:keep=0.7,after=2", "prune:keep=0.5,after=3", "prune:keep=0.5,after=2"]


def fine_tune(data: Path, out: Path, limit: int, epochs: int, reduce: str) -> None:
    if (out / "config.json").is_file():
        return  # reuse a finished run
    argv = ["train", "transformer", "--dataset", "sst2", "--data", str(data), "--limit",
            str(limit), "--epochs", str(epochs), "--batch-size", "32", "--lr", "1e-4",
            "--finetune", "full", "--out", str(out), "--quiet", "--json", "--threads", "1"]
    if reduce != "none":
        argv += ["--reduce", reduce]
    code = run(argv)
    if code != 0:
        raise SystemExit(f"training failed ({code})")


def evaluate_levels(checkpoint: Path, dev, levels: list[str], rounds: int) -> list[dict]:
    torch.set_num_threads(1)
    predictor = Predictor(checkpoint, device="cpu")
    rows = []
    for level in levels:
        reduce_tokens(predictor.model, level)
        best, metrics = float("inf"), {}
        for _ in range(rounds):
            started = time.process_time()
            metrics = predictor.evaluate(dev, 64)
            best = min(best, time.process_time() - started)
        rows.append({"level": level, "accuracy": metrics["accuracy"], "seconds": best})
        print(f"{checkpoint.name} {level:28s} acc {metrics['accuracy']:.4f} {best:.2f}s",
              file=sys.stderr)
    base = rows[0]["seconds"]
    for row in rows:
        row["speedup"] = base / row["seconds"]
    return rows


def markdown(result: dict) -> str:
    lines = [f"# SST-2 dev accuracy per token-reduction level ({result['train_limit']} training "
             f"phrases, {result['epochs']} epochs)", ""]
    for name, rows in result["runs"].items():
        base = rows[0]["accuracy"]
        lines += [f"## {name}", "", "| level | dev accuracy | Δ points | dev pass speed-up |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {r['level']} | {100 * r['accuracy']:.2f} | "
                  f"{100 * (r['accuracy'] - base):+.2f} | {r['speedup']:.2f}x |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "sst2"))
    parser.add_argument("--out", default="results/sst2-reduce")
    parser.add_argument("--train-limit", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--levels", default=";".join(LEVELS), help="separated by ';'")
    parser.add_argument("--finetune-reduce", default=None)
    args = parser.parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    dev = read_sst2(data / "dev.tsv")
    levels = [level for level in args.levels.split(";") if level]
    result = {"train_limit": args.train_limit, "epochs": args.epochs, "runs": {}}
    fine_tune(data, out / "full", args.train_limit, args.epochs, "none")
    result["runs"]["fine-tuned without reduction, evaluated per level"] = evaluate_levels(
        out / "full", dev, levels, args.rounds)
    if args.finetune_reduce:
        fine_tune(data, out / "reduced", args.train_limit, args.epochs, args.finetune_reduce)
        result["runs"][f"fine-tuned with {args.finetune_reduce}"] = evaluate_levels(
            out / "reduced", dev, ["none", args.finetune_reduce], args.rounds)
    report = markdown(result)
    print(report)
    atomic_write_json(out / "result.json", result)
    atomic_write_text(out / "result.md", report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
