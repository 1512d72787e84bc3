"""``poolkit explain --model`` for transformer checkpoints: which tokens the pooling head used.

A :class:`poolkit.models.TransformerClassifier` pools the backbone's token states with a
:class:`~poolkit.nn.SequencePool`. :func:`explain_transformer` reads the states and the mask the
head actually received (a forward hook) and says, for every token and every pooling mode of the
head, how much it counted: its weight in the pooled vector (the mean's ``1/n``, the weighted
mean's ranks, the learned query's attention weights for ``attention``), the number of features
it won (``max``, ``min``, ``kmax``), or that it is *the* token (``cls``, ``first``, ``last``).
The weights and winners come from the same functions as ``poolkit explain seq:MODE``
(:mod:`poolkit.experiments.explain_sequence`), so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class TransformerExplanation:
    """Which tokens a transformer classifier's pooling head used for one text
    (:func:`explain_transformer`'s answer).

    Attributes:
        text: the text explained.
        tokens: its tokens, as the model's tokenizer splits them (special tokens included).
        pool: the head's pooling mode(s), joined by ``+``.
        parts: one dict per pooling mode: ``mode``, and either ``weights`` (each token's
            weight in the pooled vector) or ``wins`` (how many of the ``features`` features
            each token won, for max, min and kmax) and ``features``.
        label_names: the class names, in class-index order.
        probabilities: softmax of the logits, one per class.
        predicted: index of the predicted class.
        notes: remarks printed under the result.
    """

    text: str
    tokens: list[str]
    pool: str
    parts: list[dict[str, Any]]  # per pooling mode: "mode", and "weights" or "wins" per token
    label_names: list[str]
    probabilities: list[float]
    predicted: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "has_winners": any("wins" in part for part in self.parts),
            "explained_by": "tokens",
            "text": self.text,
            "tokens": self.tokens,
            "pool": self.pool,
            "parts": self.parts,
            "predicted": self.label_names[self.predicted],
            "probabilities": dict(zip(self.label_names, self.probabilities, strict=True)),
            "notes": self.notes,
        }


def explain_transformer(model, encoder, text: str, label_names: list[str] | None = None):
    """Explain a :class:`~poolkit.models.TransformerClassifier`'s pooling for ``text``;
    ``encoder`` is the checkpoint's :class:`~poolkit.models.transformer.TransformerTextEncoder`."""
    import torch

    from poolkit.experiments.explain_sequence import _decision

    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    ids = encoder(text)
    tokens = [str(t) for t in encoder.tokenizer.convert_ids_to_tokens(ids)]
    captured: dict[str, Any] = {}

    def hook(module, args, output):
        captured["hidden"], captured["mask"] = args[0].detach(), args[1].detach()

    handle = model.pool.register_forward_hook(hook)
    model.eval()
    try:
        with torch.no_grad():
            logits = model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0]
    finally:
        handle.remove()
    hidden = captured["hidden"][0].double().numpy()  # (T, H)
    mask = captured["mask"][0].numpy().astype(np.int64)
    pool = model.pool
    parts = []
    for mode in pool.modes:
        decision = _decision(mode, hidden, mask, pool.options, pool)
        part: dict[str, Any] = {"mode": mode}
        if "weights" in decision:
            part["weights"] = [float(w) for w in decision["weights"]]
        else:  # per feature the winning token(s): count the features each token won
            wins = np.zeros(len(ids), dtype=np.int64)
            for positions in decision["winners"]:
                np.add.at(wins, positions, 1)
            part["wins"] = wins.tolist()
            part["features"] = int(hidden.shape[1])
        parts.append(part)
    probabilities = torch.softmax(logits.double(), -1)
    names = list(label_names or [str(c) for c in range(len(logits))])
    notes = _notes(pool.modes)
    return TransformerExplanation(text, tokens, "+".join(pool.modes), parts, names,
                                  [float(p) for p in probabilities],
                                  int(probabilities.argmax()), notes)


def _notes(modes) -> list[str]:
    notes = []
    if "latent_attention" in modes:
        notes.append("latent_attention transforms every token first (attending to learned "
                     "latents), then averages: the weights are that mean's 1/n")
    if "attention" in modes:
        notes.append("attention: the learned query's softmax over the tokens, averaged over "
                     "heads and queries")
    if any(m in modes for m in ("max", "min", "kmax")):
        notes.append("max/min/kmax: how many of the hidden features each token supplied")
    return notes
