"""`python -m conseq.score`: the standalone QUALS CLI — output contract, bad rows, and resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def write_rows(path: Path, n: int, bad: bool = False) -> Path:
    rows = [
        {"id": f"r{i}", "document": f"Anna Berg won {i} games in Oslo on Monday.", "summary": f"Berg won {i} games."}
        for i in range(n)
    ]
    lines = [json.dumps(r) for r in rows]
    if bad:
        lines.insert(2, json.dumps({"id": "bad", "document": "Tom Reyes lost.", "summary": ""}))
    path.write_text("\n".join(lines) + "\n")
    return path


def score(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "conseq.score", *args], capture_output=True, text=True, env=ENV, timeout=600
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_round_trip_keeps_fields_and_adds_quals(tmp_path, qagen_model_dir):
    data = write_rows(tmp_path / "in.jsonl", 6)
    out = tmp_path / "out.jsonl"
    proc = score(f"input={data}", f"output={out}", f"qagen={qagen_model_dir}", "quals.num_groups=8")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["rows"] == 6
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(6)]
    for row in rows:
        assert {"id", "document", "summary", "quals", "qa_pairs"} <= set(row)
        assert row["quals"] is None or isinstance(row["quals"], float)
        for pair in row["qa_pairs"]:
            assert set(pair) == {"question", "answer", "ll_source", "ll_summary"}
    assert not out.with_name("out.jsonl.partial").exists()
    assert json.loads(score(f"input={data}", f"output={out}", f"qagen={qagen_model_dir}").stdout.splitlines()[-1])[
        "cache_hit"
    ]


def test_bad_row_is_an_error_naming_file_line_field(tmp_path, qagen_model_dir):
    data = write_rows(tmp_path / "in.jsonl", 4, bad=True)
    out = tmp_path / "out.jsonl"
    proc = score(f"input={data}", f"output={out}", f"qagen={qagen_model_dir}", "on_bad_row=error", check=False)
    assert proc.returncode != 0 and "in.jsonl line 3" in proc.stderr and "summary" in proc.stderr
    assert not out.exists()
    proc = score(f"input={data}", f"output={out}", f"qagen={qagen_model_dir}", "quals.num_groups=4")
    assert json.loads(proc.stdout.splitlines()[-1])["skipped"] == 1
    assert len(out.read_text().splitlines()) == 4


@pytest.mark.slow
def test_killed_run_resumes_without_lost_or_duplicated_rows(tmp_path, qagen_model_dir):
    data = write_rows(tmp_path / "in.jsonl", 60)
    out = tmp_path / "out.jsonl"
    args = [f"input={data}", f"output={out}", f"qagen={qagen_model_dir}", "chunk_rows=2", "quals.num_groups=8"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "conseq.score", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
        start_new_session=True,
    )
    progress = out.with_name("out.jsonl.progress")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not progress.exists():
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads(progress.read_text())["rows"]
    assert 0 < done < 60 and not out.exists()
    summary = json.loads(score(*args).stdout.splitlines()[-1])
    assert summary["resumed_after_rows"] >= done
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == [f"r{i}" for i in range(60)]
