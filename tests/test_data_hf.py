"""Hugging Face data sets with the real ``datasets`` library, on folders written by
``save_to_disk`` in tmp_path: train/validation/test -> train/dev/test, configurations,
ClassLabel names, string labels, unlabelled rows and splits, images, column errors, and the
hub path (the network call replaced, the rest real)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")

from poolkit.data import ImageData, TextData, load_dataset, read_hf  # noqa: E402
from poolkit.data.catalog import guess_format  # noqa: E402
from poolkit.data.hf import read_hf_splits, strip_prefix  # noqa: E402
from poolkit.errors import DataFormatError  # noqa: E402

SENTIMENT = datasets.ClassLabel(names=["negative", "positive"])


def _split(texts, labels, *, column="sentence", label_feature=SENTIMENT):
    features = datasets.Features({"idx": datasets.Value("int32"),
                                  column: datasets.Value("string"), "label": label_feature})
    return datasets.Dataset.from_dict(
        {"idx": list(range(len(texts))), column: texts, "label": labels}, features=features)


def _glue_like(folder, *, test_labels=None):
    """A GLUE-style SST-2 copy: labelled train and validation, a test split whose labels are
    all -1 unless ``test_labels`` are given."""
    test_texts = ["an unseen gem", "an unseen bore", "quietly moving"]
    splits = datasets.DatasetDict({
        "train": _split([f"good film {i}" if i % 2 else f"bad film {i}" for i in range(10)],
                        [i % 2 for i in range(10)]),
        "validation": _split(["a fine cast", "a dull plot", "a bright score"], [1, 0, 1]),
        "test": _split(test_texts, test_labels or [-1] * len(test_texts)),
    })
    splits.save_to_disk(str(folder))
    return splits


def test_splits_map_to_train_dev_test_with_classlabel_names(tmp_path):
    folder = tmp_path / "sst2"
    source = _glue_like(folder, test_labels=[1, 0, 1])
    bundle = load_dataset(path=f"hf:{folder}")
    assert bundle.name == "hf" and bundle.kind == "text"
    assert bundle.label_names == ["negative", "positive"]
    for part, hf_name in ((bundle.train, "train"), (bundle.dev, "validation"),
                          (bundle.test, "test")):
        assert part.texts == source[hf_name]["sentence"]  # GLUE's column: read by default
        assert part.labels == source[hf_name]["label"]
        assert part.source == f"{folder}[{hf_name}]"
    # the folder without the prefix is recognised, and gives the same data
    assert guess_format(folder) == "hf" and guess_format(f"hf:{folder}") == "hf"
    again = load_dataset(path=str(folder))
    assert again.test.texts == bundle.test.texts


def test_unlabelled_test_split_is_reported_and_left_out(tmp_path, caplog):
    folder = tmp_path / "glue"
    _glue_like(folder)
    with caplog.at_level(logging.INFO, logger="poolkit.data"):
        bundle = load_dataset("hf", str(folder))
    assert bundle.test is None and len(bundle.dev) == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{folder}[test]: none of its 3 rows has a label (-1: GLUE's hidden "
                        "test labels); split left out"]


def test_partly_unlabelled_rows_are_counted_and_left_out(tmp_path, caplog):
    folder = tmp_path / "partial"
    _glue_like(folder, test_labels=[1, -1, 0])
    with caplog.at_level(logging.WARNING, logger="poolkit.data"):
        bundle = load_dataset(path=f"hf:{folder}")
    assert bundle.test.texts == ["an unseen gem", "quietly moving"]
    assert bundle.test.labels == [1, 0]
    assert f"{folder}[test]: 1 of 3 rows have no label (-1 or empty); left out" in caplog.text


def test_string_labels_sorted_and_dev_aligned_to_train(tmp_path):
    folder = tmp_path / "topics"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["goal", "vote", "rain", "match"],
                                             "label": ["sport", "politics", "weather", "sport"]}),
        "validation": datasets.Dataset.from_dict({"text": ["storm", "race"],
                                                  "label": ["weather", "sport"]}),
    }).save_to_disk(str(folder))
    bundle = load_dataset(path=f"hf:{folder}")
    assert bundle.label_names == ["politics", "sport", "weather"]
    assert bundle.train.labels == [1, 0, 2, 1]
    # validation has only two of the classes: its ids follow train's names
    assert bundle.dev.label_names == bundle.label_names and bundle.dev.labels == [2, 1]


def test_a_single_saved_dataset_is_the_train_split(tmp_path):
    folder = tmp_path / "one"
    _split(["nice", "awful", "great"], [1, 0, 1], column="text").save_to_disk(str(folder))
    bundle = load_dataset(path=f"hf:{folder}")
    assert bundle.train.texts == ["nice", "awful", "great"]
    assert bundle.dev is None and bundle.test is None
    # read_hf (one split by the data set's own name) reads the same rows
    assert read_hf(str(folder)).labels == [1, 0, 1]


def test_the_split_argument_reads_one_split_as_the_data(tmp_path):
    folder = tmp_path / "sst2"
    _glue_like(folder, test_labels=[1, 0, 1])
    bundle = load_dataset("hf", str(folder), split="validation")
    assert bundle.train.texts == ["a fine cast", "a dull plot", "a bright score"]
    assert bundle.dev is None and bundle.test is None


@pytest.mark.parametrize(("option", "value", "message"), [
    ("text_column", "review", "no column 'review' (text_column, --text-column); the columns "
                              "are ['idx', 'sentence', 'label']"),
    ("label_column", "stars", "no column 'stars' (label_column, --label-column); the columns "
                              "are ['idx', 'sentence', 'label']"),
])
def test_a_missing_column_is_named_with_the_columns_there_are(tmp_path, option, value, message):
    folder = tmp_path / "sst2"
    _glue_like(folder)
    with pytest.raises(DataFormatError) as caught:
        load_dataset(path=f"hf:{folder}", **{option: value})
    assert str(caught.value) == f"{folder}[train]: {message}"


def test_other_columns_by_name(tmp_path):
    folder = tmp_path / "reviews"
    datasets.Dataset.from_dict({"review": ["loved it", "hated it"], "stars": [1, 0]}) \
        .save_to_disk(str(folder))
    bundle = load_dataset(path=f"hf:{folder}", text_column="review", label_column="stars")
    # integer labels without ClassLabel: read as class ids, as in a CSV file
    assert bundle.label_names == ["0", "1"] and bundle.train.labels == [1, 0]
    assert bundle.train.texts == ["loved it", "hated it"]


def test_folders_and_names_that_are_not_data_sets(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataFormatError, match="not a folder written by save_to_disk"):
        load_dataset(path=f"hf:{tmp_path / 'plain'}")
    with pytest.raises(FileNotFoundError, match="data folder ./no-such-folder does not exist"):
        load_dataset(path="hf:./no-such-folder")
    with pytest.raises(ValueError, match="must be a hub name NAME, OWNER/NAME"):
        load_dataset(path="hf:a/b/c/d")


def test_no_train_split(tmp_path):
    folder = tmp_path / "only-test"
    datasets.DatasetDict({"test": _split(["a", "b"], [0, 1])}).save_to_disk(str(folder))
    assert load_dataset(path=f"hf:{folder}").train.labels == [0, 1]  # one split: the data
    folder = tmp_path / "two"
    datasets.DatasetDict({"validation": _split(["a", "b"], [0, 1]),
                          "test": _split(["c", "d"], [0, 1])}).save_to_disk(str(folder))
    with pytest.raises(DataFormatError, match=r"no train split; the data set has "
                                              r"\['validation', 'test'\]"):
        load_dataset(path=f"hf:{folder}")


def test_images_become_image_data(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(6, 5, 4), dtype=np.uint8)
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=["zero", "one"])})
    from PIL import Image

    folder = tmp_path / "digits"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict(
            {"image": [Image.fromarray(p) for p in pixels[:4]], "label": [0, 1, 0, 1]},
            features=features),
        "test": datasets.Dataset.from_dict(
            {"image": [Image.fromarray(p) for p in pixels[4:]], "label": [1, 0]},
            features=features),
    }).save_to_disk(str(folder))
    bundle = load_dataset(path=f"hf:{folder}")
    assert bundle.kind == "image" and isinstance(bundle.train, ImageData)
    assert bundle.train.images.shape == (4, 1, 5, 4)
    np.testing.assert_allclose(bundle.test.images[:, 0], pixels[4:] / 255.0, rtol=1e-6)
    assert bundle.label_names == ["zero", "one"] and bundle.test.labels.tolist() == [1, 0]


# ---------------------------------------------------------------------------------------------
# Hub names: the parsing of NAME[/CONFIG] and the errors, with the download replaced


@pytest.fixture
def fake_hub(monkeypatch):
    """``datasets.load_dataset`` answering for ``nyu-mll/glue``/``sst2`` and ``glue``/``sst2``
    only (a real DatasetDict); every call recorded."""
    calls = []
    glue = datasets.DatasetDict({"train": _split(["fine", "poor"], [1, 0]),
                                 "validation": _split(["good", "bad"], [1, 0])})

    def load(path, name=None, **kwargs):
        calls.append((path, name))
        if (path, name) in (("nyu-mll/glue", "sst2"), ("glue", "sst2")):
            return glue
        raise datasets.exceptions.DatasetNotFoundError(f"Dataset '{path}' doesn't exist")

    monkeypatch.setattr(datasets, "load_dataset", load)
    return calls


def test_owner_name_config(fake_hub):
    bundle = load_dataset(path="hf:nyu-mll/glue/sst2")
    assert fake_hub == [("nyu-mll/glue", "sst2")]
    assert bundle.train.texts == ["fine", "poor"] and bundle.dev.labels == [1, 0]


def test_name_config_tried_after_a_repository_of_that_name(fake_hub):
    load_dataset(path="hf:glue/sst2")
    assert fake_hub == [("glue/sst2", None), ("glue", "sst2")]


def test_config_name_keyword_and_dataset_hf(fake_hub):
    load_dataset("hf", "nyu-mll/glue", config_name="sst2")
    assert fake_hub == [("nyu-mll/glue", "sst2")]


def test_unknown_hub_name(fake_hub):
    with pytest.raises(datasets.exceptions.DatasetNotFoundError):
        load_dataset(path="hf:someone/nothing")


def test_a_named_set_from_the_hub(fake_hub):
    """``--dataset sst2 --data hf:...``: the hub copy of a named data set, read by the hf
    reader."""
    bundle = load_dataset("sst2", "hf:nyu-mll/glue/sst2")
    assert bundle.name == "hf" and bundle.train.texts == ["fine", "poor"]


def test_unreachable_hub_says_how_to_work_offline(monkeypatch):
    """The test suite runs with HF_HUB_OFFLINE=1 (conftest): the real ``datasets`` cannot reach
    the hub; the error says why and how to pass a saved folder."""
    with pytest.raises(ConnectionError) as caught:
        read_hf_splits("hf:stanfordnlp/sst2")
    message = str(caught.value)
    assert message.startswith("cannot load the Hugging Face data set 'stanfordnlp/sst2': "
                              "HF_HUB_OFFLINE is set in the environment")
    assert message.endswith("`datasets.load_dataset('stanfordnlp/sst2').save_to_disk('my-data')`"
                            " (or `datasets.load_dataset('stanfordnlp', 'sst2').save_to_disk("
                            "'my-data')`), and pass the folder: --data hf:./my-data")


def test_strip_prefix():
    assert strip_prefix("hf:stanfordnlp/sst2") == "stanfordnlp/sst2"
    assert strip_prefix("reviews.csv") == "reviews.csv"


def test_local_text_data_is_text_data(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("text,label\nnice,1\nbad,0\n")
    data = load_dataset("hf", str(path)).train
    assert isinstance(data, TextData) and data.texts == ["nice", "bad"]


def test_sentence_pairs_from_a_saved_dataset(tmp_path):
    """STS-B as ``sentence-transformers/stsb`` has it (scores 0-1), saved with save_to_disk."""
    from poolkit.data import load_sentence_pairs

    def pairs(n, offset):
        return datasets.Dataset.from_dict({
            "sentence1": [f"a man plays {i + offset}" for i in range(n)],
            "sentence2": [f"a man is playing {i + offset}" for i in range(n)],
            "score": [round(i / n, 2) for i in range(n)]})

    folder = tmp_path / "stsb"
    datasets.DatasetDict({"train": pairs(4, 0), "validation": pairs(2, 10),
                          "test": pairs(3, 20)}).save_to_disk(str(folder))
    for source in (f"hf:{folder}", folder):
        splits = load_sentence_pairs(source)
        assert {name: len(part) for name, part in splits.items()} == \
            {"train": 4, "dev": 2, "test": 3}
        assert splits["test"].sentences1[0] == "a man plays 20"
        assert splits["train"].scores == [0.0, 0.25, 0.5, 0.75]
        assert all(part.score_max == 1.0 for part in splits.values())
    datasets.DatasetDict({"train": pairs(2, 0).rename_column("score", "label")}) \
        .save_to_disk(str(tmp_path / "renamed"))
    with pytest.raises(DataFormatError, match=r"renamed\[train\]: no column 'score'; the "
                                              r"columns are \['sentence1', 'sentence2', 'label'\]"):
        load_sentence_pairs(f"hf:{tmp_path / 'renamed'}")
    datasets.DatasetDict({"train": pairs(2, 0), "test": pairs(2, 5)}) \
        .save_to_disk(str(tmp_path / "no-dev"))
    with pytest.raises(DataFormatError, match=r"no dev split \(needs train, validation and "
                                              r"test\); has \['test', 'train'\]"):
        load_sentence_pairs(tmp_path / "no-dev")


@pytest.mark.parametrize(("columns", "message"), [
    ({"text": ["a", "b"], "label": [0.5, 3.8]},
     "the label column 'label' holds float64 values: poolkit trains single-label classifiers"),
    ({"text": ["a", "b"], "label": [[0, 1], [1]]},
     "the label column 'label' holds "),  # then the list type's name, per datasets version
    ({"text": [["a", "b"], ["c"]], "label": [0, 1]},
     "the text column 'text' holds "),
])
def test_columns_of_the_wrong_type_are_refused(tmp_path, columns, message):
    folder = tmp_path / "odd"
    datasets.Dataset.from_dict(columns).save_to_disk(str(folder))
    with pytest.raises(DataFormatError) as caught:
        load_dataset(path=f"hf:{folder}")
    assert message in str(caught.value)
    assert str(caught.value).endswith(("--label-column names another)",
                                       "not strings (--text-column names another)"))


def test_empty_string_labels_are_unlabelled(tmp_path, caplog):
    folder = tmp_path / "gaps"
    datasets.Dataset.from_dict({"text": ["a", "b", "c", "d"],
                                "label": ["pos", "", "neg", None]}).save_to_disk(str(folder))
    with caplog.at_level(logging.WARNING, logger="poolkit.data"):
        bundle = load_dataset(path=f"hf:{folder}")
    assert bundle.train.texts == ["a", "c"] and bundle.label_names == ["neg", "pos"]
    assert "2 of 4 rows have no label (-1 or empty); left out" in caplog.text


def test_unreachable_name_with_a_configuration_names_both_readings():
    with pytest.raises(ConnectionError) as caught:
        load_dataset(path="hf:glue/sst2")
    assert ("`datasets.load_dataset('glue/sst2').save_to_disk('my-data')` (or "
            "`datasets.load_dataset('glue', 'sst2').save_to_disk('my-data')`)") in str(caught.value)
