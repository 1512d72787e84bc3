"""explain: the worked example window by window, and model explanations by pooling winners."""

from __future__ import annotations

import json

import numpy as np
import pytest

from poolkit.cli import run
from poolkit.experiments.explain_op import (
    OPS,
    TUTORIAL_NOTE,
    WORKED_EXAMPLE,
    explain_op,
    parse_grid,
)

# ---------------------------------------------------------------------------------------------
# Ops


def test_worked_example_max_windows_values_and_winners():
    e = explain_op("max")
    assert e.output.tolist() == [[6, 8], [14, 16]]
    got = [(w["output"], w["values"], w["winner"], w["result"]) for w in e.windows]
    assert got == [
        ([0, 0], [1, 2, 5, 6], [1, 1], 6),
        ([0, 1], [3, 4, 7, 8], [1, 3], 8),
        ([1, 0], [9, 10, 13, 14], [3, 1], 14),
        ([1, 1], [11, 12, 15, 16], [3, 3], 16),
    ]
    assert e.windows[1]["positions"] == [[0, 2], [0, 3], [1, 2], [1, 3]]
    assert "= 1 + 1 = 2" in e.output_size[0]


def test_worked_example_avg_is_3_5_not_3_and_says_the_tutorial_is_wrong():
    e = explain_op("avg")
    assert e.output.tolist() == [[3.5, 5.5], [11.5, 13.5]]
    assert [w["result"] for w in e.windows] == [3.5, 5.5, 11.5, 13.5]
    assert TUTORIAL_NOTE in e.notes and "3 5 / 11 13" in TUTORIAL_NOTE


def test_padding_positions_are_marked_and_never_win():
    e = explain_op("max", "-1 -2 -3; -4 -5 -6; -7 -8 -9", kernel_size=3, stride=2, padding=1)
    first = e.windows[0]
    assert first["padding"] == [True, True, True, True, False, False, True, False, False]
    assert first["values"][:4] == [None] * 4
    assert first["winner"] == [0, 0] and first["result"] == -1  # padding is -inf for max


@pytest.mark.parametrize(("name", "op", "grid"), [("max_pool2d", "max", None),
                                                  ("avg_pool1d", "avg", "1 2 3 4"),
                                                  ("adaptive_max_pool2d", "adaptive_max", None),
                                                  ("lp_pool1d", "lp", "1 -2 3 4")])
def test_torch_function_names_are_accepted(name, op, grid):
    got, want = explain_op(name, grid), explain_op(op, grid)
    assert got.op == op and got.output.tolist() == want.output.tolist()
    assert got.windows == want.windows


def test_one_row_is_1d_pooling():
    e = explain_op("max", "1 3 2 5 4", kernel_size=2, stride=1)
    assert e.output.tolist() == [3, 3, 5, 5]
    assert [w["winner"] for w in e.windows] == [[1], [1], [3], [3]]


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_explains_the_worked_example_consistently(op):
    e = explain_op(op)
    # maxblur explains its blur stage on M = max_pool(x, 2, stride 1); dynamic k-max is 1-D only
    assert e.input.shape == {"maxblur": (3, 3), "dynamic_kmax": (8,)}.get(op, (4, 4))
    assert len(e.windows) == e.output.size
    for window in e.windows:
        assert window["result"] == pytest.approx(e.output[tuple(window["output"])])
        if "winner" in window:  # the winner is in its window and holds the result
            assert window["winner"] in window["positions"]
            assert e.input[tuple(window["winner"])] == window["result"]
    json.dumps(e.to_json())


def test_stochastic_shows_probabilities_the_seeded_sample_and_the_eval_mean():
    e = explain_op("stochastic", seed=3)
    first = e.windows[0]  # window {1, 2, 5, 6}: p = a / 14
    assert first["probabilities"] == pytest.approx([1 / 14, 2 / 14, 5 / 14, 6 / 14])
    assert first["eval_result"] == pytest.approx((1 + 4 + 25 + 36) / 14)  # sum a^2 / sum a
    for window in e.windows:
        assert window["result"] == e.input[tuple(window["winner"])]
    again = explain_op("stochastic", seed=3)
    assert [w["winner"] for w in again.windows] == [w["winner"] for w in e.windows]


def test_softpool_weights_are_a_softmax():
    first = explain_op("softpool").windows[0]
    weights = np.exp(np.array([1.0, 2.0, 5.0, 6.0]))
    assert first["weights"] == pytest.approx((weights / weights.sum()).tolist())
    assert first["result"] == pytest.approx(float((weights / weights.sum()) @ [1, 2, 5, 6]))


def test_mixed_is_half_max_half_mean():
    assert explain_op("mixed").output.tolist() == [[4.75, 6.75], [12.75, 14.75]]
    assert explain_op("mixed", alpha=1.0).output.tolist() == [[6, 8], [14, 16]]


def test_explain_json_gives_windows_as_data(capsys):
    assert run(["explain", "max", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["output"] == [[6, 8], [14, 16]]
    assert payload["windows"][3]["values"] == [11, 12, 15, 16]
    assert payload["windows"][3]["winner"] == [3, 3]
    assert payload["formula"] and payload["output_size"]


def test_explain_prints_formula_windows_and_output(capsys):
    assert run(["explain", "avg", "--input", WORKED_EXAMPLE]) == 0
    out = capsys.readouterr().out
    for text in ("Average pooling", "floor((4 + 2*0", "9 10 | 13 14", "11.5", "13.5", "wrong"):
        assert text in out, text


def test_explain_png(tmp_path, capsys):
    path = tmp_path / "max.png"
    assert run(["explain", "max", "--kernel", "3", "--stride", "1", "--png", str(path)]) == 0
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "nope"],
        ["explain", "max", "--input", "1 2; 3"],
        ["explain", "max", "--input", "1 x; 3 4"],
        ["explain", "avg", "--dilation", "2"],
        ["explain", "max", "--kernel", "3", "--padding", "2"],
        ["explain"],
        ["explain", "max", "--text", "hello"],
        ["explain", "max_pool1d"],  # the 4x4 default grid is 2-D
        ["explain", "max_pool3d", "--input", "1 2; 3 4"],
        ["explain", "softmax_pool2d"],
    ],
)
def test_bad_usage_exits_2(argv, capsys):
    assert run(argv) == 2
    assert "poolkit: error:" in capsys.readouterr().err


def test_parse_grid():
    assert parse_grid("1 2\n3 4").tolist() == [[1, 2], [3, 4]]
    assert parse_grid("1,2,3").tolist() == [1, 2, 3]


# ---------------------------------------------------------------------------------------------
# Models

torch = pytest.importorskip("torch")


POSITIVE = ["great", "wonderful", "superb"]
NEGATIVE = ["awful", "boring", "dreadful"]
FILLER = ["the", "movie", "film", "was", "plot", "actors", "quite", "and", "a", "story", "it"]


def _synthetic_reviews(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(FILLER, size=int(rng.integers(5, 12))))
        cue = rng.choice(POSITIVE if label else NEGATIVE)
        words.insert(int(rng.integers(0, len(words))), cue)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="module")
def textcnn_checkpoints(tmp_path_factory):
    """A tiny TextCNN trained (about a second) with max pooling, and an untrained avg one."""
    from poolkit.data import TextEncoder
    from poolkit.data.dataset import TextCollator, TextDataset
    from poolkit.models import TextCNN, TextCNNConfig
    from poolkit.train import TrainConfig, Trainer, save_checkpoint

    texts, labels = _synthetic_reviews(300)
    encoder = TextEncoder.fit(texts)
    data = TextDataset(encoder.encode_all(texts), labels)
    folders = {}
    torch.manual_seed(0)
    for pool in ("max", "avg"):
        model = TextCNN(TextCNNConfig(vocab_size=len(encoder.vocab), embed_dim=16, num_filters=8,
                                      pool=pool, dropout=0.0))
        if pool == "max":
            config = TrainConfig(epochs=4, batch_size=20, lr=0.01, progress=False, device="cpu")
            Trainer(model, config, data, None, TextCollator(min_length=5)).fit()
        folder = tmp_path_factory.mktemp(f"textcnn-{pool}")
        save_checkpoint(folder, model, metadata={"label_names": ["negative", "positive"],
                                                 "text_encoder": encoder.to_dict()})
        folders[pool] = folder
    return folders


def _contiguous_in(gram, tokens) -> bool:
    return any(tokens[i : i + len(gram)] == gram for i in range(len(tokens) - len(gram) + 1))


def test_textcnn_explanation_names_ngrams_of_the_input(textcnn_checkpoints, capsys):
    text = "the plot was wonderful and the actors quite good"
    assert run(["explain", "--model", str(textcnn_checkpoints["max"]), "--text", text,
                "--top", "4", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    tokens = payload["tokens"]
    assert payload["predicted"] == "positive"
    assert len(payload["features"]) == 4
    for feature in payload["features"]:
        gram = [t for t in feature["ngram"] if t != "<pad>"]
        assert gram and _contiguous_in(gram, tokens), (gram, tokens)
        assert feature["ngram_text"] == " ".join(gram)
        assert len(feature["ngram"]) == feature["width"]
        assert set(feature["push"]) == {"negative", "positive"}
    # The strongest evidence for "positive" is an n-gram holding the positive cue word.
    assert "wonderful" in payload["features"][0]["ngram"]
    assert payload["features"][0]["push"]["positive"] > 0
    assert sum(payload["probabilities"].values()) == pytest.approx(1.0)


def test_textcnn_pushes_add_up_to_the_logits(textcnn_checkpoints):
    from poolkit.data import TextEncoder
    from poolkit.experiments.explain_model import explain_text
    from poolkit.train import load_checkpoint

    checkpoint = load_checkpoint(textcnn_checkpoints["max"])
    encoder = TextEncoder.from_dict(checkpoint.config["text_encoder"])
    e = explain_text(checkpoint.model, encoder, "a boring film", top=10_000)
    for c, name in enumerate(["0", "1"]):
        total = e.bias[c] + sum(f["push"][name] for f in e.features)
        assert total == pytest.approx(e.logits[c], abs=1e-4)


def test_textcnn_rendered_table(textcnn_checkpoints, capsys):
    assert run(["explain", "--model", str(textcnn_checkpoints["max"]), "--text",
                "it was dreadful"]) == 0
    out = capsys.readouterr().out
    assert "prediction:" in out and "dreadful" in out and "push" in out


def test_average_pooling_is_explained_by_each_ngrams_share(textcnn_checkpoints, capsys):
    """No winners, but a linear split: every n-gram's push, and they add up to the logits."""
    from poolkit.data import TextEncoder
    from poolkit.experiments.explain_model import explain_text
    from poolkit.train import load_checkpoint

    assert run(["explain", "--model", str(textcnn_checkpoints["avg"]), "--text",
                "a great film", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["has_winners"] is False and payload["explained_by"] == "shares"
    checkpoint = load_checkpoint(textcnn_checkpoints["avg"])
    encoder = TextEncoder.from_dict(checkpoint.config["text_encoder"])
    for text in ("a great film", "great", "the plot was boring and the actors quite awful"):
        # "great" is shorter than the widest filter: padded, and fewer windows hold a token
        e = explain_text(checkpoint.model, encoder, text, top=10_000)
        for c, name in enumerate(["0", "1"]):
            total = e.bias[c] + sum(f["push"][name] for f in e.features)
            assert total == pytest.approx(e.logits[c], abs=1e-4)
    assert run(["explain", "--model", str(textcnn_checkpoints["avg"]), "--text", "great"]) == 0
    assert "share 1/L" in capsys.readouterr().out


def test_pooling_without_winners_or_shares_says_so_plainly(textcnn_checkpoints, tmp_path,
                                                           capsys):
    from poolkit.models import TextCNN, TextCNNConfig
    from poolkit.train import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(textcnn_checkpoints["avg"])
    config = checkpoint.model.config
    model = TextCNN(TextCNNConfig(vocab_size=config.vocab_size, embed_dim=16, num_filters=8,
                                  pool="softpool", dropout=0.0))
    folder = save_checkpoint(tmp_path / "soft", model, metadata={
        "label_names": ["negative", "positive"],
        "text_encoder": checkpoint.config["text_encoder"]})
    assert run(["explain", "--model", str(folder), "--text", "great"]) == 0
    out = capsys.readouterr().out
    assert "no winners" in out and "'softpool'" in out


def test_missing_checkpoint_exits_1(tmp_path, capsys):
    assert run(["explain", "--model", str(tmp_path / "none"), "--text", "hi"]) == 1
    assert "no checkpoint" in capsys.readouterr().err


def test_textcnn_needs_text(textcnn_checkpoints, capsys):
    assert run(["explain", "--model", str(textcnn_checkpoints["max"])]) == 2


@pytest.fixture(scope="module")
def convnet_checkpoint(tmp_path_factory):
    from poolkit.models import ConvNet, ConvNetConfig
    from poolkit.train import save_checkpoint

    torch.manual_seed(0)
    model = ConvNet(ConvNetConfig(image_size=(8, 12), channels=(4, 6), convs_per_stage=1,
                                  global_pool="max"))
    folder = tmp_path_factory.mktemp("convnet")
    save_checkpoint(folder, model, metadata={"label_names": [str(k) for k in range(10)]})
    return folder


def test_image_win_map_has_the_input_shape_and_counts_every_window(convnet_checkpoint, tmp_path,
                                                                   capsys):
    image = np.random.default_rng(0).random((8, 12)).astype(np.float32)
    np.save(tmp_path / "digit.npy", image)
    png = tmp_path / "map.png"
    assert run(["explain", "--model", str(convnet_checkpoint), "--image",
                str(tmp_path / "digit.npy"), "--png", str(png), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    layers = payload["layers"]
    assert [layer["layer"] for layer in layers] == ["pool 1", "pool 2", "global"]
    expected_windows = [4 * 4 * 6, 6 * 2 * 3, 6]  # channels x output height x output width
    for layer, windows in zip(layers, expected_windows, strict=True):
        counts = np.asarray(layer["counts"])
        assert counts.shape == (8, 12)
        assert layer["windows"] == windows and counts.sum() == windows
        assert (counts >= 0).all()
    assert np.asarray(payload["total"]).sum() == sum(expected_windows)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_first_layer_wins_are_the_max_pool_argmax(convnet_checkpoint):
    from poolkit.experiments.explain_model import explain_image
    from poolkit.train import load_checkpoint

    model = load_checkpoint(convnet_checkpoint).model
    image = np.random.default_rng(1).random((1, 8, 12)).astype(np.float32)
    e = explain_image(model, image)
    with torch.no_grad():
        before_pool = model.features[:3](torch.from_numpy(image)[None])  # conv, bn, relu
        _, index = torch.nn.functional.max_pool2d(before_pool, 2, 2, return_indices=True)
    expected = np.bincount(index.flatten().numpy(), minlength=8 * 12).reshape(8, 12)
    assert (e.layers[0]["counts"] == expected).all()
