"""stage=pipeline end to end on the smoke-sized news world, and stage=evaluate's comparison contract."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM

from tests.conftest import run_stage
from tests.stages.conftest import ENV

MODELS = ["mle", "mle_clean", "conseq", "conseq_novel", "positive_only", "conseq_rouge", "conseq_random",
          "conseq_novel_oracle", "mle+rerank"]  # fmt: skip
FIRST_VERSION_KEYS = {
    "rouge1",
    "rouge2",
    "rougeL",
    "hallucination_rate",
    "extrinsic_rate",
    "intrinsic_rate",
    "unreadable_rate",
}
LATER_KEYS = {"quals", "prec_s", "prec_t", "recall_t", "f1_t", "sampled_hallucination_rate", "val_nll"}
# QAGS and FactCC columns (their QG, QA and classifier models are trained by the pipeline itself).
EXTRA_KEYS = {"qags", "qags_null", "factcc"}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pipeline")


@pytest.fixture(scope="module")
def smoke(answering_qagen) -> tuple[str, ...]:
    # The smoke-sized QAGen is too untrained to write a parseable pair; a fixture model that always answers
    # gives score, partition and the contrastive stage real pairs to work with (stage=qagen is tested apart).
    return ("debug=smoke", f"qagen={answering_qagen}")


@pytest.fixture(scope="module")
def pipeline(root, smoke):
    result, proc = run_stage(root, "stage=pipeline", *smoke, timeout=1200, env=ENV)
    return result, proc


@pytest.mark.slow
def test_pipeline_reports_every_model(pipeline):
    result, proc = pipeline
    assert result["stage"] == "pipeline"
    models = result["metrics"]["models"]
    assert set(MODELS) <= set(models) and "reference" in models
    for name in MODELS:
        assert set(models[name]) >= FIRST_VERSION_KEYS | LATER_KEYS | EXTRA_KEYS, name
        assert 0.0 <= models[name]["factcc"] <= 1.0
        assert 0.0 <= models[name]["hallucination_rate"] <= 1.0
    # The references carry the world's noise: the oracle must see it.
    assert models["reference"]["hallucination_rate"] > 0
    # … and break it down by kind: no kind is more frequent than its side (extrinsic / intrinsic) as a whole.
    for m in models.values():
        for kind, rate in m["error_kinds"].items():
            side = kind.split(":")[0]
            assert side in ("extrinsic", "intrinsic") and 0 < rate <= m[f"{side}_rate"], (kind, m)
    assert models["reference"]["error_kinds"]
    artifact = Path(result["artifact"])
    table = (artifact / "table.md").read_text()
    assert all(f"| {name} |" in table for name in MODELS)
    assert "QAGS" in table and "FactCC" in table and "| errors by kind |" in table
    # The regime line: the sample's noise, MLE's errors by group, the clean-reference ceiling against MLE.
    regime = result["metrics"]["regime"]
    assert regime["rows"] == models["mle"]["rows"] and 0 <= regime["standard_error"] < 0.5
    assert set(regime["mle_error_groups"]) == {"reference_taught", "name_blends", "bindings", "other"}
    base = models["mle"]["hallucination_rate"]
    if base:  # the smoke models may never hallucinate (or write anything): no ratio then
        assert regime["clean_reference_ratio"] == pytest.approx(models["mle_clean"]["hallucination_rate"] / base)
        assert "MLE trained on clean references (mle_clean)" in table and "× MLE" in table
    else:
        assert regime["clean_reference_ratio"] is None
    assert "MLE's summaries with an error of each group" in table
    # Reranking decodes the MLE model's beams and keeps the best of them by QUALS, which scores every one.
    assert 0 <= models["mle+rerank"]["rerank_changed"] <= 1
    assert models["mle+rerank"]["quals_null"] <= models["mle"]["quals_null"]
    assert "| model |" in proc.stderr  # the table is printed on stderr too
    saved = json.loads((artifact / "metrics.json").read_text())
    assert set(saved["models"]) == set(models)
    # Every stage printed its own contract line before the pipeline's.
    stages = [json.loads(line)["stage"] for line in proc.stdout.splitlines() if line.startswith("{")]
    for stage in ("mle", "generate", "score", "partition", "contrastive", "qa", "factcc", "evaluate", "pipeline"):
        assert stage in stages
    assert stages[-1] == "pipeline"


@pytest.mark.slow
def test_second_pipeline_is_all_cache_hits(root, pipeline, smoke):
    again, proc = run_stage(root, "stage=pipeline", *smoke, timeout=600, env=ENV)
    assert again["cache_hit"] is True
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert all(line["cache_hit"] for line in lines), [line["stage"] for line in lines if not line["cache_hit"]]
    assert again["metrics"]["models"] == pipeline[0]["metrics"]["models"]


@pytest.mark.slow
def test_evaluate_accepts_paths_and_reuses_per_model_results(root, pipeline, smoke):
    mle_dir = None
    for line in pipeline[1].stdout.splitlines():
        if line.startswith('{"stage": "mle"'):
            mle_dir = json.loads(line)["artifact"]
    assert mle_dir
    result, _ = run_stage(root, "stage=evaluate", *smoke, f"stages.evaluate.models=[mle,{mle_dir}]", env=ENV)
    models = result["metrics"]["models"]
    assert set(models) == {"reference", "mle", mle_dir, "mle+rerank"}  # stages.evaluate.rerank adds the last
    # The same weights under two names give the same decoded outputs and scores.
    assert models["mle"]["rougeL"] == pytest.approx(models[mle_dir]["rougeL"])


@pytest.mark.slow
def test_evaluate_with_another_seed_draws_new_samples(root, pipeline, smoke):
    # The seed decides the top-k samples (sampled_hallucination_rate), so it is part of the evaluation's key.
    models = "stages.evaluate.models=[mle]"
    same, _ = run_stage(root, "stage=evaluate", *smoke, models, env=ENV)
    other, _ = run_stage(root, "stage=evaluate", *smoke, models, "seed=1", env=ENV)
    assert same["cache_hit"] is True and other["cache_hit"] is False
    assert other["metrics"]["models"]["mle"]["rougeL"] == pytest.approx(same["metrics"]["models"]["mle"]["rougeL"])


def _stage_line(pipeline, marker: str) -> dict:
    return json.loads(next(line for line in pipeline[1].stdout.splitlines() if marker in line))


def _fails_before_training(root: Path, variant: tuple[str, ...], bad: str, smoke) -> None:
    """A bad contrastive knob fails naming itself, and no contrastive artifact (or partial) appears."""
    before = set(root.glob("cache/contrastive/*"))
    result, proc = run_stage(root, *variant, bad, *smoke, check=False, env=ENV)
    assert proc.returncode != 0 and result is None
    assert bad in proc.stderr
    assert set(root.glob("cache/contrastive/*")) == before


def test_novel_ngram_trains_its_own_model_and_a_bad_value_fails_before_training(root, pipeline, smoke):
    novel = _stage_line(pipeline, '"variant": "conseq_novel"')
    variant = ("stage=contrastive", "stages.contrastive.variant=conseq_novel")
    _fails_before_training(root, variant, "stages.contrastive.novel_ngram=0", smoke)
    result, _ = run_stage(root, *variant, "stages.contrastive.novel_ngram=2", *smoke, env=ENV)
    assert result["cache_hit"] is False and result["artifact"] != novel["artifact"]
    assert result["metrics"]["pairs"] == novel["metrics"]["pairs"]


def test_dpo_variant_trains_on_the_same_pairs_and_a_bad_beta_fails_before_training(root, pipeline, smoke):
    conseq = _stage_line(pipeline, '"variant": "conseq"')
    variant = ("stage=contrastive", "stages.contrastive.variant=conseq_dpo")
    _fails_before_training(root, variant, "stages.contrastive.dpo_beta=0", smoke)
    result, _ = run_stage(root, *variant, *smoke, env=ENV)
    metrics = result["metrics"]
    assert result["cache_hit"] is False and metrics["variant"] == "conseq_dpo"
    assert metrics["pairs"] == conseq["metrics"]["pairs"] and metrics["steps"] > 0
    # The preference term was trained: its logged margin and pair accuracy are those of a real run.
    assert 0.0 <= metrics["train_accuracy"] <= 1.0 and math.isfinite(metrics["train_margin"])
    assert math.isfinite(metrics["val_nll"])
    mle = _stage_line(pipeline, '{"stage": "mle"')
    trained = AutoModelForSeq2SeqLM.from_pretrained(result["artifact"]).state_dict()
    start = AutoModelForSeq2SeqLM.from_pretrained(mle["artifact"]).state_dict()
    assert any(not torch.equal(trained[k], start[k]) for k in start)


def test_evaluate_without_an_mle_model_says_which_command_builds_it(tmp_path):
    result, proc = run_stage(
        tmp_path, "stage=evaluate", "debug=smoke", "stages.evaluate.quals=false", check=False, timeout=300
    )
    assert proc.returncode != 0 and result is None
    assert "stage=mle" in proc.stderr


def test_warm_started_qagen_without_its_start_model_says_which_command_builds_it(tmp_path):
    # The tiny QAGen starts from the pretrained model (qagen_model.warm_start=pretrain), or the MLE summarizer
    # (warm_start=mle): asked for first, it must name the missing model and leave no partial QAGen behind.
    result, proc = run_stage(tmp_path, "stage=qagen", "debug=smoke", check=False, timeout=300)
    assert proc.returncode != 0 and result is None
    assert "stage=pretrain" in proc.stderr and "warm_start=pretrain" in proc.stderr
    result, proc = run_stage(
        tmp_path, "stage=qagen", "debug=smoke", "qagen_model.warm_start=mle", check=False, timeout=300
    )
    assert proc.returncode != 0 and result is None
    assert "stage=mle" in proc.stderr and "warm_start=mle" in proc.stderr
    assert not list(tmp_path.glob("cache/qagen/*"))


@pytest.mark.slow
def test_second_round_and_on_policy_variants(root, pipeline, smoke):
    """A second round samples candidates from its round-1 model and starts from it; on-policy pairs take a
    document's best candidate as the positive where it beats the reference."""
    variants = "stages.pipeline.variants=[conseq_novel_round2,conseq_novel_onpolicy]"
    result, proc = run_stage(root, "stage=pipeline", *smoke, variants, "stages.evaluate.extra_scorers=[]", env=ENV)
    assert {"conseq_novel", "conseq_novel_round2", "conseq_novel_onpolicy"} <= set(result["metrics"]["models"])
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]

    def spec(line: dict) -> dict:
        return json.loads((Path(line["artifact"]) / "spec.json").read_text())

    mle_key = Path(next(x for x in lines if x["stage"] == "mle")["artifact"]).name  # first the noisy-reference MLE
    starts = {spec(x)["mle"] for x in lines if x["stage"] == "contrastive"}
    assert len(starts) == 2 and mle_key in starts  # the MLE model (round 1, on-policy) and the round-1 model
    (round1,) = starts - {mle_key}
    assert round1 in {Path(x["artifact"]).name for x in lines if x["stage"] == "contrastive"}
    generators = {spec(x)["mle"] for x in lines if x["stage"] == "generate"}
    assert generators == starts, "round 2's candidates come from the model it starts from"
    on_policy = [x for x in lines if x["stage"] == "partition" and x["metrics"].get("positive") == "best_candidate"]
    assert on_policy and on_policy[0]["metrics"]["candidate_positives"] >= 0


def test_a_variant_with_its_own_negative_ratio_trains_on_its_own_partition():
    from conseq import specs
    from tests.stages.test_pretrain import compose

    cfg = compose()
    rouge = specs.contrastive(cfg, "conseq_rouge").spec["partition"]
    assert rouge == specs.partition(cfg, "rouge", "reference", 0.3).key
    assert rouge != specs.partition(cfg, "rouge", "reference").key  # the partition config's own cut
    # Variants that leave the knob unset keep their keys and their partition.
    assert "partition_negative_ratio" not in specs.contrastive(cfg, "conseq").spec["train"]
    assert specs.contrastive(cfg, "conseq").spec["partition"] == specs.partition(cfg, "quals").key
    assert ("rouge", "reference", 0.3) in specs.pipeline_plan(cfg).partitions


@pytest.mark.slow
def test_rouge_variant_cuts_its_negatives_to_its_own_ratio(pipeline):
    _, proc = pipeline
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    rouge = [x["metrics"] for x in lines if x["stage"] == "partition" and x["metrics"]["scorer"] == "rouge"]
    assert len(rouge) == 1
    # conseq_rouge's 0.3 (configs/stages/contrastive/tiny.yaml), not the smoke partition's 0.6.
    m = rouge[0]
    assert m["negative_cut"] == min(round(0.3 * m["documents"]), m["negative_eligible"])
    assert m["negative_eligible"] > round(0.3 * m["documents"])  # else both ratios would cut alike
    assert 0 < m["pairs"] <= m["negative_cut"]
