"""explain seq:MODE: every SequencePool mode on a masked batch with left and right padding, each
pooled vector recomputed from the printed weights or winners."""

from __future__ import annotations

import json

import numpy as np
import pytest

from poolkit.cli import run
from poolkit.experiments.explain_sequence import PAD_STATE, explain_sequence
from poolkit.nn.sequence import POOLING_MODES

_RECOMPUTABLE = {"mean", "max", "min", "cls", "first", "last", "weighted_mean",
                 "mean_sqrt_len", "kmax"}  # the learned modes transform the tokens first


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_every_mode_is_explained_and_padding_side_does_not_matter(mode, capsys):
    assert run(["explain", f"seq:{mode}", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    right, left = payload["rows"]
    assert (right["padding"], left["padding"]) == ("right", "left")
    np.testing.assert_allclose(right["result"], left["result"], rtol=1e-12)
    for row in payload["rows"]:
        hidden, mask = np.array(row["hidden"]), np.array(row["mask"], dtype=bool)
        assert (hidden[~mask] == PAD_STATE).all()  # the pads hold garbage ...
        if "weights" in row:  # ... that takes no part
            weights = np.array(row["weights"])
            assert (weights[~mask] == 0).all()
            if mode in _RECOMPUTABLE:
                np.testing.assert_allclose(weights @ hidden, row["result"], rtol=1e-12)
            elif mode == "attention":
                assert weights.sum() == pytest.approx(1.0)
        else:
            for h, positions in enumerate(row["winners"]):
                assert all(mask[t] for t in positions)
                for j, t in enumerate(positions):  # kmax: k blocks of H, in token order
                    assert row["result"][j * hidden.shape[1] + h] == hidden[t, h]
    assert run(["explain", f"seq:{mode}"]) == 0
    assert "pooled:" in capsys.readouterr().out


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_the_empty_row_note_holds(mode):
    """The note every mode prints: an all-padding row pools to zeros."""
    import torch

    from poolkit.nn import SequencePool

    assert any("all zero" in note for note in explain_sequence(mode).notes)
    kwargs = {"num_latents": 4, "num_heads": 1, "mlp_dim": 4} if mode == "latent_attention" else {}
    pool = SequencePool(mode, hidden_size=2, **kwargs).double().eval()
    with torch.no_grad():
        out = pool(torch.full((1, 3, 2), 9.0, dtype=torch.float64), torch.zeros(1, 3))
    assert (out == 0).all()


def test_hand_worked_values():
    # real tokens [1 0] [4 -2] [2 3] [-1 5]: mean (6/4, 6/4); weighted (1*1+2*4+3*2-1*4)/10 ...
    assert explain_sequence("mean").rows[0]["result"] == [1.5, 1.5]
    assert explain_sequence("max").rows[1]["result"] == [4, 5]
    assert explain_sequence("weighted_mean").rows[0]["result"] == pytest.approx(
        [(1 * 1 + 2 * 4 + 3 * 2 + 4 * -1) / 10, (0 - 2 * 2 + 3 * 3 + 4 * 5) / 10])
    assert explain_sequence("kmax").rows[0]["result"] == [4, 3, 2, 5]  # k=2, in token order


@pytest.mark.parametrize(("mode", "row", "rule"), [
    ("cls", 1, "hidden[:, 0]"),             # left padding: position 0 is a pad
    ("last", 0, "hidden[:, -1]"),           # right padding: position -1 is a pad
    ("mean", 0, "mean over all 6 positions"),
])
def test_ignoring_the_mask_is_shown_to_be_wrong(mode, row, rule):
    e = explain_sequence(mode)
    naive = e.rows[row]["ignoring_the_mask"]
    assert naive["rule"] == rule and naive["result"] != e.rows[row]["result"]
    if mode == "last":  # and sum(mask) - 1 is the wrong token under left padding
        also = e.rows[1]["ignoring_the_mask"]["also"]
        assert also["result"] == [4, -2] != e.rows[1]["result"]
        assert any("sum(mask) - 1" in note for note in e.notes)


def test_sequence_png(tmp_path, capsys):
    path = tmp_path / "seq.png"
    assert run(["explain", "seq:last", "--png", str(path)]) == 0
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv", [["explain", "seq:nope"], ["explain", "seq:mean", "--k", "2"],
                                  ["explain", "seq:mean", "--kernel", "2"]])
def test_sequence_bad_usage_exits_2(argv, capsys):
    assert run(argv) == 2
    assert "poolkit: error:" in capsys.readouterr().err


def test_attention_weights_recompute_the_pma_output():
    """PMA with one head and one seed s: h = q + W_o (sum_i a_i v_i) + b_o, p = h + relu(W h + b),
    q = W_q s + b_q, v_i = W_v x_i + b_v; a from the printed weights."""
    import torch

    from poolkit.nn import SequencePool

    e = explain_sequence("attention", seed=0)
    torch.manual_seed(0)  # the same construction as explain_sequence's
    module = SequencePool("attention", hidden_size=2).double().learned["attention"]
    with torch.no_grad():
        attention = module.attention
        for row in e.rows:
            hidden = torch.tensor(row["hidden"], dtype=torch.float64)
            weights = torch.tensor(row["weights"], dtype=torch.float64)
            q = attention.query(module.seeds[0, 0])
            h = q + attention.out(weights @ attention.value(hidden))
            p = h + torch.relu(module.feed_forward(h))
            np.testing.assert_allclose(p.numpy(), row["result"], rtol=1e-10)
