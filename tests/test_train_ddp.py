"""Data-parallel training under torchrun on the CPU (gloo), with no code change: 2 processes
with batch b give the weights of 1 process with batch 2b (same data order, averaged gradients;
TextCNN's max-over-time features do not depend on how far each process pads its batch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    from poolkit.data import TextEncoder, load_dataset, stratified_subset
    from poolkit.data.dataset import TextCollator, TextDataset
    from poolkit.models import TextCNN, TextCNNConfig
    from poolkit.train import TrainConfig, Trainer, set_seed

    def build(shared, per_process_batch, out_dir):
        data = load_dataset("mr", os.path.join(shared, "mr")).train
        data = data.subset(stratified_subset(data.labels, 64, seed=0))
        encoder = TextEncoder.fit(data.texts)
        train = TextDataset.from_texts(data.texts, data.labels, encoder)
        set_seed(0)
        # no dropout: the two runs must see the same randomness-free computation
        model = TextCNN(TextCNNConfig(vocab_size=len(encoder.vocab), embed_dim=16,
                                      num_filters=4, dropout=0.0))
        config = TrainConfig(epochs=2, batch_size=per_process_batch, lr=3e-3, seed=1,
                             out_dir=out_dir, progress=False)
        return Trainer(model, config, train, None, TextCollator(min_length=5),
                       metadata={"label_names": data.label_names})

    if __name__ == "__main__":
        shared, out_dir = sys.argv[1], sys.argv[2]
        trainer = build(shared, 8, out_dir)
        result = trainer.fit()
        rank = int(os.environ.get("RANK", "0"))
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as handle:
            json.dump({"world_size": result.world_size, "steps": result.history[-1]["steps"],
                       "train_loss": result.history[-1]["train_loss"]}, handle)
""")


def test_two_process_torchrun_matches_one_process(shared_data, tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(SCRIPT)
    out_dir = tmp_path / "ddp"
    out_dir.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", str(script), str(shared_data), str(out_dir)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((out_dir / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["steps"] == 2 * 64 // 16  # 64 examples, global batch 16, 2 epochs
    assert ranks[0]["train_loss"] == pytest.approx(ranks[1]["train_loss"])  # all-reduced
    # only rank 0 wrote the model and the log
    assert (out_dir / "model.safetensors").is_file() and (out_dir / "log.jsonl").is_file()

    sys.path.insert(0, str(tmp_path))
    try:
        from ddp_run import build
    finally:
        sys.path.remove(str(tmp_path))
    single_dir = tmp_path / "single"
    trainer = build(str(shared_data), 16, str(single_dir))
    result = trainer.fit()
    assert result.world_size == 1 and result.history[-1]["steps"] == ranks[0]["steps"]
    from safetensors.torch import load_file

    ddp_weights = load_file(out_dir / "model.safetensors")
    single_weights = load_file(single_dir / "model.safetensors")
    assert ddp_weights.keys() == single_weights.keys()
    for name in ddp_weights:
        torch.testing.assert_close(ddp_weights[name], single_weights[name], rtol=1e-4,
                                   atol=1e-5, msg=name)
    assert result.history[-1]["train_loss"] == pytest.approx(ranks[0]["train_loss"], rel=1e-4)
