"""Input perturbations for the robustness columns of ``compare``.

Both act on a collated batch (``dict[str, Tensor]``), so they work for any data set a task loads:

- :func:`shift_images` translates each image of ``batch["images"]`` by ``k`` pixels in one of the
  eight compass directions (chosen per image from a seeded generator) and fills the uncovered
  border with zeros. Max pooling is often said to give "translation invariance"; this measures how
  much of it survives a shift of 1-3 pixels.
- :func:`shift_consistency` (Zhang 2019): how often the predicted class of an image stays the
  same under two independent random shifts of up to ``m`` pixels in each direction (the shift
  invariance pooling is said to give, measured without the label).
- :func:`word_dropout` deletes each real token of ``batch["input_ids"]`` with probability ``rate``
  (seeded), closes the gaps and pads at the end, keeping at least one token per text.

The generator is seeded from the level alone (not from the run), so every pooling type and every
seed is tested on exactly the same perturbed inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# The eight directions (dy, dx) a shifted image may move in.
_DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def shift_images(batch: dict[str, Any], pixels: int, generator=None) -> dict[str, Any]:
    """Translate every image by ``pixels`` in a random compass direction, zero fill.

    .. math::
        y_{n,c,i,j} = x_{n,c,i - k d_y,\\, j - k d_x}
        \\quad (0 \\text{ where the index leaves the image})

    Shape:
        ``batch["images"]``: ``(N, C, H, W)``, returned with the same shape and dtype.

    ``pixels=0`` returns the batch unchanged. ``pixels`` at least the image size gives all zeros.

    Example:
        >>> import torch
        >>> generator = torch.Generator().manual_seed(0)
        >>> out = shift_images({"images": torch.ones(1, 1, 3, 3)}, 1, generator)
        >>> int(out["images"].sum()) in (4, 6)  # diagonal keeps 2x2 ones, straight keeps 2x3
        True
    """
    import torch

    if isinstance(pixels, bool) or not isinstance(pixels, int):
        raise TypeError(f"pixels must be an int, got {type(pixels).__name__}")
    if pixels < 0:
        raise ValueError(f"pixels ({pixels}) must be >= 0")
    if "images" not in batch:
        raise ValueError(f"shift_images needs a batch with 'images', got keys {sorted(batch)}")
    images = batch["images"]
    if pixels == 0:
        return batch
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    choice = torch.randint(len(_DIRECTIONS), (images.shape[0],), generator=generator)
    offsets = pixels * torch.tensor(_DIRECTIONS, dtype=torch.long)[choice]  # (N, 2)
    return {**batch, "images": translate_images(images, offsets)}


def translate_images(images, offsets):
    """Move image ``n`` by ``offsets[n] = (dy, dx)`` pixels (down and right for positive
    values), filling the uncovered border with zeros.

    Shape:
        ``images``: ``(N, C, H, W)``; ``offsets``: ``(N, 2)`` integers. Returns ``(N, C, H, W)``.

    Example:
        >>> import torch
        >>> image = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
        >>> translate_images(image, torch.tensor([[1, -1]]))[0, 0].tolist()
        [[0.0, 0.0, 0.0], [2.0, 3.0, 0.0], [5.0, 6.0, 0.0]]
    """
    import torch

    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if tuple(offsets.shape) != (images.shape[0], 2):
        raise ValueError(
            f"offsets must be (N, 2) = ({images.shape[0]}, 2), got shape {tuple(offsets.shape)}"
        )
    height, width = images.shape[2:]
    shifted = torch.zeros_like(images)
    for ky, kx in torch.unique(offsets, dim=0).tolist():
        rows = ((offsets[:, 0] == ky) & (offsets[:, 1] == kx)).nonzero(as_tuple=True)[0]
        if abs(ky) >= height or abs(kx) >= width:
            continue  # moved out entirely: zeros
        src_y = slice(max(0, -ky), height - max(0, ky))
        dst_y = slice(max(0, ky), height - max(0, -ky))
        src_x = slice(max(0, -kx), width - max(0, kx))
        dst_x = slice(max(0, kx), width - max(0, -kx))
        shifted[rows, :, dst_y, dst_x] = images[rows][:, :, src_y, src_x]
    return shifted


def shift_consistency(
    model, dataset, collate_fn, *, max_shift: int = 3, seed: int = 2019, batch_size: int = 256
) -> float:
    """Share of test images whose predicted class is the same under two random shifts
    (Zhang 2019, "Making convolutional networks shift-invariant again"):

    .. math::
        \\frac{1}{N} \\sum_n \\mathbb{1}\\left[\\arg\\max f(\\mathrm{shift}_{a_n}(x_n))
        = \\arg\\max f(\\mathrm{shift}_{b_n}(x_n))\\right]

    with :math:`a_n, b_n` drawn independently and uniformly from
    :math:`\\{-m, \\dots, m\\}^2` (``m = max_shift``) by a generator seeded with ``seed``, and
    zero fill as in :func:`shift_images`. The label does not enter: a model can be consistent and
    wrong. The same offsets for every model given the same ``seed`` and test set.
    """
    import torch

    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"max_shift ({max_shift!r}) must be an integer >= 0")
    count = len(dataset)
    if count == 0:
        return float("nan")
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.randint(-max_shift, max_shift + 1, (2, count, 2), generator=generator)
    agree = 0
    model.eval()
    with torch.inference_mode():
        for first in range(0, count, batch_size):
            last = min(first + batch_size, count)
            batch = collate_fn([dataset[i] for i in range(first, last)])
            inputs = {k: v for k, v in batch.items() if k not in ("labels", "images")}
            a, b = (
                model(images=translate_images(batch["images"], shift[first:last]), **inputs)
                .argmax(dim=-1)
                for shift in offsets
            )
            agree += int((a == b).sum())
    return agree / count


def word_dropout(
    batch: dict[str, Any],
    rate: float,
    generator=None,
    pad_id: int = 0,
    keep_ends: bool = False,
) -> dict[str, Any]:
    """Delete each real token with probability ``rate``, keep order, pad at the end.

    Real tokens are those of ``attention_mask`` if the batch has one, else those ``!= pad_id``.
    A text keeps at least its first token; ``keep_ends`` never deletes the first and last real
    tokens (a transformer's ``[CLS]`` and ``[SEP]``). The tensor width stays the same (so models
    with a minimum length, like a TextCNN with width-5 filters, still get it).

    Shape:
        ``batch["input_ids"]``: ``(B, T)``; ``batch["attention_mask"]`` (optional): ``(B, T)``.

    Example:
        >>> import torch
        >>> ids = torch.tensor([[5, 6, 7, 8, 0, 0]])
        >>> word_dropout({"input_ids": ids}, 0.0)["input_ids"].tolist()
        [[5, 6, 7, 8, 0, 0]]
    """
    import torch

    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise TypeError(f"rate must be a number, got {type(rate).__name__}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate ({rate}) must be in [0, 1)")
    if "input_ids" not in batch:
        raise ValueError(f"word_dropout needs a batch with 'input_ids', got keys {sorted(batch)}")
    if rate == 0:
        return batch
    ids = batch["input_ids"]
    mask = batch.get("attention_mask")
    real = mask.bool() if mask is not None else ids != pad_id  # (B, T)
    keep = real & (torch.rand(ids.shape, generator=generator) >= rate)
    if keep_ends and real.any():
        rows = torch.arange(ids.shape[0])
        has = real.any(dim=1)
        first = real.float().argmax(dim=1)
        last = ids.shape[1] - 1 - real.flip(1).float().argmax(dim=1)
        keep[rows[has], first[has]] = True
        keep[rows[has], last[has]] = True
    # Keep the first real token of a text that would lose every token.
    empty = ~keep.any(dim=1) & real.any(dim=1)
    if empty.any():
        first = real.float().argmax(dim=1)
        keep[empty, first[empty]] = True
    # Stable sort moves kept tokens to the front in their original order.
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices
    counts = keep.sum(dim=1, keepdim=True)
    positions = torch.arange(ids.shape[1]).unsqueeze(0)
    new_real = positions < counts  # (B, T)
    new_ids = torch.where(new_real, ids.gather(1, order), torch.full_like(ids, pad_id))
    out = {**batch, "input_ids": new_ids}
    if mask is not None:
        out["attention_mask"] = new_real.to(mask.dtype)
    return out


def _word_dropout_of_task(batch, level, generator, data) -> dict[str, Any]:
    """:func:`word_dropout` at rate ``level`` with the task's padding id and end tokens
    (``data.info["pad_id"]``, default 0; ``data.info["keep_ends"]``, a transformer's [CLS] and
    [SEP], default False)."""
    return word_dropout(batch, float(level), generator, pad_id=int(data.info.get("pad_id", 0)),
                        keep_ends=bool(data.info.get("keep_ends", False)))


#: Perturbation by name: ``fn(batch, level, generator, data) -> batch``, ``data`` the task's
#: :class:`~poolkit.experiments.task_types.TaskData` (each reads the settings it needs by name).
PERTURBATIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "shift": lambda batch, level, generator, data: shift_images(batch, int(level), generator),
    "word_dropout": _word_dropout_of_task,
}


def perturbation_label(kind: str, level: float) -> str:
    """Column name of a robustness result, e.g. ``shift_2px`` or ``word_dropout_20``."""
    if kind == "shift":
        return f"shift_{int(level)}px"
    if kind == "word_dropout":
        return f"word_dropout_{round(float(level) * 100)}"
    return f"{kind}_{level:g}"
