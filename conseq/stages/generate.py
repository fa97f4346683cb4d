"""stage=generate: K candidate summaries of every training document from the MLE model.

    python -m conseq.train stage=generate                                    # the paper: 6 top-k(50) samples
    python -m conseq.train stage=generate stages.generate.mode=beam          # K best of max(num_beams, K)
    python -m conseq.train stage=generate stages.generate.mode=diverse_beam  # K groups, Hamming penalty
    accelerate launch --multi_gpu -m conseq.train stage=generate …           # the same on many processes

Sharding and resume: the split's rows are cut by global index into fixed shards of ``shard_size`` rows;
shard i goes to process i % num_processes and is written atomically to ``<partial>/shards/<i:05d>.jsonl``
once finished. A restarted run skips the shards already on disk. Each shard samples with its own seed,
derived from (seed, i), so the merged ``candidates.jsonl`` is the same whatever the number of processes and
however often the run was killed. The shard files (ids and candidates only) stay in the artifact.

Output ``candidates.jsonl``: rows ``{"id", "document", "reference", "candidates": [K strings]}`` in split
order, plus the news world's ``facts`` and ``injected`` (the oracle reads them). Metrics: candidate length,
the share of candidates repeating an earlier one of the same document, and on the news world the oracle
hallucination rate of the candidates and of the references.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from tqdm.auto import tqdm

from conseq import runtime, specs
from conseq.artifacts import read_jsonl, run_dir, write_jsonl
from conseq.config import Config, GenerateStageConfig
from conseq.data import prepare
from conseq.decoding import generate_texts
from conseq.generation import diverse_beam_search
from conseq.metrics import oracle_rates
from conseq.modeling import load_model

log = logging.getLogger(__name__)
MODES = ("sample", "beam", "diverse_beam")
# Record fields carried into candidates.jsonl when the data has them (the news world's oracle needs them).
CARRIED = ("facts", "injected")


def run(cfg: Config) -> dict | None:
    # setup
    g = cfg.stages.generate
    if g.mode not in MODES:
        raise ValueError(f"stages.generate.mode={g.mode!r}: choose one of {', '.join(MODES)}")
    if g.num_candidates < 1 or g.shard_size < 1:
        raise ValueError("stages.generate.num_candidates and stages.generate.shard_size must be >= 1")
    if g.max_documents is not None and g.max_documents < 1:
        raise ValueError(f"stages.generate.max_documents={g.max_documents}: give null (all) or >= 1")
    art = specs.candidates(cfg)
    if art.done and not cfg.force:
        return runtime.emit_result("generate", art.path, True, art.metrics())
    if g.model == "mle":
        mle_art = specs.require(specs.mle(cfg), "stage=mle", "MLE model")
    else:
        command = f"stage=contrastive stages.contrastive.variant={g.model}"
        mle_art = specs.require(specs.generator(cfg), command, f"{g.model} model (stages.generate.model)")
    rt = runtime.start(run_dir=run_dir(cfg.paths.root, f"generate-{art.key}"), seed=g.seed)
    acc = rt.accelerator
    shard_dir, resumed = art.partial / "shards", 0
    with acc.main_process_first():
        data_art = prepare.build_summarization(specs.data(cfg), cfg.data)
        if acc.is_main_process:
            art.start(force=cfg.force)
            shard_dir.mkdir(exist_ok=True)
            # Counted before the other processes are released, so only a previous run's shards are seen.
            resumed = len(list(shard_dir.glob("*.jsonl")))
    model, tokenizer = load_model(str(mle_art.path))
    model.to(acc.device).eval()

    # data
    rows = prepare.read_split(data_art, g.split)[: g.max_documents]
    if not rows:
        raise ValueError(f"the {g.split!r} split of {data_art.path} is empty (stages.generate.split)")
    shards = [rows[start : start + g.shard_size] for start in range(0, len(rows), g.shard_size)]
    mine = [i for i in range(len(shards)) if i % acc.num_processes == acc.process_index]

    # loop
    for i in tqdm(mine, desc="generate shards", disable=not acc.is_main_process):
        path = shard_dir / f"{i:05d}.jsonl"
        if path.exists():  # finished by an earlier, interrupted run
            continue
        outputs = decode(
            model,
            tokenizer,
            [r["document"] for r in shards[i]],
            g,
            max_source_length=cfg.model.max_source_length,
            seed=shard_seed(g.seed, i),
        )
        write_jsonl(path, [{"id": r["id"], "candidates": c} for r, c in zip(shards[i], outputs, strict=True)])
    acc.wait_for_everyone()

    # save
    result = None
    if acc.is_main_process:
        merged = merge(rows, [shard_dir / f"{i:05d}.jsonl" for i in range(len(shards))])
        write_jsonl(art.partial / "candidates.jsonl", merged)
        metrics = {
            "mode": g.mode,
            "shards": len(shards),
            "shards_resumed": resumed,
            **candidate_stats(merged),
        }
        if cfg.data.source == "newsworld":
            metrics.update(oracle_metrics(merged))
        art.finish(metrics)
        log.info("candidates %s: %s", art.path, metrics)
        result = runtime.emit_result("generate", art.path, False, metrics)
    acc.wait_for_everyone()
    rt.close()
    return result


def shard_seed(seed: int, shard: int) -> int:
    """The sampling seed of one shard: a function of (seed, shard index) only, never of the process."""
    return int.from_bytes(hashlib.sha256(f"generate/{seed}/{shard}".encode()).digest()[:4], "big")


def decode(
    model, tokenizer, documents: list[str], g: GenerateStageConfig, *, max_source_length: int, seed: int
) -> list[list[str]]:
    """``g.num_candidates`` candidates per document with the decoding of ``g.mode``."""
    k = g.num_candidates
    lengths = dict(min_new_tokens=g.min_new_tokens, max_new_tokens=g.max_new_tokens)
    if g.mode == "diverse_beam":
        return diverse_candidates(
            model,
            tokenizer,
            documents,
            num_groups=k,
            diversity_penalty=g.diversity_penalty,
            max_source_length=max_source_length,
            batch_size=g.batch_size,
            **lengths,
        )
    common = dict(max_source_length=max_source_length, batch_size=g.batch_size, num_return_sequences=k)
    common.update(lengths)
    if g.mode == "sample":
        return generate_texts(
            model,
            tokenizer,
            documents,
            do_sample=True,
            top_k=g.top_k,
            top_p=g.top_p,
            temperature=g.temperature,
            seed=seed,
            **common,
        )
    return generate_texts(model, tokenizer, documents, num_beams=max(g.num_beams, k), **common)


def diverse_candidates(
    model,
    tokenizer,
    documents: list[str],
    *,
    num_groups: int,
    diversity_penalty: float,
    min_new_tokens: int,
    max_new_tokens: int,
    max_source_length: int,
    batch_size: int,
) -> list[list[str]]:
    """One hypothesis per diverse-beam group for each document, in input order (length-sorted batches)."""
    encoded = tokenizer(documents, truncation=True, max_length=max_source_length)["input_ids"]
    order = sorted(range(len(documents)), key=lambda i: len(encoded[i]), reverse=True)
    outputs: list[list[str]] = [[] for _ in documents]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt").to(model.device)
        out = diverse_beam_search(
            model,
            batch["input_ids"],
            batch["attention_mask"],
            num_groups=num_groups,
            diversity_penalty=diversity_penalty,
            min_new_tokens=min_new_tokens,
            max_new_tokens=max_new_tokens,
        )
        for j, i in enumerate(idx):
            texts = tokenizer.batch_decode(out.sequences[j], skip_special_tokens=True)
            outputs[i] = [t.strip() for t in texts]
    return outputs


def merge(rows: list[dict], shard_paths: list[Path]) -> list[dict]:
    """The split's rows with their candidates, in split order; every shard must hold exactly its rows."""
    merged, position = [], 0
    for path in shard_paths:
        if not path.is_file():
            raise FileNotFoundError(f"shard {path} is missing after every process finished; rerun to resume")
        for shard_row in read_jsonl(path):
            row = rows[position]
            if shard_row["id"] != row["id"]:
                raise ValueError(f"{path}: row id {shard_row['id']!r} where the split has {row['id']!r}")
            out = {"id": row["id"], "document": row["document"], "reference": row["summary"]}
            out["candidates"] = shard_row["candidates"]
            out.update({key: row[key] for key in CARRIED if key in row})
            merged.append(out)
            position += 1
    if position != len(rows):
        raise ValueError(f"the shards hold {position} rows, the split {len(rows)}")
    return merged


def candidate_stats(rows: list[dict]) -> dict[str, float]:
    texts = [c for r in rows for c in r["candidates"]]
    repeats = sum(len(r["candidates"]) - len(set(r["candidates"])) for r in rows)
    return {
        "rows": len(rows),
        "candidates": len(texts),
        "mean_candidate_words": sum(len(t.split()) for t in texts) / max(1, len(texts)),
        "empty_candidates": sum(not t.strip() for t in texts),
        # Share of candidates that repeat an earlier candidate of the same document (samples can coincide).
        "duplicate_candidate_share": repeats / max(1, len(texts)),
    }


def oracle_metrics(rows: list[dict]) -> dict[str, float]:
    """The news world oracle's rates over all candidates and over the references."""
    from conseq.data.newsworld import check_summary

    candidates = [check_summary(r, c) for r in rows for c in r["candidates"]]
    references = [check_summary(r, r["reference"]) for r in rows]
    return {
        **{f"candidate_{k}": v for k, v in oracle_rates(candidates).items()},
        **{f"reference_{k}": v for k, v in oracle_rates(references).items()},
    }
