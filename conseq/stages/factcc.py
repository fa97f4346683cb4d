"""stage=factcc: train a FactCC-style classifier, P(consistent | document, claim), on weakly labelled claims.

    python -m conseq.train stage=factcc                                     # tiny BART classifier, news world
    python -m conseq.train stage=factcc factcc_model=bart_base data=xsum    # fine-tune a pretrained encoder
    python -m conseq.score scorer=factcc input=… output=…                   # score (document, summary) rows

Claims come from the training split by FactCC's transformations (conseq/scoring/factcc.py: a document sentence is the
positive; entity / number / date / pronoun swaps and negation of it are the negatives); held-out pairs are made
the same way from the validation split. The pairs are kept in the artifact (train_pairs.jsonl,
validation_pairs.jsonl). Metrics: validation loss, accuracy and ROC AUC of P(consistent), and the accuracy per
transformation. Output: a save_pretrained folder that AutoModelForSequenceClassification loads (id2label
INCONSISTENT / CONSISTENT).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from pathlib import Path

import torch
from accelerate.utils import gather_object

from conseq import runtime, specs, training
from conseq.artifacts import read_jsonl, run_dir, write_jsonl
from conseq.config import Config
from conseq.data import batching, prepare
from conseq.metrics import load_ner, roc_auc
from conseq.scoring.factcc import LABELS, collate, encode, make_pairs, needs_references, parse

log = logging.getLogger(__name__)


def run(cfg: Config) -> dict | None:
    # setup
    s = cfg.stages.factcc
    if s.max_documents is not None and s.max_documents < 1:
        raise ValueError(f"stages.factcc.max_documents={s.max_documents}: must be >= 1 (null = every document)")
    art = specs.factcc(cfg)
    if art is None:
        raise SystemExit(f"factcc={cfg.factcc!r} names an existing classifier; drop it to train one here")
    if art.done and not cfg.force:
        return runtime.emit_result("factcc", art.path, True, art.metrics())
    start = specs.start_from(cfg, cfg.factcc_model)  # a missing warm-start model fails here, before any write
    rt = runtime.start(
        run_dir=run_dir(cfg.paths.root, f"factcc-{art.key}"),
        seed=s.seed,
        logger=cfg.logger,
        mixed_precision=s.mixed_precision,
        grad_accum=s.grad_accum,
        run_name=cfg.run_name,
        config=asdict(cfg),
    )
    acc = rt.accelerator
    with acc.main_process_first():
        data_art = prepare.build_summarization(specs.data(cfg), cfg.data)
        tok_art = specs.tokenizer(cfg, cfg.factcc_model)
        if tok_art:
            prepare.build_tokenizer(tok_art, data_art, cfg.factcc_model)
        if acc.is_main_process:
            art.start(force=cfg.force)
    # The claims are made once and kept: a resumed run reads them back. No process writes before the gather in
    # make_claims, which every process joins after this check, so they all see the same answer.
    if not (art.partial / "validation_pairs.jsonl").is_file():
        make_claims(cfg, acc, data_art, art.partial)
    acc.wait_for_everyone()
    train_pairs = read_jsonl(art.partial / "train_pairs.jsonl")
    val_pairs = read_jsonl(art.partial / "validation_pairs.jsonl")
    model, tokenizer = initial_model(cfg, start, tok_art and str(tok_art.path))

    # data
    max_length = cfg.factcc_model.max_source_length

    def encoded(pairs):
        ids, truncated = encode(tokenizer, [p["document"] for p in pairs], [p["claim"] for p in pairs], max_length)
        return list(zip(ids, [p["label"] for p in pairs], strict=True)), truncated

    examples, truncated = encoded(train_pairs)
    val_examples, _ = encoded(val_pairs)
    lengths = [len(ids) for ids, _ in examples]

    def batches(epoch: int) -> list[list[int]]:
        return batching.length_buckets(
            lengths, max_tokens=s.max_tokens, batch_size=s.batch_size, shuffle=True, seed=s.seed + epoch
        )

    def collate_fn(items):
        return collate([x for x, _ in items], [y for _, y in items], tokenizer.pad_token_id)

    def loss_fn(model, batch):
        loss = model(**batch).loss
        return loss, {"loss": loss.item()}

    def evaluate(model) -> dict[str, float]:
        losses, probs = predict(model, rt, val_examples, collate_fn, s.batch_size)
        labels = [y for _, y in val_examples]
        return {
            "loss": sum(losses) / max(1, len(losses)),
            "accuracy": sum((p >= 0.5) == bool(y) for p, y in zip(probs, labels, strict=True)) / max(1, len(labels)),
            "auc": roc_auc(labels, probs) if len(set(labels)) == 2 else float("nan"),
        }

    # loop
    model, result = training.fit(
        runtime=rt,
        model=model,
        examples=examples,
        batches=batches,
        collate=collate_fn,
        loss_fn=loss_fn,
        eval_fn=evaluate,
        cfg=s,
        workdir=art.partial,
    )

    # save
    _, probs = predict(model, rt, val_examples, collate_fn, s.batch_size)
    by_kind: dict[str, list[bool]] = {}
    for pair, p in zip(val_pairs, probs, strict=True):
        by_kind.setdefault(pair["transformation"] or "positive", []).append((p >= 0.5) == bool(pair["label"]))
    metrics = {
        "steps": result.steps,
        "resumed_from": result.resumed_from,
        "train_pairs": len(train_pairs),
        "train_positives": sum(p["label"] for p in train_pairs),
        "validation_pairs": len(val_pairs),
        "truncated_documents": truncated,
        **{f"train_{k}": v for k, v in result.last_train.items()},
        **{f"val_{k}": v for k, v in result.best.items()},
        **{f"val_accuracy_{kind}": sum(hits) / len(hits) for kind, hits in sorted(by_kind.items())},
    }
    result = None
    if acc.is_main_process:
        model.save_pretrained(art.partial)
        tokenizer.save_pretrained(art.partial)
        art.finish(metrics)
        result = runtime.emit_result("factcc", art.path, False, metrics)
    acc.wait_for_everyone()
    rt.close()
    return result


def make_claims(cfg: Config, acc, data_art, out: Path) -> None:
    """Write train_pairs.jsonl and validation_pairs.jsonl (the latter last: it marks the claims done). spaCy's
    parse is most of the cost (~30 ms a news document), so every process parses a contiguous share and the main
    process makes the pairs from all the parses, in row order: the pairs do not depend on the process count."""
    s = cfg.stages.factcc
    nlp = load_ner(s.ner_model)
    knobs = dict(
        positives=s.positives,
        transformations=s.transformations,
        negatives_per_positive=s.negatives_per_positive,
        claims_per_document=s.claims_per_document,
        min_sentence_tokens=s.min_sentence_tokens,
    )
    for split, rows, seed in (
        ("train", prepare.read_split(data_art, "train")[: s.max_documents], s.seed),
        ("validation", prepare.read_split(data_art, "validation")[: s.eval_rows], s.seed + 1),
    ):
        texts = [r["document"] for r in rows]
        if needs_references(s.positives):
            texts += [r["summary"] for r in rows]
        parsed = _parse_shared(nlp, texts, acc)
        if acc.is_main_process:
            docs, refs = parsed[: len(rows)], parsed[len(rows) :] or None
            write_jsonl(out / f"{split}_pairs.jsonl", make_pairs(nlp, rows, seed=seed, docs=docs, refs=refs, **knobs))


def _parse_shared(nlp, texts: list[str], acc) -> list | None:
    """The spaCy docs of ``texts`` in order on the main process (None on the others). The processes share the
    chunks of ``texts`` (runtime.map_shards); each chunk travels as a DocBin, which keeps entities, tags and the
    parse in ~1.5 kB a news document (one Doc.to_bytes per document is ~15x that)."""
    from spacy.tokens import DocBin

    size = max(1, math.ceil(len(texts) / (4 * acc.num_processes)))  # 4 chunks a process: even shares
    chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
    blobs = runtime.map_shards(acc, lambda part: [DocBin(docs=parse(nlp, c)).to_bytes() for c in part], chunks)
    if not acc.is_main_process:
        return None
    return [doc for b in blobs for doc in DocBin().from_bytes(b).get_docs(nlp.vocab)]


def initial_model(cfg: Config, start: str | None, tokenizer_dir: str | None):
    """A pretrained checkpoint with a (new) 2-class head, or the tiny BART classifier from scratch."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from conseq.modeling import build_tiny_head_model

    labels = {"id2label": dict(LABELS), "label2id": {v: k for k, v in LABELS.items()}}
    m = cfg.factcc_model
    if start:  # specs.start_from: a pretrained checkpoint or the warm-start model
        # The two labels come from id2label; num_labels beside a summarizer's 3-label config only warns.
        model = AutoModelForSequenceClassification.from_pretrained(start, **labels)
        return model, AutoTokenizer.from_pretrained(start)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = build_tiny_head_model(
        AutoModelForSequenceClassification, tokenizer, seed=cfg.stages.factcc.seed, **m.scratch_dims(), **labels
    )
    return model, tokenizer


def predict(model, rt, examples, collate_fn, batch_size: int) -> tuple[list[float], list[float]]:
    """Per-example loss and P(consistent) on every process's share, gathered in example order."""
    acc = rt.accelerator
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]))
    losses, probs = [], []
    with acc.split_between_processes(order) as mine, torch.inference_mode():
        for start in range(0, len(mine), batch_size):
            idx = mine[start : start + batch_size]
            batch = {k: v.to(acc.device) for k, v in collate_fn([examples[i] for i in idx]).items()}
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
            loss = torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="none")
            losses += list(zip(idx, loss.tolist(), strict=True))
            probs += list(zip(idx, logits.softmax(-1)[:, 1].tolist(), strict=True))
    losses, probs = dict(gather_object(losses)), dict(gather_object(probs))
    return [losses[i] for i in range(len(examples))], [probs[i] for i in range(len(examples))]
