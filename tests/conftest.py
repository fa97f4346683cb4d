"""Shared fixtures: tiny random BART models saved as real ``save_pretrained`` folders, so production code
loads them by path exactly as it loads ``facebook/bart-large``."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

_NAMES = ["Anna Berg", "Tom Reyes", "Lena Park", "Omar Haddad", "Ines Costa", "Jon Ito"]
_PLACES = ["Lisbon", "Oslo", "Lagos", "Quito", "Hanoi", "Perth"]
_ORGS = ["Porto Rovers", "Delta Bank", "North Party", "Helix Labs"]


def corpus(n: int = 200, seed: int = 0) -> list[str]:
    """Small news-like sentences: enough text to train a byte-level BPE and exercise every code path."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        name, place, org = rng.choice(_NAMES), rng.choice(_PLACES), rng.choice(_ORGS)
        out.append(f"{name} of {org} won {rng.randint(2, 9)} games in {place} on Monday, officials said.")
    return out


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (only present in the project's workspace)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random BART + byte-level BPE tokenizer (with <sep>) saved with save_pretrained."""
    from conseq.modeling import build_tiny_model, train_tokenizer

    tokenizer = train_tokenizer(corpus(), vocab_size=400)
    model = build_tiny_model(
        tokenizer, d_model=32, encoder_layers=1, decoder_layers=2, attention_heads=2, ffn_dim=64, seed=0
    )
    path = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def run_stage(root: Path, *overrides: str, check: bool = True, timeout: int = 600, env: dict | None = None):
    """Run the real entry point in a subprocess; return (last stdout line as JSON or None, CompletedProcess)."""
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "conseq.train", *overrides, f"paths.root={root}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    result = json.loads(lines[-1]) if lines and proc.returncode == 0 else None
    return result, proc


def qa_examples(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(passage, "question<sep>answer") pairs over ``corpus``-style sentences, for a tiny trained QAGen."""
    from conseq.modeling import SEP_TOKEN

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        name, place, org, k = rng.choice(_NAMES), rng.choice(_PLACES), rng.choice(_ORGS), rng.randint(2, 9)
        passage = f"{name} of {org} won {k} games in {place} on Monday, officials said."
        question, answer = rng.choice(
            [
                (f"Who won {k} games in {place}?", name),
                (f"Where did {name} win?", place),
                (f"How many games did {name} win?", str(k)),
                (f"Which team does {name} play for?", org),
            ]
        )
        out.append((passage, f"{question}{SEP_TOKEN}{answer}"))
    return out


@pytest.fixture(scope="session")
def qagen_model_dir(tmp_path_factory) -> Path:
    """A tiny BART trained for a few seconds on ``qa_examples`` (passage -> question<sep>answer), saved as
    the qagen stage saves (with conseq_qagen.json). Its diverse-beam outputs mix well-formed pairs whose
    answer is in the passage with malformed ones (no or two <sep>) and wrong answers, so every QUALS path
    is exercised."""
    import torch

    from conseq.modeling import build_tiny_model, train_tokenizer
    from conseq.scoring.quals.scorer import save_qa_format

    data = qa_examples(2000, seed=0)
    tokenizer = train_tokenizer(corpus() + [t for _, t in qa_examples(200, seed=1)], vocab_size=400)
    model = build_tiny_model(
        tokenizer, d_model=64, encoder_layers=1, decoder_layers=1, attention_heads=2, ffn_dim=128, dropout=0.0
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only contend on a shared machine
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(250):
        batch = data[step * 32 % len(data) :][:32]
        passages, targets = [p for p, _ in batch], [t for _, t in batch]
        enc = tokenizer(passages, text_target=targets, return_tensors="pt", padding=True)
        labels = enc["labels"].masked_fill(enc["labels"] == tokenizer.pad_token_id, -100)
        model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("qagen_model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    save_qa_format(path, qa_format="conseq")
    return path


@pytest.fixture(scope="session")
def nli_model_dir(tmp_path_factory):
    """A tiny random RoBERTa NLI classifier (3 classes, MNLI's names) with a byte-level BPE tokenizer, saved."""
    from transformers import RobertaConfig, RobertaForSequenceClassification

    from conseq.modeling import train_tokenizer

    tokenizer = train_tokenizer(corpus(), vocab_size=400)
    labels = {0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"}
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=66,  # 64 tokens: RoBERTa's positions start after the padding index
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        type_vocab_size=1,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    path = tmp_path_factory.mktemp("nli_model")
    RobertaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
