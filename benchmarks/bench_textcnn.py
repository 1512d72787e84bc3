"""TextCNN throughput: poolkit's Conv1d formulation vs the common tutorial's Conv2d one.

The tutorial embeds ``(B, T)`` -> ``(B, 1, T, E)`` and runs one ``Conv2d(1, F, (w, E))`` per
filter width, squeezes the width-1 axis and max-pools over time with ``F.max_pool1d(c,
c.size(2))``. poolkit's :class:`~poolkit.models.TextCNN` runs ``Conv1d(E, F, w)`` over
``(B, E, T)`` and pools with a pool from ``poolkit.nn`` (max). Same settings for both: Kim's
sizes (vocabulary 18,766 as MR's, 300-d embeddings, widths 3/4/5 x 100 maps, dropout 0.5, 2
classes), mini-batches of 50, the same token ids, fused AdamW, one torch thread (``--threads``).

Each round times every variant for ``--seconds`` on training steps (forward, backward,
optimizer step) and on inference (``torch.inference_mode``); the table shows the median
samples/s over the rounds and the ratio to the tutorial, all measured side by side in one run.

    python benchmarks/bench_textcnn.py                 # prints a table
    python benchmarks/bench_textcnn.py --json          # machine-readable

Variants: ``poolkit`` (``edge_padding=False``: exactly the tutorial's function, checked before
timing) and ``poolkit+kim-padding`` (the default: 4 padding tokens on each side as Kim's code
does, so more positions are convolved; its logits do not depend on batch padding).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from poolkit.models import TextCNN, TextCNNConfig


class TutorialTextCNN(nn.Module):
    """The widespread Conv2d formulation (embedding as a 1-channel image)."""

    def __init__(self, vocab_size, embed_dim=300, widths=(3, 4, 5), num_filters=100,
                 num_classes=2, dropout=0.5):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv2d(1, num_filters, (w, embed_dim)) for w in widths)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(num_filters * len(widths), num_classes)

    def forward(self, input_ids):
        x = self.embedding(input_ids).unsqueeze(1)  # (B, 1, T, E)
        maps = [F.relu(conv(x)).squeeze(3) for conv in self.convs]  # (B, F, T - w + 1)
        pooled = [F.max_pool1d(m, m.size(2)).squeeze(2) for m in maps]  # (B, F)
        return self.fc(self.dropout(torch.cat(pooled, 1)))


def _copy_weights(tutorial: TutorialTextCNN, ours: TextCNN) -> None:
    with torch.no_grad():
        tutorial.embedding.weight.copy_(ours.embedding.weight)
        for conv2d, conv1d in zip(tutorial.convs, ours.convs, strict=True):
            conv2d.weight.copy_(conv1d.weight.transpose(1, 2).unsqueeze(1))  # (F, 1, w, E)
            conv2d.bias.copy_(conv1d.bias)
        tutorial.fc.weight.copy_(ours.classifier.weight)
        tutorial.fc.bias.copy_(ours.classifier.bias)


def _rate(step, batch: int, seconds: float) -> float:
    step()  # warm
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        done += 1
    return done * batch / (time.perf_counter() - started)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--length", type=int, default=40, help="tokens per text")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per variant, mode and round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    vocab = 18766
    config = TextCNNConfig(vocab_size=vocab, edge_padding=False, max_norm=None)
    ours = TextCNN(config)
    tutorial = TutorialTextCNN(vocab)
    _copy_weights(tutorial, ours)
    kim = TextCNN(TextCNNConfig(vocab_size=vocab, max_norm=None))
    kim.load_state_dict(ours.state_dict())
    ids = torch.randint(1, vocab, (args.batch_size, args.length))
    labels = torch.randint(0, 2, (args.batch_size,))
    ours.eval(), tutorial.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), tutorial(ids), rtol=1e-4, atol=1e-5)

    variants = {"tutorial Conv2d": tutorial, "poolkit Conv1d": ours,
                "poolkit Conv1d + Kim padding": kim}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-3, fused=True)
                  for name, m in variants.items()}

    def train_step(name):
        model, optimizer = variants[name], optimizers[name]

        def step():
            loss = F.cross_entropy(model(ids), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    def infer_step(name):
        model = variants[name]

        def step():
            with torch.inference_mode():
                model(ids)

        return step

    rates = {(name, mode): [] for name in variants for mode in ("train", "inference")}
    for round_ in range(args.rounds):
        for mode, make in (("train", train_step), ("inference", infer_step)):
            for name, model in variants.items():
                model.train(mode == "train")
                rates[(name, mode)].append(_rate(make(name), args.batch_size, args.seconds))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)

    rows = []
    for name in variants:
        row = {"variant": name}
        for mode in ("train", "inference"):
            median = statistics.median(rates[(name, mode)])
            baseline = statistics.median(rates[("tutorial Conv2d", mode)])
            row[f"{mode}_samples_per_s"] = round(median, 1)
            row[f"{mode}_speedup"] = round(median / baseline, 2)
        rows.append(row)
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    if args.json:
        print(json.dumps({"settings": settings, "torch": torch.__version__, "rows": rows},
                         indent=2))
        return 0
    print(f"TextCNN samples/s (median of {args.rounds} rounds; batch {args.batch_size}, "
          f"{args.length} tokens, {args.threads} thread(s), torch {torch.__version__})")
    print(f"{'variant':32} {'train/s':>9} {'x':>6} {'infer/s':>9} {'x':>6}")
    for row in rows:
        print(f"{row['variant']:32} {row['train_samples_per_s']:9.1f} {row['train_speedup']:6.2f}"
              f" {row['inference_samples_per_s']:9.1f} {row['inference_speedup']:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
