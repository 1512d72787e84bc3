"""TextCNN throughput: poolkit's TextCNN vs the common tutorial's Conv2d formulation.

The tutorial embeds ``(B, T)`` -> ``(B, 1, T, E)`` and runs one ``Conv2d(1, F, (w, E))`` per
filter width, squeezes the width-1 axis and max-pools over time with ``F.max_pool1d(c,
c.size(2))``. poolkit's :class:`~poolkit.models.TextCNN` keeps ``Conv1d(E, F, w)`` weights but
computes every width's convolution from one matrix product over the batch's distinct tokens and
pools with max over time, whose backward pass touches only each filter's best window
(``poolkit/models/_time_conv.py``). Same settings for both: Kim's sizes (300-d embeddings,
widths 3/4/5 x 100 maps, dropout 0.5, 2 classes), mini-batches of 50, the same token ids, fused
AdamW, one torch thread (``--threads``).

Token ids: ``--text random`` (default) draws ids uniformly from MR's vocabulary size (18,766),
``--length`` per text, no padding -- nearly every token in a batch is distinct, the least
favourable case for poolkit; ``--text mr`` cycles through 20 batches of real MR sentences
(``--data``; shuffled, right-padded to the batch's longest, at most ``--length`` tokens), where
words and padding repeat.

Each round times every variant for ``--seconds`` on training steps (forward, backward,
optimizer step) and on inference (``torch.inference_mode``); the table shows the median
samples/s over the rounds and the ratio to the tutorial, all measured side by side in one run.
``--clock cpu`` counts the process's CPU time instead of wall time (robust when other jobs share
the cores).

    python benchmarks/bench_textcnn.py                 # prints a table
    python benchmarks/bench_textcnn.py --text mr       # real MR batches
    python benchmarks/bench_textcnn.py --json          # machine-readable

Variants: ``poolkit`` (``edge_padding=False``: exactly the tutorial's function, checked before
timing) and ``poolkit + Kim padding`` (the default: 4 padding positions on each side as Kim's
code does, so more windows; its logits do not depend on batch padding).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

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


def _rate(step, batch: int, seconds: float, clock) -> float:
    step()  # warm
    done, started = 0, clock()
    while clock() - started < seconds:
        step()
        done += 1
    return done * batch / (clock() - started)


MR_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mr"


def _batches(args) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]]]:
    """``(vocab_size, [(input_ids (B, T), labels (B,)), ...])``."""
    if args.text == "random":
        vocab = 18766  # MR's vocabulary
        ids = torch.randint(1, vocab, (args.batch_size, args.length))
        return vocab, [(ids, torch.randint(0, 2, (args.batch_size,)))]
    from poolkit.data import TextEncoder, read_mr
    from poolkit.data.dataset import pad_sequences

    data = read_mr(args.data)
    encoder = TextEncoder.fit(data.texts, max_length=args.length)
    order = list(range(len(data.texts)))
    random.Random(0).shuffle(order)
    batches = []
    for start in range(0, 20 * args.batch_size, args.batch_size):
        chosen = order[start:start + args.batch_size]
        ids, _ = pad_sequences([encoder(data.texts[i]) for i in chosen], encoder.pad_id,
                               args.length, min_length=5)
        batches.append((ids, torch.tensor([data.labels[i] for i in chosen])))
    return len(encoder.vocab), batches


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--length", type=int, default=40, help="tokens per text (at most)")
    parser.add_argument("--text", choices=("random", "mr"), default="random")
    parser.add_argument("--data", default=str(MR_DATA), help="MR folder for --text mr")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per variant, mode and round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    vocab, batches = _batches(args)
    config = TextCNNConfig(vocab_size=vocab, edge_padding=False, max_norm=None)
    ours = TextCNN(config)
    tutorial = TutorialTextCNN(vocab)
    _copy_weights(tutorial, ours)
    kim = TextCNN(TextCNNConfig(vocab_size=vocab, max_norm=None))
    kim.load_state_dict(ours.state_dict())
    ours.eval(), tutorial.eval()
    with torch.no_grad():  # the same function (on texts without padding: the tutorial's
        # windows of padding only give relu(bias), which poolkit zeroes)
        unpadded = torch.randint(1, vocab, (args.batch_size, args.length))
        torch.testing.assert_close(ours(unpadded), tutorial(unpadded), rtol=1e-4, atol=1e-5)

    variants = {"tutorial Conv2d": tutorial, "poolkit": ours, "poolkit + Kim padding": kim}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-3, fused=True)
                  for name, m in variants.items()}
    cursor = {name: 0 for name in variants}

    def next_batch(name):
        cursor[name] += 1
        return batches[cursor[name] % len(batches)]

    def train_step(name):
        model, optimizer = variants[name], optimizers[name]

        def step():
            ids, labels = next_batch(name)
            loss = F.cross_entropy(model(ids), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    def infer_step(name):
        model = variants[name]

        def step():
            with torch.inference_mode():
                model(next_batch(name)[0])

        return step

    rates = {(name, mode): [] for name in variants for mode in ("train", "inference")}
    for round_ in range(args.rounds):
        for mode, make in (("train", train_step), ("inference", infer_step)):
            for name, model in variants.items():
                model.train(mode == "train")
                rates[(name, mode)].append(
                    _rate(make(name), args.batch_size, args.seconds, clock)
                )
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
    lengths = sorted({ids.shape[1] for ids, _ in batches})
    print(f"TextCNN samples/s (median of {args.rounds} rounds; batch {args.batch_size}, "
          f"{args.text} ids, T in {lengths[0]}..{lengths[-1]}, {args.threads} thread(s), "
          f"{args.clock} clock, torch {torch.__version__})")
    print(f"{'variant':24} {'train/s':>9} {'x':>6} {'infer/s':>9} {'x':>6}")
    for row in rows:
        print(f"{row['variant']:24} {row['train_samples_per_s']:9.1f} {row['train_speedup']:6.2f}"
              f" {row['inference_samples_per_s']:9.1f} {row['inference_speedup']:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
