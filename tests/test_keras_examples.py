"""The Keras examples of docs/keras.md run (short settings), on poolkit.keras pooling."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import pytest  # noqa: E402

pytest.importorskip("keras")
pytest.importorskip("sklearn")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_gem_image_example_learns_the_digits():
    accuracy = _load("keras_gem_image").main(["--pool", "gem", "--epochs", "4"])
    assert accuracy > 0.6  # 10 classes: chance is 0.1


@pytest.mark.slow
def test_textcnn_example_runs_on_an_mr_folder(tmp_path):
    good = ["a moving , funny film", "great acting and a smart script", "a joy to watch"] * 20
    bad = ["dull and far too long", "a mess of a plot", "boring , lifeless scenes"] * 20
    (tmp_path / "rt-polarity.pos").write_text("\n".join(good) + "\n", encoding="utf-8")
    (tmp_path / "rt-polarity.neg").write_text("\n".join(bad) + "\n", encoding="utf-8")
    accuracy = _load("keras_textcnn").main(
        ["--data", str(tmp_path), "--pool", "kmax", "--k", "2", "--epochs", "3"])
    assert accuracy >= 0.9  # the two classes share no word
