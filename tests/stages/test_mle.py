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
    run_stage(root, "stage=pretrain", "debug=smoke")  # the tiny model's default start (model.warm_start=pretrain)
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
    model = AutoModelForSeq2SeqLM.from_pretrained(trained["artifact"])
    start = json.loads((Path(trained["artifact"]) / "spec.json").read_text())["model"]["warm_start_pretrain"]
    initial = AutoModelForSeq2SeqLM.from_pretrained(Path(trained["artifact"]).parents[1] / "pretrain" / start)
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
    # From random weights (model.warm_start=none): resuming does not depend on the start.
    overrides = [
        *SMOKE,
        "model.warm_start=none",
        "stages.mle.epochs=40",
        "stages.mle.save_every=4",
        f"paths.root={tmp_path}",
    ]
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
    result, done = run_stage(tmp_path, *overrides[:-1])
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
        "model.warm_start=none",  # the data fails before any model is needed
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
    result, _ = run_stage(tmp_path / "out", *SMOKE, "model.warm_start=none", "data=jsonl", f"data.train_file={data}")
    assert result["metrics"]["data_train_rows_skipped"] == 4
    assert result["metrics"]["data_rows_skipped"] == 4


def test_trains_on_real_xsum_jsonl(tmp_path, shared_data):
    result, _ = run_stage(
        tmp_path,
        *SMOKE,
        "model.warm_start=none",  # stage=pretrain on these documents: tests/stages/test_pretrain.py
        "data=jsonl",
        f"data.train_file={shared_data / 'xsum' / 'xsum_test_1000.jsonl'}",
        "data.max_train_rows=64",
    )
    assert result["metrics"]["steps"] > 0 and result["metrics"]["truncated_sources"] > 0


def test_local_model_folder_is_keyed_by_content(trained, root, tmp_path):
    """A stage that starts from a local folder reruns when new weights are written into that same folder."""
    import shutil

    from conseq.artifacts import model_identity

    local = tmp_path / "start"
    shutil.copytree(trained["artifact"], local)
    copy = tmp_path / "copy"
    shutil.copytree(local, copy)
    assert model_identity(str(local)) == model_identity(str(copy))  # the content, not the path
    assert model_identity("facebook/bart-large") == "facebook/bart-large"  # a hub id stays itself
    args = (*SMOKE, f"model.name_or_path={local}", "stages.mle.max_steps=2", "stages.mle.eval_samples=0")
    first, _ = run_stage(root, *args)
    again, _ = run_stage(root, *args)
    assert not first["cache_hit"] and again["cache_hit"] and again["artifact"] == first["artifact"]
    model = AutoModelForSeq2SeqLM.from_pretrained(local)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    model.save_pretrained(local)  # new weights, same folder, same path in the command
    assert model_identity(str(local)) != model_identity(str(copy))
    changed, _ = run_stage(root, *args)
    assert not changed["cache_hit"] and changed["artifact"] != first["artifact"]
