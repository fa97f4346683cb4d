"""stage=qagen: train the one model behind QUALS, mapping a passage to "question<sep>answer</s>".

    python -m conseq.train stage=qagen                                         # tiny BART, news world QA split
    python -m conseq.train stage=qagen qagen_model=bart_large qa_data=squad    # the paper's QAGen (SQuAD part)
    python -m conseq.train stage=qagen qa_data=squad_files qa_data.train_file=train-v1.1.json
    python -m conseq.train stage=qagen stages.qagen.mode=qg                    # QAGS's question generator

Mode qg trains the answer-conditioned question generator of QAGS instead ("answer<sep>passage" -> question,
conseq.scoring.qags) on the same data and knobs, as its own artifact (specs.qg); its folder's conseq_qagen.json says
``qa_format: qg`` and its metrics how often a held-out question is well-formed and how close to the gold one.

Data: SQuAD-layout rows, one example per distinct answer (the original recipe); unanswerable rows are skipped
and counted. A pretrained start gets the <sep> token added and its embeddings resized. The saved folder records
its QA format (conseq_qagen.json), so `conseq.score qagen=<dir>` needs no extra flags. The artifact's metrics
include how often the top-1 generated pair's answer occurs in a held-out passage.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict

from conseq import modeling, runtime, specs, training
from conseq.artifacts import run_dir
from conseq.config import Config
from conseq.data import batching, loading, prepare
from conseq.scoring.extractive import token_f1, without_answer
from conseq.scoring.qags import qg_source
from conseq.scoring.quals.pairs import parse_conseq
from conseq.scoring.quals.scorer import save_qa_format

log = logging.getLogger(__name__)


def run(cfg: Config) -> dict | None:
    # setup
    try:
        s = cfg.stages.qagen.resolved()
    except ValueError as e:
        raise SystemExit(str(e)) from None
    qg = s.mode == "qg"
    art = specs.qg(cfg) if qg else specs.qagen(cfg)
    if art is None:
        flag = "qg" if qg else "qagen"
        raise SystemExit(f"{flag}={getattr(cfg, flag)!r} names an existing model; drop it to train one here")
    if art.done and not cfg.force:
        return runtime.emit_result("qagen", art.path, True, art.metrics())
    # QAGS's question generator has its own model group (by default it warm-starts from QAGen).
    m = cfg.qg_model if qg else cfg.qagen_model
    start = specs.start_from(cfg, m)  # a missing warm-start model fails here, before any write
    rt = runtime.start(
        run_dir=run_dir(cfg.paths.root, f"{art.kind}-{art.key}"),
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
        tok_art = specs.tokenizer(cfg, m)
        if tok_art:
            data_art = prepare.build_summarization(specs.data(cfg), cfg.data)
            prepare.build_tokenizer(tok_art, data_art, m)
        if acc.is_main_process:
            art.start(force=cfg.force)
    model, tokenizer = modeling.initial_model(
        start,
        m.scratch_dims(),
        tok_art and str(tok_art.path),
        add_sep=True,
        seed=s.seed,
    )
    sep_id = modeling.ensure_sep_token(model, tokenizer)

    # data
    def encode(rows: list[dict], extra: list[dict] = ()) -> batching.Encoded:
        pairs = loading.qa_examples(rows) + list(extra)
        if qg:
            sources = [qg_source(p["answer"], p["context"]) for p in pairs]
            targets = [p["question"] for p in pairs]
        else:
            sources = [p["context"] for p in pairs]
            targets = [f"{p['question']}{modeling.SEP_TOKEN}{p['answer']}" for p in pairs]
        return batching.encode_pairs(
            tokenizer,
            sources,
            targets,
            max_source_length=m.max_source_length,
            max_target_length=m.max_target_length,
        )

    train_rows = prepare.read_split(qa_art, "train")
    val_rows = prepare.read_split(qa_art, "validation")
    unanswerable = [] if qg else unanswerable_examples(train_rows, s.unanswerable_rate, s.seed)
    train, val = encode(train_rows, unanswerable), encode(val_rows)
    # A passage's pairs side by side (length buckets keep that order among equal lengths), so a batch holds few
    # distinct passages and SharedSourceSeq2Seq encodes each once.
    first: dict[tuple[int, ...], int] = {}
    order = sorted(range(len(train.input_ids)), key=lambda i: first.setdefault(tuple(train.input_ids[i]), i))
    examples = [(train.input_ids[i], train.labels[i]) for i in order]
    val_examples = list(zip(val.input_ids, val.labels, strict=True))
    source_lengths = [len(ids) for ids, _ in examples]

    def batches(epoch: int) -> list[list[int]]:
        return batching.length_buckets(
            source_lengths,
            max_tokens=s.max_tokens,
            batch_size=s.batch_size,
            shuffle=True,
            seed=s.seed + epoch,
        )

    def collate(items):
        return batching.collate_shared_sources([x for x, _ in items], [y for _, y in items], tokenizer.pad_token_id)

    def evaluate(model) -> dict[str, float]:
        # Validation encodes each passage once too (the stable length sort keeps a passage's pairs side by side):
        # with one copy per pair it was ~5 s of every 300 demo steps.
        shared = training.SharedSourceSeq2Seq(model)
        loss = training.validation_nll(shared, rt, val_examples, collate, s.batch_size, training.shared_source_forward)
        return {"loss": loss}

    # loop
    model, result = training.fit(
        runtime=rt,
        model=model,
        train_module=training.SharedSourceSeq2Seq(model),
        examples=examples,
        batches=batches,
        collate=collate,
        loss_fn=training.smoothed_nll_loss(s.label_smoothing, training.shared_source_forward),
        eval_fn=evaluate,
        cfg=s,
        workdir=art.partial,
    )

    # save
    metrics = {
        "steps": result.steps,
        "resumed_from": result.resumed_from,
        "train_examples": len(examples),
        "unanswerable_examples": len(unanswerable),
        "truncated_sources": train.truncated_sources,
        **{f"qa_data_{k}": v for k, v in qa_art.metrics().items()},
        **{f"val_{k}": v for k, v in result.best.items()},
    }
    result = None  # the main process reports; the others return None (the pipeline's contract)
    if acc.is_main_process:
        if qg:
            pairs = loading.qa_examples(val_rows)[: s.check_passages]
            metrics.update(question_check(model, tokenizer, pairs, m.max_source_length))
        else:
            passages = list(dict.fromkeys(r["context"] for r in val_rows))[: s.check_passages]
            metrics.update(answer_check(model, tokenizer, passages, sep_id, m.max_source_length))
        model.save_pretrained(art.partial)
        tokenizer.save_pretrained(art.partial)
        save_qa_format(art.partial, qa_format="qg" if qg else "conseq")
        art.finish(metrics)
        result = runtime.emit_result("qagen", art.path, False, metrics)
    acc.wait_for_everyone()
    rt.close()
    return result


def unanswerable_examples(rows: list[dict], rate: float, seed: int) -> list[dict]:
    """SQuAD 2.0-style examples for QAGen: with probability ``rate`` per question, the question on its passage
    without the sentences that hold its answer (``extractive.without_answer``), with an empty answer. Questions
    whose answer cannot be cut out (nothing left, or it still occurs) are skipped."""
    if not rate:
        return []
    rng = random.Random(seed)
    out = []
    for row in rows:
        if rng.random() >= rate or not row["answers"]["text"]:
            continue
        reduced = without_answer(row["context"], row["answers"]["text"][0])
        if reduced is not None:
            out.append(
                {
                    "id": f"{row['id']}-unanswerable",
                    "context": reduced,
                    "question": row["question"].strip(),
                    "answer": "",
                }
            )
    return out


def answer_check(model, tokenizer, passages: list[str], sep_id: int, max_source_length: int) -> dict[str, float]:
    """Top-1 (beam 4) pair per held-out passage: how often it parses, and how often its answer is in the passage
    (case-insensitive substring, the test QUALS's filter applies)."""
    import torch

    if not passages:
        return {}
    parsed = answered = 0
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(passages), 32):
            chunk = passages[start : start + 32]
            batch = tokenizer(chunk, truncation=True, max_length=max_source_length, padding=True, return_tensors="pt")
            out = model.generate(**batch.to(model.device), num_beams=4, max_new_tokens=60)
            for passage, ids in zip(chunk, out.tolist(), strict=True):
                pair = parse_conseq(ids, tokenizer, sep_id)
                if pair is None:
                    continue
                parsed += 1
                answered += bool(pair[1]) and pair[1].lower() in passage.lower()
    return {
        "check_passages": len(passages),
        "parse_rate": parsed / len(passages),
        "answer_in_passage_rate": answered / len(passages),
    }


def question_check(model, tokenizer, pairs: list[dict], max_source_length: int) -> dict[str, float]:
    """Top-1 (beam 4) question for held-out (answer, passage) pairs: how often it holds a "?" (QAGS's filter
    drops questions without one), and its SQuAD token F1 with the gold question."""
    import torch

    if not pairs:
        return {}
    marked = f1 = 0.0
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(pairs), 32):
            chunk = pairs[start : start + 32]
            sources = [qg_source(p["answer"], p["context"]) for p in chunk]
            batch = tokenizer(sources, truncation=True, max_length=max_source_length, padding=True, return_tensors="pt")
            out = model.generate(**batch.to(model.device), num_beams=4, max_new_tokens=60)
            for p, text in zip(chunk, tokenizer.batch_decode(out, skip_special_tokens=True), strict=True):
                marked += "?" in text
                f1 += token_f1(text.strip(), p["question"])
    return {"check_questions": len(pairs), "question_mark_rate": marked / len(pairs), "question_f1": f1 / len(pairs)}
