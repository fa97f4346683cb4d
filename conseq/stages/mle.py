"""stage=mle: fine-tune (or train from scratch) the summarizer with label-smoothed cross-entropy.

    python -m conseq.train stage=mle                                  # the pretrained tiny BART (stage=pretrain)
    python -m conseq.train stage=mle model.warm_start=none            # the tiny BART from random weights
    python -m conseq.train stage=mle model=bart_large data=xsum       # the paper's baseline
    accelerate launch --multi_gpu -m conseq.train stage=mle …         # the same on many processes

Output: a save_pretrained folder (model + tokenizer) that AutoModelForSeq2SeqLM loads.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from accelerate.utils import gather_object

from conseq import modeling, runtime, specs, training
from conseq.artifacts import run_dir
from conseq.config import Config
from conseq.data import batching, prepare
from conseq.decoding import generate_texts
from conseq.metrics import rouge_scores

log = logging.getLogger(__name__)


def run(cfg: Config) -> dict | None:
    # setup
    s = cfg.stages.mle
    art = specs.mle(cfg)
    if art.done and not cfg.force:
        return runtime.emit_result("mle", art.path, True, art.metrics())
    start = specs.start_from(cfg, cfg.model)  # a missing pretrained model fails here, before any write
    rt = runtime.start(
        run_dir=run_dir(cfg.paths.root, f"mle-{art.key}"),
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
        tok_art = specs.tokenizer(cfg, cfg.model)
        if tok_art:
            prepare.build_tokenizer(tok_art, data_art, cfg.model)
        if acc.is_main_process:
            art.start(force=cfg.force)
    model, tokenizer = modeling.initial_model(
        start, cfg.model.scratch_dims(), tok_art and str(tok_art.path), seed=s.seed
    )

    # data
    train_rows = prepare.read_split(data_art, "train")
    val_rows = prepare.read_split(data_art, "validation")
    lengths = dict(max_source_length=cfg.model.max_source_length, max_target_length=cfg.model.max_target_length)
    train = batching.encode_pairs(
        tokenizer, [r["document"] for r in train_rows], [r["summary"] for r in train_rows], **lengths
    )
    val = batching.encode_pairs(
        tokenizer, [r["document"] for r in val_rows], [r["summary"] for r in val_rows], **lengths
    )
    examples = list(zip(train.input_ids, train.labels, strict=True))
    val_examples = list(zip(val.input_ids, val.labels, strict=True))
    source_lengths = [len(ids) for ids in train.input_ids]

    def batches(epoch: int) -> list[list[int]]:
        return batching.length_buckets(
            source_lengths,
            max_tokens=s.max_tokens,
            batch_size=s.batch_size,
            shuffle=True,
            seed=s.seed + epoch,
        )

    def collate(items):
        return batching.collate([x for x, _ in items], [y for _, y in items], tokenizer.pad_token_id)

    samples = val_rows[: s.eval_samples]

    def evaluate(model) -> dict[str, float]:
        metrics = {"loss": training.validation_nll(model, rt, val_examples, collate, s.batch_size)}
        if samples:
            with acc.split_between_processes(samples) as mine:
                outputs = generate_texts(
                    model,
                    tokenizer,
                    [r["document"] for r in mine],
                    max_source_length=cfg.model.max_source_length,
                    batch_size=s.batch_size,
                    num_beams=s.eval_num_beams,
                    max_new_tokens=s.eval_max_new_tokens,
                )
            predictions = [o[0] for o in gather_object(outputs)][: len(samples)]
            metrics.update(rouge_scores(predictions, [r["summary"] for r in samples]))
        return metrics

    # loop
    model, result = training.fit(
        runtime=rt,
        model=model,
        examples=examples,
        batches=batches,
        collate=collate,
        loss_fn=training.smoothed_nll_loss(s.label_smoothing),
        eval_fn=evaluate,
        cfg=s,
        workdir=art.partial,
    )

    # save
    metrics = {
        "steps": result.steps,
        "resumed_from": result.resumed_from,
        "train_rows": len(train_rows),
        "truncated_sources": train.truncated_sources,
        "truncated_targets": train.truncated_targets,
        **{f"data_{k}": v for k, v in data_art.metrics().items() if "skipped" in k},
        **{f"train_{k}": v for k, v in result.last_train.items()},
        **{f"val_{k}": v for k, v in result.best.items()},
    }
    result = None
    if acc.is_main_process:
        model.save_pretrained(art.partial)
        tokenizer.save_pretrained(art.partial)
        art.finish(metrics)
        result = runtime.emit_result("mle", art.path, False, metrics)
    acc.wait_for_everyone()
    rt.close()
    return result
