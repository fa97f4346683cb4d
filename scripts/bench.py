"""Speed and memory of conseq's hot paths, as ratios against the naive way and the peers' way (DESIGN.md §5).

`make bench` (bart-base shape, an estimated 8 minutes on 2 CPU cores) or `python scripts/bench.py --quick` (tiny shape,
tiny inputs, under a minute) prints a markdown table and writes it with a JSON twin to
outputs/bench/bench_<size>[_quick].{md,json}. A CPU benchmark: accelerate and the Trainer are kept on the CPU.

Models have real shapes and random weights (speed does not depend on the values). ``--size base`` is bart-base
(d 768, 6+6 layers, 12 heads, ffn 3072, 1024 positions, 50265 vocabulary rows); ``--size tiny`` is conseq's
model=tiny (d 128, 2+2 layers, ffn 512, 512 positions). The tokenizer is a byte-level BPE trained here on the XSum
texts (8000 ids for base, 4000 for tiny). base keeps bart-base's 50265-row embedding and output layer (ids past
the tokenizer's are scored, never fed), so the output layer, the largest cost of decoding 60 groups, costs what it
costs in bart-base; tiny uses the tokenizer's size, as model=tiny does.

1. QUALS likelihoods: ``pair_log_likelihoods`` (each source encoded once, broadcast over its QA rows) vs the
   original's way (the source copied into every QA row, ``model(input_ids=…, labels=…)``, rows sorted by source
   length), both at most ``max_rows`` rows per forward; the max |difference| of their values is reported.
2. QA generation: ``diverse_beam_search`` over B summaries in one batch vs one summary at a time, and vs the naive
   uncached decode (groups in turn, the decoder re-run on the whole prefix every step, Hamming penalty; encoder
   once) on fewer summaries and tokens. Random weights never end a group early, so every group runs to
   max_new_tokens: the cap is 20, about a trained QAGen's pair length, not the original's 60.
3. ConSeq step (forward + backward of ``conseq_loss``): ``EncoderSharingPair`` vs two full forwards.
4. MLE throughput: ``training.fit`` (length buckets, ``smoothed_nll_loss``, AdamW) vs transformers'
   ``Seq2SeqTrainer`` (``DataCollatorForSeq2Seq``, label smoothing 0.1) on the same rows, steps and batch size:
   on fit's own batches (the loops' overhead alone) and in the Trainer's random order (plus padding). The notes
   give the pad share of those runs and of a whole epoch of all rows, with the Trainer's group_by_length too.
5. Peak memory of (1): each way runs in its own subprocess (which also times it for (1)); the peak resident
   memory during the run minus the resident memory just before it.
6. QUALS vs QAGS end to end (the paper's "55x faster" claim), with the models a default run trained (`make demo`,
   or ``--models <paths.root>``): the tiny QAGen against QAGS's tiny question generator + tiny extractive QA
   model + spaCy NER, the same shape each, on the news world's test references. Random weights would not do
   here: both metrics filter their generated questions, and untrained models leave nothing to answer or score.
   Skipped (with a note) when those models are absent.

Reading: ratio = how many times faster or leaner conseq's way is (baseline s / conseq s, conseq samples/s /
baseline samples/s, baseline MB / conseq MB). Every path is warmed up on a small input first, then timed with
time.perf_counter: conseq's inference paths as the best of ``--repeats`` runs; the baselines (several times
slower, so one run's noise is small next to the ratio) and training (which changes the weights) once; (4) runs
after (3) has warmed the same model up. Nothing asserts on a time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from itertools import chain
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import (
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    PrinterCallback,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
)
from transformers.modeling_outputs import BaseModelOutput
from transformers.trainer_pt_utils import LengthGroupedSampler

from conseq import losses, runtime, training
from conseq.config import TrainConfig
from conseq.data import batching
from conseq.generation import diverse_beam_search
from conseq.modeling import build_tiny_model, train_tokenizer
from conseq.scoring.quals import pair_log_likelihoods

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "xsum" / "xsum_test_1000.jsonl"
OUT = ROOT / "outputs" / "bench"
SHAPES = {
    "base": dict(d_model=768, encoder_layers=6, decoder_layers=6, attention_heads=12, ffn_dim=3072),
    "tiny": dict(d_model=128, encoder_layers=2, decoder_layers=2, attention_heads=4, ffn_dim=512),
}
POSITIONS = {"base": 1024, "tiny": 512}  # also where sources are cut
TOKENIZER_VOCAB = {"base": 8000, "tiny": 4000}
BART_BASE_VOCAB = 50265


@dataclass
class Plan:
    """Input sizes. The default should take about 8 minutes at base size on 2 CPU cores (estimated from FLOPs)."""

    docs: int = 16  # (1) XSum documents with `qas` targets of at most `qa_tokens` ids each
    qas: int = 10
    qa_tokens: int = 20
    max_rows: int = 20  # (1) decoder rows per forward, both ways (the naive way: 20 source copies)
    summaries: int = 8  # (2) B, decoded with `groups` groups to `new_tokens` tokens
    groups: int = 60
    new_tokens: int = 20
    naive_summaries: int = 2  # (2) the uncached decode's inputs and length
    naive_tokens: int = 10
    batch: int = 4  # (3) and (4)
    train_rows: int = 24  # (4) one epoch of train_rows / batch steps


QUICK = Plan(docs=2, summaries=2, new_tokens=10, naive_summaries=1, naive_tokens=8, batch=2, train_rows=4)


def timed(fn, repeats: int = 1):
    """(best wall-clock seconds over ``repeats`` calls, the last call's result); the caller warms up first."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB; current from /proc on Linux."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    statm = Path("/proc/self/statm")
    current = int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20 if statm.exists() else peak
    return current, peak


def result(measure, unit, conseq, baseline, notes, higher_is_better=False) -> dict:
    ratio = conseq / baseline if higher_is_better else baseline / conseq
    return dict(measure=measure, unit=unit, conseq=conseq, baseline=baseline, ratio=ratio, notes=notes)


# setup


def load_rows() -> list[dict]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    random.Random(0).shuffle(rows)  # a fixed sample of typical lengths, not the file's first rows
    return rows


def build_model(tokenizer, size: str):
    model = build_tiny_model(tokenizer, max_position_embeddings=POSITIONS[size], **SHAPES[size])
    if size == "base":
        model.resize_token_embeddings(BART_BASE_VOCAB, mean_resizing=False)
    return model


def encode(tokenizer, rows: list[dict], size: str, targets: list[str] | None = None):
    """(source ids cut at the model's positions, ids of ``targets`` or else of the rows' summaries)."""
    texts = targets or [r["summary"] for r in rows]
    enc = batching.encode_pairs(
        tokenizer, [r["document"] for r in rows], texts, max_source_length=POSITIONS[size], max_target_length=64
    )
    return enc.input_ids, enc.labels


# 1 and 5: QUALS likelihoods and their memory, each way in its own process


def qa_targets(tokenizer, rows: list[dict], plan: Plan) -> list[list[list[int]]]:
    """Per document, ``plan.qas`` question-like targets "<first words of a summary>?<sep> <its last word>"."""
    out = []
    for i in range(plan.docs):
        words = [rows[i * plan.qas + j]["summary"].rstrip(".").split() for j in range(plan.qas)]
        ids = tokenizer(text_target=[" ".join(w[:7]) + "?<sep> " + w[-1] for w in words])["input_ids"]
        out.append([s if len(s) <= plan.qa_tokens else [*s[: plan.qa_tokens - 1], s[-1]] for s in ids])
    return out


@torch.inference_mode()
def naive_log_likelihoods(model, source_ids, targets, *, pad_token_id: int, max_rows: int) -> list[list[float]]:
    """The original's way: every QA row carries its own copy of the source; the same per-token means as conseq."""
    rows = [(i, j) for i in range(len(targets)) for j in range(len(targets[i]))]
    rows.sort(key=lambda row: -len(source_ids[row[0]]))
    forced_bos = model.generation_config.forced_bos_token_id
    out = [[float("nan")] * len(t) for t in targets]
    for start in range(0, len(rows), max_rows):
        chunk = rows[start : start + max_rows]
        inputs = batching.collate([source_ids[i] for i, _ in chunk], [targets[i][j] for i, j in chunk], pad_token_id)
        logits = model(**inputs).logits  # labels= makes the decoder inputs (and a loss, as the original's did)
        labels = inputs["labels"]
        labels[:, 0] = torch.where(labels[:, 0] == forced_bos, -100, labels[:, 0])
        token_ll = -F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none")
        for (i, j), value in zip(chunk, (token_ll.sum(1) / (labels != -100).sum(1)).tolist(), strict=True):
            out[i][j] = value
    return out


def quals_worker(args, plan: Plan) -> dict:
    """Section 1 for one way, alone in this process so that the peak memory is its own."""
    tokenizer, rows = AutoTokenizer.from_pretrained(args.tokenizer), load_rows()
    model = build_model(tokenizer, args.size).eval()
    sources, targets = encode(tokenizer, rows[: plan.docs], args.size)[0], qa_targets(tokenizer, rows, plan)
    score = pair_log_likelihoods if args.worker == "shared" else naive_log_likelihoods

    def run(n):
        return score(model, sources[:n], targets[:n], pad_token_id=tokenizer.pad_token_id, max_rows=plan.max_rows)

    run(1)
    before, _ = rss_mb()
    seconds, values = timed(lambda: run(plan.docs), args.repeats if args.worker == "shared" else 1)
    mean_tokens = sum(map(len, sources)) / len(sources)
    return dict(seconds=seconds, peak_mb=rss_mb()[1] - before, values=values, source_tokens=mean_tokens)


def quals_sections(args, plan: Plan, tokenizer_dir: str) -> tuple[list[dict], dict]:
    runs = {}
    for way in ("shared", "naive"):
        flags = ["--size", args.size, "--threads", str(args.threads), "--repeats", str(args.repeats)]
        flags += ["--docs", str(plan.docs), "--worker", way, "--tokenizer", tokenizer_dir] + ["--quick"] * args.quick
        proc = subprocess.run([sys.executable, __file__, *flags], stdout=subprocess.PIPE, text=True)
        if proc.returncode:
            raise RuntimeError(f"the {way} QUALS worker failed (exit {proc.returncode}); its error is above")
        runs[way] = json.loads(proc.stdout.strip().splitlines()[-1])
    shared, naive = runs["shared"], runs["naive"]
    pairs = zip(chain(*shared["values"]), chain(*naive["values"]), strict=True)
    diff = max(abs(a - b) for a, b in pairs)
    what = f"{plan.docs} docs x {plan.qas} QA rows, sources {shared['source_tokens']:.0f} tokens on average"
    return [
        result("(1) QUALS likelihoods", "s", shared["seconds"], naive["seconds"], f"{what}; max abs diff {diff:.1e}"),
        result(
            "(5) QUALS peak memory",
            "MB",
            shared["peak_mb"],
            naive["peak_mb"],
            f"peak RSS minus RSS before; max_rows {plan.max_rows}",
        ),
    ], {"quals_max_abs_diff": diff}


# 2: QA generation


@torch.inference_mode()
def uncached_decode(model, input_ids, *, groups: int, max_new: int, penalty: float = 0.5) -> list[list[int]]:
    """The naive way for one summary: groups in turn, the decoder re-run on the whole prefix at every step."""
    gen = model.generation_config
    encoder_outputs = BaseModelOutput(last_hidden_state=model.get_encoder()(input_ids=input_ids).last_hidden_state)
    seqs, done = [[gen.decoder_start_token_id, gen.forced_bos_token_id] for _ in range(groups)], [False] * groups
    for step in range(max_new + 1):
        chosen = []  # this step's tokens of the earlier groups still decoding: the Hamming penalty
        for g in (g for g in range(groups) if not done[g]):
            logits = model(encoder_outputs=encoder_outputs, decoder_input_ids=torch.tensor([seqs[g]])).logits
            lp = logits[0, -1].float().log_softmax(-1)
            lp[gen.pad_token_id] = -torch.inf
            if step < min(8, max_new):
                lp[gen.eos_token_id] = -torch.inf
            if step >= max_new:
                lp = torch.where(torch.arange(len(lp)) == gen.eos_token_id, lp, -torch.inf)
            for token in chosen:
                lp[token] -= penalty
            chosen.append(int(lp.argmax()))
            seqs[g].append(chosen[-1])
            done[g] = chosen[-1] == gen.eos_token_id
        if all(done):
            break
    return [s[1:] for s in seqs]


def generation_section(model, tokenizer, rows, plan: Plan, repeats: int) -> tuple[list[dict], dict]:
    model.eval()
    summaries = tokenizer([r["summary"] for r in rows[: plan.summaries]])["input_ids"]

    def search(ids, tokens):
        batch = batching.collate(ids, None, tokenizer.pad_token_id)
        kw = dict(num_groups=plan.groups, min_new_tokens=min(8, tokens), max_new_tokens=tokens)
        return diverse_beam_search(model, batch["input_ids"], batch["attention_mask"], **kw)

    search(summaries[:1], 2)
    t_batch, _ = timed(lambda: search(summaries, plan.new_tokens), repeats)
    t_single, _ = timed(lambda: [search([ids], plan.new_tokens) for ids in summaries])
    few = summaries[: plan.naive_summaries]
    t_few, out = timed(lambda: search(few, plan.naive_tokens), repeats)
    kw = dict(groups=plan.groups, max_new=plan.naive_tokens)
    uncached_decode(model, torch.tensor([few[0]]), groups=2, max_new=2)
    t_naive, naive = timed(lambda: [uncached_decode(model, torch.tensor([ids]), **kw) for ids in few])
    found = [[t for t in seq if t != tokenizer.pad_token_id] for seq in out.sequences.flatten(0, 1).tolist()]
    same, n, m = sum(a == b for a, b in zip(found, chain(*naive), strict=True)), len(summaries), len(few)
    return [
        result("(2) QA generation, batched vs one at a time", "summaries/s", n / t_batch, n / t_single,
               f"B={n}, {plan.groups} groups, {plan.new_tokens} new tokens", higher_is_better=True),
        result("(2) QA generation vs uncached group by group", "summaries/s", m / t_few, m / t_naive,
               f"{m} summaries, {plan.naive_tokens} new tokens; same output in {same}/{len(found)} groups",
               higher_is_better=True),
    ], {"generation_same_groups": same, "generation_groups": len(found)}  # fmt: skip


# 3: the ConSeq step


def conseq_step_section(model, tokenizer, rows, plan: Plan, size: str) -> list[dict]:
    docs = rows[: plan.batch]
    sources, positives = encode(tokenizer, docs, size)
    # y−: another document's summary
    _, negatives = encode(tokenizer, docs, size, [docs[(i + 1) % len(docs)]["summary"] for i in range(len(docs))])
    batch = batching.collate_pairs(sources, positives, negatives, tokenizer.pad_token_id)
    pair = training.EncoderSharingPair(model)

    def step(pos_logits, neg_logits, b):
        losses.conseq_loss(pos_logits, b["labels"], neg_logits, b["neg_labels"])["loss"].backward()
        model.zero_grad(set_to_none=True)

    def shared(b):
        step(*pair(**b), b)

    def twice(b):
        step(training.seq2seq_forward(model, b), training.seq2seq_forward(model, b, "neg_labels"), b)

    model.train()
    first = {k: v[:1] for k, v in batch.items()}
    shared(first), twice(first)
    t_shared, _ = timed(lambda: shared(batch))
    t_twice, _ = timed(lambda: twice(batch))
    notes = f"batch {plan.batch}, sources padded to {batch['input_ids'].shape[1]}"
    return [result("(3) ConSeq step, encoder once vs twice", "s", t_shared, t_twice, notes)]


# 4: MLE training throughput


def pad_share(batches: list[list[int]]) -> float:
    """The share of padding in batches given as lists of sequence lengths, each padded to its longest."""
    return 1 - sum(map(sum, batches)) / sum(len(b) * max(b) for b in batches)


def mle_section(model, tokenizer, rows, plan: Plan, size: str, workdir: Path) -> list[dict]:
    sources, labels = encode(tokenizer, rows[: plan.train_rows], size)
    examples, lengths = list(zip(sources, labels, strict=True)), [len(s) for s in sources]
    n, steps = len(examples), len(examples) // plan.batch
    buckets = batching.length_buckets(lengths, max_tokens=None, batch_size=plan.batch, shuffle=True, seed=0)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(lr=5e-5, warmup_steps=0, epochs=1, max_steps=steps, batch_size=plan.batch, eval_every=0)
    cfg = replace(cfg, save_every=0, log_every=steps)

    def collate(items):
        return batching.collate([x for x, _ in items], [y for _, y in items], tokenizer.pad_token_id)

    fit = dict(examples=examples, batches=lambda epoch: buckets, collate=collate, eval_fn=None, cfg=cfg)
    fit |= dict(runtime=runtime.start(run_dir=workdir, seed=0), loss_fn=training.smoothed_nll_loss(0.1))
    t_fit, _ = timed(lambda: training.fit(model=model, workdir=workdir, **fit))
    fit_pad = pad_share([[lengths[i] for i in b] for b in buckets])

    # The pad share of an epoch of all rows, where the Trainer's group_by_length takes effect (on a few rows it
    # does not: it sorts within mega-batches of min(rows / (4 x batch), 50) batches).
    every = [len(s) for s in encode(tokenizer, rows, size)[0]]
    epoch = {
        "buckets": batching.length_buckets(every, max_tokens=None, batch_size=plan.batch, shuffle=True, seed=0),
        "random": random.Random(0).sample(range(len(rows)), len(rows)),
        "group_by_length": list(LengthGroupedSampler(plan.batch, lengths=every)),
    }
    for name in ("random", "group_by_length"):
        epoch[name] = [epoch[name][i : i + plan.batch] for i in range(0, len(rows), plan.batch)]
    full = ", ".join(f"{k} {pad_share([[every[i] for i in b] for b in v]):.0%}" for k, v in epoch.items())

    features = [{"input_ids": x, "attention_mask": [1] * len(x), "labels": y} for x, y in examples]
    out = []
    for name, strategy, dataset in [
        ("fit's batches", "sequential", [features[i] for b in buckets for i in b]),
        ("random order", "random", features),
    ]:
        model.load_state_dict(initial)
        seen, collator = [], DataCollatorForSeq2Seq(tokenizer, model=model)

        def recorded(items, collator=collator, seen=seen):
            batch = collator(items)
            seen.append(batch["attention_mask"].sum(1).tolist())
            return batch

        args = Seq2SeqTrainingArguments(
            output_dir=str(workdir / strategy), per_device_train_batch_size=plan.batch, max_steps=steps,
            learning_rate=5e-5, label_smoothing_factor=0.1, train_sampling_strategy=strategy, report_to=[],
            save_strategy="no", logging_strategy="no", disable_tqdm=True, use_cpu=True, seed=0,
        )  # fmt: skip
        trainer = Seq2SeqTrainer(model=model, args=args, data_collator=recorded, train_dataset=dataset)
        trainer.remove_callback(PrinterCallback)
        t_trainer, _ = timed(trainer.train)
        notes = f"{n} rows, batch {plan.batch}, {steps} steps; pad share {fit_pad:.0%} vs {pad_share(seen):.0%}"
        if strategy == "random":
            notes += f"; in an epoch of all {len(rows)} rows: {full}"
        out.append(
            result(f"(4) MLE train vs Seq2SeqTrainer, {name}", "samples/s", n / t_fit, n / t_trainer, notes, True)
        )
    return out


# save


# 6: QUALS vs QAGS end to end, with trained models


def scorer_section(models_root: Path, rows_n: int) -> tuple[list[dict], dict]:
    """Summaries per second of QualsScorer and QagsScorer on the same (document, reference) pairs."""
    from hydra.errors import InstantiationException

    from conseq import specs
    from conseq.data import prepare
    from conseq.scoring.base import build_scorer, project_config
    from conseq.scoring.quals import QualsScorer

    cfg = project_config(str(models_root))
    try:
        scorers = {
            "quals": QualsScorer.from_pretrained(
                specs.qagen_location(cfg)[0], device="cpu", **asdict(cfg.stages.score.quals)
            ),
            "qags": build_scorer(cfg, "qags", device="cpu"),  # as evaluate builds it
        }
    except (FileNotFoundError, InstantiationException) as err:  # hydra wraps the missing-model error
        print(f"skipping (6) QUALS vs QAGS: {err}", file=sys.stderr)
        return [], {}
    rows = prepare.read_split(specs.data(cfg), "test")[:rows_n]
    documents, summaries = [r["document"] for r in rows], [r["summary"] for r in rows]
    seconds, nulls = {}, {}
    for name, scorer in scorers.items():
        scorer.score(documents[:2], summaries[:2])  # warm-up
        seconds[name], results = timed(lambda s=scorer: s.score(documents, summaries))
        values = [getattr(r, "quals", getattr(r, "value", None)) for r in results]
        nulls[name] = sum(v is None for v in values)
    note = (
        f"{len(rows)} news-world test references; summaries/s; null scores: QUALS {nulls['quals']}, "
        f"QAGS {nulls['qags']}; QUALS 60 groups, QAGS {cfg.scorers['qags'].get('num_beams')} beams"
    )
    per_s = {name: len(rows) / seconds[name] for name in seconds}
    return [result("(6) QUALS vs QAGS throughput", "summaries/s", per_s["quals"], per_s["qags"], note, True)], {
        "quals_seconds": seconds["quals"],
        "qags_seconds": seconds["qags"],
    }


def table(results: list[dict]) -> str:
    lines = ["| measure | conseq | baseline | ratio | notes |", "|---|---|---|---|---|"]
    for r in results:
        values = f"{r['conseq']:.3g} {r['unit']} | {r['baseline']:.3g} {r['unit']}"
        lines.append(f"| {r['measure']} | {values} | {r['ratio']:.2f}x | {r['notes']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny inputs, a check in seconds (default size tiny)")
    parser.add_argument("--size", choices=sorted(SHAPES), help="model shape (default: base; tiny with --quick)")
    parser.add_argument("--docs", type=int, help="documents for (1) and (5) (default: 16; 2 with --quick)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--repeats", type=int, help="best of k for conseq's inference paths (3; 1 with --quick)")
    parser.add_argument("--models", default=str(ROOT / "outputs"), help="paths.root of a default run, for (6)")
    parser.add_argument("--scorer-rows", type=int, default=50, help="references scored in (6) (10 with --quick)")
    parser.add_argument("--worker", choices=["shared", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.size = args.size or ("tiny" if args.quick else "base")
    args.repeats = args.repeats or (1 if args.quick else 3)
    plan = replace(QUICK if args.quick else Plan(), **({"docs": args.docs} if args.docs else {}))
    os.environ["ACCELERATE_USE_CPU"] = "true"  # fit's accelerator on the CPU too, like the Trainer's use_cpu
    torch.set_num_threads(args.threads)
    if not DATA.is_file():
        print(f"skipping the benchmark: {DATA} is absent (XSum is read from ../shared next to the repository)")
        return
    if args.worker:
        print(json.dumps(quals_worker(args, plan)))
        return

    # setup
    start, rows = time.perf_counter(), load_rows()
    if len(rows) < plan.docs * plan.qas:
        raise SystemExit(f"--docs {plan.docs} needs {plan.docs * plan.qas} rows in {DATA}, which has {len(rows)}")
    texts = [r["document"] for r in rows] + [r["summary"] for r in rows]
    tokenizer = train_tokenizer(texts, vocab_size=TOKENIZER_VOCAB[args.size], model_max_length=POSITIONS[args.size])
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        results, checks = quals_sections(args, plan, tmp)
        model = build_model(tokenizer, args.size)
        generation, more_checks = generation_section(model, tokenizer, rows, plan, args.repeats)
        results += generation + conseq_step_section(model, tokenizer, rows, plan, args.size)
        results += mle_section(model, tokenizer, rows, plan, args.size, Path(tmp))
    scored, scorer_checks = scorer_section(Path(args.models), 10 if args.quick else args.scorer_rows)
    results += scored
    more_checks |= scorer_checks

    # save
    seconds = time.perf_counter() - start
    results.sort(key=lambda r: r["measure"][:3])  # by section number, (5) last
    text = (
        f"conseq bench: size {args.size} (vocabulary {model.config.vocab_size}), {args.threads} threads, "
        f"best of {args.repeats}, {seconds:.0f} s in all; ratio = how many times better conseq's way is\n\n"
        f"{table(results)}\n"
    )
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"bench_{args.size}" + ("_quick" if args.quick else "")
    (OUT / f"{name}.md").write_text(text)
    spec = dict(size=args.size, threads=args.threads, repeats=args.repeats, plan=asdict(plan), seconds=seconds)
    (OUT / f"{name}.json").write_text(json.dumps(spec | {"results": results, "checks": checks | more_checks}, indent=2))
    print(f"wrote {OUT / name}.md and .json")


if __name__ == "__main__":
    main()
