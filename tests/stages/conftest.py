"""Fixtures of the stage tests: upstream artifacts built once through the real entry point, and copies of them
in fresh roots (so a test can compare a run against a clean one without retraining the models)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_stage

SMOKE = ("debug=smoke",)
# One thread per process: on a small shared machine torch's default threads spin against other processes
# (the smoke QUALS run is ~4x slower with them).
ENV = {"OMP_NUM_THREADS": "1"}
# The cached artifact kinds up to the trained models (data, the pretrained start, tokenizer, MLE, QA data, QAGen).
MODEL_KINDS = ("data", "pretrain", "tokenizer", "mle", "qa_data", "qagen")


def compose(*overrides: str):
    """The training config, composed in-process as the entry point composes it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from conseq.config import register
    from conseq.train import to_config

    register()
    configs = str(Path(__file__).resolve().parents[2] / "configs")
    with initialize_config_dir(config_dir=configs, version_base="1.3"):
        return to_config(hydra_compose("config", overrides=list(overrides)))


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Path:
    """A root holding the smoke MLE model (and its data and the pretrained model it starts from)."""
    root = tmp_path_factory.mktemp("upstream")
    run_stage(root, "stage=pretrain", *SMOKE, env=ENV)
    run_stage(root, "stage=mle", *SMOKE, env=ENV)
    return root


@pytest.fixture(scope="module")
def with_qagen(upstream) -> Path:
    """The same root with the smoke QAGen model added."""
    run_stage(upstream, "stage=qagen", *SMOKE, env=ENV)
    return upstream


def copy_root(source: Path, dest: Path, kinds: tuple[str, ...] = MODEL_KINDS) -> Path:
    """A fresh root holding copies of ``source``'s finished artifacts of ``kinds``."""
    for kind in kinds:
        for art in (source / "cache" / kind).glob("*"):
            if (art / "_SUCCESS").is_file():
                shutil.copytree(art, dest / "cache" / kind / art.name)
    return dest


def kill_when(root: Path, overrides: list[str], ready: Callable[[], bool], timeout: float = 300) -> int:
    """Start the entry point with ``overrides`` and SIGKILL it (its whole process group) as soon as ``ready()``
    holds. Returns the exit status; fails the test if the run ended before it could be killed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "conseq.train", *overrides, f"paths.root={root}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **ENV},
        start_new_session=True,
    )
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    if proc.poll() is not None:
        stderr = proc.stderr.read().decode()[-3000:]
        pytest.fail(f"the run ended (status {proc.returncode}) before it could be killed:\n{stderr}")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    if not ready():
        pytest.fail(f"the awaited state never came within {timeout} s")
    return proc.returncode


@pytest.fixture(scope="module")
def answering_qagen(upstream, tmp_path_factory) -> Path:
    """A tiny QAGen model trained in seconds to answer any text with "what is it<sep>e".

    The smoke QAGen is too untrained to write a parseable pair, so all its QUALS are null and a partition
    keeps nothing. With this one every summary holding an "e" gets a pair and a QUALS that depends on the
    texts (the model is not saturated), so score and partition have real values to work with.
    """
    import torch
    from transformers import AutoTokenizer

    from conseq.artifacts import read_jsonl
    from conseq.modeling import SEP_TOKEN, build_tiny_model
    from conseq.scoring.quals.scorer import save_qa_format

    tokenizer = AutoTokenizer.from_pretrained(next((upstream / "cache" / "mle").glob("*/tokenizer.json")).parent)
    rows = read_jsonl(next((upstream / "cache" / "data").glob("*/train.jsonl")))[:8]
    texts = [r["summary"] for r in rows] + [r["document"] for r in rows]
    batch = tokenizer(
        texts,
        text_target=[f"what is it{SEP_TOKEN}e"] * len(texts),
        padding=True,
        truncation=True,
        max_length=64,
        return_tensors="pt",
    )
    model = build_tiny_model(
        tokenizer, d_model=32, encoder_layers=1, decoder_layers=1, attention_heads=2, ffn_dim=64, dropout=0.0
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(25):
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("answering_qagen")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    save_qa_format(path)
    return path
