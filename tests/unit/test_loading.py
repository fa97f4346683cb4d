"""conseq.data.loading: every input format, every kind of bad row, and the skip/error policy."""

from __future__ import annotations

import csv
import json
import logging

import pytest

from conseq.data.loading import BadInputError, load_squad, load_summarization, qa_examples

DOC = "The mayor of Oslo opened a bridge on Monday."
SUM = "Oslo has a new bridge."


def write_jsonl(path, rows, raw_lines=()):
    """rows as JSON lines; raw_lines = {line_index: text} replaces a line verbatim (to inject broken JSON)."""
    lines = [json.dumps(r) for r in rows]
    for i, text in dict(raw_lines).items():
        lines.insert(i, text)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def rows_ok(n=3):
    return [{"id": f"a{i}", "document": f"{DOC} {i}", "summary": SUM, "facts": [i]} for i in range(n)]


# ----------------------------------------------------------------------------------- summarization


def test_jsonl_rows_normalised_and_extra_fields_kept(tmp_path):
    rows, stats = load_summarization(split="train", path=write_jsonl(tmp_path / "d.jsonl", rows_ok()))
    assert [r["id"] for r in rows] == ["a0", "a1", "a2"]
    assert rows[1] == {"id": "a1", "document": f"{DOC} 1", "summary": SUM, "facts": [1]}
    assert (stats.rows_read, stats.rows_kept, stats.rows_skipped) == (3, 3, 0)


def test_custom_columns_are_renamed(tmp_path):
    data = [{"key": 7, "text": DOC, "highlights": SUM, "injected": True}]
    rows, _ = load_summarization(
        split="val",
        path=write_jsonl(tmp_path / "d.jsonl", data),
        document_column="text",
        summary_column="highlights",
        id_column="key",
    )
    assert rows == [{"id": "7", "document": DOC, "summary": SUM, "injected": True}]


def test_broken_json_line_named_by_line_number(tmp_path, caplog):
    path = write_jsonl(tmp_path / "d.jsonl", rows_ok(), raw_lines={2: '{"id": "x", "document": '})
    with pytest.raises(BadInputError, match=r"d\.jsonl line 3: invalid JSON"):
        load_summarization(split="train", path=path, on_bad_row="error")
    with caplog.at_level(logging.WARNING, logger="conseq.data.loading"):
        rows, stats = load_summarization(split="train", path=path)
    assert len(rows) == 3 and stats.skipped_by_reason == {"invalid_json": 1}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "line 3" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "bad, reason, message",
    [
        (
            {"id": "b", "summary": SUM},
            "missing_column",
            r"field document: missing \(columns present: id, summary\)",
        ),
        ({"id": "b", "document": None, "summary": SUM}, "null_field", "field document: null, expected a"),
        ({"id": "b", "document": DOC, "summary": 3}, "non_string_field", "field summary: int, expected a string"),
        ({"id": "b", "document": DOC, "summary": ["a"]}, "non_string_field", "field summary: list, expected a"),
        ({"id": "b", "document": " \n\t", "summary": SUM}, "empty_field", "field document: whitespace only"),
        ({"id": "b", "document": "", "summary": SUM}, "empty_field", "field document: empty"),
        ({"id": "a0", "document": DOC, "summary": SUM}, "duplicate_id", "field id: duplicate id 'a0'"),
        ({"id": None, "document": DOC, "summary": SUM}, "null_field", "field id: null, expected an id"),
    ],
)
def test_bad_rows_skipped_or_raised(tmp_path, bad, reason, message):
    path = write_jsonl(tmp_path / "d.jsonl", [*rows_ok(2), bad, *rows_ok(3)[2:]])
    rows, stats = load_summarization(split="train", path=path)
    assert [r["id"] for r in rows] == ["a0", "a1", "a2"]
    assert stats.rows_skipped == 1 and stats.skipped_by_reason == {reason: 1}
    assert "d.jsonl line 3 field " in stats.first_skips[0]
    with pytest.raises(BadInputError, match=rf"d\.jsonl line 3 {message}"):
        load_summarization(split="train", path=path, on_bad_row="error")


def test_generated_ids_count_every_input_row(tmp_path):
    data = [
        {"document": DOC, "summary": SUM},
        {"document": "", "summary": SUM},
        {"document": DOC, "summary": SUM},
    ]
    rows, _ = load_summarization(split="test", path=write_jsonl(tmp_path / "d.jsonl", data))
    assert [r["id"] for r in rows] == ["test-0", "test-2"]  # the skipped row still takes its index


def test_json_array_json_lines_and_data_object(tmp_path):
    array = tmp_path / "a.json"
    array.write_text(json.dumps(rows_ok()), encoding="utf-8")
    lines = tmp_path / "l.json"
    write_jsonl(lines, rows_ok())
    wrapped = tmp_path / "w.json"
    wrapped.write_text(json.dumps({"version": 1, "data": rows_ok()}), encoding="utf-8")
    for path in (array, lines, wrapped):
        rows, stats = load_summarization(split="train", path=str(path))
        assert [r["id"] for r in rows] == ["a0", "a1", "a2"] and stats.rows_kept == 3


def test_json_array_bad_element_named_by_row_index(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([*rows_ok(2), {"id": "z", "document": DOC}]), encoding="utf-8")
    with pytest.raises(BadInputError, match=r"a\.json row index 2 field summary: missing"):
        load_summarization(split="train", path=str(path), on_bad_row="error")


def test_json_lines_in_json_file_keep_unicode_line_separators(tmp_path):
    # XSum text holds raw U+2028 inside JSON strings; it must not split a JSON line.
    line = json.dumps({"id": "u", "document": "one\u2028two", "summary": SUM}, ensure_ascii=False)
    path = tmp_path / "l.json"
    path.write_text(line + "\n" + line.replace('"u"', '"v"') + "\n", encoding="utf-8")
    rows, _ = load_summarization(split="train", path=str(path))
    assert [r["document"] for r in rows] == ["one\u2028two"] * 2


def test_csv_line_numbers_follow_multiline_fields(tmp_path):
    path = tmp_path / "d.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "document", "summary"])
        writer.writerow(["a", "line one\nline two", SUM])  # lines 2-3
        writer.writerow(["b", DOC, ""])  # line 4
        writer.writerow(["c", DOC, SUM])
    rows, stats = load_summarization(split="train", path=str(path))
    assert [r["id"] for r in rows] == ["a", "c"] and rows[0]["document"] == "line one\nline two"
    assert stats.first_skips == [f"{path} line 4 field summary: empty"]


def test_csv_short_long_and_blank_rows_with_bom(tmp_path):
    path = tmp_path / "d.csv"
    text = f"\ufeffid,document,summary\na,{DOC}\n\nb,{DOC},{SUM},extra\nc,{DOC},{SUM}\n"
    path.write_text(text, encoding="utf-8")
    rows, stats = load_summarization(split="train", path=str(path))
    assert [r["id"] for r in rows] == ["c"]
    assert stats.skipped_by_reason == {"null_field": 1, "malformed_row": 1}
    assert stats.first_skips[1] == f"{path} line 4: 4 cells for 3 columns"


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(
        pa.Table.from_pylist([*rows_ok(2), {"id": "z", "document": None, "summary": SUM, "facts": []}]), path
    )
    rows, stats = load_summarization(split="train", path=str(path))
    assert [r["id"] for r in rows] == ["a0", "a1"] and rows[0]["facts"] == [0]
    assert stats.first_skips == [f"{path} row index 2 field document: null, expected a non-empty string"]


def test_hub_dataset_rows_named_by_hub_id_and_split(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(hub_id, config, split):
        calls.append((hub_id, config, split))
        return datasets.Dataset.from_list([*rows_ok(2), {"id": "z", "document": DOC, "summary": " "}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    rows, _ = load_summarization(split="validation", hub_id="org/news", hub_config="v1")
    assert calls == [("org/news", "v1", "validation")] and len(rows) == 2
    with pytest.raises(
        BadInputError, match=r"hub dataset org/news \(v1\) split validation row index 2 field summary: whitespace"
    ):
        load_summarization(split="validation", hub_id="org/news", hub_config="v1", on_bad_row="error")


def test_hub_failure_is_bad_input(monkeypatch):
    import datasets

    def fail(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", fail)
    with pytest.raises(BadInputError, match="cannot load hub dataset nope split train: ConnectionError"):
        load_summarization(split="train", hub_id="nope")


def test_unreadable_inputs(tmp_path):
    with pytest.raises(BadInputError, match=r"missing\.jsonl: file not found"):
        load_summarization(split="train", path=str(tmp_path / "missing.jsonl"))
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(BadInputError, match=r"d\.txt: unsupported file type '\.txt'"):
        load_summarization(split="train", path=str(tmp_path / "d.txt"))
    (tmp_path / "bin.jsonl").write_bytes(b'{"document": "\xff\xfe"}\n')
    with pytest.raises(BadInputError, match=r"bin\.jsonl: no usable rows .*line 1: not valid UTF-8 \(byte 0xff"):
        load_summarization(split="train", path=str(tmp_path / "bin.jsonl"))
    with pytest.raises(BadInputError, match=r"tmp.*: a directory, not a file"):
        load_summarization(split="train", path=str(tmp_path))
    (tmp_path / "broken.json").write_text('[{"document": "a", ]')
    with pytest.raises(BadInputError, match=r"broken\.json line 1: invalid JSON"):
        load_summarization(split="train", path=str(tmp_path / "broken.json"))


def test_no_usable_rows(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"document": "", "summary": SUM}, {"text": DOC}])
    with pytest.raises(BadInputError, match=r"d\.jsonl: no usable rows"):
        load_summarization(split="train", path=path)


def test_argument_errors(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", rows_ok())
    with pytest.raises(ValueError, match="on_bad_row"):
        load_summarization(split="train", path=path, on_bad_row="ignore")
    with pytest.raises(ValueError, match="exactly one"):
        load_summarization(split="train", path=path, hub_id="xsum")
    with pytest.raises(ValueError, match="exactly one"):
        load_summarization(split="train")


def test_max_rows_counts_kept_rows(tmp_path):
    data = [{"id": "bad", "document": "", "summary": SUM}, *rows_ok(5)]
    rows, stats = load_summarization(split="train", path=write_jsonl(tmp_path / "d.jsonl", data), max_rows=2)
    assert [r["id"] for r in rows] == ["a0", "a1"] and stats.rows_read == 3 and stats.rows_skipped == 1


def test_real_xsum_sample(shared_data):
    rows, stats = load_summarization(split="test", path=str(shared_data / "xsum" / "xsum_test_1000.jsonl"))
    # One XSum test row has an empty document: it is skipped and named.
    assert stats.rows_read == 1000 and stats.rows_kept == len(rows) == 999
    assert stats.skipped_by_reason == {"empty_field": 1} and "line 220" in stats.first_skips[0]
    assert len({r["id"] for r in rows}) == 999


# ------------------------------------------------------------------------------------------- SQuAD

CONTEXT = "Anna Berg of Delta Bank won 7 games in Lisbon on Monday. Lisbon cheered."


def official_squad(qas):
    return {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": CONTEXT, "qas": qas}]}]}


def test_official_squad_json(tmp_path):
    qas = [
        {"id": "q1", "question": " Who won? ", "answers": [{"text": "Anna Berg", "answer_start": 0}]},
        {"id": "q2", "question": "Where?", "answers": [], "plausible_answers": [], "is_impossible": True},
        # wrong offset, text present twice: moved to the occurrence nearest the given offset
        {"id": "q3", "question": "Where?", "answers": [{"text": "Lisbon", "answer_start": 60}]},
        {"id": "q4", "question": "Which bank?", "answers": [{"text": "Oslo Bank", "answer_start": 13}]},
    ]
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(official_squad(qas)), encoding="utf-8")
    rows, stats = load_squad(split="train", path=str(path))
    assert [r["id"] for r in rows] == ["q1", "q3"]
    assert rows[0] == {
        "id": "q1",
        "context": CONTEXT,
        "question": " Who won? ",
        "answers": {"text": ["Anna Berg"], "answer_start": [0]},
    }
    assert rows[1]["answers"]["answer_start"] == [CONTEXT.rindex("Lisbon")]
    assert stats.skipped_by_reason == {"unanswerable": 1, "bad_answer": 1}
    where = "data[0].paragraphs[0].qas[3]"
    assert stats.first_skips == [f"{path} {where} field answers: text[0] 'Oslo Bank' does not occur in the context"]
    with pytest.raises(BadInputError, match=r"qas\[3\] field answers: "):
        load_squad(split="train", path=str(path), on_bad_row="error")


def test_unanswerable_never_errors(tmp_path):
    qas = [
        {"id": "q1", "question": "Who?", "answers": [{"text": "Anna Berg", "answer_start": 0}]},
        {"id": "q2", "question": "Why?", "answers": []},
    ]
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(official_squad(qas)), encoding="utf-8")
    rows, stats = load_squad(split="train", path=str(path), on_bad_row="error")
    assert len(rows) == 1 and stats.skipped_by_reason == {"unanswerable": 1} and stats.first_skips == []


def test_flat_squad_v2_sample(shared_data, caplog):
    with caplog.at_level(logging.WARNING, logger="conseq.data.loading"):
        rows, stats = load_squad(split="validation", path=str(shared_data / "squad" / "squad_v2_sample_14.json"))
    assert len(rows) == 8 and stats.skipped_by_reason == {"unanswerable": 6}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # unanswerable is not a warning
    for row in rows:
        for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"], strict=True):
            assert row["context"][start : start + len(text)] == text


def test_hf_layout_jsonl_xquad(shared_data):
    rows, stats = load_squad(split="validation", path=str(shared_data / "squad" / "xquad_en_1190.jsonl"))
    assert len(rows) == 1190 and stats.rows_skipped == 0
    assert set(rows[0]) == {"id", "context", "question", "answers"}


def test_squad_bad_rows(tmp_path):
    good = {
        "id": "g",
        "question": "Who?",
        "context": CONTEXT,
        "answers": {"text": ["Anna"], "answer_start": [0]},
    }
    data = [
        good,
        {**good, "id": "m", "answers": {"text": ["Anna", "Berg"], "answer_start": [0]}},
        {**good, "id": "e", "answers": {"text": [""], "answer_start": [0]}},
        {**good, "id": "c", "context": None},
        {**good, "id": "n", "answers": {"text": ["Berg"], "answer_start": None}},  # no offsets: located
        {**good},  # duplicate id
    ]
    path = tmp_path / "flat.json"
    path.write_text(json.dumps({"data": data}), encoding="utf-8")
    rows, stats = load_squad(split="train", path=str(path))
    assert [r["id"] for r in rows] == ["g", "n"] and rows[1]["answers"]["answer_start"] == [5]
    assert stats.skipped_by_reason == {
        "malformed_row": 1,
        "empty_field": 1,
        "null_field": 1,
        "duplicate_id": 1,
    }
    assert stats.first_skips[0].endswith("data[1] field answers: 2 texts but 1 starts")


def test_squad_hub(monkeypatch):
    import datasets

    row = {"id": "h", "title": "t", "question": "Who?", "context": CONTEXT}
    data = [{**row, "answers": {"text": ["Anna Berg"], "answer_start": [0]}}]
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list(data))
    rows, _ = load_squad(split="train", hub_id="squad")
    assert rows[0]["answers"] == {"text": ["Anna Berg"], "answer_start": [0]}


def test_qa_examples_one_per_distinct_answer():
    rows = [
        {
            "id": "q",
            "context": CONTEXT,
            "question": " Who? ",
            "answers": {"text": ["Anna", "Anna Berg", "Anna"]},
        },
        {"id": "r", "context": CONTEXT, "question": "Where?", "answers": {"text": ["Lisbon"]}},
    ]
    assert qa_examples(rows) == [
        {"id": "q", "context": CONTEXT, "question": "Who?", "answer": "Anna"},
        {"id": "q-1", "context": CONTEXT, "question": "Who?", "answer": "Anna Berg"},
        {"id": "r", "context": CONTEXT, "question": "Where?", "answer": "Lisbon"},
    ]
