"""Exact resume: a training stage SIGKILLed after it saved its state, then run again, ends with bit-for-bit the
weights of a run that was never interrupted (CPU; DESIGN §4 "Training resumes from its last saved state")."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import run_stage
from tests.stages.conftest import ENV, SMOKE, kill_when

pytestmark = pytest.mark.slow


def weights(artifact: str) -> dict[str, torch.Tensor]:
    return load_file(Path(artifact) / "model.safetensors")


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert differ == [], f"{len(differ)} of {len(a)} tensors differ after resuming, e.g. {differ[:3]}"


def killed_and_resumed(root: Path, stage: str, overrides: list[str]) -> tuple[dict, dict]:
    """(the weights of an uninterrupted run, those of a run killed after its first saved state and run again), in
    one root: the killed run starts with force=true, which discards the finished artifact (read first) but not
    its inputs."""
    clean, _ = run_stage(root, *overrides, env=ENV)
    clean_weights = weights(clean["artifact"])
    saved = f"cache/{stage}/*.partial/training_state/trainer.json"
    assert kill_when(root, [*overrides, "force=true"], lambda: any(root.glob(saved))) == -9
    assert not (Path(clean["artifact"]) / "_SUCCESS").exists()
    resumed, proc = run_stage(root, *overrides, env=ENV)
    assert "resuming from step" in proc.stderr, proc.stderr[-3000:]
    assert resumed["metrics"]["resumed_from"] > 0 and resumed["artifact"] == clean["artifact"]
    assert resumed["metrics"]["steps"] == clean["metrics"]["steps"] >= 8
    return clean_weights, weights(resumed["artifact"])


def test_mle_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    # From random weights with dropout on, so that the dropout masks' random stream must resume exactly too;
    # ~5 batches an epoch × 8 epochs, a state every 3 steps, validation every 8.
    overrides = [
        "stage=mle",
        *SMOKE,
        "model.warm_start=none",
        "model.dropout=0.1",
        "stages.mle.epochs=8",
        "stages.mle.save_every=3",
        "stages.mle.eval_every=8",
        "stages.mle.eval_samples=0",
    ]
    assert_bitwise_equal(*killed_and_resumed(tmp_path, "mle", overrides))


@pytest.fixture(scope="module")
def partitioned(upstream, answering_qagen) -> tuple[Path, tuple[str, ...]]:
    """The smoke root with the MLE model's candidates scored by an answering QAGen and partitioned."""
    smoke = (*SMOKE, f"qagen={answering_qagen}")
    for stage in ("generate", "score", "partition"):
        run_stage(upstream, f"stage={stage}", *smoke, env=ENV)
    return upstream, smoke


def test_contrastive_resumes_to_the_weights_of_an_uninterrupted_run(partitioned):
    root, smoke = partitioned
    overrides = [
        "stage=contrastive",
        *smoke,
        "stages.contrastive.batch_size=4",
        "stages.contrastive.epochs=6",
        "stages.contrastive.save_every=2",
        "stages.contrastive.eval_every=5",
    ]
    assert_bitwise_equal(*killed_and_resumed(root, "contrastive", overrides))
