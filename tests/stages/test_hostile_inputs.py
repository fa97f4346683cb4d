"""Hostile inputs through the entry points a user runs: ``python -m conseq.train stage=mle data=jsonl`` (and
``stage=qagen qa_data=squad_files``), ``python -m conseq.score`` and ``python -m conseq.report``.

Each case ends in a counted skip or in exactly one line on stderr, ``conseq: error: <file> line <n> field <f>:
<what>`` (the parts that apply), exit status 2, no traceback (unless HYDRA_FULL_ERROR=1), and nothing finished:
no artifact with _SUCCESS, no conseq.score output, no report file. The readers' full matrix (every case in every
format, both policies) is tests/unit/test_hostile_inputs.py; here every kind of failure crosses each entry point
once. The training entry fails on bad data before any model is built; cases that train are marked slow."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stages.conftest import ENV

PREFIX = "conseq: error: "
MLE = ("stage=mle", "debug=smoke", "model.warm_start=none", "data=jsonl")
ROWS = [
    {"id": f"r{i}", "document": f"Ines Costa scored {i} goals in Perth on Monday.", "summary": f"Costa scored {i}."}
    for i in range(24)
]
BAD_UTF8 = b'{"id": "x", "document": "caf\xe9 au lait", "summary": "Coffee."}'


# ---------------------------------------------------------------------------------------------------- helpers


def entry(module: str, *args: str, env: dict | None = None, file_limit: int | None = None, cwd=None):
    """Run ``python -m <module> args…``; ``file_limit`` caps the size of every file it writes (a full disk: the
    write fails with EFBIG, SIGXFSZ ignored)."""

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={**os.environ, **ENV, **(env or {})},
        preexec_fn=limit_files if file_limit else None,
    )


def train(root: Path, *overrides: str, **kwargs) -> subprocess.CompletedProcess:
    return entry("conseq.train", *MLE, *overrides, f"paths.root={root}", **kwargs)


def assert_one_error(proc: subprocess.CompletedProcess, pattern: str) -> None:
    """Exit status 2 and exactly one stderr line ``conseq: error: <pattern>``; no traceback, no result line."""
    tail = proc.stderr[-3000:]
    assert proc.returncode == 2, tail
    assert "Traceback" not in proc.stderr and "Error executing job" not in proc.stderr, tail
    lines = [line for line in proc.stderr.splitlines() if "conseq: error" in line]
    assert len(lines) == 1 and lines[0].startswith(PREFIX), tail
    assert re.fullmatch(pattern, lines[0][len(PREFIX) :]), lines[0]
    assert not [line for line in proc.stdout.splitlines() if line.startswith("{")], proc.stdout


def assert_nothing_finished(root: Path) -> None:
    """No finished artifact; whatever was started is a <key>.partial folder."""
    cache = root / "cache"
    assert not list(cache.glob("*/*/_SUCCESS"))
    assert all(p.name.endswith(".partial") for p in cache.glob("*/*")), sorted(cache.glob("*/*"))


def jsonl(path: Path, rows: list, *, bom: bool = False, crlf: bool = False) -> Path:
    """Rows as JSON lines; a bytes item is written as it is (a broken or non-UTF-8 line)."""
    lines = [r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=False).encode() for r in rows]
    end = b"\r\n" if crlf else b"\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + end.join(lines) + end)
    return path


def quoted(path: Path) -> str:
    return re.escape(str(path))


# --------------------------------------------------------------------------- python -m conseq.train stage=mle


def test_train_invalid_utf8_is_one_line_naming_file_and_line(tmp_path):
    data = jsonl(tmp_path / "train.jsonl", [*ROWS[:2], BAD_UTF8, *ROWS[2:]])
    proc = train(tmp_path / "out", f"data.train_file={data}", "data.on_bad_row=error")
    assert_one_error(proc, rf"{quoted(data)} line 3: not valid UTF-8 \(byte 0xe9 at column 29\)")
    assert_nothing_finished(tmp_path / "out")


def test_train_hydra_full_error_adds_the_traceback(tmp_path):
    folder = tmp_path / "train.jsonl"
    folder.mkdir()
    full = train(tmp_path / "out", f"data.train_file={folder}", env={"HYDRA_FULL_ERROR": "1"})
    assert full.returncode == 2 and "Traceback" in full.stderr and "BadInputError" in full.stderr
    last = full.stderr.strip().splitlines()[-1]
    assert last == f"{PREFIX}{folder}: a directory, not a file (data.train_file)"
    assert_nothing_finished(tmp_path / "out")


def _csv(path: Path, bad: list[str]) -> Path:
    lines = ["id,document,summary"] + [f"{r['id']},{r['document']},{r['summary']}" for r in ROWS[:2]]
    lines += [",".join(bad)] + [f"{r['id']},{r['document']},{r['summary']}" for r in ROWS[2:]]
    path.write_text("\n".join(lines) + "\n")
    return path


def _json_array(path: Path, bad: dict) -> Path:
    path.write_text(json.dumps([*ROWS[:2], bad, *ROWS[2:]]))
    return path


def _parquet(path: Path, bad: dict) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([*ROWS[:2], bad, *ROWS[2:]]), path)
    return path


ROW_ERRORS = {
    "jsonl_broken_json": (
        lambda p: jsonl(p / "d.jsonl", [*ROWS[:2], b'{"id": "x", "document": ', *ROWS[2:]]),
        r"line 3: invalid JSON \(Expecting value at column 25\)",
    ),
    "jsonl_list": (
        lambda p: jsonl(p / "d.jsonl", [*ROWS[:2], {**ROWS[0], "id": "x", "summary": ["a"]}, *ROWS[2:]]),
        "line 3 field summary: list, expected a string",
    ),
    "jsonl_duplicate_id": (
        lambda p: jsonl(p / "d.jsonl", [*ROWS[:2], ROWS[0], *ROWS[2:]]),
        "line 3 field id: duplicate id 'r0'",
    ),
    "csv_whitespace": (lambda p: _csv(p / "d.csv", ["x", "   ", "S."]), "line 4 field document: whitespace only"),
    "json_number": (
        lambda p: _json_array(p / "d.json", {**ROWS[0], "id": "x", "summary": 7}),
        "row index 2 field summary: int, expected a string",
    ),
    "parquet_null": (
        lambda p: _parquet(p / "d.parquet", {**ROWS[0], "id": "x", "document": None}),
        "row index 2 field document: null, expected a non-empty string",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(ROW_ERRORS))
def test_train_bad_row_in_error_mode(tmp_path, case):
    make, what = ROW_ERRORS[case]
    data = make(tmp_path)
    proc = train(tmp_path / "out", f"data.train_file={data}", "data.on_bad_row=error")
    assert_one_error(proc, f"{quoted(data)} {what}")
    assert_nothing_finished(tmp_path / "out")


@pytest.mark.slow
@pytest.mark.parametrize("on_bad_row", ["skip", "error"])
def test_train_empty_or_all_renamed_file_is_an_error_in_both_modes(tmp_path, on_bad_row):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n \n")
    proc = train(tmp_path / "out", f"data.train_file={empty}", f"data.on_bad_row={on_bad_row}")
    assert_one_error(proc, rf"{quoted(empty)}: no usable rows \(read 0, skipped \{{\}}\)")
    renamed = jsonl(tmp_path / "renamed.jsonl", [{"id": r["id"], "text": r["document"], "summary": "s"} for r in ROWS])
    proc = train(tmp_path / "out", f"data.train_file={renamed}", f"data.on_bad_row={on_bad_row}")
    missing = r"field document: missing \(columns present: id, text, summary\)"
    if on_bad_row == "error":
        assert_one_error(proc, rf"{quoted(renamed)} line 1 {missing}")
    else:
        assert_one_error(proc, rf"{quoted(renamed)}: no usable rows \(read 24, .+\); first: .+ line 1 {missing} \| .+")
    assert_nothing_finished(tmp_path / "out")


@pytest.mark.slow
def test_train_missing_file_unwritable_root_full_disk_and_bad_knob(tmp_path):
    missing = tmp_path / "nope.jsonl"
    assert_one_error(train(tmp_path / "out", f"data.train_file={missing}"), rf"{quoted(missing)}: no such file .+")
    data = jsonl(tmp_path / "train.jsonl", [{**r, "id": f"{r['id']}-{k}"} for k in range(8) for r in ROWS])
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    proc = train(a_file / "out", f"data.train_file={data}")
    assert_one_error(proc, rf"{quoted(a_file)}/out/.+: Not a directory")
    # a disk that fills while the data artifact is written: 8 KiB a file, the train split is ~16 KiB
    proc = train(tmp_path / "full", f"data.train_file={data}", file_limit=8192)
    assert_one_error(proc, rf"{quoted(tmp_path)}/full/cache/data/\w+\.partial/train\.jsonl: File too large")
    assert_nothing_finished(tmp_path / "full")
    assert not list((tmp_path / "full").glob("cache/data/*.partial/*.tmp"))  # the half-written file is removed
    proc = train(tmp_path / "out", f"data.train_file={data}", "data.on_bad_row=ignore")
    assert_one_error(proc, "on_bad_row='ignore': choose one of skip, error")
    assert_nothing_finished(tmp_path / "out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode: chmod 000 blocks nothing")
def test_train_unreadable_file(tmp_path):
    data = jsonl(tmp_path / "train.jsonl", ROWS)
    data.chmod(0)
    proc = train(tmp_path / "out", f"data.train_file={data}")
    assert_one_error(proc, rf"{quoted(data)}: cannot read \(Permission denied; data\.train_file\)")


@pytest.mark.slow
def test_train_skips_and_counts_every_bad_row_and_truncates_a_million_characters(tmp_path):
    long = {"id": "long", "document": "Ines Costa scored. " * 55_000, "summary": "Costa scored."}  # ~1M chars
    bad = [
        BAD_UTF8,
        b'{"id": "broken", "document": ',
        {"id": "ws", "document": " \t ", "summary": "s"},
        {"id": "null", "document": None, "summary": "s"},
        {"id": "num", "document": "d", "summary": 3},
        {"id": "list", "document": "d", "summary": ["s"]},
        {"id": "nodoc", "summary": "s"},
        ROWS[0],  # a duplicate id
    ]
    data = jsonl(tmp_path / "train.jsonl", [long, *ROWS, *bad], bom=True, crlf=True)  # the last row is validation
    proc = train(tmp_path / "out", f"data.train_file={data}", "stages.mle.max_steps=1", "stages.mle.eval_samples=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads(proc.stdout.splitlines()[-1])["metrics"]
    assert metrics["data_train_rows_skipped"] == 8
    skipped = {k.removeprefix("data_train_skipped_"): v for k, v in metrics.items() if "_skipped_" in k}
    assert skipped == {
        "invalid_utf8": 1,
        "invalid_json": 1,
        "empty_field": 1,
        "null_field": 1,
        "non_string_field": 2,
        "missing_column": 1,
        "duplicate_id": 1,
    }
    assert metrics["truncated_sources"] >= 1  # the million characters, cut to model.max_source_length tokens
    assert re.search(r"train\.jsonl: skipped 8 of 33 rows .+ line 26: not valid UTF-8", proc.stderr)  # one warning


# ------------------------------------------------------------------- python -m conseq.train qa_data=squad_files


@pytest.mark.slow
def test_qagen_squad_files_bad_row_directory_and_invalid_utf8(tmp_path):
    context = "Anna Berg of Delta Bank won 7 games in Lisbon on Monday."
    answers = {"text": ["Anna Berg"], "answer_start": [0]}
    qa = [{"id": f"q{i}", "question": "Who won?", "context": context, "answers": answers} for i in range(6)]

    def qagen(train_file: Path) -> subprocess.CompletedProcess:
        return entry(
            "conseq.train",
            "stage=qagen",
            "debug=smoke",
            "qagen_model.warm_start=none",
            "qa_data=squad_files",
            f"qa_data.train_file={train_file}",
            "qa_data.on_bad_row=error",
            f"paths.root={tmp_path / 'out'}",
        )

    data = jsonl(tmp_path / "squad.jsonl", [*qa[:3], {**qa[0], "id": "x", "context": None}, *qa[3:]])
    assert_one_error(qagen(data), rf"{quoted(data)} line 4 field context: null, expected a non-empty string")
    official = tmp_path / "squad.json"
    paragraphs = [{"context": context, "qas": [{k: v for k, v in q.items() if k != "context"}]} for q in qa]
    text = json.dumps({"data": [{"title": "t", "paragraphs": paragraphs}]}).replace("Who", "Wh\udce9", 1)
    official.write_bytes(text.encode("utf-8", "surrogateescape"))  # one byte that is not UTF-8
    where = r"data\[0\]\.paragraphs\[0\]\.qas\[0\]"
    assert_one_error(qagen(official), rf"{quoted(official)} {where} field question: not valid UTF-8 \(byte 0xe9\)")
    assert_one_error(qagen(tmp_path), rf"{quoted(tmp_path)}: a directory, not a file \(qa_data\.train_file\)")
    assert_nothing_finished(tmp_path / "out")


# --------------------------------------------------------------------------------- python -m conseq.score


def score(tmp_path: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    # scorer=rouge needs no model, so every case here is about the input and the output alone
    return entry("conseq.score", "scorer=rouge", f"paths.root={tmp_path}", *args, **kwargs)


def test_score_invalid_utf8_is_one_line_and_no_output(tmp_path):
    data = jsonl(tmp_path / "in.jsonl", [*ROWS[:2], BAD_UTF8, *ROWS[2:]])
    out = tmp_path / "out.jsonl"
    proc = score(tmp_path, f"input={data}", f"output={out}", "on_bad_row=error")
    assert_one_error(proc, rf"{quoted(data)} line 3: not valid UTF-8 \(byte 0xe9 at column 29\)")
    assert not out.exists()


@pytest.mark.slow
def test_score_file_errors(tmp_path):
    out = tmp_path / "out.jsonl"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert_one_error(score(tmp_path, f"input={empty}", f"output={out}"), rf"{quoted(empty)}: no usable rows .+")
    missing = tmp_path / "nope.jsonl"
    assert_one_error(score(tmp_path, f"input={missing}", f"output={out}"), rf"{quoted(missing)}: file not found")
    assert_one_error(score(tmp_path, f"input={tmp_path}", f"output={out}"), rf"{quoted(tmp_path)}: a directory, .+")
    data = jsonl(tmp_path / "in.jsonl", [{**r, "id": f"{r['id']}-{k}"} for k in range(20) for r in ROWS])
    assert_one_error(score(tmp_path, f"input={data}"), r"output=<file> is required: .+")
    assert_one_error(score(tmp_path, f"input={data}", f"output={data}/o.jsonl"), rf"{quoted(data)}: not a folder, .+")
    assert_one_error(score(tmp_path, f"input={data}", f"output={tmp_path}"), rf"{quoted(tmp_path)}: a directory: .+")
    # a disk that fills after a few chunks: the output never appears (the partial one keeps its resume point)
    proc = score(tmp_path, f"input={data}", f"output={out}", "chunk_rows=16", file_limit=8192)
    assert_one_error(proc, rf"{quoted(out)}\.partial: File too large")
    assert not out.exists()


@pytest.mark.slow
def test_score_skips_and_counts_bad_rows_and_keeps_a_million_characters(tmp_path):
    long = {"id": "long", "document": "Ines Costa scored. " * 55_000, "summary": "Costa scored."}
    bad = [BAD_UTF8, b"{broken", {"id": "n", "document": None, "summary": "s"}, {"id": "m", "summary": "s"}]
    data = jsonl(tmp_path / "in.jsonl", [*ROWS[:3], *bad, long, ROWS[0]], bom=True, crlf=True)
    out = tmp_path / "out.jsonl"
    proc = score(tmp_path, f"input={data}", f"output={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["skipped_by_reason"] == {"invalid_utf8": 1, "invalid_json": 1, "null_field": 1, "missing_column": 1}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["r0", "r1", "r2", "long", "r0"]  # a repeated id is another summary, kept


@pytest.mark.slow
def test_score_counts_truncated_documents(tmp_path, qagen_model_dir):
    long = {"id": "long", "document": "Anna Berg won games in Oslo. " * 35_000, "summary": "Berg won games in Oslo."}
    data = jsonl(tmp_path / "in.jsonl", [long])
    out = tmp_path / "out.jsonl"
    proc = entry("conseq.score", f"input={data}", f"output={out}", f"qagen={qagen_model_dir}", "quals.num_groups=4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1])["truncated_sources"] == 1


# --------------------------------------------------------------------------------- python -m conseq.report

SCORED = {"id": "s", "summary": "Costa scored.", "quals": -0.5, "qa_pairs": []}


def report(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return entry("conseq.report", *args, **kwargs)


@pytest.mark.parametrize(
    "line, what",
    [
        (b"{broken", r"line 2: not JSON \(Expecting property name enclosed in double quotes at column 2\)"),
        (b'{"summary": "caf\xe9", "quals": 1.0, "qa_pairs": []}',
         r"line 2: not valid UTF-8 \(byte 0xe9 at column 17\)"),
        (json.dumps({**SCORED, "summary": 7}).encode(), "line 2 field summary: int, expected a string"),
        (json.dumps({**SCORED, "summary": None}).encode(), "line 2 field summary: null, expected a string"),
        (json.dumps({**SCORED, "summary": "  "}).encode(), "line 2 field summary: empty"),
        (json.dumps({**SCORED, "quals": "high"}).encode(), "line 2 field quals: str, expected a number or null"),
        (json.dumps({**SCORED, "qa_pairs": [1]}).encode(), r"line 2 field qa_pairs: qa_pairs\[0\] is not a pair .+"),
        (json.dumps({"id": "s", "text": "x", "quals": 1.0, "qa_pairs": []}).encode(),
         "line 2 field summary: missing; .+"),
    ],
)  # fmt: skip
def test_report_bad_scored_row(tmp_path, line, what):
    data = jsonl(tmp_path / "scored.jsonl", [SCORED, line])
    out = tmp_path / "report.html"
    assert_one_error(report(str(data), f"out={out}"), rf"{quoted(data)} {what}")
    assert not out.exists()


def test_report_file_errors(tmp_path):
    out = tmp_path / "report.html"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert_one_error(report(str(empty), f"out={out}"), rf"{quoted(empty)}: no scored rows .+")
    missing = tmp_path / "nope.jsonl"
    assert_one_error(report(str(missing)), rf"{quoted(missing)} is neither an artifact folder nor a scored .jsonl file")
    assert_one_error(report(str(tmp_path)), rf"{quoted(tmp_path)} is not a finished artifact .+")
    data = jsonl(tmp_path / "scored.jsonl", [SCORED] * 200)
    assert_one_error(report(str(data), f"out={data}/r.html"), rf"{quoted(data)}: File exists")
    assert_one_error(report(str(data), f"out={tmp_path}"), rf"{quoted(tmp_path)}: a directory: .+")
    proc = report(str(data), f"out={out}", file_limit=8192)  # a full disk: no report, whole or half
    assert_one_error(proc, rf"{quoted(out)}: File too large")
    assert not out.exists() and not list(tmp_path.glob("report.html*"))
    assert not [line for line in proc.stderr.splitlines() if "Traceback" in line]
    assert not out.exists()


def test_report_reads_bom_crlf_and_a_million_characters(tmp_path):
    data = jsonl(tmp_path / "scored.jsonl", [SCORED, {**SCORED, "summary": "Costa. " * 150_000}], bom=True, crlf=True)
    proc = report(str(data), f"out={tmp_path / 'r.html'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "r.html").stat().st_size > 1_000_000


KEY = {"models": ["mle", "conseq"], "items": {"1": {"id": "d1", "A": "mle", "B": "conseq"}}}
SHEET_HEADER = "item,document,summary_a,summary_b,factual_consistency,informativeness,grammaticality"


@pytest.mark.parametrize(
    "sheet, what",
    [
        (b"", r": empty file \(no header line\)"),
        (f"{SHEET_HEADER}\n".encode(), ": no rows under the header"),
        (b"item,document\n1,d\n", r" line 1 field factual_consistency, informativeness, grammaticality: missing .+"),
        (f"{SHEET_HEADER}\n1,d,a,b,better,same,worse\n1,d,a,b,better,same,w\xe9\n".encode("latin-1"),
         " line 3 field grammaticality: not valid UTF-8"),
        (f"{SHEET_HEADER}\n1,\"d\nd\",a,b,better,same,\n".encode(),
         " line 2 field grammaticality: '' is not one of .+"),
    ],
)  # fmt: skip
def test_human_eval_results_bad_sheet(tmp_path, sheet, what):
    path = tmp_path / "sheet.csv"
    path.write_bytes(sheet)
    (tmp_path / "key.json").write_text(json.dumps(KEY))
    out = tmp_path / "out"
    proc = report(f"human_eval_results={path}", f"key={tmp_path / 'key.json'}", f"out={out}")
    assert_one_error(proc, f"{quoted(path)}{what}")
    assert not out.exists()


def test_human_eval_results_unwritable_and_full_disk(tmp_path):
    path = tmp_path / "sheet.csv"
    path.write_text(f"\ufeff{SHEET_HEADER}\r\n1,d,a,b,better,same,worse\r\n1,d,a,b,worse,same,same\r\n")
    (tmp_path / "key.json").write_text(json.dumps(KEY))
    args = (f"human_eval_results={path}", f"key={tmp_path / 'key.json'}")
    assert_one_error(report(*args, f"out={path}/out"), rf"{quoted(path)}/out: Not a directory")
    out = tmp_path / "out"
    proc = report(*args, f"out={out}", file_limit=4096)  # the chart does not fit: none of the three appears
    assert_one_error(proc, rf"{quoted(out)}(/chart\.png\.tmp)?: File too large")
    assert list(out.iterdir()) == []
    ok = report(*args, f"out={out}")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["chart.png", "results.html", "results.json"]
