"""Meta-evaluation end to end: ``python -m conseq.metaeval`` on a small benchmark file (report files, the table,
the summary line, cache hits, bad rows, resume after a kill) and ``stage=metaeval`` on the news world (a fresh
root prints a table; QUALS's ROC-AUC on the references is evaluate's ``quals_auc_noisy_refs``, on the same rows)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conseq.artifacts import read_jsonl
from tests.conftest import run_stage
from tests.stages.conftest import ENV, SMOKE

CLI_ENV = {**os.environ, **ENV}
PEOPLE = ["Anna Berg", "Tom Reyes", "Lena Park", "Omar Haddad"]
PLACES = ["Oslo", "Lisbon", "Quito", "Hanoi"]


def benchmark(path: Path, n: int = 24, bad: bool = False) -> Path:
    """SummaC-layout rows: the document names a person and a place; a consistent claim repeats them, an
    inconsistent one names a place the document lacks. Two datasets, val and test cuts."""
    rows = []
    for i in range(n):
        person, place, other = PEOPLE[i % 4], PLACES[i % 4], PLACES[(i + 1) % 4]
        label = int(i % 3 != 0)
        rows.append(
            {
                "doc": f"{person} won {i + 2} games in {place} on Monday, officials said.",
                "claim": f"{person} won in {place if label else other}.",
                "label": label,
                "dataset": "left" if i % 2 else "right",
                "cut": "val" if i < n // 2 else "test",
            }
        )
    lines = [json.dumps(r) for r in rows]
    if bad:
        lines.insert(3, json.dumps({"doc": "Tom Reyes lost.", "claim": "Tom lost.", "label": "INCORRECT"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def metaeval(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "conseq.metaeval", *args], capture_output=True, text=True, env=CLI_ENV, timeout=600
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_cli_writes_the_report_and_prints_the_table(tmp_path):
    data = benchmark(tmp_path / "bench.jsonl", bad=True)
    out = tmp_path / "report"
    proc = metaeval(f"input={data}", "scorer=entity", f"output={out}", "bootstrap=50")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["rows"] == 24 and summary["skipped"] == 1 and not summary["cache_hit"]
    assert summary["skipped_by_reason"] == {"bad_label": 1}
    assert {"left", "right", "pooled"} == set(summary["metrics"])
    # the place of an inconsistent claim is absent from its document: entity precision separates them
    assert summary["metrics"]["pooled"]["auc"] == 1.0 and summary["metrics"]["pooled"]["balanced_accuracy"] == 1.0
    assert "| left |" in proc.stdout and "| pooled |" in proc.stdout and "ROC-AUC" in proc.stdout
    assert {p.name for p in out.iterdir()} >= {"scores.jsonl", "metaeval.md", "metaeval.json", "roc.png"}
    rows = read_jsonl(out / "scores.jsonl")
    assert len(rows) == 24 and all(r["entity"] in (0.5, 1.0) for r in rows)
    again = metaeval(f"input={data}", "scorer=entity", f"output={out}", "bootstrap=50")
    assert json.loads(again.stdout.strip().splitlines()[-1])["cache_hit"]
    # a bad row can stop the run, named by file, line and field
    proc = metaeval(f"input={data}", "scorer=entity", f"output={tmp_path / 'x'}", "on_bad_row=error", check=False)
    assert proc.returncode == 2 and "bench.jsonl line 4 field label: 'INCORRECT'" in proc.stderr


def run_in_process(*overrides: str) -> tuple[dict, str]:
    """``python -m conseq.metaeval`` composed and run in this process (one import of torch for many scorers)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from conseq.metaeval.__main__ import metaeval as run

    configs = str(Path(__file__).resolve().parents[2] / "configs")
    with initialize_config_dir(config_dir=configs, version_base="1.3"):
        raw = compose("metaeval", overrides=list(overrides))
    choice = next(o.split("=", 1)[1] for o in overrides if o.startswith("scorer="))
    return run(OmegaConf.to_object(raw), choice, OmegaConf.to_container(raw.scorer, resolve=True))


@pytest.fixture(scope="module")
def qags_models(tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    """Random-weight QAGS models (a question generator marked as stage=qagen mode=qg writes it, and an extractive
    QA model): their questions are noise, so most values are null, which metaeval must count."""
    import shutil

    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    from conseq.scoring.quals.scorer import save_qa_format

    qg = tmp_path_factory.mktemp("qg") / "model"
    shutil.copytree(tiny_model_dir, qg)
    save_qa_format(qg, qa_format="qg")
    qa = tmp_path_factory.mktemp("qa")
    AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(tiny_model_dir)).save_pretrained(qa)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(qa)
    return qg, qa


def test_every_kind_of_scorer_runs_on_a_benchmark(tmp_path, nli_model_dir, qagen_model_dir, qags_models):
    data = benchmark(tmp_path / "bench.jsonl")
    knobs = {
        "rouge": [],
        "entity_strict": [],
        "nli": [f"scorer.model={nli_model_dir}", "scorer.aggregation=chunk"],
        "factcc": [f"scorer.model={nli_model_dir}"],  # any sequence classifier with a "consistent" class
        "quals": [f"qagen={qagen_model_dir}", "quals.num_groups=4", "quals.max_new_tokens=16"],
        "qags": [
            f"scorer.qg={qags_models[0]}",
            f"scorer.qa={qags_models[1]}",
            "scorer.num_beams=2",
            "scorer.questions_per_answer=2",
        ],
    }
    for scorer, args in knobs.items():
        summary, text = run_in_process(
            f"input={data}", f"scorer={scorer}", *args, f"paths.root={tmp_path / 'root'}", "bootstrap=20"
        )
        assert Path(summary["output"]) == tmp_path / "root" / "metaeval" / "bench" / scorer
        values = [r[scorer] for r in read_jsonl(Path(summary["output"]) / "scores.jsonl")]
        assert len(values) == 24 and summary["scorer"]["name"] == scorer and f"### {scorer}" in text
        if scorer != "quals":  # QUALS is a log-likelihood difference; QAGS is null without a kept question
            scored = [v for v in values if v is not None] if scorer == "qags" else values
            assert all(0.0 <= v <= 1.0 for v in scored)
        assert summary["metrics"]["pooled"]["null"] == sum(v is None for v in values[12:])  # the test rows' nulls
    # the nli scorer needs a model: one line naming the knob
    proc = metaeval(f"input={data}", "scorer=nli", f"output={tmp_path / 'y'}", check=False)
    assert proc.returncode == 2 and "conseq: error: scorer.model" in proc.stderr


@pytest.mark.slow
def test_cli_killed_run_resumes_without_lost_or_duplicated_rows(tmp_path):
    data = benchmark(tmp_path / "bench.jsonl", n=240)
    out, once = tmp_path / "resumed", tmp_path / "once"
    args = [f"input={data}", "scorer=entity_strict", "chunk_rows=1", "bootstrap=20"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "conseq.metaeval", *args, f"output={out}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=CLI_ENV,
        start_new_session=True,
    )
    partial = out / "scores.jsonl.partial"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if partial.is_file() and len(partial.read_text().splitlines()) >= 5:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "scores.jsonl").exists()
    summary = json.loads(metaeval(*args, f"output={out}").stdout.strip().splitlines()[-1])
    assert summary["resumed_after_rows"] >= 5
    metaeval(*args, f"output={once}")
    assert read_jsonl(out / "scores.jsonl") == read_jsonl(once / "scores.jsonl")


def test_stage_on_a_fresh_root_prints_a_table_of_the_scorers_it_can_run(tmp_path):
    result, proc = run_stage(tmp_path, "stage=metaeval", *SMOKE, "stages.metaeval.bootstrap=20", env=ENV)
    assert result["stage"] == "metaeval" and not result["cache_hit"]
    metrics = result["metrics"]
    # no QAGen, QAGS or FactCC model yet: left out, each with the command that builds it
    assert set(metrics["left_out"]) == {"quals", "qags", "factcc"}
    assert "`python -m conseq.train stage=qagen`" in metrics["left_out"]["quals"]
    assert set(metrics["scorers"]) == {"rouge", "entity", "entity_strict"}
    refs = metrics["scorers"]["entity"]["newsworld_refs"]
    assert refs["n"] == 8 and refs["optimistic"] is False  # evaluate's rows (smoke: 8) and a val cut
    assert "### entity_strict" in proc.stdout and "| newsworld_refs |" in proc.stdout
    artifact = Path(result["artifact"])
    files = {"metaeval.md", "metaeval.json", "roc.png", "scores.jsonl", "spec.json", "metrics.json", "_SUCCESS"}
    assert {p.name for p in artifact.iterdir()} >= files
    again, _ = run_stage(tmp_path, "stage=metaeval", *SMOKE, "stages.metaeval.bootstrap=20", env=ENV)
    assert again["cache_hit"] and again["artifact"] == result["artifact"]
    # a labelled benchmark through the stage
    data = benchmark(tmp_path / "bench.jsonl")
    result, _ = run_stage(
        tmp_path, "stage=metaeval", *SMOKE, f"stages.metaeval.input={data}", "stages.metaeval.scorers=[entity]", env=ENV
    )
    assert result["metrics"]["scorers"]["entity"]["pooled"]["auc"] == 1.0


def test_quals_auc_on_the_references_is_evaluates(upstream, answering_qagen):
    qagen = f"qagen={answering_qagen}"
    evaluate = [
        "stage=evaluate",
        *SMOKE,
        qagen,
        "stages.evaluate.extra_scorers=[]",
        "stages.evaluate.entities=false",
        "stages.evaluate.rerank=null",
        "stages.evaluate.sample_top_k=0",
    ]
    evaluated, _ = run_stage(upstream, *evaluate, env=ENV)
    reference = evaluated["metrics"]["models"]["reference"]
    assert reference["quals_auc_noisy_refs"] is not None
    scorers = ["stages.metaeval.scorers=[quals,rouge]", "stages.metaeval.bootstrap=20"]
    result, _ = run_stage(upstream, "stage=metaeval", *SMOKE, qagen, *scorers, env=ENV)
    quals = result["metrics"]["scorers"]["quals"]
    assert quals["newsworld_refs"]["auc"] == pytest.approx(reference["quals_auc_noisy_refs"], abs=1e-12)
    assert quals["newsworld_refs"]["null"] == reference["quals_null"]
    # the same rows, with the same values: evaluate's references (its first max_rows test rows) are metaeval's test cut
    artifact = Path(result["artifact"])
    rows = [r for r in read_jsonl(artifact / "scores.jsonl") if r["dataset"] == "newsworld_refs" and r["cut"] == "test"]
    evaluations = Path(evaluated["artifact"]).parents[1] / "eval_model"
    predictions = next(
        read_jsonl(p.parent / "predictions.jsonl")
        for p in evaluations.glob("*/spec.json")
        if json.loads(p.read_text())["model"] == "reference"
    )
    assert [r["id"] for r in rows] == [p["id"] for p in predictions]
    ours, theirs = [r["quals"] for r in rows], [p["quals"] for p in predictions]
    assert [v is None for v in ours] == [v is None for v in theirs]
    assert [v for v in ours if v is not None] == pytest.approx([v for v in theirs if v is not None], abs=1e-5)
    # the MLE model's evaluated summaries are a dataset of their own (test cut only), less those the oracle cannot
    # read (the smoke model's often all are), which are counted
    about = json.loads((artifact / "metaeval.json").read_text())["benchmark"]
    assert set(about["models"]) == {"mle"}
    mle = quals.get("newsworld_mle", {"n": 0})["n"]
    assert mle + about["unreadable"].get("newsworld_mle", 0) == len(predictions)


def test_embedded_benchmark_labels_evaluated_summaries_by_the_oracle(tmp_path):
    from hydra import compose, initialize_config_dir

    from conseq import specs
    from conseq.artifacts import artifact, write_jsonl
    from conseq.config import register
    from conseq.data import prepare
    from conseq.data.newsworld import check_summary
    from conseq.stages.metaeval import embedded_benchmark
    from conseq.train import to_config

    register()
    configs = str(Path(__file__).resolve().parents[2] / "configs")
    with initialize_config_dir(config_dir=configs, version_base="1.3"):
        cfg = to_config(compose("config", overrides=[*SMOKE, f"paths.root={tmp_path}"]))
    data = prepare.build_summarization(specs.data(cfg), cfg.data)
    test = prepare.read_split(data, "test")[: cfg.stages.evaluate.max_rows]
    # stage=evaluate's product for the MLE model, by hand: its references as predictions, one the oracle cannot read
    predictions = [{"id": r["id"], "prediction": r["summary"]} for r in test]
    predictions[2]["prediction"] = "words words words"
    spec = {"model": specs.summarizer_identity(cfg, "mle"), "data": data.key, "split": "test", "rows": len(test)}
    evaluation = artifact(cfg.paths.root, "eval_model", spec)
    write_jsonl(evaluation.start() / "predictions.jsonl", predictions)
    evaluation.finish({})
    rows, about = embedded_benchmark(cfg)
    mle = [r for r in rows if r["dataset"] == "newsworld_mle"]
    assert about["unreadable"] == {"newsworld_mle": 1} and set(about["models"]) == {"mle"}
    assert [r["id"] for r in mle] == [r["id"] for i, r in enumerate(test) if i != 2]
    assert [r["label"] for r in mle] == [
        int(not check_summary(r, r["summary"]).hallucinated) for r in test if r["id"] in {m["id"] for m in mle}
    ]
    refs = [r for r in rows if r["dataset"] == "newsworld_refs"]
    assert {r["cut"] for r in mle} == {"test"} and {r["cut"] for r in refs} == {"val", "test"}
    assert all(0.0 <= r["human_score"] <= 1.0 for r in rows if r["human_score"] is not None)
