"""stage=evaluate: compare checkpoints on one split with ROUGE, QUALS, entity metrics and (news world) the oracle.

    python -m conseq.train stage=evaluate                                      # this config's MLE model
    python -m conseq.train stage=evaluate 'stages.evaluate.models=[mle,conseq,conseq_novel]'
    python -m conseq.train stage=evaluate 'stages.evaluate.models=[/path/to/model,facebook/bart-large-xsum]'

Each model's evaluation is its own cached artifact (predictions jsonl + metrics), so adding a model to the list
re-uses the others; the comparison artifact holds metrics.json ``{"models": {name: {…}}}`` and table.md, and
the table is printed on stderr. The references themselves are scored as a row too (their QUALS, and on the news
world their oracle rate, which is the noise rate, and how well QUALS separates noisy from clean references).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import gather_object

from conseq import runtime, specs
from conseq.artifacts import Artifact, model_identity, run_dir, write_jsonl
from conseq.config import Config
from conseq.data import batching, prepare
from conseq.decoding import generate_texts
from conseq.metrics import entity_metrics, load_ner, oracle_rates, roc_auc, rouge_scores
from conseq.scoring.base import extra_metrics
from conseq.training import validation_nll

log = logging.getLogger(__name__)
# Rows per seeded top-k sampling chunk (sampled_hallucination_rate); see evaluate_one.
SAMPLE_CHUNK = 32

REFERENCE = "reference"
# Columns of the comparison table, in order (missing values print as "–").
TABLE = [
    ("rouge1", "R1", 2),
    ("rouge2", "R2", 2),
    ("rougeL", "RL", 2),
    ("hallucination_rate", "halluc.", 3),
    ("hallucination_vs_mle", "× MLE", 2),
    ("reference_taught_rate", "taught", 3),
    ("name_blend_rate", "blends", 3),
    ("extrinsic_rate", "extr.", 3),
    ("intrinsic_rate", "intr.", 3),
    ("unreadable_rate", "unread.", 3),
    ("fact_precision", "fact prec.", 3),
    ("sampled_hallucination_rate", "halluc. (top-k)", 3),
    ("quals", "QUALS", 3),
    ("quals_null", "QUALS null", 0),
    ("quals_auc_noisy_refs", "QUALS AUC", 3),
    ("qags", "QAGS", 3),
    ("qags_null", "QAGS null", 0),
    ("qags_auc_noisy_refs", "QAGS AUC", 3),
    ("factcc", "FactCC", 3),
    ("factcc_auc_noisy_refs", "FactCC AUC", 3),
    ("val_nll", "val NLL", 3),
    ("prec_s", "prec_s", 3),
    ("prec_t", "prec_t", 3),
    ("recall_t", "recall_t", 3),
    ("f1_t", "F1_t", 3),
]


def run(cfg: Config) -> dict | None:
    # setup
    s = cfg.stages.evaluate
    names = list(s.models) or ["mle"]
    if s.rerank not in (None, "quals"):
        raise ValueError(f"stages.evaluate.rerank={s.rerank!r}: choose null or quals")
    names = specs.evaluated_models(cfg, names)  # with "<model>+rerank" ones (stages.evaluate.rerank)
    rt = runtime.start(run_dir=run_dir(cfg.paths.root, "evaluate"), seed=cfg.seed, logger="none")
    acc = rt.accelerator
    with acc.main_process_first():
        data_art = prepare.build_summarization(specs.data(cfg), cfg.data)
    rows = prepare.read_split(data_art, s.split)[: s.max_rows]
    with_oracle = cfg.data.source == "newsworld"
    # Resolve the models first: a missing one is the error a user needs (it names the command that builds it).
    located = {name: (None, REFERENCE) if name == REFERENCE else resolve(cfg, name) for name in [REFERENCE, *names]}
    qagen = specs.qagen_location(cfg) if s.quals else None
    settings = specs.evaluation_settings(cfg, len(rows))  # the keys live in specs, where stage=report finds them

    # one cached evaluation per model
    results: dict[str, dict[str, Any]] = {}
    cache_hits = []
    for name, (location, identity) in located.items():
        art = specs.model_evaluation(cfg, identity, settings)
        cache_hits.append(art.done and not cfg.force)
        if not cache_hits[-1]:
            rerank = s.rerank if name.endswith("+rerank") else None
            evaluate_one(cfg, rt, art, location, rows, with_oracle, qagen, rerank)
        results[name] = art.metrics()

    # comparison
    final = specs.comparison(cfg, {n: m.get("artifact_key") for n, m in results.items()})
    regime = compare(results, len(rows))
    table = "\n\n".join(t for t in (markdown_table(results), regime_text(regime), error_table(results)) if t)
    result = None
    if acc.is_main_process:
        if not final.done or cfg.force:
            out = final.start(force=True)
            (out / "table.md").write_text(table + "\n")
            final.finish({"models": results, "regime": regime})
        log.info("comparison on %s (%d rows):\n%s", s.split, len(rows), table)
        result = runtime.emit_result("evaluate", final.path, all(cache_hits), {"models": results, "regime": regime})
    acc.wait_for_everyone()
    return result


def resolve(cfg: Config, name: str) -> tuple[str, Any]:
    """A model name of this config (mle, or a contrastive variant) → (folder, cache identity); else a path/hub id.
    "<model>+rerank" is that model's folder, keyed with the reranking."""
    if name.endswith("+rerank"):
        return resolve(cfg, name.removesuffix("+rerank"))[0], specs.summarizer_identity(cfg, name)
    if name == "mle":
        art = specs.require(specs.mle(cfg), "stage=mle", "MLE model")
        return str(art.path), art.key
    if name == "mle_clean":
        art = specs.require(
            specs.mle(specs.clean_references(cfg)), "stage=mle data.world.noise=0", "clean-reference MLE"
        )
        return str(art.path), art.key
    variants = cfg.stages.contrastive.variants
    if name in variants:
        art = specs.require(
            specs.contrastive(cfg, name),
            f"stage=contrastive stages.contrastive.variant={name}",
            f"{name} model",
        )
        return str(art.path), art.key
    if Path(name).exists() or "/" in name:
        return name, model_identity(name)  # a folder by its content, a hub id as itself
    raise ValueError(
        f"stages.evaluate.models: {name!r} is neither mle, a contrastive variant ({', '.join(variants)}), "
        "a folder nor a hub id"
    )


def evaluate_one(cfg, rt, art: Artifact, location: str | None, rows, with_oracle, qagen, rerank=None) -> None:
    """Decode (beam + one top-k sample) on each process's share, then score everything on the main process."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    s, acc = cfg.stages.evaluate, rt.accelerator
    documents = [r["document"] for r in rows]
    references = [r["summary"] for r in rows]
    metrics: dict[str, Any] = {"artifact_key": art.key, "rows": len(rows)}
    if location is None:
        predictions, samples = references, []
    else:
        model = AutoModelForSeq2SeqLM.from_pretrained(location).to(acc.device)
        tokenizer = AutoTokenizer.from_pretrained(location)
        decode = dict(
            max_source_length=cfg.model.max_source_length,
            batch_size=s.batch_size,
            min_new_tokens=s.min_new_tokens,
            max_new_tokens=s.max_new_tokens,
        )
        beams = s.num_beams if rerank else 1
        with acc.split_between_processes(list(range(len(rows)))) as mine:
            texts = [documents[i] for i in mine]
            beam = generate_texts(model, tokenizer, texts, num_beams=s.num_beams, num_return_sequences=beams, **decode)
        outputs = gather_object(beam)[: len(rows)]
        predictions = [o[0] for o in outputs]
        if rerank:  # the best of the beams by QUALS (unscored ones last, ties to the better beam)
            flat = [(i, text) for i, o in enumerate(outputs) for text in o]
            values = quals_scores(cfg, qagen[0], [documents[i] for i, _ in flat], [t for _, t in flat], acc)
            best: dict[int, tuple[float, str]] = {}
            for (i, text), value in zip(flat, values, strict=True):
                value = -math.inf if value is None else value
                if i not in best or value > best[i][0]:
                    best[i] = (value, text)
            reranked = [best[i][1] for i in range(len(rows))]
            metrics["rerank_changed"] = sum(a != b for a, b in zip(reranked, predictions, strict=True)) / len(rows)
            predictions = reranked

        def sample(chunks: list[int]) -> list[list[str]]:
            # One seed per fixed chunk of rows, decoded as one batch: the samples depend on `seed` (keyed) and
            # not on the number of processes or the decoding batch size.
            options = {**decode, "batch_size": SAMPLE_CHUNK, "do_sample": True, "top_k": s.sample_top_k}
            texts = [documents[c * SAMPLE_CHUNK : (c + 1) * SAMPLE_CHUNK] for c in chunks]
            return [
                [o[0] for o in generate_texts(model, tokenizer, part, seed=cfg.seed * 100_003 + c, **options)]
                for c, part in zip(chunks, texts, strict=True)
            ]

        n_chunks = math.ceil(len(rows) / SAMPLE_CHUNK)
        samples = (
            [t for chunk in runtime.map_shards(acc, sample, list(range(n_chunks))) for t in chunk]
            if s.sample_top_k
            else []
        )
        val_rows = prepare.read_split(prepare_data(cfg), "validation")
        val = batching.encode_pairs(
            tokenizer,
            [r["document"] for r in val_rows],
            [r["summary"] for r in val_rows],
            max_source_length=cfg.model.max_source_length,
            max_target_length=cfg.model.max_target_length,
        )
        examples = list(zip(val.input_ids, val.labels, strict=True))
        metrics["val_nll"] = validation_nll(
            model,
            rt,
            examples,
            lambda items: batching.collate([x for x, _ in items], [y for _, y in items], tokenizer.pad_token_id),
            s.batch_size,
        )
        del model
    # The scorers run on every process, each on its share of the rows (runtime.map_shards); the main process
    # then computes the metrics and writes the artifact.
    reference_rows = rows if location is None else None
    quals_values = quals_scores(cfg, qagen[0], documents, predictions, acc) if qagen else None
    records = [
        {"id": r["id"], "reference": r["summary"], "prediction": p} for r, p in zip(rows, predictions, strict=True)
    ]
    extra = {}
    if s.extra_scorers:
        extra = extra_metrics(
            cfg,
            documents,
            predictions,
            reference_rows,
            scorers=tuple(s.extra_scorers),
            records=records,
            device=str(acc.device),
            accelerator=acc,
        )
    if not acc.is_main_process:
        acc.wait_for_everyone()
        return

    out = art.start(force=True)
    for record, sample in zip(records, samples, strict=False):
        record["sample"] = sample
    metrics.update(rouge_scores(predictions, references))
    if with_oracle:
        from conseq.data.newsworld import check_summary

        verdicts = [check_summary(r, p) for r, p in zip(rows, predictions, strict=True)]
        metrics.update(oracle_rates(verdicts))
        for record, verdict in zip(records, verdicts, strict=True):
            record["oracle"] = {
                "extrinsic": verdict.extrinsic,
                "intrinsic": verdict.intrinsic,
                "readable": verdict.readable,
            }
        if samples:
            sampled_verdicts = [check_summary(r, p) for r, p in zip(rows, samples, strict=True)]
            metrics["sampled_hallucination_rate"] = oracle_rates(sampled_verdicts)["hallucination_rate"]
    if quals_values is not None:
        metrics.update(quals_metrics(quals_values, records, reference_rows))
    metrics.update(extra)
    if s.entities:
        metrics.update(entity_metrics(predictions, documents, references, load_ner(s.ner_model)))
    write_jsonl(out / "predictions.jsonl", records)
    art.finish(metrics)
    acc.wait_for_everyone()


def prepare_data(cfg: Config) -> Artifact:
    return prepare.build_summarization(specs.data(cfg), cfg.data)


def quals_scores(cfg, qagen_path: str, documents, summaries, acc) -> list[float | None]:
    """QUALS of each (document, summary), each process scoring its share; every process gets all values."""
    from conseq.scoring.quals.scorer import QualsScorer

    scorer = QualsScorer.from_pretrained(qagen_path, **{**asdict(cfg.stages.score.quals), "token_logprobs": False})
    values = runtime.map_shards(
        acc,
        lambda idx, scorer=scorer: [
            r.quals
            for r in scorer.score(
                [documents[i] for i in idx],
                [summaries[i] for i in idx],
                return_qa_pairs=False,
                progress=acc.is_main_process,
            )
        ],
        list(range(len(documents))),
    )
    del scorer  # the lambda holds it as a default argument (no closure cell), so this frees the model
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return values


def quals_metrics(values: list[float | None], records: list[dict], reference_rows) -> dict[str, Any]:
    for record, value in zip(records, values, strict=True):
        record["quals"] = value
    kept = [v for v in values if v is not None]
    metrics: dict[str, Any] = {
        "quals": sum(kept) / len(kept) if kept else None,
        "quals_null": len(values) - len(kept),
    }
    if reference_rows and "injected" in reference_rows[0]:
        pairs = [(r["injected"] is not None, v) for r, v in zip(reference_rows, values, strict=True) if v is not None]
        try:
            # Lower QUALS = less supported: AUC of −QUALS for "reference carries an injected fact".
            metrics["quals_auc_noisy_refs"] = roc_auc([n for n, _ in pairs], [-v for _, v in pairs])
        except ValueError as err:
            log.warning("no QUALS AUC: %s", err)
    return metrics


def compare(results: dict[str, dict[str, Any]], n_rows: int) -> dict[str, Any]:
    """Each model's rate against the MLE model's (added to its metrics for the table), and on the news world the
    regime the demo must sit in: which error group dominates the MLE model's errors, and how far MLE trained on
    clean references (``mle_clean``) falls below it."""
    base = results.get("mle", {}).get("hallucination_rate")
    for m in results.values():
        groups = m.get("error_groups", {})
        m.update(reference_taught_rate=groups.get("reference_taught"), name_blend_rate=groups.get("name_blends"))
        if base and m.get("hallucination_rate") is not None:
            m["hallucination_vs_mle"] = m["hallucination_rate"] / base
    if base is None or not results["mle"].get("error_groups"):
        return {}
    groups = results["mle"]["error_groups"]
    regime = {
        "rows": n_rows,
        # one standard error of a rate near the MLE model's on this many rows: the table's sampling noise
        "standard_error": math.sqrt(base * (1 - base) / n_rows),
        "mle_error_groups": groups,
        "largest_group": max(groups, key=groups.get),
    }
    if "mle_clean" in results:  # None when MLE never hallucinates (no ratio to take)
        regime["clean_reference_ratio"] = results["mle_clean"].get("hallucination_vs_mle")
    return regime


def regime_text(regime: dict[str, Any]) -> str:
    if not regime:
        return ""
    groups = ", ".join(f"{g.replace('_', ' ')} {v:.3f}" for g, v in regime["mle_error_groups"].items())
    text = (
        f"{regime['rows']} rows: a rate is ±{regime['standard_error']:.3f} (one standard error). "
        f"MLE's summaries with an error of each group: {groups} (largest: {regime['largest_group'].replace('_', ' ')})."
    )
    if regime.get("clean_reference_ratio") is not None:
        text += f" MLE trained on clean references (mle_clean): {regime['clean_reference_ratio']:.2f}× MLE's rate."
    return text


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    present = [(key, title, digits) for key, title, digits in TABLE if any(key in m for m in results.values())]
    lines = [
        "| model | " + " | ".join(title for _, title, _ in present) + " |",
        "|---|" + "---:|" * len(present),
    ]
    for name, m in results.items():
        cells = []
        for key, _, digits in present:
            value = m.get(key)
            cells.append("–" if value is None else f"{value:.{digits}f}" if digits else str(value))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def error_table(results: dict[str, dict[str, Any]], columns: int = 8) -> str:
    """The oracle's errors by kind (share of summaries with ≥ 1 such error), the kinds most frequent over all
    models first; "" without oracle verdicts. A method fixes some kinds and not others (ConSeq's selection
    filters the references' extrinsic slots; blended names are the summarizer's own), so the rate alone hides why."""
    kinds: dict[str, float] = {}
    for m in results.values():
        for kind, rate in m.get("error_kinds", {}).items():
            kinds[kind] = kinds.get(kind, 0.0) + rate
    if not kinds:
        return ""
    shown = sorted(kinds, key=lambda k: (-kinds[k], k))[:columns]
    lines = ["| errors by kind | " + " | ".join(shown) + " |", "|---|" + "---:|" * len(shown)]
    for name, m in results.items():
        found = m.get("error_kinds")
        cells = ["–" if found is None else f"{found.get(k, 0.0):.3f}" for k in shown]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
