"""stage=report and ``python -m conseq.report`` on the products of real smoke-sized stages, opened in headless
Chromium (tables rendered and sorted, no script error, a screenshot), and the human study's sheet from a real
evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conseq.artifacts import open_artifact, read_jsonl
from conseq.report.human_eval import write_sheet
from tests.browser import SORT_PROBE, check_sorted, fetches, render
from tests.conftest import run_stage as run_entry
from tests.stages.conftest import ENV, SMOKE

pytestmark = pytest.mark.slow  # five stages on the smoke world (~2 min on 2 cores)

# One contrastive variant, so one partition; the QAGS/FactCC models are left out (tested apart).
ONE_VARIANT = (
    "stages.pipeline.variants=[conseq]",
    "stages.evaluate.models=[mle,conseq]",
    "stages.evaluate.extra_scorers=[]",
)

# debug/smoke's QUALS decoding for conseq.score (the answering QAGen's pair is shorter than the default 8 tokens).
SMOKE_QUALS = ("quals.num_groups=4", "quals.min_new_tokens=2", "quals.max_new_tokens=12")


def run_stage(root: Path, *overrides: str) -> dict:
    return run_entry(root, *overrides, env=ENV)[0]


@pytest.fixture(scope="module")
def overrides(answering_qagen) -> tuple[str, ...]:
    # The smoke QAGen writes no parseable pair; this one always answers, so QUALS has pairs to show.
    return (*SMOKE, f"qagen={answering_qagen}", *ONE_VARIANT)


@pytest.fixture(scope="module")
def products(upstream, overrides) -> dict[str, dict]:
    return {stage: run_stage(upstream, f"stage={stage}", *overrides) for stage in
            ("generate", "score", "partition", "contrastive", "evaluate")}  # fmt: skip


@pytest.fixture(scope="module")
def report(upstream, overrides, products) -> dict:
    return run_stage(upstream, "stage=report", "stages.report.evidence=5", *overrides)


def test_stage_report_shows_every_product_of_the_config(report, products, upstream, overrides, tmp_path):
    assert report["stage"] == "report" and report["cache_hit"] is False
    assert report["metrics"] == {"sections": ["QUALS scores", "partition (quals)", "evaluation"], "missing": {}}
    page = Path(report["artifact"]) / "report.html"
    text = page.read_text()
    for stage in ("score", "partition", "evaluate"):
        assert products[stage]["artifact"] in text  # the sections of exactly the products the stages made
    assert fetches(text) == [] and text.count("QUALS recomputed") == 5 and 'class="tok"' in text
    shown = render(page, tmp_path, probe=SORT_PROBE)
    assert shown.errors == []
    assert shown.probe["score-summaries"]["sorted"] == shown.probe["partition-pairs"]["sorted"] == "2:asc"
    assert shown.probe["score-summaries"]["rows"] == 64 * 3  # smoke: 64 documents, a reference and 2 candidates
    for ident in ("score-summaries", "partition-pairs"):
        check_sorted(shown.probe[ident])
    assert len(Image.open(shown.screenshot).convert("RGB").getcolors(1 << 24)) > 50
    assert run_stage(upstream, "stage=report", "stages.report.evidence=5", *overrides)["cache_hit"] is True


def test_stage_report_lists_what_is_missing(tmp_path, overrides):
    result = run_stage(tmp_path, "stage=report", *overrides)
    missing = result["metrics"]["missing"]
    assert result["metrics"]["sections"] == [] and set(missing) == {"QUALS scores", "partition (quals)", "evaluation"}
    assert "stage=score" in missing["QUALS scores"] and "stage=evaluate" in missing["evaluation"]


def test_cli_reports_a_token_scored_file_and_a_score_artifact(products, answering_qagen, tmp_path):
    rows = read_jsonl(Path(products["generate"]["artifact"]) / "candidates.jsonl")[:4]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"document": r["document"], "summary": r["reference"]}) + "\n"
                                               for r in rows))  # fmt: skip
    scored = tmp_path / "scored.jsonl"

    def cli(module: str, *args: str) -> dict:
        proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.splitlines()[-1])

    files = (f"input={tmp_path / 'in.jsonl'}", f"output={scored}", f"qagen={answering_qagen}")
    cli("conseq.score", *files, *SMOKE_QUALS, "quals.token_logprobs=true")
    pairs = [p for r in read_jsonl(scored) for p in r["qa_pairs"]]
    assert pairs and all(len(p["tokens"]) == len(p["lp_source"]) == len(p["lp_summary"]) for p in pairs)
    summary = cli("conseq.report", str(scored), f"out={tmp_path / 'file.html'}")
    assert summary["kind"] == "scored_file"
    shown = render(tmp_path / "file.html", tmp_path / "file", probe=SORT_PROBE)
    assert shown.errors == [] and shown.probe["scored-rows"]["rows"] == 4 and 'class="tok"' in shown.dom
    # A score artifact made with a QAGen folder: the report finds no model in the cache and is told where it is.
    art = products["score"]["artifact"]
    summary = cli("conseq.report", art, f"out={tmp_path / 'score.html'}", f"qagen={answering_qagen}", "evidence=3")
    assert summary["kind"] == "score" and (tmp_path / "score.html").read_text().count("QUALS recomputed") == 3


def test_human_eval_sheet_from_a_real_evaluation(products, tmp_path):
    evaluation = open_artifact(products["evaluate"]["artifact"])
    made = write_sheet(evaluation, ["mle", "conseq"], 100, tmp_path, seed=0)
    rows = evaluation.metrics()["models"]["mle"]["rows"]
    # Two steps of ConSeq may leave some summaries as they were: those are left out, every other one is asked.
    assert made["items"] + made["identical_left_out"] == rows
    shown = render(Path(made["form"]), tmp_path / "form")
    assert shown.errors == [] and shown.dom.count('type="radio"') == 9 * made["items"]
