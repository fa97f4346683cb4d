"""stage=mle through the real entry point on the embedded default, shrunk by debug=smoke."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from tests.conftest import run_stage

SMOKE = ("stage=mle", "debug=smoke")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mle")


@pytest.fixture(scope="module")
def trained(root):
    result, _ = run_stage(root, *SMOKE)
    return result


def test_result_line_and_artifact(trained):
    assert trained["stage"] == "mle" and trained["cache_hit"] is False
    path = Path(trained["artifact"])
    for name in ("spec.json", "metrics.json", "_SUCCESS", "config.json", "tokenizer.json"):
        assert (path / name).is_file(), name
    assert not path.with_name(path.name + ".partial").exists()
    assert json.loads((path / "spec.json").read_text())["stage"] == "mle"
    assert trained["metrics"]["steps"] > 0
    assert torch.isfinite(torch.tensor(trained["metrics"]["train_loss"]))


def test_artifact_loads_and_summarizes(trained):
    model = AutoModelForSeq2SeqLM.from_pretrained(trained["artifact"])
    tokenizer = AutoTokenizer.from_pretrained(trained["artifact"])
    batch = tokenizer(["Anna Berg won the final in Oslo on Monday."], return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=8, num_beams=2)
    assert out.shape[1] > 1
    assert isinstance(tokenizer.decode(out[0], skip_special_tokens=True), str)


def test_every_parameter_changed(trained):
    from conseq.modeling import build_tiny_model

    model = AutoModelForSeq2SeqLM.from_pretrained(trained["artifact"])
    tokenizer = AutoTokenizer.from_pretrained(trained["artifact"])
    c = model.config
    initial = build_tiny_model(
        tokenizer,
        d_model=c.d_model,
        encoder_layers=c.encoder_layers,
        decoder_layers=c.decoder_layers,
        attention_heads=c.encoder_attention_heads,
        ffn_dim=c.encoder_ffn_dim,
        max_position_embeddings=c.max_position_embeddings,
        dropout=c.dropout,
        seed=0,
    )
    before = dict(initial.named_parameters())
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p, before[n])]
    # BART's final_logits_bias is a buffer, not a parameter; everything trainable must have moved.
    assert unchanged == []


def test_second_run_is_a_cache_hit_and_force_rebuilds(root, trained):
    again, _ = run_stage(root, *SMOKE)
    assert again["cache_hit"] is True and again["artifact"] == trained["artifact"]
    forced, _ = run_stage(root, *SMOKE, "force=true")
    assert forced["cache_hit"] is False and forced["artifact"] == trained["artifact"]


def test_typo_fails_at_compose_time(root):
    _result, proc = run_stage(root, *SMOKE, "stages.mle.learning_rate=1", check=False)
    assert proc.returncode != 0 and "learning_rate" in proc.stderr
    assert not (root / "cache" / "mle").exists() or all(
        (p / "_SUCCESS").exists() for p in (root / "cache" / "mle").iterdir() if not p.name.endswith(".partial")
    )


@pytest.mark.slow
def test_killed_run_resumes_from_last_saved_step(tmp_path):
    overrides = [*SMOKE, "stages.mle.epochs=40", "stages.mle.save_every=4", f"paths.root={tmp_path}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "conseq.train", *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
        start_new_session=True,
    )
    deadline = time.time() + 300
    state = None
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "cache" / "mle").glob("*.partial/training_state/trainer.json"))
        if found:
            state = found[0]
            break
        time.sleep(0.2)
    assert state is not None, "the run finished or failed before saving a training state; cannot test resume"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved_step = json.loads(state.read_text())["step"]
    result, done = run_stage(tmp_path, *SMOKE, "stages.mle.epochs=40", "stages.mle.save_every=4")
    assert f"resuming from step {saved_step}" in done.stderr or "resuming from step" in done.stderr
    assert result["metrics"]["resumed_from"] >= saved_step
    assert result["metrics"]["steps"] == 160  # 64 rows / 16 per batch × 40 epochs, wherever it was killed


def _bad_jsonl(path: Path) -> Path:
    rows = [
        '{"id": "a", "document": "Anna Berg won in Oslo.", "summary": "Berg won."}',
        '{"id": "b", "document": "", "summary": "Empty document."}',
        '{"id": "c", "document": "Tom Reyes lost in Lagos.", "summary": null}',
        '{"id": "d", "document": "Lena Park signed in Quito."}',
        '{"id": "e", "document": "broken line"',
    ] + [
        json.dumps({"id": f"ok{i}", "document": f"Ines Costa scored {i} goals in Perth.", "summary": f"Costa {i}."})
        for i in range(20)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_bad_rows_error_names_file_line_field_and_writes_nothing(tmp_path):
    data = _bad_jsonl(tmp_path / "bad.jsonl")
    result, proc = run_stage(
        tmp_path / "out",
        *SMOKE,
        "data=jsonl",
        f"data.train_file={data}",
        "data.on_bad_row=error",
        check=False,
    )
    assert proc.returncode != 0 and result is None
    assert "bad.jsonl" in proc.stderr and "line 2" in proc.stderr and "document" in proc.stderr
    assert not list((tmp_path / "out" / "cache").glob("*/*/_SUCCESS"))
    assert not list((tmp_path / "out" / "cache").glob("data/*"))


def test_bad_rows_are_skipped_and_counted(tmp_path):
    data = _bad_jsonl(tmp_path / "bad.jsonl")
    result, _ = run_stage(tmp_path / "out", *SMOKE, "data=jsonl", f"data.train_file={data}")
    assert result["metrics"]["data_train_rows_skipped"] == 4
    assert result["metrics"]["data_rows_skipped"] == 4


def test_trains_on_real_xsum_jsonl(tmp_path, shared_data):
    result, _ = run_stage(
        tmp_path,
        *SMOKE,
        "data=jsonl",
        f"data.train_file={shared_data / 'xsum' / 'xsum_test_1000.jsonl'}",
        "data.max_train_rows=64",
    )
    assert result["metrics"]["steps"] > 0 and result["metrics"]["truncated_sources"] > 0
