"""``poolkit train segnet`` / ``poolkit train roidet``: one dense model on its canvas task.

:func:`train_dense` loads the ``mnist-seg`` or ``mnist-det`` task (canvases of real MNIST digits),
builds the model with the context module or RoI layer ``pool``, trains it with
:func:`poolkit.train.dense.fit_dense` (best dev epoch kept; ``model.safetensors`` +
``poolkit_config.json`` + ``result.json`` in ``out_dir``) and scores the test canvases (mIoU or
mAP@0.5).
"""

from __future__ import annotations

from typing import Any

from poolkit.experiments.builtin_tasks import score_dense
from poolkit.experiments.tasks import get_task

DENSE_MODELS = {"segnet": "mnist-seg", "roidet": "mnist-det"}


def train_dense(
    model_type: str,
    pool: str | None,
    config,
    *,
    model_options: dict[str, Any] | None = None,
    data_options: dict[str, Any] | None = None,
    log=None,
) -> dict[str, Any]:
    """Train ``model_type`` (``segnet`` or ``roidet``) with ``pool`` (default: the task's first
    pooling type) under ``config`` (a :class:`poolkit.train.TrainConfig`); returns a summary
    with the dev history, the ``metric`` key (``miou``, ``map50``) and the ``test`` scores (the
    task's ``evaluate``: that key, ``n_test``, ``inference_time_s``…)."""
    from poolkit.train.checkpoint import atomic_write_json
    from poolkit.train.dense import fit_dense
    from poolkit.train.distributed import set_seed

    if model_type not in DENSE_MODELS:
        raise ValueError(f"model_type ({model_type!r}) must be one of {list(DENSE_MODELS)}")
    task = get_task(DENSE_MODELS[model_type]).with_options(**(data_options or {}))
    pool = pool or task.default_pools[0]
    data = task.load(**task.options)
    set_seed(config.seed)
    model = task.build_model(pool, data, **{**task.model, **(model_options or {})})

    def evaluate(model, dataset, batch_size):
        return score_dense(model, data, dataset, batch_size=batch_size)

    result = fit_dense(model, data.train, data.dev, data.collate_fn, config, evaluate, log)
    test = task.evaluate(model, data, 64)  # the task's metric, as compare records it
    summary = {
        "model": model_type, "task": task.name, "pool": pool, "metric": task.metric,
        "metric_label": task.metric_label,
        "num_train": len(data.train), "num_dev": len(data.dev) if data.dev else 0,
        "num_test": len(data.test), "digits": data.info["digits"], **result,
        "test": test, "out_dir": config.out_dir,
    }
    if config.out_dir is not None:
        atomic_write_json(f"{config.out_dir}/result.json", summary)
    return summary
