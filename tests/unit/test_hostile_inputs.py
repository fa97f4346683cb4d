"""Hostile inputs at the readers (conseq/data/loading.py), in every format: each bad row is a counted skip
(``on_bad_row=skip``) or one BadInputError whose text is ``<file> <line | row index> [field <f>]: <what>`` (the
line the entry points print after ``conseq: error:``); a bad file is an error under both policies. The entry
points themselves: tests/stages/test_hostile_inputs.py."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest

from conseq.data.loading import BadInputError, LoadStats, load_squad, load_summarization, stream_rows

DOC = "The mayor of Oslo opened a bridge on Monday."
SUM = "Oslo has a new bridge."
GOOD = [{"id": f"a{i}", "document": f"{DOC} {i}", "summary": SUM} for i in range(3)]
COLUMNS = ("id", "document", "summary")
MARK = "@@BYTE@@"  # replaced by a byte that is not UTF-8 after the row is written as text


class Raw(bytes):
    """A row given as the bytes of its line (text formats only)."""


# case → (the bad row, skip reason, field named or None, what the message says: a regex)
CASES = {
    "whitespace_only": ({"id": "b", "document": " \t ", "summary": SUM}, "empty_field", "document", "whitespace only"),
    "empty_text": ({"id": "b", "document": "", "summary": SUM}, "empty_field", "document", "empty"),
    "null": (
        {"id": "b", "document": None, "summary": SUM}, "null_field", "document", "null, expected a non-empty string"
    ),
    "number": ({"id": "b", "document": DOC, "summary": 3}, "non_string_field", "summary", "int, expected a string"),
    "list": ({"id": "b", "document": DOC, "summary": ["x"]}, "non_string_field", "summary", "list, expected a string"),
    "missing_column": (
        {"id": "b", "summary": SUM},
        "missing_column",
        "document",
        r"missing \(columns present: id, summary\)",
    ),
    "broken_json": (
        Raw(b'{"id": "b", "document": '), "invalid_json", None, r"invalid JSON \(Expecting value at column 25\)"
    ),
    "invalid_utf8": (
        {"id": "b", "document": f"caf{MARK} au lait", "summary": SUM},
        "invalid_utf8",
        "document",
        r"not valid UTF-8 \(byte 0xe9( at column \d+)?\)",
    ),
    "duplicate_id": ({"id": "a0", "document": DOC, "summary": SUM}, "duplicate_id", "id", "duplicate id 'a0'"),
}  # fmt: skip


def _json_bytes(text: str) -> bytes:
    return text.encode().replace(MARK.encode(), b"\xe9")


def write(path: Path, fmt: str, rows: list) -> Path | None:
    """``rows`` in ``fmt`` at ``path`` (suffix added); None when the format cannot hold them (a number in CSV)."""
    if fmt in ("jsonl", "json_lines"):
        lines = [bytes(r) if isinstance(r, Raw) else _json_bytes(json.dumps(r)) for r in rows]
        out = path.with_suffix(".jsonl" if fmt == "jsonl" else ".json")
        out.write_bytes(b"\n".join(lines) + b"\n")
        return out
    if any(isinstance(r, Raw) for r in rows):
        return None
    if fmt == "json_array":
        out = path.with_suffix(".json")
        out.write_bytes(_json_bytes(json.dumps(rows)))
        return out
    if fmt == "csv":
        if any(set(r) != set(COLUMNS) or not all(isinstance(v, str) for v in r.values()) for r in rows):
            return None  # CSV cells are strings and the header names the columns
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        writer.writerows([[r[c] for c in COLUMNS] for r in rows])
        out = path.with_suffix(".csv")
        out.write_bytes(_json_bytes(text.getvalue()))
        return out
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {type(v) for r in rows for v in r.values()} - {type(None)}
        if types != {str} or any(MARK in str(r) for r in rows) or len({frozenset(r) for r in rows}) > 1:
            return None  # one type a column; arrow keeps strings UTF-8; a missing key reads as null
        out = path.with_suffix(".parquet")
        pq.write_table(pa.Table.from_pylist(rows), out)
        return out
    raise ValueError(fmt)


# where a bad third row is named, by format
WHERE = {
    "jsonl": "line 3",
    "json_lines": "line 3",
    "csv": "line 4",
    "json_array": "row index 2",
    "parquet": "row index 2",
}
# what a format cannot hold: CSV cells are strings under one header, a JSON array is parsed whole (a broken one is
# one error: test_a_json_array_broken…), parquet columns have one type and UTF-8 strings (a missing key is null)
NOT_HELD = {
    "csv": {"null", "number", "list", "missing_column", "broken_json"},
    "json_array": {"broken_json"},
    "parquet": {"number", "list", "missing_column", "broken_json", "invalid_utf8"},
}
MATRIX = [(fmt, case) for fmt in WHERE for case in CASES if case not in NOT_HELD.get(fmt, ())]


def bad_file(tmp_path: Path, fmt: str, case: str) -> Path:
    path = write(tmp_path / "data", fmt, [*GOOD[:2], CASES[case][0], GOOD[2]])
    assert path is not None
    return path


def message(path: Path, where: str, field: str | None, what: str) -> str:
    return rf"{re.escape(str(path))} {where}" + (f" field {field}" if field else "") + f": {what}"


def named_field(fmt: str, case: str) -> str | None:
    # a line of JSON that is not UTF-8 is bad as a line (the byte may sit outside any string): no field
    return None if case == "invalid_utf8" and fmt in ("jsonl", "json_lines") else CASES[case][2]


@pytest.mark.parametrize("fmt, case", MATRIX)
def test_a_bad_row_is_skipped_and_counted(tmp_path, fmt, case):
    path = bad_file(tmp_path, fmt, case)
    _, reason, _, what = CASES[case]
    field = named_field(fmt, case)
    rows, stats = load_summarization(split="train", path=str(path))
    assert [r["id"] for r in rows] == ["a0", "a1", "a2"]
    assert stats.skipped_by_reason == {reason: 1} and stats.rows_read == 4
    if case != "duplicate_id":  # conseq.score keeps rows that share an id (several summaries of one document)
        streamed_stats = LoadStats()
        streamed = list(stream_rows(str(path), text_columns=("document", "summary"), stats=streamed_stats))
        assert [r["id"] for _, r in streamed] == ["a0", "a1", "a2"]
        assert streamed_stats.skipped_by_reason == {reason: 1}
    assert re.fullmatch(message(path, WHERE[fmt], field, what), stats.first_skips[0])


@pytest.mark.parametrize("fmt, case", MATRIX)
def test_a_bad_row_is_one_error_naming_file_line_and_field(tmp_path, fmt, case):
    path = bad_file(tmp_path, fmt, case)
    what, field = CASES[case][3], named_field(fmt, case)
    with pytest.raises(BadInputError) as raised:
        load_summarization(split="train", path=str(path), on_bad_row="error")
    assert re.fullmatch(message(path, WHERE[fmt], field, what), str(raised.value))
    if case != "duplicate_id":
        with pytest.raises(BadInputError) as raised:
            list(stream_rows(str(path), text_columns=("document", "summary"), on_bad_row="error"))
        assert re.fullmatch(message(path, WHERE[fmt], field, what), str(raised.value))


@pytest.mark.parametrize("fmt", list(WHERE))
def test_bom_crlf_and_a_million_characters_are_read_whole(tmp_path, fmt):
    long = "word " * 200_000  # 1M characters: kept here, cut (and counted) where it is tokenized
    path = write(tmp_path / "data", fmt, [*GOOD, {"id": "long", "document": long, "summary": SUM}])
    raw = path.read_bytes()
    if fmt in ("jsonl", "json_lines", "csv"):
        raw = b"\xef\xbb\xbf" + raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        path.write_bytes(raw)
    rows, stats = load_summarization(split="train", path=str(path))
    assert [r["id"] for r in rows] == ["a0", "a1", "a2", "long"] and stats.rows_skipped == 0
    assert rows[3]["document"] == long and rows[0]["summary"] == SUM


@pytest.mark.parametrize("fmt", list(WHERE))
@pytest.mark.parametrize("on_bad_row", ["skip", "error"])
def test_an_empty_file_is_an_error(tmp_path, fmt, on_bad_row):
    path = tmp_path / f"empty.{'jsonl' if fmt == 'jsonl' else fmt.split('_')[0]}"
    path.write_bytes(b"" if fmt != "csv" else b"\r\n")
    with pytest.raises(BadInputError) as raised:
        load_summarization(split="train", path=str(path), on_bad_row=on_bad_row)
    assert re.fullmatch(
        rf"{re.escape(str(path))}: (no usable rows \(read 0, skipped \{{\}}\)|empty CSV file \(no header line\)|"
        r"not a readable parquet file \(.+\))",
        str(raised.value),
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json_array", "parquet"])
def test_renamed_columns_name_the_missing_field(tmp_path, fmt):
    renamed = [{"id": r["id"], "text": r["document"], "summary": r["summary"]} for r in GOOD]
    path = write(tmp_path / "data", fmt, renamed) if fmt != "csv" else tmp_path / "data.csv"
    if fmt == "csv":
        path.write_text("id,text,summary\n" + "".join(f"{r['id']},{r['text']},{SUM}\n" for r in renamed))
    first = {"csv": "line 2", "parquet": "row index 0", "json_array": "row index 0"}.get(fmt, "line 1")
    what = r"missing \(columns present: id, text, summary\)"
    with pytest.raises(BadInputError) as raised:
        load_summarization(split="train", path=str(path), on_bad_row="error")
    assert re.fullmatch(message(path, first, "document", what), str(raised.value))
    with pytest.raises(BadInputError, match=r"no usable rows \(read 3, skipped \{'missing_column': 3\}\)"):
        load_summarization(split="train", path=str(path))


def test_a_json_array_broken_or_not_utf8_outside_a_string_is_one_error(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[{"id": "a", "document": "x", "summary": "y"},\n {"id": ]')
    for on_bad_row in ("skip", "error"):
        with pytest.raises(BadInputError) as raised:
            load_summarization(split="train", path=str(path), on_bad_row=on_bad_row)
        assert re.fullmatch(rf"{re.escape(str(path))} line 2: invalid JSON \(.+\)", str(raised.value))


def test_files_that_cannot_be_read(tmp_path):
    for on_bad_row in ("skip", "error"):
        with pytest.raises(BadInputError) as raised:
            load_summarization(split="train", path=str(tmp_path / "missing.jsonl"), on_bad_row=on_bad_row)
        assert str(raised.value) == f"{tmp_path / 'missing.jsonl'}: file not found"
        folder = tmp_path / "folder.jsonl"
        folder.mkdir(exist_ok=True)
        with pytest.raises(BadInputError) as raised:
            stream_rows(str(folder), text_columns=("document",), on_bad_row=on_bad_row)  # raised on the call
        assert str(raised.value).startswith(f"{folder}: a directory, not a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode: chmod 000 blocks nothing")
def test_an_unreadable_file(tmp_path):
    path = write(tmp_path / "data", "jsonl", GOOD)
    path.chmod(0)
    with pytest.raises(BadInputError, match=rf"{re.escape(str(path))}: cannot read \(Permission denied\)"):
        stream_rows(str(path), text_columns=("document",))


def test_an_unreadable_file_simulated(tmp_path, monkeypatch):
    """What root cannot see with chmod: the error an unreadable file raises on open, named by the reader."""
    path = write(tmp_path / "data", "jsonl", GOOD)
    real_open = open

    def deny(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", deny)
    with pytest.raises(BadInputError) as raised:
        load_summarization(split="train", path=str(path))
    assert str(raised.value) == f"{path}: cannot read (Permission denied)"


# ------------------------------------------------------------------------------------------------------ SQuAD

CONTEXT = "Anna Berg of Delta Bank won 7 games in Lisbon on Monday."
QA = [
    {"id": f"q{i}", "question": "Who won?", "context": CONTEXT, "answers": {"text": ["Anna Berg"], "answer_start": [0]}}
    for i in range(3)
]
SQUAD_CASES = {
    "null_context": ({**QA[0], "id": "b", "context": None}, "null_field", "context", "null, expected a .+"),
    "number_question": ({**QA[0], "id": "b", "question": 7}, "non_string_field", "question", "int, expected a string"),
    "blank_question": ({**QA[0], "id": "b", "question": "  "}, "empty_field", "question", "whitespace only"),
    "missing_answers": (
        {k: v for k, v in QA[0].items() if k != "answers"} | {"id": "b"},
        "missing_column",
        "answers",
        r"missing \(columns present: .+\)",
    ),
    "answer_not_in_context": (
        {**QA[0], "id": "b", "answers": {"text": ["Oslo"], "answer_start": [0]}},
        "bad_answer",
        "answers",
        r"text\[0\] 'Oslo' does not occur in the context",
    ),
    "invalid_utf8": ({**QA[0], "id": "b", "question": f"Who{MARK}?"}, "invalid_utf8", "question", "not valid UTF-8 .+"),
    "duplicate_id": (dict(QA[0]), "duplicate_id", "id", "duplicate id 'q0'"),
}  # fmt: skip


def squad_file(tmp_path: Path, layout: str, bad: dict) -> tuple[Path, str]:
    rows = [*QA[:2], bad, QA[2]]
    if layout == "jsonl":
        return write(tmp_path / "squad", "jsonl", rows), "line 3"
    qas = [{k: v for k, v in r.items() if k != "context"} for r in rows]
    for qa, row in zip(qas, rows, strict=True):
        if isinstance(row.get("answers"), dict):
            qa["answers"] = [{"text": t, "answer_start": s} for t, s in zip(*row["answers"].values(), strict=True)]
    paragraphs = [{"context": r["context"], "qas": [qa]} for r, qa in zip(rows, qas, strict=True)]
    path = tmp_path / "squad.json"
    path.write_bytes(_json_bytes(json.dumps({"version": "v1.1", "data": [{"title": "t", "paragraphs": paragraphs}]})))
    return path, r"data\[0\]\.paragraphs\[2\]\.qas\[0\]"


@pytest.mark.parametrize("layout", ["jsonl", "official"])
@pytest.mark.parametrize("case", list(SQUAD_CASES))
def test_squad_bad_rows(tmp_path, layout, case):
    bad, reason, field, what = SQUAD_CASES[case]
    path, where = squad_file(tmp_path, layout, bad)
    rows, stats = load_squad(split="train", path=str(path))
    assert [r["id"] for r in rows] == ["q0", "q1", "q2"] and stats.skipped_by_reason == {reason: 1}
    with pytest.raises(BadInputError) as raised:
        load_squad(split="train", path=str(path), on_bad_row="error")
    field = None if case == "invalid_utf8" and layout == "jsonl" else field
    assert re.fullmatch(message(path, where, field, what), str(raised.value))
