"""The real accelerate launcher with 2 CPU processes (gloo): every stage runs, and the sharded stages give exactly
the rows a 1-process run gives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_stage
from tests.stages.conftest import ENV

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def launch(root: Path, *overrides: str, timeout: int = 1200) -> tuple[dict, subprocess.CompletedProcess]:
    accelerate = Path(sys.executable).with_name("accelerate")
    if not accelerate.exists():
        pytest.skip("the accelerate launcher is not installed next to this Python")
    cmd = [
        str(accelerate),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "conseq.train",
        *overrides,
        f"paths.root={root}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **ENV})
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]), proc


@pytest.fixture(scope="module")
def roots(tmp_path_factory, answering_qagen):
    overrides = ("stage=pipeline", "debug=smoke", f"qagen={answering_qagen}")
    one, two = tmp_path_factory.mktemp("one_process"), tmp_path_factory.mktemp("two_processes")
    run_stage(one, *overrides, timeout=1200, env=ENV)
    # The same trained MLE model in both roots, so generation and scoring start from identical weights
    # (two-process training is a different run: its batches are split across ranks).
    for kind in ("data", "pretrain", "mle"):
        shutil.copytree(one / "cache" / kind, two / "cache" / kind)
    result, proc = launch(two, *overrides)
    return one, two, result, proc


def _only(root: Path, kind: str, name: str) -> Path:
    found = [p / name for p in (root / "cache" / kind).iterdir() if (p / "_SUCCESS").exists()]
    assert len(found) >= 1, f"no finished {kind} artifact in {root}"
    return sorted(found)[0]


def test_pipeline_runs_under_two_processes(roots):
    _, _, result, proc = roots
    assert result["stage"] == "pipeline"
    assert {"mle", "conseq", "conseq_novel", "positive_only", "conseq_rouge"} <= set(result["metrics"]["models"])
    assert "[rank 1/2]" in proc.stderr  # both ranks really joined one process group


def test_generate_rows_equal_one_process(roots):
    one, two, _, _ = roots
    assert (
        _only(one, "candidates", "candidates.jsonl").read_text()
        == _only(two, "candidates", "candidates.jsonl").read_text()
    )


def test_score_rows_equal_one_process(roots):
    one, two, _, _ = roots
    rows_one = [json.loads(line) for line in _only(one, "scores", "scores.jsonl").read_text().splitlines()]
    rows_two = [json.loads(line) for line in _only(two, "scores", "scores.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows_one] == [r["id"] for r in rows_two]
    for a, b in zip(rows_one, rows_two, strict=True):
        for x, y in zip([a["reference_quals"], *a["candidate_quals"]], [b["reference_quals"], *b["candidate_quals"]]):
            assert (x is None and y is None) or abs(x - y) < 1e-5, (a["id"], x, y)


def _reference_evaluation(root: Path, model: str = "reference") -> list[dict]:
    for folder in (root / "cache" / "eval_model").iterdir():
        spec = folder / "spec.json"
        if (folder / "_SUCCESS").exists() and json.loads(spec.read_text())["model"] == model:
            return [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    raise AssertionError(f"no evaluation of {model} in {root}")


def test_evaluate_samples_equal_one_process(roots):
    # The top-k samples behind sampled_hallucination_rate are seeded per fixed chunk of rows, so the 2-process
    # run draws exactly the 1-process run's samples from the same (copied) MLE model.
    one, two, _, _ = roots
    # (two MLE models: the summarizer and the clean-reference ceiling, mle_clean)
    keys = [p.name for p in (one / "cache" / "mle").iterdir() if (p / "_SUCCESS").exists()]
    assert len(keys) == 2
    for mle_key in keys:
        rows_one, rows_two = _reference_evaluation(one, mle_key), _reference_evaluation(two, mle_key)
        assert [r["sample"] for r in rows_one] == [r["sample"] for r in rows_two] and rows_one


def test_evaluate_scores_equal_one_process(roots):
    # evaluate scores on every process's share and gathers: same QUALS per reference, in the same order.
    one, two, _, _ = roots
    rows_one, rows_two = _reference_evaluation(one), _reference_evaluation(two)
    assert [r["id"] for r in rows_one] == [r["id"] for r in rows_two] and rows_one
    for a, b in zip(rows_one, rows_two, strict=True):
        x, y = a["quals"], b["quals"]
        assert (x is None and y is None) or abs(x - y) < 1e-5, (a["id"], x, y)
    assert any(r["quals"] is not None for r in rows_one)


def test_factcc_claims_equal_one_process(roots):
    # Each process parses a share of the documents with spaCy; the main process makes every pair from them.
    one, two, _, _ = roots
    for name in ("train_pairs.jsonl", "validation_pairs.jsonl"):
        claims = _only(one, "factcc", name).read_text()
        assert claims and claims == _only(two, "factcc", name).read_text()
