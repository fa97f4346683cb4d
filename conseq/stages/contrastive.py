"""stage=contrastive: ConSeq retraining of the MLE model on the partition's (x, y+, y−) pairs.

    python -m conseq.train stage=contrastive                                          # the paper's loss
    python -m conseq.train stage=contrastive stages.contrastive.variant=conseq_novel  # unlikelihood on novel tokens
    python -m conseq.train stage=contrastive stages.contrastive.variant=positive_only # ablation: NLL on y+ only
    python -m conseq.train stage=contrastive stages.contrastive.variant=conseq_rouge  # pairs chosen by ROUGE

Loss per batch (reference/quals_conseq.md §4.3): label-smoothed NLL on (x, y+) plus token-level unlikelihood
−Σ_t log(1 − p(y−_t)) on (x, y−), weighted 1:negative_weight and divided by the target tokens of both; the
encoder runs once per document for both decoder passes. Validation NLL of the references is tracked because
the all-token unlikelihood can raise it while beam ROUGE hides it (DESIGN §6).
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from conseq import losses, runtime, specs, training
from conseq.artifacts import read_jsonl, run_dir
from conseq.config import Config
from conseq.data import batching, prepare
from conseq.modeling import load_model

log = logging.getLogger(__name__)
LOSSES = ("conseq", "positive_only")


def run(cfg: Config) -> dict | None:
    # setup
    c = cfg.stages.contrastive.resolved()
    if c.loss not in LOSSES:
        raise ValueError(f"stages.contrastive.loss={c.loss!r}: choose one of {', '.join(LOSSES)}")
    if c.unlikelihood_tokens not in losses.UNLIKELIHOOD_TOKENS:
        choices = ", ".join(losses.UNLIKELIHOOD_TOKENS)
        raise ValueError(f"stages.contrastive.unlikelihood_tokens={c.unlikelihood_tokens!r}: choose one of {choices}")
    if c.novel_ngram < 1:
        raise ValueError(f"stages.contrastive.novel_ngram={c.novel_ngram}: must be >= 1")
    art = specs.contrastive(cfg, c.variant)
    if art.done and not cfg.force:
        return runtime.emit_result("contrastive", art.path, True, art.metrics())
    mle_art = specs.require(specs.mle(cfg), "stage=mle", "MLE model")
    scorer = c.partition_scorer
    part_art = specs.require(
        specs.partition(cfg, scorer),
        f"stage=partition stages.partition.scorer={scorer}",
        f"{scorer} partition",
    )
    rt = runtime.start(
        run_dir=run_dir(cfg.paths.root, f"contrastive-{c.variant}-{art.key}"),
        seed=c.seed,
        logger=cfg.logger,
        mixed_precision=c.mixed_precision,
        grad_accum=c.grad_accum,
        run_name=f"{cfg.run_name}-{c.variant}",
        config=asdict(cfg),
    )
    acc = rt.accelerator
    with acc.main_process_first():
        data_art = prepare.build_summarization(specs.data(cfg), cfg.data)
        if acc.is_main_process:
            art.start(force=cfg.force)
    model, tokenizer = load_model(str(mle_art.path))

    # data
    pairs = read_jsonl(part_art.path / "pairs.jsonl")
    if c.loss == "positive_only":
        # The ablation trains on the same selected references, once per document, without negatives.
        pairs = list({p["id"]: p for p in pairs}.values())
    if not pairs:
        raise ValueError(f"the partition {part_art.path} selected no pairs; loosen stages.partition ratios")
    lengths = dict(max_source_length=cfg.model.max_source_length, max_target_length=cfg.model.max_target_length)
    pos = batching.encode_pairs(tokenizer, [p["document"] for p in pairs], [p["positive"] for p in pairs], **lengths)
    neg = batching.encode_pairs(tokenizer, [p["document"] for p in pairs], [p["negative"] for p in pairs], **lengths)
    examples = list(zip(pos.input_ids, pos.labels, neg.labels, strict=True))
    source_lengths = [len(ids) for ids in pos.input_ids]
    val_rows = prepare.read_split(data_art, "validation")
    val = batching.encode_pairs(
        tokenizer, [r["document"] for r in val_rows], [r["summary"] for r in val_rows], **lengths
    )
    val_examples = list(zip(val.input_ids, val.labels, strict=True))

    def batches(epoch: int) -> list[list[int]]:
        return batching.length_buckets(
            source_lengths,
            max_tokens=c.max_tokens,
            batch_size=c.batch_size,
            shuffle=True,
            seed=c.seed + epoch,
        )

    def collate(items):
        if c.loss == "positive_only":
            return batching.collate([x for x, _, _ in items], [y for _, y, _ in items], tokenizer.pad_token_id)
        return batching.collate_pairs(
            [x for x, _, _ in items],
            [y for _, y, _ in items],
            [n for _, _, n in items],
            tokenizer.pad_token_id,
        )

    def val_collate(items):
        return batching.collate([x for x, _ in items], [y for _, y in items], tokenizer.pad_token_id)

    def conseq_loss(module, batch):
        pos_logits, neg_logits = module(**batch)
        out = losses.conseq_loss(
            pos_logits,
            batch["labels"],
            neg_logits,
            batch["neg_labels"],
            epsilon=c.label_smoothing,
            negative_weight=c.negative_weight,
            unlikelihood_tokens=c.unlikelihood_tokens,
            novel_ngram=c.novel_ngram,
            clamp=c.clamp,
        )
        return out["loss"], {k: out[k].item() for k in ("loss", "pos_nll", "neg_loss")}

    def evaluate(model) -> dict[str, float]:
        return {"loss": training.validation_nll(model, rt, val_examples, val_collate, c.batch_size)}

    start_nll = evaluate(model)["loss"]
    log.info("%s: %d training pairs; validation NLL of the MLE model %.4f", c.variant, len(pairs), start_nll)

    # loop
    conseq = c.loss == "conseq"
    model, result = training.fit(
        runtime=rt,
        model=model,
        train_module=training.EncoderSharingPair(model) if conseq else None,
        examples=examples,
        batches=batches,
        collate=collate,
        loss_fn=conseq_loss if conseq else training.smoothed_nll_loss(c.label_smoothing),
        eval_fn=evaluate,
        cfg=c,
        workdir=art.partial,
    )

    # save
    metrics = {
        "variant": c.variant,
        "steps": result.steps,
        "resumed_from": result.resumed_from,
        "pairs": len(pairs),
        "val_nll_start": start_nll,
        "val_nll": result.history[-1]["loss"] if result.history else None,
        **{f"train_{k}": v for k, v in result.last_train.items()},
    }
    result = None
    if acc.is_main_process:
        model.save_pretrained(art.partial)
        tokenizer.save_pretrained(art.partial)
        art.finish(metrics)
        result = runtime.emit_result("contrastive", art.path, False, metrics)
    acc.wait_for_everyone()
    rt.close()
    return result
