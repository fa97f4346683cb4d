"""stage=partition: choose the (document, positive, negative) triples that ConSeq trains on.

    python -m conseq.train stage=partition                                # QUALS, the paper's 30/30 cuts
    python -m conseq.train stage=partition stages.partition.scorer=rouge  # the ROUGE-ensemble baseline
    python -m conseq.train stage=partition stages.partition.scorer=random # the selection ablation
    python -m conseq.train stage=partition stages.partition.scorer=oracle # the news world's perfect selection
    python -m conseq.train stage=partition stages.partition.selection=threshold \\
        stages.partition.positive_threshold=-0.5 stages.partition.negative_threshold=-1.5

The original selection (reference/quals_conseq.md §4.1 step 6): per document the negative is its lowest-scoring
candidate (first index on ties; unscored candidates ignored; a document without a scored candidate gives no
negative and is counted). Of the N documents, the round(negative_ratio · N) with the lowest negatives and the
round(positive_ratio · N) with the highest-scoring references (unscored ones excluded) are cut, and the
documents in both cuts are kept: positive = the reference, negative = that document's worst candidate.
``selection=threshold`` keeps references scoring ≥ positive_threshold and negatives ≤ negative_threshold
instead. ``negatives_per_document=k`` > 1 pairs a kept document with its k lowest candidates of distinct text,
never one identical to the reference (k = 1 is the original's plain argmin).

``positive=best_candidate`` (on-policy pairs; ours): a document's positive is its best-scoring candidate where
that beats its reference's score (else the reference), and the positive cut ranks these scores, so the model
learns from its own best samples as well as from the references; the negative is still the worst candidate (a
document whose only scored candidate would be both is counted, not kept).

``scorer=rouge`` (the baseline): a candidate's score is R1+R2+RL F1 (each in [0, 1]) against the reference; an
empty candidate has none. A reference cannot be ranked by ROUGE against itself, so every reference is
positive-eligible: only the negative cut selects (positive_ratio / positive_threshold are unused) and
positive_score is null.

``scorer=random`` (the selection ablation): every reference and every non-empty candidate gets a seeded uniform
random score (``seed``), so the same cuts keep about as many documents as QUALS's, chosen at random, each with
a random candidate as its negative. Training on it separates what QUALS's choice does from what the same number
of fine-tuning steps on any references and samples does.

``scorer=oracle`` (the news world only: the selection's ceiling): a text's score is minus the number of
unsupported facts the world's oracle finds in it, plus a seeded uniform tie-break in [0, 0.5) (``seed``), so the
cuts keep clean references and the candidates with the most errors, chosen at random among equals. Training on
it separates what the loss can do from what a metric's mistakes cost it: if ConSeq fails even with perfect
pairs, a better metric cannot rescue it.

Output: ``pairs.jsonl``, one row per (document, negative) ``{"id", "document", "positive", "negative",
"positive_score", "negative_score"}`` (read by stage=contrastive); ``histogram.png`` (the score distributions
and the cut lines); ``examples.md``; metrics with the count after every step and, on the news world, the oracle
hallucination share of the kept negatives and positives and, per error kind the oracle finds in the references,
the share that scores above the positive cut (``positive_cut_share_by_kind``, beside ``clean``). Runs on the
main process; the others only wait.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conseq import runtime, specs
from conseq.artifacts import read_jsonl, run_dir, write_jsonl
from conseq.config import Config

log = logging.getLogger(__name__)
SCORERS = ("quals", "rouge", "random", "oracle")
SELECTIONS = ("ratio", "threshold")
POSITIVES = ("reference", "best_candidate")


def run(cfg: Config) -> dict | None:
    # setup
    p = cfg.stages.partition
    if p.scorer not in SCORERS:
        raise ValueError(f"stages.partition.scorer={p.scorer!r}: choose one of {', '.join(SCORERS)}")
    if p.positive not in POSITIVES:
        raise ValueError(f"stages.partition.positive={p.positive!r}: choose one of {', '.join(POSITIVES)}")
    if p.positive == "best_candidate" and p.scorer == "rouge":
        raise ValueError("stages.partition.positive=best_candidate needs a scorer that ranks references (not rouge)")
    if p.scorer == "oracle" and cfg.data.source != "newsworld":
        raise ValueError(
            "stages.partition.scorer=oracle needs the news world's oracle "
            f"(data.source=newsworld, not {cfg.data.source!r})"
        )
    art = specs.partition(cfg)
    if art.done and not cfg.force:
        return runtime.emit_result("partition", art.path, True, art.metrics())
    cand_art = specs.require(specs.candidates(cfg), "stage=generate", "candidate summaries")
    score_art = specs.require(specs.scores(cfg), "stage=score", "QUALS scores") if p.scorer == "quals" else None
    rt = runtime.start(run_dir=run_dir(cfg.paths.root, f"partition-{art.key}"), seed=cfg.seed)
    acc = rt.accelerator
    if not acc.is_main_process:  # cheap: one process selects, the others wait for it
        acc.wait_for_everyone()
        return None
    out = art.start(force=cfg.force)

    # data
    rows = read_jsonl(cand_art.path / "candidates.jsonl")
    if p.scorer == "random":
        reference_scores, candidate_scores = random_scores(rows, cfg.seed)
    elif p.scorer == "oracle":
        reference_scores, candidate_scores = oracle_scores(rows, cfg.seed)
    elif score_art is None:
        reference_scores, candidate_scores = None, rouge_candidate_scores(rows)
    else:
        scored = read_jsonl(score_art.path / "scores.jsonl")
        if [s["id"] for s in scored] != [r["id"] for r in rows]:
            raise ValueError(f"{score_art.path}/scores.jsonl does not follow {cand_art.path}/candidates.jsonl")
        reference_scores = [s["reference_quals"] for s in scored]
        candidate_scores = [s["candidate_quals"] for s in scored]

    # select
    positives = [r["reference"] for r in rows]
    if p.positive == "best_candidate":
        reference_scores, positives = best_positives(rows, reference_scores, candidate_scores)
    sel = select_pairs(
        reference_scores,
        candidate_scores,
        selection=p.selection,
        positive_ratio=p.positive_ratio,
        negative_ratio=p.negative_ratio,
        positive_threshold=p.positive_threshold,
        negative_threshold=p.negative_threshold,
        negatives_per_document=p.negatives_per_document,
        candidates=[r["candidates"] for r in rows],
        references=positives,
    )
    pairs = [
        {
            "id": rows[d]["id"],
            "document": rows[d]["document"],
            "positive": positives[d],
            "negative": rows[d]["candidates"][c],
            "positive_score": reference_scores[d] if reference_scores is not None else None,
            "negative_score": candidate_scores[d][c],
        }
        for d, negatives in sel.kept
        for c in negatives
        if rows[d]["candidates"][c] != positives[d]  # on-policy: the best candidate cannot be its own negative
    ]

    # save
    write_jsonl(out / "pairs.jsonl", pairs)
    metrics: dict[str, Any] = {"scorer": p.scorer, "selection": p.selection, **sel.counts, "pairs": len(pairs)}
    metrics["positive"] = p.positive
    metrics["candidate_positives"] = sum(pair["positive"] != row["reference"] for pair, row in _rows_of(pairs, rows))
    metrics["negative_equals_positive"] = sum(pair["negative"] == pair["positive"] for pair in pairs)
    if reference_scores is None:
        metrics["positives"] = "all references (ROUGE cannot rank a reference against itself)"
    if cfg.data.source == "newsworld":
        metrics.update(oracle_shares(rows, sel, positives))
        if reference_scores is not None and sel.counts.get("positive_cut_score") is not None:
            metrics["positive_cut_share_by_kind"] = positive_cut_by_kind(
                rows, reference_scores, sel.counts["positive_cut_score"]
            )
    plot_histogram(out / "histogram.png", reference_scores, candidate_scores, sel, p.scorer)
    (out / "examples.md").write_text(examples_markdown(pairs, p.examples, p.scorer))
    art.finish(metrics)
    log.info("partition %s: %s", art.path, metrics)
    result = runtime.emit_result("partition", art.path, False, metrics)
    acc.wait_for_everyone()
    return result


@dataclass
class Selection:
    """The outcome of ``select_pairs``; documents are indices into its inputs.

    kept:      (document, [its negatives' candidate indices, lowest first]), in document order.
    negatives: every document able to give a negative → its negatives (before the cuts).
    counts:    documents after every step, and the score at each cut line (``*_cut_score``: the last value
               kept by a ratio cut, or the threshold; None when nothing passed a ratio cut).
    """

    kept: list[tuple[int, list[int]]]
    negatives: dict[int, list[int]]
    counts: dict[str, Any]


def _scored(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def lowest_candidates(
    scores: Sequence[float | None], k: int = 1, texts: Sequence[str] | None = None, reference: str | None = None
) -> list[int]:
    """Indices of the k lowest-scoring candidates (unscored ones ignored; ties go to the first index). For k > 1
    the texts must differ from each other and from the reference."""
    order = sorted((i for i, s in enumerate(scores) if _scored(s)), key=lambda i: scores[i])
    if k == 1:
        return order[:1]
    if texts is None:
        raise ValueError("negatives_per_document > 1 needs the candidate texts (to skip repeated ones)")
    picked, seen = [], {reference}
    for i in order:
        if len(picked) < k and texts[i] not in seen:
            seen.add(texts[i])
            picked.append(i)
    return picked


def select_pairs(
    reference_scores: Sequence[float | None] | None,
    candidate_scores: Sequence[Sequence[float | None]],
    *,
    selection: str = "ratio",
    positive_ratio: float = 0.3,
    negative_ratio: float = 0.3,
    positive_threshold: float | None = None,
    negative_threshold: float | None = None,
    negatives_per_document: int = 1,
    candidates: Sequence[Sequence[str]] | None = None,
    references: Sequence[str] | None = None,
) -> Selection:
    """The original's paired selection (module docstring). ``reference_scores=None`` makes every reference
    positive-eligible (the ROUGE scorer). Sorts are stable: equal scores keep document order."""
    if selection not in SELECTIONS:
        raise ValueError(f"stages.partition.selection={selection!r}: choose one of {', '.join(SELECTIONS)}")
    ranked, n = reference_scores is not None, len(candidate_scores)
    if ranked and len(reference_scores) != n:
        raise ValueError(f"{len(reference_scores)} reference scores for {n} documents")
    if selection == "threshold" and (negative_threshold is None or (ranked and positive_threshold is None)):
        raise ValueError("selection=threshold needs stages.partition.negative_threshold and positive_threshold")
    if negatives_per_document < 1:
        raise ValueError("stages.partition.negatives_per_document must be >= 1")
    negatives = {}
    for d, scores in enumerate(candidate_scores):
        texts = candidates[d] if candidates is not None else None
        reference = references[d] if references is not None else None
        if picked := lowest_candidates(scores, negatives_per_document, texts, reference):
            negatives[d] = picked

    def worst(d: int) -> float:
        return candidate_scores[d][negatives[d][0]]

    by_negative = sorted(negatives, key=worst)
    by_positive = list(range(n))
    if ranked:
        by_positive = sorted(
            (d for d in by_positive if _scored(reference_scores[d])), key=lambda d: -reference_scores[d]
        )
    if selection == "ratio":
        negative_cut = by_negative[: round(negative_ratio * n)]
        positive_cut = by_positive[: round(positive_ratio * n)] if ranked else by_positive
        negative_line = worst(negative_cut[-1]) if negative_cut else None
        positive_line = reference_scores[positive_cut[-1]] if ranked and positive_cut else None
    else:
        negative_cut = [d for d in by_negative if worst(d) <= negative_threshold]
        positive_cut = [d for d in by_positive if reference_scores[d] >= positive_threshold] if ranked else by_positive
        negative_line, positive_line = negative_threshold, positive_threshold if ranked else None
    in_positive = set(positive_cut)
    kept = [(d, negatives[d]) for d in sorted(d for d in negative_cut if d in in_positive)]
    counts = {
        "documents": n,
        "no_negative": n - len(negatives),
        "negative_eligible": len(negatives),
        "negative_cut": len(negative_cut),
        "negative_cut_score": negative_line,
        "positive_eligible": len(by_positive),
        "positive_cut": len(positive_cut),
        "positive_cut_score": positive_line,
        "kept_documents": len(kept),
    }
    return Selection(kept, negatives, counts)


def rouge_candidate_scores(rows: list[dict]) -> list[list[float | None]]:
    """R1+R2+RL F1 of every candidate against its reference (rouge-score, stemming); None for an empty one."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)

    def score(reference: str, candidate: str) -> float | None:
        if not candidate.strip():
            return None
        return sum(r.fmeasure for r in scorer.score(reference, candidate).values())  # (target, prediction)

    return [[score(row["reference"], c) for c in row["candidates"]] for row in rows]


def random_scores(rows: list[dict], seed: int) -> tuple[list[float], list[list[float | None]]]:
    """Seeded uniform scores for every reference and every non-empty candidate (None for an empty one, as the
    other scorers give)."""
    rng = random.Random(seed)
    references = [rng.random() for _ in rows]
    candidates = [[rng.random() if c.strip() else None for c in row["candidates"]] for row in rows]
    return references, candidates


def oracle_scores(rows: list[dict], seed: int) -> tuple[list[float], list[list[float | None]]]:
    """Minus the oracle's count of unsupported facts, plus ``random_scores``' draw halved as a tie-break in
    [0, 0.5) (it never reorders different counts), for every reference and every non-empty candidate (None for
    an empty one)."""
    from conseq.data.newsworld import check_summary

    def score(row: dict, text: str, tie: float | None) -> float | None:
        if tie is None:
            return None
        verdict = check_summary(row, text)
        return -(len(verdict.extrinsic) + len(verdict.intrinsic)) + 0.5 * tie

    ties, candidate_ties = random_scores(rows, seed)
    references = [score(r, r["reference"], t) for r, t in zip(rows, ties, strict=True)]
    candidates = [
        [score(r, c, t) for c, t in zip(r["candidates"], ts, strict=True)]
        for r, ts in zip(rows, candidate_ties, strict=True)
    ]
    return references, candidates


def best_positives(
    rows: list[dict], reference_scores: Sequence[float | None], candidate_scores: Sequence[Sequence[float | None]]
) -> tuple[list[float | None], list[str]]:
    """Per document, the best of its reference and its candidates (ties keep the reference): (scores, texts)."""
    scores, texts = [], []
    for row, ref, cands in zip(rows, reference_scores, candidate_scores, strict=True):
        best = max((i for i, c in enumerate(cands) if _scored(c)), key=lambda i: cands[i], default=None)
        if best is not None and (not _scored(ref) or cands[best] > ref):
            scores.append(cands[best])
            texts.append(row["candidates"][best])
        else:
            scores.append(ref)
            texts.append(row["reference"])
    return scores, texts


def _rows_of(pairs: list[dict], rows: list[dict]):
    by_id = {r["id"]: r for r in rows}
    return ((pair, by_id[pair["id"]]) for pair in pairs)


def oracle_shares(rows: list[dict], sel: Selection, positives: Sequence[str]) -> dict[str, float | None]:
    """The news world oracle on the kept pairs, against all references and all per-document negatives."""
    from conseq.data.newsworld import check_summary

    def share(texts: list[tuple[dict, str]]) -> float | None:
        return sum(check_summary(r, t).hallucinated for r, t in texts) / len(texts) if texts else None

    return {
        "kept_negatives_hallucinated": share([(rows[d], rows[d]["candidates"][c]) for d, cs in sel.kept for c in cs]),
        "kept_positives_hallucinated": share([(rows[d], positives[d]) for d, _ in sel.kept]),
        "all_references_hallucinated": share([(r, r["reference"]) for r in rows]),
        "all_negatives_hallucinated": share(
            [(rows[d], rows[d]["candidates"][c]) for d, cs in sel.negatives.items() for c in cs]
        ),
    }


def positive_cut_by_kind(rows: list[dict], reference_scores, line: float) -> dict[str, float]:
    """The share of references scoring at or above the positive cut line, for the clean ones and for each error
    kind the news world oracle finds in them: which errors the scorer lets into the positives (a blind spot reads
    like "clean")."""
    from conseq.data.newsworld import check_summary

    passed: dict[str, list[bool]] = {}
    for row, score in zip(rows, reference_scores, strict=True):
        verdict = check_summary(row, row["reference"])
        for kind in sorted(set(verdict.kinds)) or ["clean"]:
            passed.setdefault(kind, []).append(_scored(score) and score >= line)
    order = sorted(passed, key=lambda k: (k != "clean", -len(passed[k]), k))
    return {k: round(sum(passed[k]) / len(passed[k]), 4) for k in order}


def plot_histogram(path: Path, reference_scores, candidate_scores, sel: Selection, scorer: str) -> None:
    """Distributions of reference, candidate, selected positive and selected negative scores, with the cuts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {"all candidates": [s for scores in candidate_scores for s in scores if _scored(s)]}
    if reference_scores is not None:
        series["references"] = [s for s in reference_scores if _scored(s)]
        series["selected positives"] = [reference_scores[d] for d, _ in sel.kept]
    series["selected negatives"] = [candidate_scores[d][c] for d, cs in sel.kept for c in cs]
    values = [v for vs in series.values() for v in vs]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if values:
        lo, hi = min(values), max(values)
        for label, vs in series.items():
            if vs:  # shared bins, so the curves compare
                ax.hist(vs, bins=40, range=(lo, max(hi, lo + 1e-6)), histtype="step", label=f"{label} ({len(vs)})")
    for key, color in (("negative_cut_score", "tab:red"), ("positive_cut_score", "tab:green")):
        if sel.counts.get(key) is not None:
            ax.axvline(sel.counts[key], color=color, linestyle="--", label=key.replace("_", " "))
    labels = {
        "quals": "QUALS",
        "rouge": "ROUGE-1+2+L F1 vs reference",
        "random": "random score (the ablation)",
        "oracle": "−unsupported facts (the news world oracle) + tie-break",
    }
    ax.set_xlabel(labels[scorer])
    ax.set_ylabel("summaries")
    ax.set_title(f"partition ({scorer}): kept {sel.counts['kept_documents']} of {sel.counts['documents']} documents")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def examples_markdown(pairs: list[dict], n: int, scorer: str) -> str:
    """A few kept triples, spread evenly over the kept set."""
    shown = pairs[:: max(1, len(pairs) // max(1, n))][:n]
    blocks = [f"# Partition examples ({scorer})", f"{len(pairs)} pairs; {len(shown)} shown."]
    for pair in shown:
        document = pair["document"][:600] + (" …" if len(pair["document"]) > 600 else "")
        blocks += [
            f"## {pair['id']}",
            f"**Document.** {document}",
            f"**Positive** (score {_fmt(pair['positive_score'])}): {pair['positive']}",
            f"**Negative** (score {_fmt(pair['negative_score'])}): {pair['negative']}",
        ]
    return "\n\n".join(blocks) + "\n"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"
