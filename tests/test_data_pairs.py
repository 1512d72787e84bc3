"""Sentence-pair readers: the real STS Benchmark files, hand-made files and malformed ones."""

from __future__ import annotations

import pytest

from poolkit.data import (
    SentencePairs,
    load_sentence_pairs,
    read_pairs_file,
    read_sentence_pairs,
    read_stsb,
)
from poolkit.errors import DataFormatError

STSB_LINE = "main-news\tMSRpar\t2012test\t0001\t{score}\t{first}\t{second}"


def test_stsb_real_files(shared_data):
    splits = load_sentence_pairs(shared_data / "stsb")
    assert {name: len(pairs) for name, pairs in splits.items()} == {
        "train": 5749, "dev": 1500, "test": 1379
    }  # the counts of the benchmark's readme.txt
    train = splits["train"]
    assert train.sentences1[0] == "A plane is taking off."
    assert train.sentences2[0] == "An air plane is taking off."
    assert train.scores[0] == 5.0 and train.score_max == 5.0
    assert min(train.scores) == 0.0 and max(train.scores) == 5.0
    assert set(train.meta["genre"]) == {"main-news", "main-captions", "main-forum"}
    # Quotes are literal characters, not CSV quoting: a sentence may hold an odd number of them.
    joined = train.sentences1 + train.sentences2
    assert any(sentence.count('"') % 2 == 1 for sentence in joined)
    assert all("\t" not in sentence for sentence in joined)


def test_stsb_extra_columns_and_literal_quotes(tmp_path):
    path = tmp_path / "sts-test.csv"
    lines = [
        STSB_LINE.format(score="3.800", first='He said "no.', second="He refused."),
        STSB_LINE.format(score="0.0", first="A cat.", second="A dog.") + "\tsrc-a\tsrc-b",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    pairs = read_stsb(path)
    assert pairs.sentences1 == ['He said "no.', "A cat."]
    assert pairs.sentences2 == ["He refused.", "A dog."]
    assert pairs.scores == [3.8, 0.0]
    assert pairs.meta == {"genre": ["main-news", "main-news"]}
    assert read_pairs_file(path).scores == pairs.scores  # told apart from a header file


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("main-news\tMSRpar\t2012\t0001\t4.0\tonly one sentence", "at least 7"),
        (STSB_LINE.format(score="high", first="a", second="b"), "score 'high' is not a number"),
        (STSB_LINE.format(score="5.2", first="a", second="b"), "between 0 and 5"),
        (STSB_LINE.format(score="-1", first="a", second="b"), "between 0 and 5"),
        (STSB_LINE.format(score="nan", first="a", second="b"), "between 0 and 5"),
        (STSB_LINE.format(score="2", first="  ", second="b"), "sentence 1 is empty"),
    ],
)
def test_stsb_malformed_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "sts-dev.csv"
    good = STSB_LINE.format(score="1.0", first="a", second="b")
    path.write_text(f"{good}\n{line}\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=message) as error:
        read_stsb(path)
    assert error.value.line == 2 and error.value.path == str(path)


def test_stsb_bad_bytes_and_empty_file(tmp_path):
    path = tmp_path / "sts-dev.csv"
    path.write_bytes(STSB_LINE.format(score="1", first="caf\xe9", second="b").encode("latin-1"))
    with pytest.raises(DataFormatError, match="cannot decode"):
        read_stsb(path)
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="no sentence pairs"):
        read_stsb(path)


@pytest.mark.parametrize(
    ("suffix", "text", "score_max"),
    [
        (".tsv", "sentence1\tsentence2\tscore\nA b.\tA c.\t0.76\nX.\tY.\t0.0\n", 1.0),
        (".csv", 'score,sentence1,sentence2\n3.8,"A, b.",A c.\n0,X.,Y.\n', 5.0),
    ],
)
def test_generic_pair_files(tmp_path, suffix, text, score_max):
    path = tmp_path / f"pairs{suffix}"
    path.write_text(text, encoding="utf-8")
    pairs = read_sentence_pairs(path)
    assert len(pairs) == 2 and pairs.score_max == score_max
    assert pairs.sentences2 == ["A c.", "Y."]
    assert read_pairs_file(path).scores == pairs.scores


def test_generic_pair_file_errors(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("text_a,text_b,label\nA,B,1\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="no column 'sentence1', 'sentence2', 'score'"):
        read_sentence_pairs(path)
    assert read_sentence_pairs(
        path, sentence1="text_a", sentence2="text_b", score="label"
    ).sentences1 == ["A"]
    path.write_text("sentence1,sentence2,score\nA,B,1\nA,B,7\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="score 7 must be between 0 and 5") as error:
        read_sentence_pairs(path)
    assert error.value.line == 3
    path.write_text("sentence1,sentence2,score\nA,B\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="expected 3 columns, got 2"):
        read_sentence_pairs(path)


def test_load_folder_of_hub_files(tmp_path):
    for name in ("train.tsv", "validation.tsv", "test.tsv"):
        (tmp_path / name).write_text("sentence1\tsentence2\tscore\nA.\tB.\t0.5\n")
    splits = load_sentence_pairs(tmp_path)
    assert sorted(splits) == ["dev", "test", "train"]
    assert splits["dev"].score_max == 1.0
    (tmp_path / "test.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="no sts-test.csv and no test.tsv/.csv"):
        load_sentence_pairs(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_sentence_pairs(tmp_path / "missing")


def test_subset_sentences_and_validation():
    pairs = SentencePairs(["a", "b", "c"], ["b", "d", "a"], [1.0, 2.0, 3.0], meta={"g": [1, 2, 3]})
    assert pairs.sentences == ["a", "b", "c", "d"]
    part = pairs.subset([2, 0])
    assert (part.sentences1, part.scores, part.meta) == (["c", "a"], [3.0, 1.0], {"g": [3, 1]})
    with pytest.raises(ValueError, match="same length"):
        SentencePairs(["a"], [], [1.0])
    with pytest.raises(ValueError, match="score_max"):
        SentencePairs(["a"], ["b"], [1.0], score_max=0)


def test_stsb_keeps_the_stray_control_character(shared_data):
    train = read_stsb(shared_data / "stsb" / "sts-train.csv")
    assert train.sentences1[2918].startswith("Treasury\x12s long-range plan")  # file line 2919
