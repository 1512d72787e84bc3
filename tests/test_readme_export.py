"""The README's "Use with ..." snippets for image models and export, run as written (the test
fails when the README drifts), then checked against eager PyTorch."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def snippet(marker: str) -> str:
    """The python block that follows ``<!-- test: marker -->`` in README.md."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- test: {marker} -->\n```python\n(.*?)```", readme, re.S)
    assert found, f"README.md has no python block marked {marker!r}"
    return found.group(1)


def test_image_models_snippet():
    pytest.importorskip("transformers")
    scope: dict = {}
    exec(snippet("readme-image-models"), scope)
    assert scope["logits"].shape == (2, 10)
    assert scope["model"].classifier[-1].in_features == 64
    assert scope["features"].shape == (2, 32) and scope["pool"].feat_mult() == 1


def test_export_snippet():
    pytest.importorskip("onnxscript")
    scope: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(snippet("readme-export"), scope)
    pool, x = scope["pool"], scope["x"]
    torch.testing.assert_close(torch.from_numpy(scope["y"]), pool(x), rtol=1e-5, atol=1e-5)
    other = torch.randn(3, 8, 20, 20)  # another batch and size through the exported graph
    torch.testing.assert_close(scope["exported"].module()(other), pool(other))
