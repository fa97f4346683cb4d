"""Parse generated QA sequences and select the pairs QUALS scores (the original's filter, exactly)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class QACandidate:
    """One generated QA pair.

    token_ids: the decoder targets as generated (everything after the decoder start: forced BOS if any,
               question, separator, answer, EOS); teacher forcing re-scores exactly these ids.
    score_sum: the summed search score including the diversity penalties (fairseq's ``unnorm_scores``).
    length:    the number of scored tokens (excluding a forced BOS), so score_sum / length is fairseq's
               ``norm_scores``.
    model_ll:  the per-token mean of the model's own log-probabilities of ``token_ids`` given the text the
               pair was generated from, without the penalties, as the search computed them: what teacher
               forcing would give again. None when ``token_ids`` are not the generated ids (lmqg format).
    token_logprobs: those log-probabilities one by one (the scored tokens of ``token_ids``), kept only when the
               scorer is asked for per-token log-probabilities; None otherwise.
    """

    question: str
    answer: str
    token_ids: list[int]
    score_sum: float
    length: int
    model_ll: float | None = None
    token_logprobs: list[float] | None = None


def parse_conseq(ids: list[int], tokenizer, sep_id: int) -> tuple[str, str] | None:
    """Split generated ids "question <sep> answer" into (question, answer); None unless exactly one <sep>."""
    ids = list(ids)
    if ids.count(sep_id) != 1:
        return None
    cut = ids.index(sep_id)
    question = tokenizer.decode(ids[:cut], skip_special_tokens=True).strip()
    answer = tokenizer.decode(ids[cut + 1 :], skip_special_tokens=True).strip()
    return question, answer


def parse_lmqg(text: str) -> list[tuple[str, str]]:
    """Parse lmqg QAG output "question: q1, answer: a1 | question: q2, answer: a2" into [(q, a), ...].

    A part without the "question: …, answer: …" shape, or with an empty question or answer, is skipped.
    """
    pairs = []
    for part in text.split("|"):
        part = part.strip()
        if not part.lower().startswith("question:") or ", answer:" not in part:
            continue
        question, answer = part[len("question:") :].split(", answer:", 1)
        question, answer = question.strip(), answer.strip()
        if question and answer:
            pairs.append((question, answer))
    return pairs


def filter_pairs(summary: str, candidates: list[QACandidate], max_qas: int = 10) -> list[QACandidate]:
    """The original's selection (``filter_qas_dataset_lm_score``), reproduced exactly.

    1. Keep a pair only if its lowercased answer is a raw substring of the lowercased summary (no word
       boundaries: "US" matches "business"); an empty answer is dropped.
    2. Sort the survivors by ``score_sum`` descending (stable).
    3. Group them by lowercased answer, groups in order of first appearance.
    4. Round-robin over the groups, popping each group's best remaining pair and keeping it unless its
       lowercased question was already kept for that answer. Stop when a round keeps nothing, or when at the
       start of a round at least ``max_qas`` pairs are kept, so the first round keeps one pair per distinct
       answer and the result can exceed ``max_qas``.
    """
    lowered = summary.lower()
    survivors = [c for c in candidates if c.answer and c.answer.lower() in lowered]
    survivors.sort(key=lambda c: c.score_sum, reverse=True)
    groups: OrderedDict[str, list[QACandidate]] = OrderedDict()
    for cand in survivors:
        groups.setdefault(cand.answer.lower(), []).append(cand)

    kept: list[QACandidate] = []
    seen: dict[str, set[str]] = {answer: set() for answer in groups}
    while len(kept) < max_qas:
        added = 0
        for answer, group in groups.items():
            if not group:
                continue
            cand = group.pop(0)
            if cand.question.lower() not in seen[answer]:
                seen[answer].add(cand.question.lower())
                kept.append(cand)
                added += 1
        if not added:
            break
    return kept
