"""``poolkit explain seq:MODE``: one :class:`poolkit.nn.SequencePool` mode on a masked batch.

The batch holds one sentence twice, ``[CLS] great film [SEP]`` (hidden size 2, numbers small
enough to check by hand), once right-padded and once left-padded to 6 positions; the pad
positions hold ``9 9``, finite garbage that a correct pooling never reads. For each row
:func:`explain_sequence` shows the mask, which tokens count and with what weight (``1/n`` for
the mean, ``i / sum i`` for the weighted mean, the winning token per feature for max/min/kmax,
the one token for cls/first/last, the attention weights of the learned query), the pooled
vector computed by the real ``SequencePool`` (float64), and what a pooling that ignores the mask
would have given: ``hidden[:, 0]`` is a pad under left padding, ``hidden[:, -1]`` under right
padding, ``hidden[sum(mask) - 1]`` is the wrong token under left padding.

Example:
    >>> e = explain_sequence("last")
    >>> [row["result"] for row in e.rows]
    [[-1.0, 5.0], [-1.0, 5.0]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TOKENS = ("[CLS]", "great", "film", "[SEP]")
STATES = ((1.0, 0.0), (4.0, -2.0), (2.0, 3.0), (-1.0, 5.0))  # one row per token, H = 2
PAD_STATE = (9.0, 9.0)
LENGTH = 6

FORMULAS = {
    "mean": "p = (1/n) sum_{i real} x_i",
    "max": "p_h = max_{i real} x_{i,h}, per feature h",
    "min": "p_h = min_{i real} x_{i,h}, per feature h",
    "cls": "p = x_first: the first real token (the [CLS] of an encoder)",
    "first": "p = x_first: the first real token",
    "last": "p = x_last: the last real token (a decoder's summary of the whole text)",
    "weighted_mean": "p = sum_i r_i x_i / sum_i r_i, r_i = rank of token i among the real ones",
    "mean_sqrt_len": "p = (1/sqrt(n)) sum_{i real} x_i",
    "kmax": "p = the k largest x_{i,h} per feature, in token order (k blocks of H)",
    "attention": "p = PMA: h = s W_q + MHA(s, X, X) with a learned seed s, p = h + relu(h W + b)"
                 "; pads masked out of the keys",
    "latent_attention": "O = X + MHA(X, L, L) (learned latents L), O' = O + MLP(O), "
                        "p = mean of O' over the real tokens",
}


@dataclass
class SequenceExplanation:
    """One :class:`~poolkit.nn.SequencePool` mode on the right- and left-padded example batch
    (:func:`explain_sequence`'s answer).

    Attributes:
        mode: the pooling mode (``"mean"``, ``"last"``, ``"kmax"``...).
        formula: its formula, one line of plain text (:data:`FORMULAS`).
        tokens: the sentence's real tokens, ``[CLS] great film [SEP]``.
        rows: one dict per row of the batch: ``padding`` (``"right"`` or ``"left"``),
            ``mask``, ``hidden`` (``(T, H)`` states), ``tokens`` (``<pad>`` at the pads),
            ``result`` (the pooled vector from the real layer, float64), either ``weights``
            (one per position) or ``winners`` (per feature, the positions pooled), and
            ``ignoring_the_mask`` (what a pooling that ignores the mask would give).
        notes: remarks printed under the result.
    """

    mode: str
    formula: str
    tokens: list[str]
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "formula": self.formula, "tokens": self.tokens,
                "rows": self.rows, "notes": self.notes}


def batch() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The example: ``hidden (2, 6, 2)``, ``mask (2, 6)`` (row 0 right-, row 1 left-padded)."""
    pads = LENGTH - len(TOKENS)
    right = [*STATES, *([PAD_STATE] * pads)]
    left = [*([PAD_STATE] * pads), *STATES]
    mask = np.array([[1] * len(TOKENS) + [0] * pads, [0] * pads + [1] * len(TOKENS)])
    return np.array([right, left], dtype=np.float64), mask, ["right", "left"]


def explain_sequence(mode: str, k: int | None = None, seed: int = 0) -> SequenceExplanation:
    """Explain ``SequencePool(mode)`` on :func:`batch`; ``k`` for kmax, ``seed`` for the learned
    modes (attention, latent_attention)."""
    import torch

    from poolkit.nn.sequence import POOLING_MODES, SequencePool

    if mode not in POOLING_MODES:
        raise ValueError(f"sequence mode ({mode!r}) must be one of {', '.join(POOLING_MODES)}")
    if k is not None and mode != "kmax":
        raise ValueError(f"--k applies to seq:kmax, not seq:{mode}")
    options = {"k": 2 if k is None else k} if mode == "kmax" else {}
    if mode == "latent_attention":
        options = {"num_latents": 4, "num_heads": 1, "mlp_dim": 4}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        pool = SequencePool(mode, hidden_size=2, **options).double().eval()
    hidden, mask, sides = batch()
    with torch.no_grad():
        pooled = pool(torch.from_numpy(hidden), torch.from_numpy(mask)).numpy()
    rows = []
    for b, side in enumerate(sides):
        row = {"padding": side, "mask": mask[b].tolist(), "hidden": hidden[b].tolist(),
               "tokens": _row_tokens(mask[b]), "result": pooled[b].tolist()}
        row.update(_decision(mode, hidden[b], mask[b], options, pool))
        row["ignoring_the_mask"] = _naive(mode, hidden[b], mask[b], options)
        rows.append(row)
    notes = _notes(mode, rows, seed)
    return SequenceExplanation(mode, FORMULAS[mode], list(TOKENS), rows, notes)


def _row_tokens(mask_row) -> list[str]:
    tokens = iter(TOKENS)
    return [next(tokens) if m else "<pad>" for m in mask_row]


def _decision(mode, hidden, mask_row, options, pool) -> dict[str, Any]:
    """Which tokens count and how: per-token weights, or the winning token per feature."""
    real = [t for t in range(len(mask_row)) if mask_row[t]]
    n = len(real)
    weights = [0.0] * len(mask_row)
    if mode in ("mean", "mean_sqrt_len", "latent_attention"):
        for t in real:
            weights[t] = 1 / n if mode != "mean_sqrt_len" else 1 / math.sqrt(n)
    elif mode == "weighted_mean":
        for rank, t in enumerate(real, start=1):
            weights[t] = rank / (n * (n + 1) / 2)
    elif mode in ("cls", "first", "last"):
        weights[real[0] if mode != "last" else real[-1]] = 1.0
    elif mode in ("max", "min", "kmax"):
        return {"winners": _winners(mode, hidden, real, options)}
    elif mode == "attention":
        weights = _attention_weights(pool, hidden, mask_row)
    return {"weights": weights}


def _winners(mode, hidden, real, options) -> list[list[int]]:
    """Per feature h, the positions whose value is pooled (first one on ties; kmax: k, in
    token order)."""
    winners = []
    for h in range(hidden.shape[1]):
        values = [(hidden[t, h], t) for t in real]
        if mode == "max":
            winners.append([max(values, key=lambda v: (v[0], -v[1]))[1]])
        elif mode == "min":
            winners.append([min(values, key=lambda v: (v[0], v[1]))[1]])
        else:
            kept = sorted(values, key=lambda v: (-v[0], v[1]))[: options["k"]]
            winners.append(sorted(t for _, t in kept))
    return winners


def _attention_weights(pool, hidden, mask_row) -> list[float]:
    """The learned seeds' softmax over the real tokens, averaged over heads and seeds (one of
    each: exactly the weights of the pooled sum)."""
    import torch

    module = pool.learned["attention"]
    heads = module.attention.num_heads
    parameter = next(module.parameters())
    with torch.no_grad():
        states = torch.as_tensor(hidden, dtype=parameter.dtype)
        q = module.attention.query(module.seeds[0])  # (Q, H)
        k = module.attention.key(states)  # (T, H)
        width = q.shape[-1] // heads
        q, k = q.view(-1, heads, width), k.view(-1, heads, width)  # (Q, h, d), (T, h, d)
        scores = torch.einsum("qhd,thd->qht", q, k).double() / math.sqrt(width)
        keep = torch.as_tensor(np.asarray(mask_row).astype(bool))
        scores = scores.masked_fill(~keep, -math.inf)
        return scores.softmax(-1).mean((0, 1)).tolist()


def _naive(mode, hidden, mask_row, options) -> dict[str, Any] | None:
    """What the same reduction gives when the mask is ignored (or misused)."""
    if mode in ("cls", "first"):
        return {"rule": "hidden[:, 0]", "result": hidden[0].tolist(), "position": 0}
    if mode == "last":
        count = int(mask_row.sum())
        return {"rule": "hidden[:, -1]", "result": hidden[-1].tolist(),
                "position": len(mask_row) - 1,
                "also": {"rule": "hidden[sum(mask) - 1]", "result": hidden[count - 1].tolist(),
                         "position": count - 1}}
    if mode in ("mean", "max", "min", "mean_sqrt_len"):
        reduce = {"mean": np.mean, "max": np.max, "min": np.min,
                  "mean_sqrt_len": lambda a, axis: a.sum(axis) / math.sqrt(len(a))}[mode]
        return {"rule": f"{mode} over all {len(mask_row)} positions",
                "result": reduce(hidden, axis=0).tolist()}
    return None


def _notes(mode, rows, seed) -> list[str]:
    notes = ["the pad positions hold 9 9: finite garbage that a masked pooling never reads",
             "a row whose mask is all zero (nothing to pool) gives a zero vector, not NaN"]
    same = np.allclose(rows[0]["result"], rows[1]["result"])
    notes.append("left and right padding give the same vector" if same else
                 "left and right padding differ (a bug: SequencePool promises the same vector)")
    if mode in ("cls", "first", "last"):
        notes.append(
            "why the mask is needed: the first/last *real* token moves with the padding side; "
            "position 0 is a pad under left padding (batched decoders pad left), position -1 "
            "under right padding, and sum(mask) - 1 names the wrong token under left padding")
    if mode in ("attention", "latent_attention"):
        notes.append(f"learned weights drawn with torch.manual_seed({seed}) (--seed); a trained "
                     "head learns them")
    if mode == "latent_attention":
        notes.append("every real token is first transformed (attending to the latents), then the "
                     "transformed tokens are averaged: the weights shown are that mean's")
    return notes


# ---------------------------------------------------------------------------------------------
# The figure


def _draw_naive(ax, row, y) -> None:
    """cls/first/last: a dashed box where indexing without the mask would read, with its rule."""
    from matplotlib.patches import Rectangle

    naive, level = row["ignoring_the_mask"], 0
    while naive is not None and "position" in naive:
        t = naive["position"]
        wrong = naive["result"] != row["result"]
        colour = "#d62728" if wrong else "#555555"
        ax.add_patch(Rectangle((t - 0.5 - 0.04 * level, y - 0.65 - 0.04 * level),
                               1.0 + 0.08 * level, 1.3 + 0.08 * level, fill=False,
                               linestyle="--", edgecolor=colour, linewidth=1.5))
        ax.text(t, y - 0.8 - 0.2 * level, naive["rule"] + (" (wrong)" if wrong else ""),
                ha="center", va="top", fontsize=7, color=colour)
        naive, level = naive.get("also"), level + 1


def plot_sequence(explanation: SequenceExplanation, path):
    """Both rows of the batch as token cells (pads grey), each real token shaded by its weight
    or outlined per feature it wins, and the pooled vector beside. PNG, written atomically."""
    import io

    from matplotlib.patches import Rectangle

    from poolkit._io import atomic_write_bytes
    from poolkit.experiments.explain_op import short_number
    from poolkit.experiments.plots import pyplot

    plt = pyplot()
    figure, ax = plt.subplots(figsize=(10, 4.4))
    feature_colours = ("#d62728", "#2ca02c")
    for r, row in enumerate(explanation.rows):
        y = -2.3 * r
        ax.text(-0.6, y, f"{row['padding']}-\npadded", ha="right", va="center", fontsize=9)
        for t, (token, state, m) in enumerate(zip(row["tokens"], row["hidden"], row["mask"],
                                                  strict=True)):
            weight = row.get("weights", [0.0] * len(row["mask"]))[t]
            face = "#eeeeee" if not m else (0.12, 0.47, 0.71, 0.15 + 0.75 * min(weight, 1.0))
            ax.add_patch(Rectangle((t - 0.45, y - 0.6), 0.9, 1.2, facecolor=face,
                                   edgecolor="#999999"))
            ax.text(t, y + 0.3, token, ha="center", fontsize=8, color="black" if m else "#999999")
            ax.text(t, y - 0.15, " ".join(short_number(v) for v in state), ha="center",
                    fontsize=9, color="black" if m else "#999999")
            if "weights" in row and m:
                ax.text(t, y - 0.45, f"w {weight:.2f}", ha="center", fontsize=7)
            for h, positions in enumerate(row.get("winners", [])):
                if t in positions:
                    inset = 0.05 + 0.07 * h
                    ax.add_patch(Rectangle((t - 0.45 + inset, y - 0.6 + inset), 0.9 - 2 * inset,
                                           1.2 - 2 * inset, fill=False, linewidth=2,
                                           edgecolor=feature_colours[h % 2]))
        _draw_naive(ax, row, y)
        result = " ".join(short_number(v) for v in row["result"])
        ax.text(LENGTH + 0.3, y, f"-> {result}", va="center", fontsize=10, color="#2a7a2a")
    ax.set_xlim(-1.6, LENGTH + 2.4)
    ax.set_ylim(-2.3 * len(explanation.rows) + 1.0, 1.0)
    ax.axis("off")
    legend = ("legend: grey cells are padding (holding 9 9, never read); "
              + ("blue shade and w: the token's weight in the pooled vector"
                 if "weights" in explanation.rows[0]
                 else "red / green outline: the token wins feature 0 / 1")
              + ("; dashed: the position a mask-ignoring index reads (wrong where it is "
                 "not the shaded token)" if explanation.mode in ("cls", "first", "last") else ""))
    ax.set_title(f"SequencePool({explanation.mode!r}): {explanation.formula}", fontsize=9,
                 wrap=True)
    figure.text(0.5, 0.02, legend, ha="center", fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())
