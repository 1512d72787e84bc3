"""reduce_tokens: schedules, the patched BERT forward against a hand-run one, checkpoints."""

from __future__ import annotations

import copy
import math

import pytest
import torch

pytest.importorskip("transformers")

from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel  # noqa: E402

from poolkit.models import build_model, config_to_dict, reduce_tokens  # noqa: E402
from poolkit.models.token_patch import ReductionSchedule, parse_schedule  # noqa: E402
from poolkit.models.transformer import (  # noqa: E402
    TransformerClassifier,
    TransformerConfig,
    backbone_token_states,
)
from poolkit.nn.token_reduction import merge_tokens, prune_tokens, strided_reduce  # noqa: E402


def tiny_bert(seed: int = 0, layers: int = 3) -> BertModel:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=layers,
        num_attention_heads=2, max_position_embeddings=32, pad_token_id=0,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    return BertModel(config).eval()


def classifier(backbone, reduce: str = "none", **fields) -> TransformerClassifier:
    torch.manual_seed(1)
    config = TransformerConfig(pool="mean", num_classes=3, dropout=0.0, max_length=16,
                               reduce=reduce, **fields)
    return TransformerClassifier(config, backbone).eval()


ROWS = [[2, 5, 6, 7, 8, 9, 10, 11, 3], [2, 12, 13, 3], [2, 14, 15, 16, 17, 18, 3]]


def batch(side: str = "right") -> dict:
    width = max(map(len, ROWS))
    input_ids = torch.zeros(len(ROWS), width, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for b, row in enumerate(ROWS):
        start = 0 if side == "right" else width - len(row)
        input_ids[b, start : start + len(row)] = torch.tensor(row)
        mask[b, start : start + len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


SCHEDULES = ["merge:r=2", "merge:rate=0.3", "merge:r=3,start=1", "merge:r=2,prop=0",
             "strided:after=1", "strided:after=2,ratio=3,mode=max", "prune:keep=0.5,after=1",
             "prune:keep=0.3,after=2"]


# ---------------------------------------------------------------------------------------------
# Schedules


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("none", ReductionSchedule()),
        ("", ReductionSchedule()),
        ("merge:r=8", ReductionSchedule("merge", r=8)),
        ("merge: r=8, start=2", ReductionSchedule("merge", r=8, start=2)),
        ("merge:r=0", ReductionSchedule()),
        ("merge:rate=0.25,start=1", ReductionSchedule("merge", rate=0.25, start=1)),
        ("merge:rate=0", ReductionSchedule()),
        ("strided:after=2,ratio=2", ReductionSchedule("strided", after=2)),
        ("strided:after=1,ratio=1", ReductionSchedule()),
        ("strided:after=2,mode=max,prop=0", ReductionSchedule("strided", after=2, mode="max",
                                                              prop=False)),
        ("prune:keep=0.7,after=3", ReductionSchedule("prune", keep=0.7, after=3)),
        ("prune:keep=1,after=3", ReductionSchedule()),
    ],
)
def test_parse_schedule(text, expected):
    parsed = parse_schedule(text)
    assert parsed == expected
    assert parse_schedule(str(parsed)) == parsed  # the canonical string parses back


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tome:r=8", "kind must be one of"),
        ("merge", "needs exactly one of r"),
        ("merge:r=2,rate=0.1", "needs exactly one of r"),
        ("merge:rate=0.7", r"rate \('0.7'\) must be a fraction in \[0, 0.5\]"),
        ("merge:r=8,after=2", "'after=2' is not one of the keys of 'merge'"),
        ("merge:r=-1", r"r \('-1'\) must be an integer >= 0"),
        ("merge:r=eight", "r"),
        ("merge:r=2,r=3", "gives r twice"),
        ("strided:ratio=2", "needs after"),
        ("strided:after=0", "after"),
        ("strided:after=2,mode=median", r"mode \('median'\) must be one of \['mean', 'max'\]"),
        ("prune:keep=0,after=2", r"keep \('0'\) must be a fraction in \(0, 1\]"),
        ("prune:keep=abc,after=2", "keep"),
        ("prune:after=2", "needs keep"),
        ("merge:r=2,prop=2", "prop"),
    ],
)
def test_bad_schedules_raise_value_error(text, message):
    with pytest.raises(ValueError, match=message):
        parse_schedule(text)


def test_impossible_schedules_for_the_model():
    with pytest.raises(ValueError, match=r"r \(9\) is larger than the sequence allows.*16"):
        classifier(tiny_bert(), "merge:r=9")
    with pytest.raises(ValueError, match=r"after \(3\) must be in \[1, 2\]"):
        classifier(tiny_bert(), "strided:after=3")
    with pytest.raises(ValueError, match=r"start \(3\) must be below the number of layers"):
        classifier(tiny_bert(), "merge:r=2,start=3")
    with pytest.raises(ValueError, match=r"unknown token-reduction schedule"):
        TransformerConfig(reduce="funnel")


def test_unsupported_architecture_names_the_supported_ones():
    llama = LlamaModel(LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32,
                                   num_hidden_layers=1, num_attention_heads=2))
    with pytest.raises(ValueError, match=r"architecture 'llama'.*supported: bert"):
        reduce_tokens(llama, "merge:r=2")
    with pytest.raises(TypeError, match="reduce_tokens needs"):
        reduce_tokens("not a model", "merge:r=2")


# ---------------------------------------------------------------------------------------------
# No reduction: unchanged outputs


@pytest.mark.parametrize("schedule", ["none", "merge:r=0", "strided:after=1,ratio=1"])
def test_a_schedule_that_removes_nothing_leaves_outputs_bit_identical(schedule):
    plain = classifier(tiny_bert())
    patched = classifier(tiny_bert(), schedule)
    assert type(patched.backbone) is BertModel
    with torch.no_grad():
        assert torch.equal(patched(**batch()), plain(**batch()))


def test_patch_then_unpatch_restores_the_model():
    model = classifier(tiny_bert())
    with torch.no_grad():
        before = model(**batch())
        reduce_tokens(model, "merge:r=2")
        assert type(model.backbone).__name__ == "TokenReducedBertModel"
        assert model.config.reduce == "merge:r=2"
        assert not torch.equal(model(**batch()), before)
        reduce_tokens(model, "none")
        assert type(model.backbone) is BertModel and model.config.reduce == "none"
        assert torch.equal(model(**batch()), before)


@pytest.mark.parametrize("side", ["right", "left"])
def test_patched_forward_without_reduction_equals_transformers(side):
    backbone = tiny_bert()
    inputs = batch(side)
    with torch.no_grad():
        expected, _, _ = backbone_token_states(backbone, **inputs)
        reduce_tokens(backbone, "merge:r=1")
        backbone.token_reduction = ReductionSchedule("merge", r=0)  # the patched path, no merges
        got, mask, sizes = backbone_token_states(backbone, **inputs)
    real = inputs["attention_mask"].bool()
    compact = torch.stack([torch.cat([expected[b][real[b]], expected[b][~real[b]] * 0])
                           for b in range(len(ROWS))])
    torch.testing.assert_close(got, compact, atol=1e-6, rtol=1e-5)
    assert sizes.sum(1).tolist() == real.sum(1).double().tolist()


# ---------------------------------------------------------------------------------------------
# The reduced forward against a hand-run one, one example at a time


def _hand_layer(layer, x, sizes, schedule: ReductionSchedule, index: int):
    """One BERT layer written out with explicit matrices, for one unpadded example (T, H)."""
    attention = layer.attention.self
    heads, dim = attention.num_attention_heads, attention.attention_head_size
    split = lambda t: t.view(len(x), heads, dim).transpose(0, 1)  # noqa: E731
    q, k, v = split(attention.query(x)), split(attention.key(x)), split(attention.value(x))
    scores = q @ k.transpose(1, 2) / math.sqrt(dim)  # (heads, T, T)
    if schedule.prop:
        scores = scores + sizes.log()  # proportional attention
    weights = scores.softmax(-1)
    context = (weights @ v).transpose(0, 1).reshape(len(x), heads * dim)
    attended = layer.attention.output.LayerNorm(layer.attention.output.dense(context) + x)
    mask = torch.ones(1, len(x))
    if schedule.kind == "merge" and index >= schedule.start:
        amount = {"rate": schedule.rate} if schedule.rate else {"r": schedule.r}
        reduced = merge_tokens(attended[None], mask, k.mean(0)[None], sizes=sizes[None], **amount)
        attended, sizes, mask = reduced.states[0], reduced.sizes[0], reduced.attention_mask
    hidden = torch.nn.functional.gelu(layer.intermediate.dense(attended))
    out = layer.output.LayerNorm(layer.output.dense(hidden) + attended)
    if schedule.kind == "strided" and index + 1 == schedule.after:
        reduced = strided_reduce(out[None], mask, sizes[None], ratio=schedule.ratio,
                                 mode=schedule.mode)
        return reduced.states[0], reduced.sizes[0]
    if schedule.kind == "prune" and index + 1 == schedule.after:
        importance = weights[:, 0].mean(0)  # the attention of CLS (token 0), mean over heads
        reduced = prune_tokens(out[None], mask, importance[None], schedule.keep, sizes[None])
        return reduced.states[0], reduced.sizes[0]
    return out, sizes


def _hand_forward(backbone, row, schedule):
    ids = torch.tensor([row])
    x = backbone.embeddings(input_ids=ids, position_ids=torch.arange(len(row))[None])[0]
    sizes = torch.ones(len(row))
    for index, layer in enumerate(backbone.encoder.layer):
        x, sizes = _hand_layer(layer, x, sizes, schedule, index)
    return x, sizes


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_reduced_model_equals_a_hand_run_forward(schedule, side):
    backbone = reduce_tokens(tiny_bert(), schedule)
    parsed = parse_schedule(schedule)
    with torch.no_grad():
        states, mask, sizes = backbone_token_states(backbone, **batch(side))
        for b, row in enumerate(ROWS):
            expected, expected_sizes = _hand_forward(backbone, row, parsed)
            count = len(expected)
            assert mask[b].tolist() == [True] * count + [False] * (mask.shape[1] - count)
            torch.testing.assert_close(states[b, :count], expected, atol=1e-5, rtol=1e-4)
            assert sizes[b, :count].tolist() == expected_sizes.tolist()
            assert float(sizes[b].sum()) == len(row)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_classifier_same_logits_for_left_and_right_padding(schedule):
    model = classifier(tiny_bert(), schedule)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch("left")), model(**batch("right")))


def test_mean_pooling_weighs_tokens_by_size():
    """After a mean-strided reduction on the last layer, size-weighted mean pooling equals the
    mean over the unreduced tokens of that layer."""
    backbone = tiny_bert(layers=2)
    plain = classifier(copy.deepcopy(backbone))
    reduced = classifier(backbone, "strided:after=1,ratio=2,prop=0")
    reduced.backbone.token_reduction = ReductionSchedule("strided", after=2, prop=False)
    with torch.no_grad():
        torch.testing.assert_close(reduced(**batch()), plain(**batch()), atol=1e-5, rtol=1e-5)


def test_exclude_mask_is_refused_under_reduction():
    model = classifier(tiny_bert(), "merge:r=1")
    inputs = batch()
    with pytest.raises(ValueError, match="exclude_mask cannot be used with token reduction"):
        model(**inputs, exclude_mask=torch.zeros_like(inputs["attention_mask"]))


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_gradients_flow_through_a_reduced_classifier(finetune):
    model = classifier(tiny_bert(), "merge:r=2", finetune=finetune, lora_r=2).train()
    loss = model(**batch()).logsumexp(1).sum()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


def test_checkpoint_round_trip_keeps_the_schedule(tmp_path):
    from poolkit.train.checkpoint import load_checkpoint, save_checkpoint

    base = tmp_path / "tiny-bert"
    tiny_bert().save_pretrained(base)
    config = TransformerConfig(base_model=str(base), pool="mean+max", num_classes=3,
                               max_length=16, reduce="merge:r=2,start=1")
    torch.manual_seed(3)
    model = TransformerClassifier(config).eval()
    folder = save_checkpoint(tmp_path / "run", model)
    loaded = load_checkpoint(folder)
    assert loaded.config["model_config"]["reduce"] == "merge:r=2,start=1"
    assert type(loaded.model.backbone).__name__ == "TokenReducedBertModel"
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(**batch("left")), model(**batch("left")))
    rebuilt = build_model("transformer", {**config_to_dict(config), "reduce": "none"})
    assert type(rebuilt.backbone) is BertModel
