"""The Python half of scripts/gpu_check.sh: ``python -m conseq.train stage=pipeline <overrides>`` run in this
process, each stage's result line noted with the stage's wall time and peak GPU memory, then the speeds.

    python scripts/gpu_check.py paths.root=/tmp/check model.d_model=768 …     # scripts/gpu_check.sh passes these

Rates are whole-stage rates (model setup, validation and saving included), from one uninterrupted run:
- MLE tokens/s: the train split's source + target tokens (truncated as the stage truncates them) × epochs, over
  the mle stage's time;
- generation documents/s: training documents given candidates, over the generate stage's time;
- QUALS summaries/s: references + candidates scored, over the score stage's time;
- peak GPU memory: torch.cuda.max_memory_allocated() over each stage (reset between stages).
Exits 1 with a message where no CUDA device is present.
"""

from __future__ import annotations

import json
import runpy
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    import torch

    if not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device here (torch.cuda.is_available() is False): run it on a machine with a GPU",
            file=sys.stderr,
        )
        return 1
    from conseq import runtime

    stages: list[dict] = []
    emit, clock = runtime.emit_result, [time.perf_counter()]

    def noting(stage: str, artifact, cache_hit: bool, metrics: dict) -> dict:
        line = emit(stage, artifact, cache_hit, metrics)
        now = time.perf_counter()
        peak = torch.cuda.max_memory_allocated() / 2**30
        stages.append({**line, "seconds": now - clock[0], "peak_gib": peak})
        torch.cuda.reset_peak_memory_stats()
        clock[0] = now
        return line

    runtime.emit_result = noting  # stages call runtime.emit_result(...) through the module: this one is seen
    sys.argv = ["conseq.train", "stage=pipeline", *argv]
    try:
        runpy.run_module("conseq.train", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        if done.code not in (0, None):
            return done.code if isinstance(done.code, int) else 1
    print(report(stages, torch.cuda.get_device_name()), flush=True)
    return 0


def report(stages: list[dict], device: str) -> str:
    first = {}
    for line in stages:
        first.setdefault(line["stage"], line)
    rows = [f"gpu_check on {device}", "", "| stage | seconds | peak GPU memory (GiB) | cache hit |", "|---" * 4 + "|"]
    rows += [f"| {s['stage']} | {s['seconds']:.1f} | {s['peak_gib']:.2f} | {s['cache_hit']} |" for s in stages]
    rows.append("")
    if "mle" in first:
        tokens = mle_tokens(Path(first["mle"]["artifact"]))
        rows.append(f"MLE: {tokens / first['mle']['seconds']:,.0f} tokens/s ({tokens:,} tokens)")
    if "generate" in first:
        g = first["generate"]
        rows.append(f"candidate generation: {g['metrics']['rows'] / g['seconds']:,.1f} documents/s")
    if "score" in first and "generate" in first:
        summaries = first["generate"]["metrics"]["rows"] + first["generate"]["metrics"]["candidates"]
        rows.append(f"QUALS: {summaries / first['score']['seconds']:,.1f} summaries/s ({summaries} summaries)")
    rows.append(f"peak GPU memory: {max(s['peak_gib'] for s in stages):.2f} GiB")
    if any(s["cache_hit"] for s in stages):
        rows.append("(a cache hit's time is no rate: give a fresh paths.root / GPU_CHECK_ROOT)")
    return "\n".join(rows)


def mle_tokens(artifact: Path) -> int:
    """Source + target tokens the mle stage trained on: its train split, tokenized and truncated as it does, × its
    epochs (gpu_check.sh sets no max_steps)."""
    from transformers import AutoTokenizer

    spec = json.loads((artifact / "spec.json").read_text())
    rows = [json.loads(line) for line in (artifact.parents[1] / "data" / spec["data"] / "train.jsonl").open()]
    tokenizer = AutoTokenizer.from_pretrained(artifact)
    max_source, max_target = spec["lengths"]
    sources = tokenizer([r["document"] for r in rows], truncation=True, max_length=max_source)["input_ids"]
    targets = tokenizer([r["summary"] for r in rows], truncation=True, max_length=max_target)["input_ids"]
    per_epoch = sum(map(len, sources)) + sum(map(len, targets))
    return round(per_epoch * float(spec["train"]["epochs"]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
