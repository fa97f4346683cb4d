"""Rate summarizer checkpoints on more news-world documents than the default 200-row splits hold.

The README's 1000 + 1000-document ConSeq figures are this measurement: the oracle's hallucination rate of
beam-4 summaries (as ``stage=evaluate`` decodes them), unsupported facts per summary, ROUGE-L and the most
frequent error kinds, on the first N test and validation documents of an exported world. ±0.016 on a rate near
0.6 at N=1000, against ±0.035 on the demo's 200 rows. Export the world first (its first 200 rows of each
split are the default splits):

    python -m conseq.data.newsworld out=/tmp/world n_train=8000 n_qa=0 n_test=1000 n_validation=1000 \\
        knowledge=true noise=0.7 intrinsic_share=0.1      # the demo's world (configs/data/newsworld.yaml)
    accelerate launch --multi_gpu --num_processes 2 scripts/rate_on_world.py /tmp/world 1000 rates.json \\
        mle=outputs/cache/mle/<key> conseq_novel=outputs/cache/contrastive/<key>

Each process decodes its share of the rows; the main process judges them, prints a JSON line per model and
split, and writes all of them to the output file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from conseq.data.newsworld import check_summary
from conseq.decoding import generate_texts
from conseq.metrics import oracle_rates, rouge_scores

SPLITS = ("test", "validation")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("world", type=Path, help="a folder written by python -m conseq.data.newsworld")
    ap.add_argument("rows", type=int, help="rate the first ROWS documents of each split")
    ap.add_argument("output", type=Path, help="JSON file of the rates")
    ap.add_argument("models", nargs="+", metavar="NAME=PATH", help="checkpoints to rate")
    ap.add_argument("--num-beams", type=int, default=4)
    ap.add_argument("--max-source-length", type=int, default=512)
    args = ap.parse_args()
    models = dict(_named(m) for m in args.models)
    rows = {split: _read(args.world / f"{split}.jsonl", args.rows) for split in SPLITS}

    # One process per GPU under accelerate launch; without GPUs, `--multi_gpu` leaves accelerate's CPU flag unset
    # and each process would run alone, so ask for the CPU (gloo) group then (as conseq.runtime does).
    acc = Accelerator(cpu=not torch.cuda.is_available())
    rates: dict[str, dict] = {}
    for name, path in models.items():
        model = AutoModelForSeq2SeqLM.from_pretrained(path).to(acc.device).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
        rates[name] = {}
        for split, records in rows.items():
            with acc.split_between_processes(list(range(len(records)))) as mine:
                mine_outputs = generate_texts(
                    model,
                    tokenizer,
                    [records[i]["document"] for i in mine],
                    max_source_length=args.max_source_length,
                    num_beams=args.num_beams,
                )
            predictions = gather_object([o[0] for o in mine_outputs])[: len(records)]
            if acc.is_main_process:
                rates[name][split] = _rate(records, predictions)
                print(json.dumps({"model": name, "split": split, **rates[name][split]}), flush=True)
    if acc.is_main_process:
        args.output.write_text(json.dumps(rates, indent=1) + "\n")


def _named(arg: str) -> tuple[str, str]:
    name, sep, path = arg.partition("=")
    if not sep or not name or not path:
        raise SystemExit(f"rate_on_world: models are NAME=PATH, got {arg!r}")
    return name, path


def _read(path: Path, n: int) -> list[dict]:
    if not path.is_file():
        raise SystemExit(f"rate_on_world: {path} not found (export the world with python -m conseq.data.newsworld)")
    with path.open(encoding="utf-8") as f:
        records = [json.loads(line) for _, line in zip(range(n), f, strict=False)]
    if len(records) < n:
        raise SystemExit(f"rate_on_world: {path} holds {len(records)} rows, fewer than the {n} asked for")
    return records


def _rate(records: list[dict], predictions: list[str]) -> dict:
    oracle = oracle_rates([check_summary(r, p) for r, p in zip(records, predictions, strict=True)])
    kinds = sorted(oracle.get("error_kinds", {}).items(), key=lambda kv: -kv[1])[:8]
    return {
        "rows": len(records),
        "hallucination_rate": round(oracle["hallucination_rate"], 4),
        "unsupported_facts_per_summary": round(oracle["unsupported_facts_per_summary"], 4),
        "rougeL": round(rouge_scores(predictions, [r["summary"] for r in records])["rougeL"], 2),
        "error_groups": {group: round(share, 3) for group, share in oracle.get("error_groups", {}).items()},
        "error_kinds": {kind: round(share, 3) for kind, share in kinds},
    }


if __name__ == "__main__":
    main()
