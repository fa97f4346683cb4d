"""stage=contrastive: ConSeq retraining of the MLE model on the partition's (x, y+, y−) pairs.

    python -m conseq.train stage=contrastive                                          # the paper's loss
    python -m conseq.train stage=contrastive stages.contrastive.variant=conseq_novel  # unlikelihood on novel tokens
    python -m conseq.train stage=contrastive stages.contrastive.variant=positive_only # ablation: NLL on y+ only
    python -m conseq.train stage=contrastive stages.contrastive.variant=conseq_rouge  # pairs chosen by ROUGE
    python -m conseq.train stage=contrastive stages.contrastive.variant=conseq_dpo    # DPO instead of unlikelihood

Loss per batch (reference/quals_conseq.md §4.3): label-smoothed NLL on (x, y+) plus token-level unlikelihood
−Σ_t log(1 − p(y−_t)) on (x, y−), weighted 1:negative_weight and divided by the target tokens of both; the
encoder runs once per document for both decoder passes. Validation NLL of the references is tracked because
the all-token unlikelihood can raise it while beam ROUGE hides it (DESIGN §6).

loss=dpo keeps the NLL on y+ and replaces the unlikelihood by DPO's preference term on the same pairs
(losses.dpo_loss): the frozen MLE model's log-probabilities of y+ and y− are computed once before training.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import torch

from conseq import losses, runtime, specs, training
from conseq.artifacts import read_jsonl, run_dir
from conseq.config import Config
from conseq.data import batching, prepare
from conseq.modeling import load_model

log = logging.getLogger(__name__)
LOSSES = ("conseq", "positive_only", "dpo")


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
    if c.dpo_beta <= 0 or c.dpo_nll_weight < 0:
        raise ValueError(
            f"stages.contrastive.dpo_beta={c.dpo_beta} must be > 0 and dpo_nll_weight={c.dpo_nll_weight} >= 0"
        )
    art = specs.contrastive(cfg, c.variant)
    if art.done and not cfg.force:
        return runtime.emit_result("contrastive", art.path, True, art.metrics())
    start = f"stage=contrastive stages.contrastive.variant={c.round_from}" if c.round_from else "stage=mle"
    mle_art = specs.require(specs.start_model(cfg, c), start, f"{c.round_from or 'MLE'} model")
    scorer, positive, negative_ratio = specs.selection(c)
    upstream = f" stages.generate.model={c.round_from}" if c.round_from else ""
    part_art = specs.require(
        specs.partition(specs.round_config(cfg, c), scorer, positive, negative_ratio),
        f"stage=partition {specs.partition_overrides(scorer, positive, negative_ratio)}{upstream}",
        f"{scorer} partition ({positive} positives)",
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
    # On the accelerator before fit's prepare: the starting validation NLL (and DPO's reference
    # log-probabilities) run on the loaded model, with batches on acc.device.
    model.to(acc.device)

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

    def pair_collate(items):
        return batching.collate_pairs(
            [it[0] for it in items], [it[1] for it in items], [it[2] for it in items], tokenizer.pad_token_id
        )

    def collate(items):
        if c.loss == "positive_only":
            return batching.collate([it[0] for it in items], [it[1] for it in items], tokenizer.pad_token_id)
        batch = pair_collate(items)
        if c.loss == "dpo":  # examples carry the MLE model's (log p(y+), log p(y−)) as their 4th item
            batch["ref_pos"] = torch.tensor([it[3][0] for it in items], dtype=torch.float32)
            batch["ref_neg"] = torch.tensor([it[3][1] for it in items], dtype=torch.float32)
        return batch

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

    def dpo_loss(module, batch):
        ref_pos, ref_neg = batch.pop("ref_pos"), batch.pop("ref_neg")
        pos_logits, neg_logits = module(**batch)
        out = losses.dpo_loss(
            pos_logits,
            batch["labels"],
            neg_logits,
            batch["neg_labels"],
            ref_pos,
            ref_neg,
            beta=c.dpo_beta,
            nll_weight=c.dpo_nll_weight,
            epsilon=c.label_smoothing,
        )
        return out["loss"], {k: out[k].item() for k in ("loss", "pos_nll", "margin", "accuracy")}

    def evaluate(model) -> dict[str, float]:
        return {"loss": training.validation_nll(model, rt, val_examples, val_collate, c.batch_size)}

    start_nll = evaluate(model)["loss"]
    if c.loss == "dpo":
        refs = training.pair_log_probs(model, rt, examples, pair_collate, c.batch_size)
        examples = [(*ex, ref) for ex, ref in zip(examples, refs, strict=True)]
    log.info("%s: %d training pairs; validation NLL of the MLE model %.4f", c.variant, len(pairs), start_nll)

    # loop
    loss_fn = {"conseq": conseq_loss, "dpo": dpo_loss}.get(c.loss) or training.smoothed_nll_loss(c.label_smoothing)
    model, result = training.fit(
        runtime=rt,
        model=model,
        train_module=None if c.loss == "positive_only" else training.EncoderSharingPair(model),
        examples=examples,
        batches=batches,
        collate=collate,
        loss_fn=loss_fn,
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
