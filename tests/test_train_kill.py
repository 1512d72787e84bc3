"""``poolkit train`` killed with SIGKILL at seeded random moments, resumed each time with
``--resume``: the final weights equal an uninterrupted run's, bit for bit, and every epoch is
logged once."""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import load_file  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from forker import Forker  # noqa: E402

EPOCHS = 6


@pytest.fixture
def forker(tmp_path):
    started = Forker(tmp_path)
    yield started
    started.close()


def _latest_checkpoint(out: Path) -> int:
    """The epoch of the newest checkpoint (only the last is kept), ``EPOCHS`` once finished."""
    if (out / "result.json").is_file():
        return EPOCHS
    found = [int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("epoch-[0-9]*")]
    return max(found, default=0)


def _argv(data, out):
    return ["train", "textcnn", "--data", str(data), "--epochs", str(EPOCHS), "--embed-dim", "16",
            "--num-filters", "8", "--batch-size", "4", "--threads", "1", "--out", str(out),
            "--quiet", "--json", "--resume"]


def test_train_killed_at_random_moments_resumes_to_the_same_weights(tmp_path, forker):
    data = tmp_path / "reviews.csv"
    rng = random.Random(0)
    words = ["film", "plot", "acting", "story", "scene", "cast"]
    rows = [f"{'great' if i % 2 else 'awful'} {rng.choice(words)} {rng.choice(words)} {i},"
            f"{'pos' if i % 2 else 'neg'}" for i in range(120)]
    data.write_text("text,label\n" + "\n".join(rows) + "\n")
    env = {"OMP_NUM_THREADS": "1"}

    pid, _, stderr = forker.start(_argv(data, tmp_path / "whole"), **env)
    assert forker.wait(pid) == 0, stderr.read_text()

    out = tmp_path / "killed"
    moments = random.Random(18)
    for _ in range(10):
        # a seeded moment: a little after the checkpoint of a random epoch (0: at the start)
        epoch, delay = moments.randint(0, EPOCHS - 1), moments.uniform(0.0, 0.3)
        pid, _, _ = forker.start(_argv(data, out), **env)
        deadline = time.monotonic() + 120
        while epoch > _latest_checkpoint(out) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)  # a no-op if it has just finished
        status = forker.wait(pid)
        assert status in (0, -signal.SIGKILL)
        print(f"epoch {epoch} + {delay:.2f} s: {'killed' if status else 'finished'}")
    pid, stdout, stderr = forker.start(_argv(data, out), **env)
    assert forker.wait(pid) == 0, stderr.read_text()

    whole = load_file(tmp_path / "whole" / "model.safetensors")
    resumed = load_file(out / "model.safetensors")
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[key], resumed[key]) for key in whole)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log if r["event"] == "epoch"] == list(range(1, EPOCHS + 1))
    assert json.loads(stdout.read_text())["dev"] == json.loads(
        (tmp_path / "out-1.txt").read_text())["dev"]
