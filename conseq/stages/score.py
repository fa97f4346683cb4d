"""stage=score: QUALS of every candidate and every reference of the candidates artifact.

    python -m conseq.train stage=score                                  # the QAGen model of stage=qagen
    python -m conseq.train stage=score qagen=/path/to/qagen             # any compatible QAGen checkpoint
    accelerate launch --multi_gpu -m conseq.train stage=score …         # the same on many processes

QUALS settings are ``stages.score.quals`` (reference/quals_conseq.md §3). Per-item cache: every (document,
summary) scored is appended, as ``{"key": sha256(document \\0 summary), "quals", "n_pairs"}``, to this run's own
jsonl file in ``<root>/cache/quals_items/<key>/``, a store keyed by the QAGen model and the QUALS settings that
change values; the file is flushed after every batch and a line cut short by a kill is ignored on read. A
restarted run, or one over more documents or candidates, scores only what the store lacks.

Sharding: the candidate rows are cut into fixed shards of ``shard_size`` rows; shard i goes to process
i % num_processes. Within a shard the summaries of one document go into one QualsScorer call, so its source is
encoded once for all of them. When every process is done, the main process writes ``scores.jsonl`` in
candidates order: ``{"id", "reference_quals", "candidate_quals": […], "reference_pairs", "candidate_pairs": […]}``
(QUALS null when no QA pair survived the filter). Metrics: the QUALS distribution of references and candidates,
nulls, items scored vs reused from the store, and on the news world the ROC-AUC of −QUALS for "hallucinated"
according to the oracle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from conseq import runtime, specs
from conseq.artifacts import item_store, read_jsonl, run_dir, write_jsonl
from conseq.config import Config
from conseq.metrics import roc_auc
from conseq.scoring.quals.scorer import QualsScorer

log = logging.getLogger(__name__)
# QualsConfig knobs that change no value (speed and memory only; token_logprobs: the items hold no QA pairs);
# everything else keys the per-item store.
NOT_VALUE = ("batch_size", "max_rows", "token_logprobs")


def run(cfg: Config) -> dict | None:
    # setup
    s = cfg.stages.score
    art = specs.scores(cfg)
    if art.done and not cfg.force:
        return runtime.emit_result("score", art.path, True, art.metrics())
    cand_art = specs.require(specs.candidates(cfg), "stage=generate", "candidate summaries")
    qagen_path, qagen_id = specs.qagen_location(cfg)
    settings = s.quals.keyed(*NOT_VALUE)
    rt = runtime.start(run_dir=run_dir(cfg.paths.root, f"score-{art.key}"), seed=cfg.seed)
    acc = rt.accelerator
    with acc.main_process_first():
        store = item_store(cfg.paths.root, "quals_items", {"qagen": qagen_id, "quals": settings})
        if acc.is_main_process:
            art.start(force=cfg.force)
        # The main process reads before any process of this run writes: what it sees was there before.
        known = read_store(store)
    before = set(known)
    rows = read_jsonl(cand_art.path / "candidates.jsonl")
    scorer = QualsScorer.from_pretrained(qagen_path, device=acc.device, **{**asdict(s.quals), "token_logprobs": False})

    # loop
    shards = [rows[start : start + s.shard_size] for start in range(0, len(rows), s.shard_size)]
    mine = [i for i in range(len(shards)) if i % acc.num_processes == acc.process_index]
    out_file = store / f"items-{uuid.uuid4().hex[:12]}-p{acc.process_index}.jsonl"
    for i in tqdm(mine, desc="score shards", disable=not acc.is_main_process):
        todo: dict[str, dict[str, None]] = {}  # document → its summaries the store lacks (ordered, distinct)
        for row in shards[i]:
            for summary in [row["reference"], *row["candidates"]]:
                if item_key(row["document"], summary) not in known:
                    todo.setdefault(row["document"], {})[summary] = None
        for chunk in document_batches(todo, s.quals.batch_size):
            documents = [d for d, summaries in chunk for _ in summaries]
            summaries = [x for _, summaries in chunk for x in summaries]
            results = scorer.score(documents, summaries)
            items = {
                item_key(d, x): {"quals": r.quals, "n_pairs": len(r.qa_pairs)}
                for d, x, r in zip(documents, summaries, results, strict=True)
            }
            append_items(out_file, items)
            known.update(items)
    # Truncations, nulls and pair counts of the items this run scored; a collective, so it also waits for every
    # process to finish its shards.
    run_stats: Counter = Counter()
    for stats in gather_object([dict(scorer.stats)]):
        run_stats.update(stats)  # update, not +: keeps the zero counts

    # save
    result = None
    if acc.is_main_process:
        done = read_store(store)
        scores = [scores_row(row, done, store) for row in rows]
        write_jsonl(art.partial / "scores.jsonl", scores)
        metrics = score_stats(scores)
        unique = {item_key(r["document"], x) for r in rows for x in [r["reference"], *r["candidates"]]}
        reused = len(unique & before)
        metrics.update(items=len(unique), items_scored=len(unique) - reused, items_reused=reused)
        metrics.update({f"this_run_{k}": v for k, v in sorted(run_stats.items())})
        if cfg.data.source == "newsworld":
            metrics.update(oracle_auc(rows, scores))
        art.finish(metrics)
        log.info("scores %s: %s", art.path, metrics)
        result = runtime.emit_result("score", art.path, False, metrics)
    acc.wait_for_everyone()
    rt.close()
    return result


def item_key(document: str, summary: str) -> str:
    return hashlib.sha256(f"{document}\0{summary}".encode()).hexdigest()


def document_batches(by_document: dict[str, dict[str, None]], size: int) -> list[list[tuple[str, list[str]]]]:
    """Whole documents with their summaries, grouped until a batch holds at least ``size`` summaries."""
    batches, current, count = [], [], 0
    for document, summaries in by_document.items():
        current.append((document, list(summaries)))
        count += len(summaries)
        if count >= size:
            batches.append(current)
            current, count = [], 0
    return [*batches, current] if current else batches


def append_items(path: Path, items: dict[str, dict[str, Any]]) -> None:
    """Append to this process's store file and flush, so a kill loses at most the batch being written."""
    with path.open("a") as f:
        f.write("".join(json.dumps({"key": k, **v}) + "\n" for k, v in items.items()))
        f.flush()


def read_store(store: Path) -> dict[str, dict[str, Any]]:
    """Every item of the store's files; a last line cut short by a kill is ignored, any other bad line fails."""
    items = {}
    for path in sorted(store.glob("items-*.jsonl")):
        lines = path.read_text().split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                if number == len(lines):  # no newline after it: the write was interrupted
                    log.warning("%s: ignoring a truncated last line (an interrupted run)", path)
                    continue
                raise ValueError(f"{path}, line {number}: not JSON ({err}); delete the file to rescore it") from err
            items[item.pop("key")] = item
    return items


def scores_row(row: dict, items: dict[str, dict[str, Any]], store: Path) -> dict[str, Any]:
    keys = [item_key(row["document"], x) for x in [row["reference"], *row["candidates"]]]
    missing = [k for k in keys if k not in items]
    if missing:
        raise RuntimeError(f"{len(missing)} summaries of row {row['id']} are not in {store} after scoring")
    reference, *candidates = (items[k] for k in keys)
    return {
        "id": row["id"],
        "reference_quals": reference["quals"],
        "candidate_quals": [c["quals"] for c in candidates],
        "reference_pairs": reference["n_pairs"],
        "candidate_pairs": [c["n_pairs"] for c in candidates],
    }


def score_stats(scores: list[dict]) -> dict[str, Any]:
    """Mean and percentiles of the non-null QUALS of references and of candidates, and the null counts."""
    metrics: dict[str, Any] = {"rows": len(scores)}
    groups = {
        "reference": [s["reference_quals"] for s in scores],
        "candidate": [q for s in scores for q in s["candidate_quals"]],
    }
    for name, values in groups.items():
        kept = np.array([v for v in values if v is not None], dtype=float)
        metrics[f"{name}_quals_null"] = len(values) - len(kept)
        if len(kept):
            metrics[f"{name}_quals_mean"] = float(kept.mean())
            metrics.update({f"{name}_quals_p{p}": float(np.percentile(kept, p)) for p in (10, 50, 90)})
    return metrics


def oracle_auc(rows: list[dict], scores: list[dict]) -> dict[str, float]:
    """ROC-AUC of −QUALS for "hallucinated per the news world oracle" (low QUALS should mean hallucinated)."""
    from conseq.data.newsworld import check_summary

    metrics = {}
    texts = {
        "reference": [(r, r["reference"], s["reference_quals"]) for r, s in zip(rows, scores, strict=True)],
        "candidate": [
            (r, c, q) for r, s in zip(rows, scores, strict=True) for c, q in zip(r["candidates"], s["candidate_quals"])
        ],
    }
    for name, triples in texts.items():
        kept = [(check_summary(r, text).hallucinated, -q) for r, text, q in triples if q is not None]
        try:
            metrics[f"{name}_auc_hallucinated"] = roc_auc([h for h, _ in kept], [q for _, q in kept])
        except ValueError as err:
            log.info("no %s ROC-AUC: %s", name, err)
    return metrics
