"""Training and evaluation of the dense-prediction models (segmentation, RoI detection).

The classification :class:`~poolkit.train.Trainer` computes a cross-entropy over ``(B, K)``
logits; a detector's loss (classification of sampled proposals plus box regression) and the
dense metrics (mean IoU, box mAP) do not fit it. :func:`fit_dense` is the same loop for models
that compute their own loss — ``model.compute_loss(batch) -> Tensor`` — with the same
:class:`~poolkit.train.TrainConfig` (epochs, batch size, optimizer, lr schedule, weight decay,
gradient clipping, seed, patience, device, checkpoint folder): the model with the best dev score
(``evaluate_fn``) is kept, and written as ``model.safetensors`` + ``poolkit_config.json`` when
``out_dir`` is set.

:func:`evaluate_segmentation` gives mean IoU per class and overall, :func:`evaluate_detection`
box AP per class and mAP (``model.detect(batch)`` returns per-image boxes, scores and labels).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from poolkit.train.checkpoint import atomic_write_json, save_checkpoint
from poolkit.train.dense_metrics import (
    detection_average_precision,
    iou_per_class,
    mean_iou,
    segmentation_confusion,
)
from poolkit.train.distributed import epoch_seed, resolve_device, set_seed
from poolkit.train.optim import build_optimizer, lr_factor
from poolkit.train.trainer import TrainConfig

__all__ = ["fit_dense", "evaluate_segmentation", "evaluate_detection"]


def _to_device(batch: dict, device: torch.device) -> dict:
    def move(value):
        if isinstance(value, torch.Tensor):
            return value.to(device)
        if isinstance(value, list):
            return [move(item) for item in value]
        return value

    return {key: move(value) for key, value in batch.items()}


def _batches(dataset, collate_fn, batch_size: int, order=None):
    order = range(len(dataset)) if order is None else order
    order = list(order)
    for first in range(0, len(order), batch_size):
        yield collate_fn([dataset[i] for i in order[first:first + batch_size]])


def fit_dense(
    model: torch.nn.Module,
    train,
    dev,
    collate_fn: Callable,
    config: TrainConfig,
    evaluate_fn: Callable[..., dict] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` (``model.compute_loss(batch)``) on ``train``; keep the best dev epoch.

    ``evaluate_fn(model, dataset, batch_size=...) -> {"score": float, ...}`` scores ``dev``
    after each epoch (higher is better); without ``dev`` the last epoch is kept. ``log`` gets
    one line per epoch. Returns ``train_time_s``, ``epochs``, ``best_epoch``, ``best_dev_score``
    and the per-epoch ``history``.
    """
    set_seed(config.seed)
    device = resolve_device(config.device)
    model.to(device)
    optimizer = build_optimizer(model.parameters(), config.optimizer, config.base_lr,
                                config.weight_decay)
    steps_per_epoch = -(-len(train) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(config.warmup * total_steps)
    eval_batch = config.eval_batch_size or max(config.batch_size, 64)
    best_score, best_state, best_epoch, stale, step = None, None, 0, 0, 0
    history, started = [], time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        generator = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
        order = torch.randperm(len(train), generator=generator).tolist()
        loss_sum, seen = 0.0, 0
        for batch in _batches(train, collate_fn, config.batch_size, order):
            batch = _to_device(batch, device)
            for group in optimizer.param_groups:
                group["lr"] = config.base_lr * lr_factor(step, total_steps, config.schedule,
                                                         warmup_steps)
            loss = model.compute_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            loss_sum += float(loss.detach()) * len(batch["images"])
            seen += len(batch["images"])
        record = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1)}
        if dev is not None and evaluate_fn is not None:
            record["dev_score"] = float(evaluate_fn(model, dev, batch_size=eval_batch)["score"])
            if best_score is None or record["dev_score"] > best_score:
                best_score, best_epoch, stale = record["dev_score"], epoch + 1, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
        history.append(record)
        if log is not None:
            log("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in record.items()))
        if config.patience is not None and stale >= config.patience:
            break
    train_time = time.perf_counter() - started
    if best_state is not None and config.restore_best:
        model.load_state_dict(best_state)
    result = {"train_time_s": train_time, "epochs": len(history),
              "best_epoch": best_epoch or len(history), "best_dev_score": best_score,
              "history": history}
    if config.out_dir is not None:
        save_checkpoint(config.out_dir, model, metadata={"train": config.to_dict(),
                                                         "result": result})
        atomic_write_json(f"{config.out_dir}/result.json", result)
    return result


def evaluate_segmentation(
    model: torch.nn.Module, dataset, collate_fn: Callable, *, num_classes: int,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Mean IoU (``score``), IoU per class and pixel accuracy of ``model`` on ``dataset``."""
    model.eval()
    device = next(model.parameters()).device
    matrix = np.zeros((num_classes, num_classes), np.int64)
    started = time.perf_counter()
    with torch.inference_mode():
        for batch in _batches(dataset, collate_fn, batch_size):
            logits = model(batch["images"].to(device))  # (B, K, H, W)
            predicted = logits.argmax(dim=1).cpu().numpy()
            matrix += segmentation_confusion(batch["labels"].numpy(), predicted, num_classes)
    seconds = time.perf_counter() - started
    miou = mean_iou(matrix)
    return {"score": miou, "miou": miou,
            "iou_per_class": [None if np.isnan(v) else float(v) for v in iou_per_class(matrix)],
            "pixel_accuracy": float(np.trace(matrix) / max(matrix.sum(), 1)), "time_s": seconds}


def evaluate_detection(
    model: torch.nn.Module, dataset, collate_fn: Callable, *, num_classes: int,
    batch_size: int = 64, iou_threshold: float = 0.5,
) -> dict[str, Any]:
    """Box mAP at ``iou_threshold`` (``score``) and AP per class of ``model.detect(batch)``."""
    model.eval()
    device = next(model.parameters()).device
    detections, truths = [], []
    started = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, len(dataset), batch_size):
            indices = range(first, min(first + batch_size, len(dataset)))
            batch = collate_fn([dataset[i] for i in indices])
            batch["indices"] = torch.as_tensor(list(indices))
            for found in model.detect(_to_device(batch, device)):
                detections.append({key: value.cpu().numpy() for key, value in found.items()})
            truths += [{"boxes": b.numpy(), "labels": c.numpy()}
                       for b, c in zip(batch["boxes"], batch["box_labels"], strict=True)]
    seconds = time.perf_counter() - started
    result = detection_average_precision(detections, truths, num_classes, iou_threshold)
    return {"score": result["map"], "map": result["map"],
            "ap_per_class": [None if np.isnan(v) else float(v) for v in result["ap_per_class"]],
            "time_s": seconds}
