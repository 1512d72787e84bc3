"""Text loading never merges or drops a line: quotes, encodings, malformed lines, label checks.

The property test generates TSV files from hostile pieces (quotes, tabs, CR/LF, BOM, empty
lines, invalid UTF-8, stray labels) and checks each against an independent line-by-line oracle:
either one example per data line, or a DataFormatError naming the file and the first bad line.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poolkit.data import load_dataset
from poolkit.data.text import read_delimited, read_jsonl, read_mr, read_sst2
from poolkit.errors import DataFormatError

sys.path.insert(0, str(Path(__file__).parent))
from test_data_readers import _error  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Quotes are text in TSV; CSV quotes never swallow lines silently


def test_tsv_quotes_are_text_and_never_merge_lines(tmp_path):
    # The file: a sentence opening with a quote, and a later quote just before the tab.
    path = tmp_path / "quotes.tsv"
    path.write_text('text\tlabel\n"wow , what a film\t1\nfine\t0\nok\t1\nnot "bad"\t0\nlast\t1\n')
    for data in (read_sst2(path), load_dataset("tsv", path).train,
                 read_delimited(path, delimiter="\t")):
        assert data.texts == ['"wow , what a film', "fine", "ok", 'not "bad"', "last"]
        assert data.labels == [1, 0, 1, 0, 1]


def test_csv_keeps_rfc_quoting_and_reads_a_stray_quote_as_text(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text('text,label\n"wow" he said,1\n"a, b",0\n"two\nlines",1\n')
    data = read_delimited(path)
    assert data.texts == ['"wow" he said', "a, b", "two\nlines"] and data.labels == [1, 0, 1]


def test_csv_unclosed_quote_names_the_line_it_opens_on(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text('text,label\nfine,1\n"never closed,0\nok,1\nfine too,0\n')
    err = _error(lambda: read_delimited(path))
    assert err.line == 3 and "never closed" in str(err) and err.path == str(path)


# ---------------------------------------------------------------------------------------------
# Encodings


def test_mr_reads_utf8_as_utf8_and_cp1252_with_a_note(tmp_path, caplog):
    (tmp_path / "rt-polarity.pos").write_text("café ok\n", encoding="utf-8")
    (tmp_path / "rt-polarity.neg").write_text("bad\n", encoding="utf-8")
    assert read_mr(tmp_path).texts == ["bad", "café ok"]
    (tmp_path / "rt-polarity.pos").write_bytes("café — ok\n".encode("cp1252"))
    with caplog.at_level(logging.INFO, logger="poolkit.data"):
        assert read_mr(tmp_path).texts == ["bad", "café — ok"]
    assert "rt-polarity.pos is not UTF-8 (line 1); read as Windows-1252" in caplog.text
    assert read_mr(tmp_path, encoding="latin-1").texts[1] == "café \x97 ok"
    # a UTF-8 signature before Windows-1252 bytes is dropped, not read as "ï»¿" (found by the
    # generated-file test below)
    (tmp_path / "rt-polarity.pos").write_bytes(b"\xef\xbb\xbf" + "café".encode("cp1252"))
    assert read_mr(tmp_path).texts[1] == "café"


def test_encoding_argument_reaches_the_readers_and_bad_names_are_usage_errors(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_bytes("text\tlabel\ncafé\t1\nthé\t0\n".encode("cp1252"))
    err = _error(lambda: load_dataset("tsv", path))
    assert err.line == 2 and "0xe9" in str(err) and "--encoding" in str(err)
    assert load_dataset("tsv", path, encoding="cp1252").train.texts == ["café", "thé"]
    with pytest.raises(ValueError, match="encoding \\('klingon'\\)"):
        load_dataset("tsv", path, encoding="klingon")
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_bytes(b'{"text": "caf\xe9", "label": 1}\n{"text": "b", "label": 0}\n')
    assert read_jsonl(jsonl, encoding="latin-1").texts == ["café", "b"]


# ---------------------------------------------------------------------------------------------
# Malformed lines: every one reported, or skipped and counted


def test_every_malformed_line_is_counted_and_skip_bad_lines_says_how_many(tmp_path, caplog):
    path = tmp_path / "x.tsv"
    path.write_bytes(b"text\tlabel\nok\t1\nno label\nb\xffd\t0\nfine\t0\nx\t1\t2\n")
    err = _error(lambda: read_delimited(path))
    assert err.line == 3 and "expected 2 columns, got 1" in str(err)
    assert "2 more malformed line(s): line 4: cannot decode byte 0xff" in str(err)
    assert "line 6: expected 2 columns, got 3" in str(err)
    with caplog.at_level(logging.WARNING, logger="poolkit.data"):
        data = read_delimited(path, skip_bad_lines=True)
    assert data.texts == ["ok", "fine"]
    assert "skipped 3 malformed line(s)" in caplog.text


def test_sst2_test_split_with_a_bad_line_is_an_error_not_a_dropped_split(tmp_path):
    for name in ("train", "dev"):
        (tmp_path / f"{name}.tsv").write_text("sentence\tlabel\ngood\t1\nbad\t0\n")
    (tmp_path / "test.tsv").write_text("sentence\tlabel\ngood\t1\nbroken line\nbad\t0\n")
    err = _error(lambda: load_dataset("sst2", tmp_path))
    assert err.path.endswith("test.tsv") and err.line == 3
    # GLUE's own unlabelled test file is recognised by its header and left out.
    (tmp_path / "test.tsv").write_text("index\tsentence\n0\tgood\n1\tbad\n")
    assert load_dataset("sst2", tmp_path).test is None


def test_header_only_file_and_label_mismatch_name_the_file(tmp_path):
    path = tmp_path / "empty.tsv"
    path.write_text("text\tlabel\n")
    err = _error(lambda: load_dataset("tsv", path))
    assert err.path == str(path) and "no data lines (only a header)" in str(err)
    train, dev = tmp_path / "train.csv", tmp_path / "dev.csv"
    train.write_text("text,label\na,neg\nb,pos\n")
    dev.write_text("text,label\nc,neg\nd,meh\n")
    err = _error(lambda: load_dataset("csv", train, dev_path=dev))
    assert err.path == str(dev) and "['meh']" in str(err) and str(train) in str(err)


# ---------------------------------------------------------------------------------------------
# Label checks


def test_a_stray_label_is_an_error_naming_its_line(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("text\tlabel\na\t0\nb\t1\nc\t5\nd\t0\n")
    err = _error(lambda: load_dataset("tsv", path))
    assert err.line == 4 and "label 5" in str(err) and "2, 3, 4 have no example" in str(err)


def test_one_class_is_an_error_and_class_counts_are_logged(tmp_path, caplog):
    path = tmp_path / "x.tsv"
    path.write_text("text\tlabel\na\t1\nb\t1\n")
    err = _error(lambda: load_dataset("tsv", path))
    assert err.path == str(path) and "1 class(es) ('1')" in str(err)
    path.write_text("text\tlabel\na\tpos\nb\tneg\nc\tpos\n")
    with caplog.at_level(logging.INFO, logger="poolkit.data"):
        load_dataset("tsv", path)
    assert "tsv train: 3 examples; neg 1, pos 2" in caplog.text


# ---------------------------------------------------------------------------------------------
# The command line: --encoding, exit 1 and the file and line for bad data


def test_cli_encoding_option_and_bad_data_exit_1(tmp_path, capsys):
    pytest.importorskip("torch")
    from poolkit.cli import run

    path = tmp_path / "x.tsv"
    path.write_bytes(b"text\tlabel\n" + b"".join(
        f"{w} caf\xe9 {i}\t{i % 2}\n".encode("cp1252") for i, w in enumerate(["a", "b"] * 10)))
    out = tmp_path / "model"
    argv = ["train", "textcnn", "--data", str(path), "--epochs", "1", "--out", str(out), "--json"]
    assert run(argv) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: cannot decode byte 0xe9" in err
    assert run([*argv, "--encoding", "cp1252"]) == 0
    assert "train: " in capsys.readouterr().err  # the class counts, logged at load
    for command in ("compare", "eval", "predict", "train"):
        assert run([command, "--help"]) == 0
        assert "--encoding" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Property: one example per data line, or an error naming the file and the first bad line

PIECES = st.sampled_from([
    "good", "bad film", '"', '""', "'", ",", " ", "é", "\u2014", "\t", "\r", "\ufeff", "x y",
])
LABELS = st.sampled_from(["0", "1", "1", "0", "5", "pos", "", " 1"])


@st.composite
def tsv_lines(draw):
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["ok", "ok", "ok", "empty", "bytes", "no-tab", "cr"]))
        text = "".join(draw(st.lists(PIECES, min_size=1, max_size=4)))
        if kind == "empty":
            lines.append(draw(st.sampled_from([b"", b"   ", b"\t"])))
        elif kind == "bytes":
            lines.append(text.encode() + b"\xff\xfe" + b"\t1")
        elif kind == "no-tab":
            lines.append(text.replace("\t", " ").encode())
        else:
            line = f"{text}\t{draw(LABELS)}".encode()
            lines.append(line + (b"\r" if kind == "cr" else b""))
    return lines


def _oracle(lines, crlf):
    """(first bad line number or None, expected examples) for read_sst2, line by line."""
    examples = []
    for number, raw in enumerate(lines, start=2):
        if not crlf:  # a line ending in CR joined by LF is a CRLF line; with CRLF, a stray CR
            raw = raw.removesuffix(b"\r")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return number, None
        if any(ord(ch) < 32 and ch != "\t" for ch in text):
            return number, None
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != 2 or fields[1].strip() not in ("0", "1", "negative", "positive"):
            return number, None
        examples.append((fields[0].strip(), int(fields[1].strip())))
    return None, examples


@given(lines=tsv_lines(), bom=st.booleans(), crlf=st.booleans())
def test_generated_tsv_loads_line_for_line_or_names_the_bad_line(tmp_path_factory, lines, bom,
                                                                 crlf):
    path = tmp_path_factory.mktemp("gen") / "data.tsv"
    newline = b"\r\n" if crlf else b"\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + b"text\tlabel" + newline
                     + newline.join(lines) + newline)
    bad_line, expected = _oracle(lines, crlf)
    try:
        data = read_sst2(path)
    except DataFormatError as exc:
        assert exc.path == str(path)
        if bad_line is not None:
            assert exc.line == bad_line and f"{path}:{bad_line}:" in str(exc)
        else:  # no line to name: the file has none with data
            assert expected == [] and exc.line is None and "no data lines" in str(exc)
        return
    assert bad_line is None
    assert list(zip(data.texts, data.labels, strict=True)) == expected


@given(lines=tsv_lines())
def test_generated_tsv_through_load_dataset_never_raises_anything_else(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("gen") / "data.tsv"
    path.write_bytes(b"text\tlabel\n" + b"\n".join(lines) + b"\n")
    try:
        data = load_dataset("tsv", path).train
    except DataFormatError as exc:
        assert exc.path == str(path)
        return
    rows = [raw for raw in lines if raw.strip(b" \t\r")]
    assert len(data.texts) == len(rows)
    assert len(set(data.labels)) >= 2


@given(records=st.lists(st.tuples(PIECES, LABELS), min_size=1, max_size=6))
def test_generated_jsonl_loads_record_for_record(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("gen") / "data.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in records))
    try:
        data = read_jsonl(path)
    except DataFormatError as exc:
        assert exc.path == str(path)
        first_bad = next(i for i, (_, y) in enumerate(records, start=1) if not y.strip())
        assert exc.line == first_bad and "empty label" in str(exc)
        return
    assert data.texts == [t.strip() for t, _ in records]


# CSV: RFC quoting (a quoted field may hold commas, quotes and line breaks), a quote that breaks
# the rules read as text, a quote never closed, wrong column counts, undecodable bytes, CR/LF.
CSV_PIECES = st.sampled_from([
    "good", "bad film", '"', '""', "'", ",", " ", "é", "\u2014", "\t", "\n", "\ufeff", "x y", "5",
])


@st.composite
def csv_records(draw):
    """``[(raw bytes, physical lines, expected (text, label) or None if bad)]``: what each
    record is written as and what it must load as."""
    records = []
    count = draw(st.integers(1, 7))
    for position in range(count):
        kinds = ["ok", "ok", "ok", "stray", "lead", "empty", "bytes", "columns", "cr"]
        kind = draw(st.sampled_from(kinds + (["unclosed"] if position == count - 1 else [])))
        text = "".join(draw(st.lists(CSV_PIECES, min_size=0, max_size=4)))
        label = draw(LABELS)
        word = draw(st.sampled_from(["wow", "bad", "é"]))
        if kind == "empty":
            records.append((draw(st.sampled_from([b"", b"   ", b"\t"])), 1, "skip"))
            continue
        if kind == "ok":
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\r\n").writerow([text, label])
            raw = buffer.getvalue().removesuffix("\r\n")
            fine = label.strip() != ""
            records.append((raw.encode(), 1 + raw.count("\n"),
                            (text.strip(), label.strip()) if fine else None))
            continue
        plain = text.replace('"', "").replace(",", "").replace("\n", " ")
        if kind == "stray":  # a quote inside an unquoted field is text
            raw = f'{word} "{plain}"{word},{label}'
            records.append((raw.encode(), 1, (raw.rsplit(",", 1)[0].strip(), label.strip())
                            if label.strip() else None))
        elif kind == "lead":  # "wow" he said,1: breaks the rules, read as plain text
            raw = f'"{word}" {plain}x,{label}'
            records.append((raw.encode(), 1, (raw.rsplit(",", 1)[0].strip(), label.strip())
                            if label.strip() else None))
        elif kind == "unclosed":
            records.append((f'"{word} {plain},1'.encode(), 1, None))
        elif kind == "bytes":
            records.append((word.encode() + b"\xff\xfe,1", 1, None))
        elif kind == "columns":
            records.append((f"{word},{word},1".encode(), 1, None))
        else:  # cr: a line ending in CR (a CRLF line in an LF file, a stray CR in a CRLF one)
            records.append((f"{word} {plain},1\r".encode(), 1, ((f"{word} {plain}").strip(), "1")))
    return records


def _csv_oracle(records, crlf):
    """(first bad line or None, expected (text, label) pairs); the header is line 1."""
    line, expected, bad = 2, [], None
    for raw, lines, want in records:
        stray_cr = crlf and raw.endswith(b"\r")
        if (want is None or stray_cr) and bad is None:
            bad = line
        elif want not in (None, "skip"):
            expected.append(want)
        line += lines
    return bad, expected


@given(records=csv_records(), bom=st.booleans(), crlf=st.booleans())
def test_generated_csv_loads_record_for_record_or_names_the_bad_line(tmp_path_factory, records,
                                                                     bom, crlf):
    path = tmp_path_factory.mktemp("gen") / "data.csv"
    newline = b"\r\n" if crlf else b"\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + b"text,label" + newline
                     + newline.join(raw for raw, _, _ in records) + newline)
    bad_line, expected = _csv_oracle(records, crlf)
    try:
        data = read_delimited(path)
    except DataFormatError as exc:
        assert exc.path == str(path)
        if bad_line is not None:
            assert exc.line == bad_line and f"{path}:{bad_line}:" in str(exc)
        else:
            assert expected == [] and exc.line is None and "no data lines" in str(exc)
        return
    assert bad_line is None and len(data.texts) == len(expected)
    assert data.texts == [text for text, _ in expected]
    assert [data.label_names[y] for y in data.labels] == [label for _, label in expected]


@given(records=csv_records())
def test_generated_csv_through_load_dataset_never_raises_anything_else(tmp_path_factory,
                                                                       records):
    path = tmp_path_factory.mktemp("gen") / "data.csv"
    path.write_bytes(b"text,label\n" + b"\n".join(raw for raw, _, _ in records) + b"\n")
    try:
        data = load_dataset("csv", path).train
    except DataFormatError as exc:  # a malformed line, a stray label or a single class
        assert exc.path == str(path)
        assert exc.line is not None or "class" in str(exc) or "no data lines" in str(exc)
        return
    assert len(data.texts) == len(_csv_oracle(records, False)[1])
    assert len(set(data.labels)) >= 2


# MR: one sentence a line in rt-polarity.neg / .pos; UTF-8 first, Windows-1252 (said at load)
# only when the bytes are not UTF-8; a byte undefined in Windows-1252 (0x81) is an error.
MR_LINES = st.one_of(
    st.lists(st.sampled_from(["good", '"', "'", "\t", " ", "é", "\u2014", "\ufeff", "5", "x y",
                              "0\t", ","]), max_size=4).map(lambda p: "".join(p).encode()),
    st.sampled_from([b"", b"  ", b"caf\xe9", b"\x93quoted\x94", b"bad \x81 byte", b"a\rb"]),
)


def _mr_oracle(lines, bom, crlf):
    """(first bad line or None, the texts, whether the file is read as Windows-1252)."""
    if lines and not bom:  # a generated first line may itself begin with the UTF-8 signature
        lines = [lines[0].removeprefix(b"\xef\xbb\xbf"), *lines[1:]]
    body = b"\n".join(lines)
    try:
        body.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        encoding = "cp1252"
    texts = []
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            return number, None, encoding
        if any(ord(ch) < 32 and ch != "\t" for ch in text):
            return number, None, encoding
        if text.strip():
            texts.append(text.strip())
    return None, texts, encoding


@given(neg=st.lists(MR_LINES, min_size=1, max_size=5), pos=st.lists(MR_LINES, max_size=5),
       bom=st.booleans(), crlf=st.booleans())
def test_generated_mr_loads_line_for_line_or_names_the_bad_line(tmp_path_factory, neg, pos, bom,
                                                                crlf):
    folder = tmp_path_factory.mktemp("mr")
    newline = b"\r\n" if crlf else b"\n"
    for suffix, lines in (("neg", neg), ("pos", pos)):
        body = newline.join(lines) + (newline if lines else b"")
        (folder / f"rt-polarity.{suffix}").write_bytes((b"\xef\xbb\xbf" if bom else b"") + body)
    handler = _Collect()
    logger = logging.getLogger("poolkit.data")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        data = read_mr(folder)
    except DataFormatError as exc:
        for suffix, lines in (("neg", neg), ("pos", pos)):
            bad_line, _, _ = _mr_oracle(lines, bom, crlf)
            if bad_line is not None:
                file = folder / f"rt-polarity.{suffix}"
                assert exc.path == str(file) and exc.line == bad_line
                assert f"{file}:{bad_line}:" in str(exc)
                return
        raise AssertionError(f"no line of the generated files is bad: {exc}") from exc
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    expected, notes = [], []
    for suffix, lines in (("neg", neg), ("pos", pos)):
        bad_line, texts, encoding = _mr_oracle(lines, bom, crlf)
        assert bad_line is None
        expected.append(texts)
        if encoding == "cp1252":
            notes.append(f"rt-polarity.{suffix} is not UTF-8")
    assert data.texts == expected[0] + expected[1]  # one example per non-empty line
    assert data.labels == [0] * len(expected[0]) + [1] * len(expected[1])
    said = " ".join(handler.messages)
    assert all(note in said for note in notes)
    assert ("not UTF-8" in said) == bool(notes)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())
