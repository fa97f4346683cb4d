"""stage=qa: train QAGS's extractive QA model (AutoModelForQuestionAnswering) on SQuAD-layout data.

    python -m conseq.train stage=qa                                        # tiny BART QA, news world QA split
    python -m conseq.train stage=qa qa_model=bart_large qa_data=squad      # a QA head on BART-large, SQuAD
    python -m conseq.train stage=qa … ; python -m conseq.score scorer=qags input=… output=…

QAGS needs a QA model that can also say "no answer" (its filter drops the questions that cannot be answered from
the summary; the original used a SQuAD 2.0 model). SQuAD 2.0-style unanswerable examples are therefore added:
with probability ``unanswerable_rate`` per question, the same question on its passage without the sentences that
hold the answer. Passages longer than the model's limit become overlapping windows; a window without the answer
is trained to point at the first token ("no answer"). Output: a save_pretrained folder that
AutoModelForQuestionAnswering loads; metrics: validation loss, exact match, F1 (SQuAD normalisation, "" for no
answer), F1 on answerable questions and accuracy on unanswerable ones.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict

import torch
from accelerate.utils import gather_object

from conseq import runtime, specs, training
from conseq.artifacts import run_dir
from conseq.config import Config
from conseq.data import batching, prepare
from conseq.scoring.extractive import (
    ExtractiveQA,
    collate_windows,
    exact_match,
    make_windows,
    token_f1,
    training_examples,
)

log = logging.getLogger(__name__)


def run(cfg: Config) -> dict | None:
    # setup
    s = cfg.stages.qa
    if s.eval_rows is not None and s.eval_rows < 1:
        raise ValueError(f"stages.qa.eval_rows={s.eval_rows}: must be >= 1 (null = every validation row)")
    art = specs.qa(cfg)
    if art is None:
        raise SystemExit(f"qa={cfg.qa!r} names an existing QA model; drop it to train one here")
    if art.done and not cfg.force:
        return runtime.emit_result("qa", art.path, True, art.metrics())
    start = specs.start_from(cfg, cfg.qa_model)  # a missing warm-start model fails here, before any write
    rt = runtime.start(
        run_dir=run_dir(cfg.paths.root, f"qa-{art.key}"),
        seed=s.seed,
        logger=cfg.logger,
        mixed_precision=s.mixed_precision,
        grad_accum=s.grad_accum,
        run_name=cfg.run_name,
        config=asdict(cfg),
    )
    acc = rt.accelerator
    with acc.main_process_first():
        qa_art = prepare.build_qa(specs.qa_data(cfg), cfg.qa_data, asdict(cfg.data.world))
        tok_art = specs.tokenizer(cfg, cfg.qa_model)
        if tok_art:
            data_art = prepare.build_summarization(specs.data(cfg), cfg.data)
            prepare.build_tokenizer(tok_art, data_art, cfg.qa_model)
        if acc.is_main_process:
            art.start(force=cfg.force)
    model, tokenizer = initial_model(cfg, start, tok_art and str(tok_art.path))

    # data
    max_length = cfg.qa_model.max_source_length
    train = training_examples(prepare.read_split(qa_art, "train"), unanswerable_rate=s.unanswerable_rate, seed=s.seed)
    val = training_examples(
        prepare.read_split(qa_art, "validation"), unanswerable_rate=s.unanswerable_rate, seed=s.seed + 1
    )
    # The validation loss and the span metrics both read the first eval_rows of the shuffled rows (a mix of
    # answerable and unanswerable questions): the loss over every window of the split was ~15 s of the demo's
    # 143 s QA stage.
    random.Random(s.seed).shuffle(val)
    val = val[: s.eval_rows]

    def windows(examples):
        return make_windows(
            tokenizer,
            [e.question for e in examples],
            [e.context for e in examples],
            max_length=max_length,
            doc_stride=s.doc_stride,
            answers=[None if e.answer_start is None else (e.answer_start, e.answer) for e in examples],
        )

    train_windows, multi = windows(train)
    val_windows, _ = windows(val)
    lengths = [len(w.input_ids) for w in train_windows]

    def batches(epoch: int) -> list[list[int]]:
        return batching.length_buckets(
            lengths, max_tokens=s.max_tokens, batch_size=s.batch_size, shuffle=True, seed=s.seed + epoch
        )

    def collate(items):
        return collate_windows(items, tokenizer.pad_token_id, labels=True)

    def loss_fn(model, batch):
        loss = model(**batch, use_cache=False).loss
        return loss, {"loss": loss.item()}

    def evaluate(model) -> dict[str, float]:
        metrics = {"loss": validation_loss(model, rt, val_windows, collate, s.batch_size)}
        reader = ExtractiveQA(
            model, tokenizer, max_length=max_length, doc_stride=s.doc_stride, max_answer_tokens=s.max_answer_tokens
        )
        with acc.split_between_processes(val) as mine:
            predicted = [a.text for a in reader.answer([e.question for e in mine], [e.context for e in mine])]
        metrics.update(span_metrics(gather_object(predicted)[: len(val)], [e.answer for e in val]))
        return metrics

    # loop
    model, result = training.fit(
        runtime=rt,
        model=model,
        examples=train_windows,
        batches=batches,
        collate=collate,
        loss_fn=loss_fn,
        eval_fn=evaluate,
        cfg=s,
        workdir=art.partial,
    )

    # save
    metrics = {
        "steps": result.steps,
        "resumed_from": result.resumed_from,
        "train_examples": len(train),
        "train_unanswerable": sum(e.answer_start is None for e in train),
        "train_windows": len(train_windows),
        "validation_rows": len(val),
        "multi_window_passages": multi,
        **{f"qa_data_{k}": v for k, v in qa_art.metrics().items()},
        **{f"train_{k}": v for k, v in result.last_train.items()},
        **{f"val_{k}": v for k, v in result.best.items()},
    }
    result = None
    if acc.is_main_process:
        model.save_pretrained(art.partial)
        tokenizer.save_pretrained(art.partial)
        art.finish(metrics)
        result = runtime.emit_result("qa", art.path, False, metrics)
    acc.wait_for_everyone()
    rt.close()
    return result


def initial_model(cfg: Config, start: str | None, tokenizer_dir: str | None):
    """A pretrained checkpoint with a (new) QA head, or the tiny BART QA model from scratch."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from conseq.modeling import build_tiny_head_model

    m = cfg.qa_model
    if start:  # specs.start_from: a pretrained checkpoint or the warm-start model
        return AutoModelForQuestionAnswering.from_pretrained(start), AutoTokenizer.from_pretrained(start)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = build_tiny_head_model(AutoModelForQuestionAnswering, tokenizer, seed=cfg.stages.qa.seed, **m.scratch_dims())
    return model, tokenizer


def validation_loss(model, rt, windows, collate, batch_size: int) -> float:
    """Mean start/end cross-entropy over validation windows, every process's share reduced."""
    acc = rt.accelerator
    totals = torch.zeros(2, device=acc.device, dtype=torch.float64)
    with acc.split_between_processes(list(range(len(windows)))) as mine, torch.inference_mode():
        for start in range(0, len(mine), batch_size):
            chunk = [windows[i] for i in mine[start : start + batch_size]]
            batch = {k: v.to(acc.device) for k, v in collate(chunk).items()}
            totals += torch.tensor([model(**batch, use_cache=False).loss.item() * len(chunk), len(chunk)]).to(totals)
    totals = acc.reduce(totals, reduction="sum")
    return (totals[0] / totals[1].clamp(min=1)).item()


def span_metrics(predictions: list[str], golds: list[str]) -> dict[str, float]:
    """SQuAD 2.0-style: exact match and F1 over all questions ("" = no answer), F1 on the answerable ones and
    accuracy on the unanswerable ones."""
    if not golds:
        return {}
    f1 = [token_f1(p, g) for p, g in zip(predictions, golds, strict=True)]
    has = [i for i, g in enumerate(golds) if g]
    no = [i for i, g in enumerate(golds) if not g]
    out = {
        "exact": sum(exact_match(p, g) for p, g in zip(predictions, golds, strict=True)) / len(golds),
        "f1": sum(f1) / len(f1),
    }
    if has:
        out["has_answer_f1"] = sum(f1[i] for i in has) / len(has)
    if no:
        out["no_answer_accuracy"] = sum(not predictions[i] for i in no) / len(no)
    return out
