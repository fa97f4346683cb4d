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
