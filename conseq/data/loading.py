"""Load summarization and SQuAD-style QA data from local files or the hub, validated row by row.

Every problem is reported with the file (or hub id and split), the row and the field, so that a user can fix
the input. Bad rows are skipped and counted (``on_bad_row="skip"``, the default) or stop the load at the first
one (``on_bad_row="error"``). Rows are addressed as ``line N`` (1-based) in text files (.jsonl, JSON lines in
.json, .csv) and as ``row index i`` (0-based, as ``dataset[i]``) in JSON arrays, parquet and hub datasets.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conseq.errors import BadInputError

log = logging.getLogger(__name__)

ON_BAD_ROW = ("skip", "error")
SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
# How many offending rows the one warning (and LoadStats.first_skips) names.
_FIRST_SKIPS = 5
# SQuAD v2 is a third unanswerable by design: those rows are counted, never errors and never warned about.
UNANSWERABLE = "unanswerable"
# UTF-8, ignoring a byte-order mark: spreadsheet exports write one, which would rename the first column. Bytes
# that are not UTF-8 are read as lone surrogates ("surrogateescape"), so that the row holding them is skipped
# (or named) like any other bad row instead of ending the whole read.
_ENCODING = "utf-8-sig"
_ERRORS = "surrogateescape"
_UNDECODED = re.compile("[\udc80-\udcff]")


@dataclass
class LoadStats:
    """What a load read, kept and skipped; ``skipped_by_reason`` keys are stable names usable as metrics."""

    rows_read: int = 0
    rows_kept: int = 0
    rows_skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    first_skips: list[str] = field(default_factory=list)


class _BadRow(Exception):
    """Raised inside the loaders for one unusable row; the policy (skip or error) is applied by _Policy.
    ``field`` is the field at fault (None for the whole row), ``what`` what is wrong with it."""

    def __init__(self, reason: str, what: str, field: str | None = None):
        super().__init__(what)
        self.reason = reason
        self.what = what
        self.field = field


@dataclass
class _Record:
    index: int  # 0-based position of the row in the input, for generated ids
    where: str  # "line 7" / "row index 3" / "data[0].paragraphs[1].qas[2]"
    value: Any  # the parsed row, or a _BadRow when the row could not even be parsed


class _Policy:
    """Applies on_bad_row to rows found bad, counts skips and writes the single summary warning."""

    def __init__(self, source: str, on_bad_row: str):
        self.source = source
        self.on_bad_row = on_bad_row
        self.stats = LoadStats()

    def skip(self, where: str, bad: _BadRow) -> None:
        error = BadInputError(bad.what, file=self.source, where=where, field=bad.field)
        message = str(error)
        if bad.reason != UNANSWERABLE:
            if self.on_bad_row == "error":
                raise error
            if len(self.stats.first_skips) < _FIRST_SKIPS:
                self.stats.first_skips.append(message)
        self.stats.rows_skipped += 1
        self.stats.skipped_by_reason[bad.reason] = self.stats.skipped_by_reason.get(bad.reason, 0) + 1

    def finish(self) -> LoadStats:
        stats = self.stats
        n_bad = stats.rows_skipped - stats.skipped_by_reason.get(UNANSWERABLE, 0)
        if n_bad:
            log.warning(
                "%s: skipped %d of %d rows %s; first: %s",
                self.source,
                n_bad,
                stats.rows_read,
                {k: v for k, v in stats.skipped_by_reason.items() if k != UNANSWERABLE},
                " | ".join(stats.first_skips),
            )
        if stats.skipped_by_reason.get(UNANSWERABLE):
            log.info("%s: %d unanswerable questions skipped", self.source, stats.skipped_by_reason[UNANSWERABLE])
        if stats.rows_kept == 0:
            raise BadInputError(
                f"no usable rows (read {stats.rows_read}, skipped {stats.skipped_by_reason})"
                + (f"; first: {' | '.join(stats.first_skips)}" if stats.first_skips else ""),
                file=self.source,
            )
        return stats


# ------------------------------------------------------------------------------------ reading rows


def _check_source(path: str | None, hub_id: str | None, on_bad_row: str) -> None:
    if on_bad_row not in ON_BAD_ROW:
        raise ValueError(f"on_bad_row={on_bad_row!r}: choose one of {', '.join(ON_BAD_ROW)}")
    if (path is None) == (hub_id is None):
        raise ValueError("give exactly one of path= (a local file) or hub_id= (a hub dataset)")


def _hub_label(hub_id: str, hub_config: str | None, split: str) -> str:
    return f"hub dataset {hub_id}" + (f" ({hub_config})" if hub_config else "") + f" split {split}"


def _read_records(path: str | None, hub_id: str | None, hub_config: str | None, split: str):
    """Return (source label, iterator of _Record) for a local file or a hub dataset."""
    if hub_id is not None:
        label = _hub_label(hub_id, hub_config, split)
        return label, _hub_records(hub_id, hub_config, split, label)
    file = Path(path)
    if not file.exists():
        raise BadInputError("file not found", file=str(path))
    if file.is_dir():
        raise BadInputError(f"a directory, not a file (give a {', '.join(SUFFIXES)} file)", file=str(path))
    if not file.is_file():
        raise BadInputError("not a regular file", file=str(path))
    try:  # an unreadable file fails here, before a caller loads models for its rows
        with open(file, "rb"):
            pass
    except OSError as e:
        raise BadInputError(f"cannot read ({e.strerror or e})", file=str(path)) from e
    suffix = file.suffix.lower()
    readers = {
        ".jsonl": _jsonl_records,
        ".json": _json_records,
        ".csv": _csv_records,
        ".parquet": _parquet_records,
    }
    if suffix not in readers:
        raise BadInputError(f"unsupported file type {suffix!r} (expected one of {', '.join(SUFFIXES)})", file=str(path))
    return str(path), _guard_io(readers[suffix](file), str(path))


def _guard_io(records: Iterator[_Record], label: str) -> Iterator[_Record]:
    """Turn I/O and decoding failures in the middle of a file into BadInputError naming the file."""
    try:
        yield from records
    except UnicodeDecodeError as e:
        raise BadInputError(f"not valid UTF-8 ({e.reason} at byte {e.start})", file=label) from e
    except OSError as e:
        raise BadInputError(f"cannot read ({e.strerror or e})", file=label) from e


def _check_decoded(row: Any) -> None:
    """A row holding a byte that was not UTF-8 (read as a lone surrogate) is bad: it names the field."""
    undecoded = _undecoded(row)
    if undecoded:
        raise _BadRow("invalid_utf8", f"not valid UTF-8 ({undecoded[1]})", undecoded[0])


def _undecoded(row: Any) -> tuple[str | None, str] | None:
    """(top-level field, "byte 0x..") of the first byte in ``row`` that was not UTF-8 (read as a lone surrogate)."""

    def find(value: Any) -> str | None:
        if isinstance(value, str):
            hit = _UNDECODED.search(value)
            return f"byte 0x{ord(hit.group()) - 0xDC00:02x}" if hit else None
        if isinstance(value, dict):
            return next((h for k, v in value.items() for h in (find(k), find(v)) if h), None)
        if isinstance(value, list):
            return next((h for h in map(find, value) if h), None)
        return None

    if not isinstance(row, dict):
        return None
    for key, value in row.items():
        hit = find(value) or find(key)
        if hit:
            return (None if _UNDECODED.search(str(key)) else str(key)), hit
    return None


def _jsonl_lines(lines: Iterator[str], first_lineno: int = 1) -> Iterator[_Record]:
    index = 0
    for lineno, line in enumerate(lines, first_lineno):
        if not line.strip():  # blank lines (e.g. a trailing newline) are not rows
            continue
        where = f"line {lineno}"
        undecoded = _UNDECODED.search(line)
        value: Any
        if undecoded:  # named by its column, wherever it is (inside a string or not)
            byte = ord(undecoded.group()) - 0xDC00
            value = _BadRow("invalid_utf8", f"not valid UTF-8 (byte 0x{byte:02x} at column {undecoded.start() + 1})")
        else:
            try:
                value = json.loads(line.rstrip("\r\n"))  # an error at the end of the line is named in it, not after
            except json.JSONDecodeError as e:
                value = _BadRow("invalid_json", f"invalid JSON ({e.msg} at column {e.colno})")
            else:
                if not isinstance(value, dict):
                    value = _BadRow("malformed_row", f"expected a JSON object, got {type(value).__name__}")
        yield _Record(index, where, value)
        index += 1


def _jsonl_records(file: Path) -> Iterator[_Record]:
    # Read line by line ourselves (not via datasets) so that a broken line is reported by its number.
    with open(file, encoding=_ENCODING, errors=_ERRORS) as f:
        yield from _jsonl_lines(f)


def _json_records(file: Path) -> Iterator[_Record]:
    """A .json file is a JSON array of rows, an object {"data": [rows]} (SQuAD / HF export), or JSON lines."""
    text = file.read_text(encoding=_ENCODING, errors=_ERRORS)
    head = text.lstrip()[:1]
    if head == "[":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadInputError(
                f"invalid JSON ({e.msg} at column {e.colno})", file=str(file), where=f"line {e.lineno}"
            ) from e
        yield from _array_records(data, "row index {}")
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        # Not one JSON document: read it as JSON lines, which reports each broken line by its number. Split on
        # "\n" only: str.splitlines() also splits on U+2028, which XSum text holds inside JSON strings.
        yield from _jsonl_lines(iter(text.split("\n")))
        return
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        yield from _array_records(data["data"], "data[{}]")
    elif isinstance(data, dict):  # a JSON-lines file that holds a single row
        yield _Record(0, "line 1", data)
    else:
        raise BadInputError(
            f"expected JSON rows (array, JSON lines or {{'data': [...]}}), got {type(data).__name__}", file=str(file)
        )


def _array_records(items: list, where: str) -> Iterator[_Record]:
    for i, item in enumerate(items):
        value = item if isinstance(item, dict) else _BadRow("malformed_row", f"expected an object, got {item!r:.40}")
        yield _Record(i, where.format(i), value)


def _csv_records(file: Path) -> Iterator[_Record]:
    # News documents exceed the csv module's default 128 KiB field limit.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(file, encoding=_ENCODING, errors=_ERRORS, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise BadInputError("empty CSV file (no header line)", file=str(file))
        end_of_previous, index = reader.line_num, 0
        for cells in reader:
            # A quoted field may span lines: report the line the row starts on.
            where = f"line {end_of_previous + 1}"
            end_of_previous = reader.line_num
            if not cells:  # blank line
                continue
            if len(cells) > len(header):
                value: Any = _BadRow("malformed_row", f"{len(cells)} cells for {len(header)} columns")
            else:
                # Missing trailing cells read as null, like a null in JSON.
                value = dict(zip(header, cells + [None] * (len(header) - len(cells)), strict=True))
            yield _Record(index, where, value)
            index += 1


def _parquet_records(file: Path) -> Iterator[_Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
    except (pa.ArrowException, OSError) as e:
        raise BadInputError(f"not a readable parquet file ({e})", file=str(file)) from e
    index = 0
    try:
        for batch in parquet.iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                yield _Record(index, f"row index {index}", row)
                index += 1
    except pa.ArrowException as e:
        raise BadInputError(f"cannot read ({e})", file=str(file), where=f"after row index {index - 1}") from e


def _hub_records(hub_id: str, hub_config: str | None, split: str, label: str) -> Iterator[_Record]:
    import datasets

    try:
        dataset = datasets.load_dataset(hub_id, hub_config, split=split)
    except Exception as e:  # network, unknown id/config/split: all mean "cannot read this input"
        raise BadInputError(f"cannot load {label}: {type(e).__name__}: {e}") from e
    for index, row in enumerate(dataset):
        yield _Record(index, f"row index {index}", row)


# ------------------------------------------------------------------------------------ field checks


def _text(row: dict, column: str, name: str | None = None) -> str:
    """The non-empty string in row[column]; ``name`` is how the field is named in messages."""
    name = name or column
    if column not in row:
        raise _BadRow("missing_column", f"missing (columns present: {', '.join(map(str, row))})", column)
    value = row[column]
    if value is None:
        raise _BadRow("null_field", "null, expected a non-empty string", name)
    if not isinstance(value, str):
        raise _BadRow("non_string_field", f"{type(value).__name__}, expected a string", name)
    if not value.strip():
        raise _BadRow("empty_field", "empty" if not value else "whitespace only", name)
    return value


def _row_id(row: dict, id_column: str | None, split: str, index: int) -> str:
    if id_column is None or id_column not in row:
        return f"{split}-{index}"
    value = row[id_column]
    if value is None:
        raise _BadRow("null_field", "null, expected an id (a string or an integer)", id_column)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _BadRow("non_string_field", f"{type(value).__name__}, expected an id (a string or an integer)", id_column)
    if isinstance(value, str) and not value.strip():
        raise _BadRow("empty_field", "empty id", id_column)
    return str(value)


def _check_unique(row_id: str, seen: set[str], id_column: str | None) -> None:
    if row_id in seen:
        raise _BadRow("duplicate_id", f"duplicate id {row_id!r}", id_column or "id")
    seen.add(row_id)


# ----------------------------------------------------------------------------------- summarization


def load_summarization(
    *,
    split: str,
    path: str | None = None,
    hub_id: str | None = None,
    hub_config: str | None = None,
    document_column: str = "document",
    summary_column: str = "summary",
    id_column: str | None = "id",
    on_bad_row: str = "skip",
    max_rows: int | None = None,
) -> tuple[list[dict], LoadStats]:
    """Load (document, summary) rows from a local .json/.jsonl/.csv/.parquet file or a hub dataset.

    Returns rows ``{"id", "document", "summary", ...}``: every other input field is kept as it is. Without an
    id column, ids are ``f"{split}-{i}"`` with i the 0-based position of the row in the input, so ids do not
    depend on which rows were skipped. ``max_rows`` stops once that many usable rows are kept.

    Raises BadInputError for an unreadable input, for the first bad row with ``on_bad_row="error"``, and when
    no row is usable.
    """
    _check_source(path, hub_id, on_bad_row)
    label, records = _read_records(path, hub_id, hub_config, split)
    policy = _Policy(label, on_bad_row)
    rows: list[dict] = []
    seen: set[str] = set()
    renamed = {document_column, summary_column} | ({id_column} if id_column else set())
    for record in records:
        if max_rows is not None and len(rows) >= max_rows:
            break
        policy.stats.rows_read += 1
        try:
            if isinstance(record.value, _BadRow):
                raise record.value
            raw = record.value
            _check_decoded(raw)
            document = _text(raw, document_column)
            summary = _text(raw, summary_column)
            row_id = _row_id(raw, id_column, split, record.index)
            _check_unique(row_id, seen, id_column)
        except _BadRow as bad:
            policy.skip(record.where, bad)
            continue
        extra = {k: v for k, v in raw.items() if k not in renamed}
        rows.append({**extra, "id": row_id, "document": document, "summary": summary})
    policy.stats.rows_kept = len(rows)
    return rows, policy.finish()


# ------------------------------------------------------------------------------------------- SQuAD


def _expand_squad(records: Iterator[_Record]) -> Iterator[_Record]:
    """Flatten official SQuAD articles ({"title", "paragraphs": [{"context", "qas"}]}) into one record per
    question; flat rows pass through. Indices are renumbered over questions, for generated ids."""
    index = 0
    for record in records:
        article = record.value
        if not (isinstance(article, dict) and "paragraphs" in article):
            yield _Record(index, record.where, record.value)
            index += 1
            continue
        paragraphs = article["paragraphs"]
        if not isinstance(paragraphs, list):
            yield _Record(index, record.where, _BadRow("malformed_row", "not a list", "paragraphs"))
            index += 1
            continue
        for j, paragraph in enumerate(paragraphs):
            where = f"{record.where}.paragraphs[{j}]"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                yield _Record(index, where, _BadRow("malformed_row", "expected {'context', 'qas': [...]}"))
                index += 1
                continue
            for k, qa in enumerate(paragraph["qas"]):
                if isinstance(qa, dict):
                    value = {**qa, **({"context": paragraph["context"]} if "context" in paragraph else {})}
                else:
                    value = _BadRow("malformed_row", f"expected a question object, got {qa!r:.40}")
                yield _Record(index, f"{where}.qas[{k}]", value)
                index += 1


def _answers(raw: dict) -> list[tuple[str, int | None]]:
    """(text, answer_start) pairs from either layout: official [{"text", "answer_start"}] or HF
    {"text": [...], "answer_start": [...]}."""
    if "answers" not in raw:
        raise _BadRow("missing_column", f"missing (columns present: {', '.join(map(str, raw))})", "answers")
    answers = raw["answers"]
    if answers is None:
        return []
    if isinstance(answers, dict):
        texts, starts = answers.get("text"), answers.get("answer_start")
        if not isinstance(texts, list) or not (starts is None or isinstance(starts, list)):
            raise _BadRow("malformed_row", "must hold lists 'text' and 'answer_start'", "answers")
        if starts is None:
            starts = [None] * len(texts)
        if len(starts) != len(texts):
            raise _BadRow("malformed_row", f"{len(texts)} texts but {len(starts)} starts", "answers")
        return list(zip(texts, starts, strict=True))
    if isinstance(answers, list):
        pairs = []
        for k, answer in enumerate(answers):
            if not isinstance(answer, dict) or "text" not in answer:
                raise _BadRow("malformed_row", f"answers[{k}] must be an object with 'text'", "answers")
            pairs.append((answer["text"], answer.get("answer_start")))
        return pairs
    raise _BadRow("malformed_row", f"{type(answers).__name__}, expected a list or an object", "answers")


def _locate(context: str, text: str, start: Any, k: int) -> int:
    """The answer's offset: the given one if it points at the text, else the occurrence nearest to it."""
    if isinstance(start, int) and not isinstance(start, bool) and context[start : start + len(text)] == text:
        return start
    hits, at = [], context.find(text)
    while at != -1:
        hits.append(at)
        at = context.find(text, at + 1)
    if not hits:
        raise _BadRow("bad_answer", f"text[{k}] {text[:60]!r} does not occur in the context", "answers")
    near = start if isinstance(start, int) and not isinstance(start, bool) else 0
    return min(hits, key=lambda h: abs(h - near))


def _squad_row(raw: dict, split: str, index: int) -> dict:
    row_id = _row_id(raw, "id", split, index)
    question = _text(raw, "question")
    context = _text(raw, "context")
    if raw.get("is_impossible") is True:
        raise _BadRow(UNANSWERABLE, "unanswerable question (is_impossible)")
    pairs = _answers(raw)
    if not pairs:
        raise _BadRow(UNANSWERABLE, "unanswerable question (no answers)")
    texts, starts = [], []
    for k, (text, start) in enumerate(pairs):
        if not isinstance(text, str) or not text.strip():
            raise _BadRow("empty_field", f"text[{k}] is empty or not a string", "answers")
        texts.append(text)
        starts.append(_locate(context, text, start, k))
    return {
        "id": row_id,
        "context": context,
        "question": question,
        "answers": {"text": texts, "answer_start": starts},
    }


def load_squad(
    *,
    split: str,
    path: str | None = None,
    hub_id: str | None = None,
    hub_config: str | None = None,
    on_bad_row: str = "skip",
    max_rows: int | None = None,
) -> tuple[list[dict], LoadStats]:
    """Load extractive QA rows: official SQuAD v1.1/v2.0 JSON, flat ``{"data": [rows]}`` JSON, HF-layout
    jsonl/parquet, or a hub dataset such as ``"squad"``.

    Returns rows ``{"id", "context", "question", "answers": {"text": [...], "answer_start": [...]}}``.
    Unanswerable questions (no answers, or ``is_impossible``) are skipped and counted under ``"unanswerable"``
    under either on_bad_row policy. An answer offset that does not point at its text is moved to the nearest
    occurrence of the text; an answer absent from the context makes the row bad.
    """
    _check_source(path, hub_id, on_bad_row)
    label, records = _read_records(path, hub_id, hub_config, split)
    policy = _Policy(label, on_bad_row)
    rows: list[dict] = []
    seen: set[str] = set()
    for record in _expand_squad(records):
        if max_rows is not None and len(rows) >= max_rows:
            break
        policy.stats.rows_read += 1
        try:
            if isinstance(record.value, _BadRow):
                raise record.value
            _check_decoded(record.value)
            row = _squad_row(record.value, split, record.index)
            _check_unique(row["id"], seen, "id")
        except _BadRow as bad:
            policy.skip(record.where, bad)
            continue
        rows.append(row)
    policy.stats.rows_kept = len(rows)
    return rows, policy.finish()


def qa_examples(rows: list[dict]) -> list[dict]:
    """One QAGen training example per distinct answer text of each question, as the original's data recipe.

    Returns ``{"id", "context", "question", "answer"}``; the first answer keeps the row's id, further distinct
    answers get ``f"{id}-{k}"``. Questions are stripped (as the original did); answers are kept verbatim.
    """
    examples = []
    for row in rows:
        distinct = list(dict.fromkeys(row["answers"]["text"]))  # ordered set: exact-string distinctness
        for k, answer in enumerate(distinct):
            examples.append(
                {
                    "id": row["id"] if k == 0 else f"{row['id']}-{k}",
                    "context": row["context"],
                    "question": row["question"].strip(),
                    "answer": answer,
                }
            )
    return examples


def stream_rows(
    path: str, *, text_columns: tuple[str, ...], on_bad_row: str = "skip", stats: LoadStats | None = None
) -> Iterator[tuple[int, dict]]:
    """Yield ``(row index, row)`` of a local file whose ``text_columns`` hold non-empty strings, one at a time.

    For streaming consumers (``python -m conseq.score``): rows come back as read, all fields kept; bad rows raise
    BadInputError naming file, line and field (``on_bad_row="error"``) or are skipped and counted in ``stats``.
    A missing or unreadable file raises when this is called, before any row is read; a file without one usable
    row raises at its end.
    """
    _check_source(path, None, on_bad_row)
    label, records = _read_records(path, None, None, "input")
    policy = _Policy(label, on_bad_row)
    if stats is not None:
        policy.stats = stats
    return _stream(records, policy, text_columns)


def _stream(records: Iterator[_Record], policy: _Policy, text_columns: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    for record in records:
        policy.stats.rows_read += 1
        try:
            if isinstance(record.value, _BadRow):
                raise record.value
            _check_decoded(record.value)
            for column in text_columns:
                _text(record.value, column)
        except _BadRow as bad:
            policy.skip(record.where, bad)
            continue
        policy.stats.rows_kept += 1
        yield record.index, record.value
    policy.finish()


# ------------------------------------------------------------------------------- labelled benchmarks
# The SummaC / LLM-AggreFact layout (python -m conseq.metaeval): a document, a summary (or claim), a human label
# (1 = consistent), optionally the dataset it belongs to, its cut (val/test), its origin and a continuous human score.

BENCHMARK_COLUMNS = {"document": ("document", "doc"), "summary": ("summary", "claim")}
# Cut names as the benchmarks spell them (SummaC: val/test; LLM-AggreFact's hub splits: dev/test).
CUTS = {"val": "val", "validation": "val", "dev": "val", "test": "test"}
_LABELS = {"1": 1, "0": 0, "true": 1, "false": 0}


def _cut_of_name(name: str) -> tuple[str, str | None]:
    """(dataset name, cut) of a file stem or hub split: ``xsumfaith_val`` → (xsumfaith, val); ``dev`` → ("", val)."""
    lowered = name.lower()
    if lowered in CUTS:
        return "", CUTS[lowered]
    for suffix, cut in CUTS.items():
        for sep in ("_", "-", "."):
            if lowered.endswith(sep + suffix):
                return name[: -len(suffix) - 1], cut
    return name, None


def _label(row: dict) -> int:
    if "label" not in row:
        raise _BadRow("missing_column", f"missing (columns present: {', '.join(map(str, row))})", "label")
    value = row["label"]
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in _LABELS:
        return _LABELS[value.strip().lower()]
    raise _BadRow("bad_label", f"{value!r:.40}: expected 1 (consistent) or 0 (0/1, true/false or '0'/'1')", "label")


def _cut(row: dict, default: str | None) -> str | None:
    for column in ("cut", "split"):
        if row.get(column) is not None:
            value = row[column]
            if not isinstance(value, str) or value.strip().lower() not in CUTS:
                raise _BadRow("bad_cut", f"{value!r:.40}: expected val (validation, dev) or test", column)
            return CUTS[value.strip().lower()]
    return default


def _human_score(row: dict, column: str | None) -> float | None:
    """A number, a numeric string (CSV) or a list of numbers (their mean, e.g. per-annotator scores)."""
    value = row.get(column) if column else None
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    values = value if isinstance(value, list) else [value]
    try:
        numbers = [float(v) for v in values if not isinstance(v, bool)]
    except (TypeError, ValueError):
        numbers = []
    if not numbers or len(numbers) != len(values) or any(n != n for n in numbers):  # n != n: NaN
        raise _BadRow("bad_human_score", f"{value!r:.40}: expected a number or a list of numbers", column)
    return sum(numbers) / len(numbers)


def _first_text(row: dict, names: tuple[str, ...]) -> str:
    present = next((n for n in names if n in row), None)
    if present is None:
        what = f"missing (give {' or '.join(names)}; columns present: {', '.join(map(str, row))})"
        raise _BadRow("missing_column", what, names[0])
    return _text(row, present)


def _benchmark_sources(source: str, hub_config: str | None, hub_splits: list[str] | None):
    """(label, records, dataset name, cut) per file of a file or folder, or per split of a hub dataset."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise BadInputError(f"a folder without {', '.join(SUFFIXES)} files", file=source)
        for file in files:
            label, records = _read_records(str(file), None, None, "input")
            yield (label, records, *_cut_of_name(file.stem))
        return
    hub_like = re.fullmatch(r"[\w.-]+/[\w.-]+", source) and path.suffix.lower() not in SUFFIXES
    if path.exists() or not hub_like:
        label, records = _read_records(source, None, None, "input")
        yield (label, records, *_cut_of_name(path.stem))
        return
    import datasets

    if hub_splits is None:  # every split of the hub dataset (LLM-AggreFact: dev and test)
        try:
            hub_splits = list(datasets.load_dataset(source, hub_config))
        except Exception as e:  # network, unknown id/config: all mean "cannot read this input"
            raise BadInputError(f"cannot load {_hub_label(source, hub_config, '*')}: {type(e).__name__}: {e}") from e
    for split in hub_splits:
        label, records = _read_records(None, source, hub_config, split)
        yield label, records, source.split("/")[-1], _cut_of_name(split)[1]


def load_benchmark(
    source: str,
    *,
    on_bad_row: str = "skip",
    human_score_column: str | None = "human_score",
    hub_config: str | None = None,
    hub_splits: list[str] | None = None,
    max_rows: int | None = None,
) -> tuple[list[dict], LoadStats]:
    """Human-labelled (document, summary) rows in the SummaC / LLM-AggreFact layout, from a file, a folder of files
    or a hub dataset id (every split, or ``hub_splits``).

    Columns: ``document`` or ``doc``; ``summary`` or ``claim``; ``label`` (1 = consistent: 0/1, true/false, "0"/"1";
    anything else is a bad row); optional ``dataset`` (default: the file's stem or the hub id's name), ``cut`` or
    ``split`` (val, validation, dev or test; default: a file stem ending in ``_val``/``_test``…, or the hub split's
    name; else none), ``origin``, ``id`` and a continuous human score in ``human_score_column`` (a number or a list
    of numbers, averaged). Returns rows ``{"id", "dataset", "cut", "document", "summary", "label", "human_score",
    "origin"}`` in input order; ``max_rows`` caps the rows kept per file or split. Bad rows as ``load_summarization``.
    """
    if on_bad_row not in ON_BAD_ROW:
        raise ValueError(f"on_bad_row={on_bad_row!r}: choose one of {', '.join(ON_BAD_ROW)}")
    rows: list[dict] = []
    total = LoadStats()
    for label, records, name, default_cut in _benchmark_sources(source, hub_config, hub_splits):
        policy = _Policy(label, on_bad_row)
        kept = 0
        for record in records:
            if max_rows is not None and kept >= max_rows:
                break
            policy.stats.rows_read += 1
            try:
                if isinstance(record.value, _BadRow):
                    raise record.value
                raw = record.value
                _check_decoded(raw)
                row = {
                    "document": _first_text(raw, BENCHMARK_COLUMNS["document"]),
                    "summary": _first_text(raw, BENCHMARK_COLUMNS["summary"]),
                    "label": _label(raw),
                    "cut": _cut(raw, default_cut),
                    "human_score": _human_score(raw, human_score_column),
                }
                dataset = raw.get("dataset")
                if dataset is not None and (not isinstance(dataset, str | int) or not str(dataset).strip()):
                    raise _BadRow("bad_dataset", f"{dataset!r:.40}: expected a name", "dataset")
            except _BadRow as bad:
                policy.skip(record.where, bad)
                continue
            dataset = str(dataset).strip() if dataset is not None else (name or "benchmark")
            row_id = raw.get("id")
            origin = raw.get("origin")
            row_id = str(row_id) if isinstance(row_id, str | int) and not isinstance(row_id, bool) else None
            rows.append(
                {
                    "id": row_id or f"{dataset}-{record.index}",
                    "dataset": dataset,
                    **row,
                    "origin": origin if isinstance(origin, str) else None,
                }
            )
            kept += 1
        policy.stats.rows_kept = kept
        stats = policy.finish()
        total.rows_read += stats.rows_read
        total.rows_kept += stats.rows_kept
        total.rows_skipped += stats.rows_skipped
        for reason, count in stats.skipped_by_reason.items():
            total.skipped_by_reason[reason] = total.skipped_by_reason.get(reason, 0) + count
        total.first_skips += stats.first_skips[: _FIRST_SKIPS - len(total.first_skips)]
    return rows, total
