"""stage=pretrain through the real entry point on the smoke news world, and the warm start of the stages that use
its checkpoint (model.warm_start=pretrain, the tiny default)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from tests.conftest import corpus, run_stage
from tests.stages.conftest import ENV, kill_when
from tests.stages.conftest import compose as compose_config

SMOKE = ("stage=pretrain", "debug=smoke")


def compose(*overrides: str):
    """The training config with a root that holds nothing: these tests read keys, never artifacts."""
    return compose_config("paths.root=/nonexistent", *overrides)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pretrain")


@pytest.fixture(scope="module")
def pretrained(root) -> dict:
    return run_stage(root, *SMOKE, env=ENV)[0]


def test_result_line_and_a_folder_automodel_loads_with_a_mask_token(pretrained):
    from conseq.modeling import build_tiny_model

    assert pretrained["stage"] == "pretrain" and pretrained["cache_hit"] is False
    m = pretrained["metrics"]
    assert m["steps"] == 6 and m["documents"] == 48 and m["validation_documents"] == 8  # debug=smoke's sizes
    assert math.isfinite(m["train_loss"]) and math.isfinite(m["val_loss"])
    path = Path(pretrained["artifact"])
    assert not (path / "training_state").exists() and not (path / "best").exists()
    spec = json.loads((path / "spec.json").read_text())
    assert spec["stage"] == "pretrain" and "noise" not in spec["corpus"]["newsworld"]

    model = AutoModelForSeq2SeqLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.mask_token == "<mask>" and tokenizer.mask_token_id == tokenizer.convert_tokens_to_ids("<mask>")
    assert len(tokenizer) == m["vocab_size"] == model.config.vocab_size == 600  # debug=smoke's model.vocab_size
    batch = tokenizer(["Elena Novak won the <mask> in Valmora on Monday."], return_tensors="pt")
    assert model.generate(**batch, max_new_tokens=8, num_beams=2).shape[1] > 1

    # trained from the seeded random start: every parameter moved
    cfg = compose("debug=smoke")
    initial = dict(
        build_tiny_model(tokenizer, seed=cfg.stages.pretrain.seed, **cfg.model.scratch_dims()).named_parameters()
    )
    assert [n for n, p in model.named_parameters() if torch.equal(p, initial[n])] == []


def test_second_run_is_a_cache_hit(root, pretrained):
    again, _ = run_stage(root, *SMOKE, env=ENV)
    assert again["cache_hit"] is True and again["artifact"] == pretrained["artifact"]
    assert again["metrics"] == pretrained["metrics"]


def test_mle_starts_from_it_by_default_and_from_random_weights_with_none(root, pretrained):
    mle, _ = run_stage(root, "stage=mle", "debug=smoke", env=ENV)
    spec = json.loads((Path(mle["artifact"]) / "spec.json").read_text())
    assert spec["model"] == {"warm_start_pretrain": Path(pretrained["artifact"]).name}
    tokenizer = AutoTokenizer.from_pretrained(mle["artifact"])
    assert tokenizer.get_vocab() == AutoTokenizer.from_pretrained(pretrained["artifact"]).get_vocab()
    assert not (root / "cache" / "tokenizer").exists()  # the pretrained model brought its own

    scratch, _ = run_stage(root, "stage=mle", "debug=smoke", "model.warm_start=none", env=ENV)
    assert scratch["artifact"] != mle["artifact"]
    spec = json.loads((Path(scratch["artifact"]) / "spec.json").read_text())
    assert set(spec["model"]) == {"scratch", "tokenizer"}
    assert (root / "cache" / "tokenizer" / spec["model"]["tokenizer"] / "_SUCCESS").is_file()


def test_keys_of_the_warm_starts():
    from conseq import specs
    from conseq.stages.pipeline import _starts_from_pretrain

    # null and none are today's random start, keyed as before pretrain existed
    null, none = compose("model.warm_start=null"), compose("model.warm_start=none")
    assert specs.mle(null).spec["model"] == {
        "scratch": null.model.scratch_dims(),
        "tokenizer": specs.tokenizer(null, null.model).key,
    }
    assert specs.mle(none).key == specs.mle(null).key
    default = compose()
    assert default.model.warm_start == "pretrain" and specs.tokenizer(default, default.model) is None
    assert specs.mle(default).spec["model"] == {"warm_start_pretrain": specs.pretrain(default).key}
    for model in ("qagen", "qg", "qa", "factcc"):
        assert getattr(specs, model)(default).spec["model"] == {"warm_start_pretrain": specs.pretrain(default).key}
    # a named model wins over the warm start
    named = compose("model.name_or_path=facebook/bart-large")
    assert specs.mle(named).spec["model"] == {"name_or_path": "facebook/bart-large"}

    # the corpus is the world's documents: reference knobs and logging leave the checkpoint alone
    key = specs.pretrain(default).key
    for same in (
        "data.world.noise=0",
        "data.world.intrinsic_share=0.5",
        "data.world.n_qa=10",
        "stages.pretrain.save_every=7",
    ):
        assert specs.pretrain(compose(same)).key == key, same
    for other in (
        "data.world.seed=1",
        "data.world.n_train=10",
        "stages.pretrain.mask_ratio=0.2",
        "model.d_model=64",
        "model.vocab_size=500",
    ):
        assert specs.pretrain(compose(other)).key != key, other

    with pytest.raises(ValueError, match="choose null"):
        specs.mle(compose("model.warm_start=bert"))
    with pytest.raises(ValueError, match="starts from pretrain or random weights"):
        specs.mle(compose("model.warm_start=mle"))

    # the pipeline pretrains when any model it trains starts from the checkpoint
    assert _starts_from_pretrain(default)
    starts = [f"{m}.warm_start=none" for m in ("model", "qagen_model", "qg_model", "qa_model", "factcc_model")]
    assert not _starts_from_pretrain(compose(*starts))
    assert _starts_from_pretrain(compose(*starts[:-1]))  # FactCC's model alone
    assert not _starts_from_pretrain(compose(*starts[:-1], "factcc=some/classifier"))


def test_a_missing_checkpoint_names_the_command_that_builds_it(tmp_path):
    result, proc = run_stage(tmp_path, "stage=mle", "debug=smoke", check=False, env=ENV)
    assert proc.returncode != 0 and result is None
    assert "stage=pretrain" in proc.stderr and "warm_start=pretrain" in proc.stderr
    assert not list(tmp_path.glob("cache/mle/*"))


def test_pretrains_on_the_documents_of_a_jsonl_train_split(tmp_path):
    data = tmp_path / "train.jsonl"
    rows = [{"id": str(i), "document": doc, "summary": doc.split(",")[0]} for i, doc in enumerate(corpus(60))]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result, _ = run_stage(tmp_path / "out", *SMOKE, "data=jsonl", f"data.train_file={data}", env=ENV)
    spec = json.loads((Path(result["artifact"]) / "spec.json").read_text())
    assert set(spec["corpus"]) == {"data"}
    # the data artifact holds 3 of the 60 rows out for validation (5%): 48 of the other 57 train it
    assert result["metrics"]["documents"] == 48 and result["metrics"]["validation_documents"] == 3
    assert AutoTokenizer.from_pretrained(result["artifact"]).mask_token == "<mask>"


@pytest.mark.slow
def test_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    # 16 steps of 8 of the 48 documents: three epochs, each with its own noise, killed after its first saved state.
    overrides = [*SMOKE, "stages.pretrain.max_steps=16", "stages.pretrain.save_every=4"]
    clean, _ = run_stage(tmp_path / "clean", *overrides, env=ENV)
    killed = tmp_path / "killed"
    assert (
        kill_when(killed, overrides, lambda: any(killed.glob("cache/pretrain/*.partial/training_state/trainer.json")))
        == -9
    )
    resumed, proc = run_stage(killed, *overrides, env=ENV)
    assert "resuming from step" in proc.stderr and resumed["metrics"]["resumed_from"] >= 4
    assert resumed["metrics"]["steps"] == 16 and Path(resumed["artifact"]).name == Path(clean["artifact"]).name
    a = AutoModelForSeq2SeqLM.from_pretrained(clean["artifact"]).state_dict()
    b = AutoModelForSeq2SeqLM.from_pretrained(resumed["artifact"]).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.distributed
def test_two_processes_share_the_steps(tmp_path):
    from tests.distributed.test_launch import launch

    result, proc = launch(tmp_path, *SMOKE)
    assert result["stage"] == "pretrain" and result["metrics"]["steps"] == 6 and "[rank 1/2]" in proc.stderr
    assert math.isfinite(result["metrics"]["val_loss"])
    AutoModelForSeq2SeqLM.from_pretrained(result["artifact"])
