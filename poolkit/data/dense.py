"""Torch data sets of digit canvases (:mod:`poolkit.data.canvas`) for segmentation and detection.

``CanvasDataset(canvases)[i]`` is ``{"images": (1, S, S) float32, "masks": (S, S) int64,
"boxes": (K, 4) float32, "box_labels": (K,) int64}``; :func:`collate_canvases` stacks images and
masks and keeps the boxes as per-image lists (their counts differ). ``"labels"`` is the mask
(a segmentation batch's target), so that a batch has the shared ``"labels"`` key.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from poolkit.data.canvas import Canvases


class CanvasDataset(Dataset):
    """Canvases as torch tensors (see the module doc)."""

    def __init__(self, canvases: Canvases):
        self.canvases = canvases
        self.images = torch.from_numpy(canvases.images)
        self.masks = torch.from_numpy(canvases.masks)
        self.boxes = [torch.from_numpy(b) for b in canvases.boxes]
        self.box_labels = [torch.from_numpy(b) for b in canvases.labels]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"images": self.images[index], "masks": self.masks[index],
                "boxes": self.boxes[index], "box_labels": self.box_labels[index]}


def collate_canvases(examples: Sequence[dict]) -> dict:
    """``{"images": (B, 1, S, S), "labels": (B, S, S) masks, "boxes": [B x (K_i, 4)],
    "box_labels": [B x (K_i,)]}``."""
    return {
        "images": torch.stack([e["images"] for e in examples]),
        "labels": torch.stack([e["masks"] for e in examples]),
        "boxes": [e["boxes"] for e in examples],
        "box_labels": [e["box_labels"] for e in examples],
    }
