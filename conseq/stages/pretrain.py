"""stage=pretrain: BART's denoising pretraining of the tiny from-scratch BART (Lewis et al. 2020), with its
byte-level BPE tokenizer trained here on the same unlabelled documents.

    python -m conseq.train stage=pretrain                                   # the news world's own documents
    accelerate launch --multi_gpu --num_processes 2 -m conseq.train stage=pretrain     # the recipe's 2 x 16
    python -m conseq.train stage=pretrain data=jsonl data.train_file=…     # the train split's documents

Text infilling (conseq/data/denoising.py): ~30% of the words masked in Poisson(3) spans, one <mask> a span,
drawn anew each epoch from (seed, epoch, document), so a resumed run sees the same noise; the target is the
whole document. The shape is `model`'s (its from-scratch knobs, even when model.name_or_path is set), and every
model with warm_start=pretrain (the tiny default) starts from this folder.

Output: a save_pretrained folder (model + tokenizer, with <mask>) that AutoModelForSeq2SeqLM loads.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict

from transformers import AutoTokenizer

from conseq import modeling, runtime, specs, training
from conseq.artifacts import Artifact, run_dir
from conseq.config import Config
from conseq.data import batching, denoising, prepare

log = logging.getLogger(__name__)


def run(cfg: Config) -> dict | None:
    # setup
    s = cfg.stages.pretrain
    art = specs.pretrain(cfg)
    if art.done and not cfg.force:
        return runtime.emit_result("pretrain", art.path, True, art.metrics())
    if s.n_documents < 1 or s.validation_documents < 1:
        raise SystemExit("stages.pretrain.n_documents and stages.pretrain.validation_documents must be >= 1")
    knobs = dict(mask_ratio=s.mask_ratio, poisson_lambda=s.poisson_lambda)
    try:  # bad noise knobs fail here, before anything is written
        denoising.noise_plan(1, denoising.noise_rng(0, 0, 0), **knobs)
    except ValueError as err:
        raise SystemExit(f"stages.pretrain: {err}") from None
    rt = runtime.start(
        run_dir=run_dir(cfg.paths.root, f"pretrain-{art.key}"),
        seed=s.seed,
        logger=cfg.logger,
        mixed_precision=s.mixed_precision,
        grad_accum=s.grad_accum,
        run_name=cfg.run_name,
        config=asdict(cfg),
    )
    acc = rt.accelerator
    max_length = cfg.model.max_source_length
    with acc.main_process_first():
        data_art = None if cfg.data.source == "newsworld" else prepare.build_summarization(specs.data(cfg), cfg.data)
    documents, val_documents = corpus(cfg, data_art)  # every process draws the same ones
    with acc.main_process_first():
        if acc.is_main_process:
            out = art.start(force=cfg.force)
            # A resumed run keeps the tokenizer its training state was saved with.
            if not (out / "tokenizer.json").is_file():
                tokenizer = modeling.train_tokenizer(
                    documents, vocab_size=cfg.model.vocab_size, model_max_length=max_length
                )
                tokenizer.save_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(art.partial)
    model = modeling.build_tiny_model(tokenizer, seed=s.seed, **cfg.model.scratch_dims())

    # data
    docs, truncated = denoising.encode_words(tokenizer, documents, max_length)
    val_docs, _ = denoising.encode_words(tokenizer, val_documents, max_length)
    ids = dict(bos=tokenizer.bos_token_id, eos=tokenizer.eos_token_id, mask=tokenizer.mask_token_id)

    def noised(doc: denoising.WordTokens, epoch: int, index: int) -> list[int]:
        rng = denoising.noise_rng(s.seed, epoch, index)
        plan = denoising.noise_plan(
            doc.n_words, rng, **knobs, starts=doc.sentence_starts if s.permute_sentences else None
        )
        return denoising.noised_ids(doc, plan, **ids, max_length=max_length)

    targets = [denoising.target_ids(d, bos=ids["bos"], eos=ids["eos"]) for d in docs]
    lengths = [len(t) for t in targets]
    n = len(docs)
    log.info(
        "%d documents (%d cut to %d tokens), %d held out; vocabulary %d",
        n,
        truncated,
        max_length,
        len(val_docs),
        len(tokenizer),
    )

    def buckets(epoch: int) -> list[list[int]]:
        return batching.length_buckets(
            lengths, max_tokens=s.max_tokens, batch_size=s.batch_size, shuffle=True, seed=s.seed + epoch
        )

    # Example e·n + i is document i of epoch e, so collation draws that epoch's noise for it (the loop asks
    # batches(epoch) for each epoch's index batches).
    per_epoch = math.ceil(len(buckets(0)) / acc.num_processes / s.grad_accum)
    epochs = math.ceil(training.optimizer_steps(len(buckets(0)), s, acc.num_processes) / per_epoch) + 1
    examples = [(epoch, i) for epoch in range(epochs) for i in range(n)]

    def batches(epoch: int) -> list[list[int]]:
        return [[epoch * n + i for i in batch] for batch in buckets(epoch)]

    def collate(items: list[tuple[int, int]]):
        sources = [noised(docs[i], epoch, i) for epoch, i in items]
        return batching.collate(sources, [targets[i] for _, i in items], tokenizer.pad_token_id)

    # Validation: one fixed noise per held-out document (epoch -1), so the losses of a run compare.
    val_examples = [
        (noised(d, -1, i), denoising.target_ids(d, bos=ids["bos"], eos=ids["eos"])) for i, d in enumerate(val_docs)
    ]

    def collate_val(items):
        return batching.collate([x for x, _ in items], [y for _, y in items], tokenizer.pad_token_id)

    def evaluate(model) -> dict[str, float]:
        return {"loss": training.validation_nll(model, rt, val_examples, collate_val, s.batch_size)}

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
        "documents": n,
        "validation_documents": len(val_docs),
        "truncated_documents": truncated,
        "vocab_size": len(tokenizer),
        **{f"train_{k}": v for k, v in result.last_train.items()},
        **{f"val_{k}": v for k, v in result.best.items()},
    }
    result = None
    if acc.is_main_process:
        model.save_pretrained(art.partial)
        tokenizer.save_pretrained(art.partial)
        art.finish(metrics)
        result = runtime.emit_result("pretrain", art.path, False, metrics)
    acc.wait_for_everyone()
    rt.close()
    return result


def corpus(cfg: Config, data_art: Artifact | None) -> tuple[list[str], list[str]]:
    """(training documents, validation documents) of the pretraining: the news world's own stream (its first
    validation_documents held out, so that n_documents never changes them), or the documents of ``data_art``'s
    train and validation splits (any other data source)."""
    s = cfg.stages.pretrain
    if data_art is None:
        from conseq.data import newsworld

        world = newsworld.WorldConfig(**asdict(cfg.data.world))
        documents = newsworld.unlabelled_documents(world, s.validation_documents + s.n_documents)
        return documents[s.validation_documents :], documents[: s.validation_documents]
    documents = [r["document"] for r in prepare.read_split(data_art, "train")[: s.n_documents]]
    return documents, [r["document"] for r in prepare.read_split(data_art, "validation")[: s.validation_documents]]
