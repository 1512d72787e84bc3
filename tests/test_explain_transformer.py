"""explain --model for transformer checkpoints: the tokens each pooling mode of the head used,
read from the states the head received and checked against the pooled vector."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from poolkit.cli import run  # noqa: E402

WORDS = ["great", "film", "boring", "plot", "a", "the", "was"]


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    """A tiny random BERT and a word-piece tokenizer saved together, loadable offline."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                        num_attention_heads=2, max_position_embeddings=32, pad_token_id=0)
    BertModel(config).eval().save_pretrained(folder)
    return folder


def _checkpoint(base_model, tmp_path, pool: str):
    from poolkit.models.transformer import TransformerClassifier, TransformerConfig
    from poolkit.train.checkpoint import save_checkpoint

    kwargs = {"k": 2} if pool == "kmax" else {"num_heads": 2} if pool == "attention" else {}
    config = TransformerConfig(base_model=str(base_model), pool=pool, pool_kwargs=kwargs,
                               num_classes=2, dropout=0.0, max_length=16)
    torch.manual_seed(1)
    model = TransformerClassifier(config).eval()
    return save_checkpoint(tmp_path / pool.replace("+", "-"), model,
                           metadata={"label_names": ["negative", "positive"]}), model


@pytest.mark.parametrize("pool", ["mean", "max", "cls", "last", "attention", "kmax",
                                  "mean+max"])
def test_each_mode_names_the_tokens_it_used(pool, base_model, tmp_path, capsys):
    from poolkit.models.transformer import transformer_text_encoder

    folder, model = _checkpoint(base_model, tmp_path, pool)
    text = "a great film"
    assert run(["explain", "--model", str(folder), "--text", text, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["tokens"] == ["[CLS]", "a", "great", "film", "[SEP]"]
    assert [part["mode"] for part in payload["parts"]] == pool.split("+")
    ids = transformer_text_encoder(model.config)(text)
    with torch.no_grad():
        hidden = model.backbone(input_ids=torch.tensor([ids])).last_hidden_state[0].double()
    offset = 0
    with torch.no_grad():
        pooled = model.pool(hidden[None].float(), torch.ones(1, len(ids)))[0].double()
    for part in payload["parts"]:
        width = hidden.shape[1] * (2 if part["mode"] == "kmax" else 1)
        block = pooled[offset : offset + width].numpy()
        if part["mode"] in ("mean", "cls", "last"):  # weights recompute the pooled vector
            np.testing.assert_allclose(np.array(part["weights"]) @ hidden.numpy(), block,
                                       rtol=1e-5, atol=1e-6)
        elif part["mode"] == "attention":
            assert sum(part["weights"]) == pytest.approx(1.0)
        else:  # every feature is won by one token (k tokens for kmax)
            assert sum(part["wins"]) == width
        offset += width
    if pool in ("cls", "last"):
        weights = payload["parts"][0]["weights"]
        assert weights[0 if pool == "cls" else -1] == 1.0 and sum(weights) == 1.0
    assert run(["explain", "--model", str(folder), "--text", text]) == 0
    out = capsys.readouterr().out
    assert "prediction:" in out and "great" in out


def test_transformer_needs_text(base_model, tmp_path, capsys):
    folder, _ = _checkpoint(base_model, tmp_path, "mean")
    assert run(["explain", "--model", str(folder)]) == 2
    assert "--text" in capsys.readouterr().err
