"""``save_pretrained`` / ``from_pretrained`` (Hugging Face's folder layout) for every registered
model, round trips to 1e-5, no clash with transformers' ``config.json``; run folders written
before ``poolkit_config.json`` (their config in ``config.json``) still evaluate, predict and
resume."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from poolkit.cli import run
from poolkit.models import build_model, from_pretrained, list_models, save_pretrained
from poolkit.models.pretrained import CONFIG_FILE, LEGACY_CONFIG_FILE, is_model_folder


def _tiny_bert_folder(folder) -> str:
    """A random 2-layer BERT with a 9-word tokenizer, saved as a Hugging Face model folder."""
    transformers = pytest.importorskip("transformers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "fine", "film", "dull"]
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    transformers.BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32)
    transformers.BertModel(config).save_pretrained(folder)
    return str(folder)


def _images(channels=1, size=16):
    generator = torch.Generator().manual_seed(1)
    return {"images": torch.rand(2, channels, size, size, generator=generator)}


def _proposals():
    boxes = torch.tensor([[0.0, 0, 12, 12], [4, 4, 28, 20]])
    return {"images": torch.rand(2, 1, 32, 32), "proposals": [boxes, boxes[:1]]}


#: type -> (config fields, inputs); a registered type missing here fails test_every_type_is_here
CASES = {
    "textcnn": ({"vocab_size": 30, "embed_dim": 8, "num_filters": 3, "pool": "kmax",
                 "pool_kwargs": {"k": 2}}, lambda: {"input_ids": torch.randint(1, 30, (3, 9))}),
    "convnet": ({"image_size": 16, "channels": (4, 8), "global_pool": "gem"}, _images),
    "metaformer": ({"image_size": 8, "dims": (8, 16), "depths": (1, 1)},
                   lambda: _images(1, 8)),
    "segnet": ({"channels": (4, 8, 8)}, lambda: _images(1, 32)),
    "roidet": ({"channels": (4, 8, 8), "hidden": 16, "roi_pool": "roi_align"}, _proposals),
    "transformer": ({"pool": "attention", "finetune": "lora", "lora_r": 2}, lambda: {
        "input_ids": torch.tensor([[2, 5, 6, 7, 3], [2, 8, 3, 0, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])}),
}


def test_every_type_is_here():
    assert sorted(CASES) == list_models()


@pytest.mark.parametrize("model_type", sorted(CASES))
def test_round_trip(model_type, tmp_path):
    fields, make_inputs = CASES[model_type]
    if model_type == "transformer":
        fields = {**fields, "base_model": _tiny_bert_folder(tmp_path / "bert")}
    torch.manual_seed(0)
    model = build_model(model_type, fields)
    with torch.no_grad():  # non-trivial weights everywhere (LoRA's B starts at zero)
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn_like(parameter))
    inputs = make_inputs()
    if any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()):
        model.train()(**inputs)  # running statistics that differ from the initial ones
    model.eval()
    folder = model.save_pretrained(tmp_path / "saved", metadata={"label_names": ["a", "b"]})
    assert (folder / "model.safetensors").is_file() and (folder / CONFIG_FILE).is_file()
    assert not (folder / LEGACY_CONFIG_FILE).exists() and is_model_folder(folder)
    loaded = type(model).from_pretrained(folder)
    assert not loaded.training
    with torch.no_grad():
        expected, got = model(**inputs), loaded(**inputs)
    for want, have in zip(*(o if isinstance(o, tuple) else (o,) for o in (expected, got)),
                          strict=True):
        torch.testing.assert_close(have, want, rtol=0, atol=1e-5)
    again, config = from_pretrained(folder)
    assert type(again) is type(model) and config["label_names"] == ["a", "b"]
    assert config["format"] == "poolkit-checkpoint" and config["version"] == 2


def test_folder_does_not_clash_with_transformers(tmp_path):
    """transformers' AutoConfig refused the old config.json ("model type textcnn ... does not
    recognize"); the folder now has none, and a transformers model saved into the same folder
    keeps both configs readable."""
    transformers = pytest.importorskip("transformers")
    fields, make_inputs = CASES["textcnn"]
    model = build_model("textcnn", fields).eval()
    save_pretrained(tmp_path, model)
    bert = transformers.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32)
    bert.save_pretrained(tmp_path)
    assert transformers.AutoConfig.from_pretrained(tmp_path).model_type == "bert"
    inputs = make_inputs()
    with torch.no_grad():
        torch.testing.assert_close(from_pretrained(tmp_path)[0](**inputs), model(**inputs))


def test_from_pretrained_of_the_wrong_class(tmp_path):
    from poolkit.models import ConvNet

    build_model("textcnn", CASES["textcnn"][0]).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="holds a 'textcnn' model, not a ConvNet"):
        ConvNet.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        from_pretrained(tmp_path / "missing")


def _legacy(folder) -> None:
    """Turn a folder into the layout poolkit wrote before version 2: config.json."""
    for config in [folder / CONFIG_FILE, *folder.glob(f"checkpoints/*/{CONFIG_FILE}")]:
        payload = json.loads(config.read_text())
        payload.pop("version", None)
        (config.parent / LEGACY_CONFIG_FILE).write_text(json.dumps(payload))
        config.unlink()


def test_an_old_run_folder_still_evaluates_predicts_and_resumes(tmp_path, capsys):
    data = tmp_path / "reviews.csv"
    rows = [f'"a {"great" if i % 2 else "dull"} film {i}",{i % 2}' for i in range(30)]
    data.write_text("text,label\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    train = ["train", "textcnn", "--data", str(data), "--embed-dim", "8", "--num-filters", "2",
             "--lr", "0.01", "--out", str(out), "--quiet", "--json"]
    assert run([*train, "--epochs", "1"]) == 0
    capsys.readouterr()
    fresh = tmp_path / "fresh"
    shutil.copytree(out, fresh)
    _legacy(out)
    assert is_model_folder(out) and not (out / CONFIG_FILE).exists()
    for command in (["eval", "--json"], ["predict", "a great film", "--json"]):
        assert run([command[0], str(out), *command[1:]]) == 0
        old = json.loads(capsys.readouterr().out)
        assert run([command[0], str(fresh), *command[1:]]) == 0
        new = json.loads(capsys.readouterr().out)
        old.pop("checkpoint", None), new.pop("checkpoint", None)
        assert old == new
    assert run([*train, "--epochs", "2", "--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs_run"] == 2
    # the resumed run's config is poolkit_config.json, which readers take over config.json
    assert json.loads((out / CONFIG_FILE).read_text())["train"]["config"]["epochs"] == 2
    assert from_pretrained(out)[1]["train"]["config"]["epochs"] == 2


def test_writing_the_config_removes_the_old_one_only(tmp_path):
    from poolkit.train.checkpoint import write_checkpoint_config

    model = build_model("textcnn", CASES["textcnn"][0])
    save_pretrained(tmp_path, model)
    _legacy(tmp_path)
    config = from_pretrained(tmp_path)[1]
    write_checkpoint_config(tmp_path, {**config, "note": "resumed"})
    assert not (tmp_path / LEGACY_CONFIG_FILE).exists()
    assert from_pretrained(tmp_path)[1]["note"] == "resumed"
    (tmp_path / LEGACY_CONFIG_FILE).write_text('{"model_type": "bert"}')  # transformers' own
    save_pretrained(tmp_path, model)
    assert json.loads((tmp_path / LEGACY_CONFIG_FILE).read_text()) == {"model_type": "bert"}
