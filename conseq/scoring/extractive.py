"""Extractive question answering for QAGS: windows over long passages, span decoding with a "no answer"
option, SQuAD's answer normalisation and token F1, and the training examples of ``stage=qa``.

Any ``AutoModelForQuestionAnswering`` works (BERT / RoBERTa checkpoints trained on SQuAD 2.0, or the tiny BART
that ``stage=qa`` trains): question and passage are encoded together (``<s> question </s></s> passage </s>`` for
BART), passages longer than the model's limit are cut into windows overlapping by ``doc_stride`` tokens, and the
answer is the best span over all windows, or "" when the first token's "no answer" score beats it (SQuAD 2.0
models; HF's convention: the smallest null score over windows).
"""

from __future__ import annotations

import logging
import random
import re
import string
from collections import Counter
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

# Questions longer than this many tokens are cut (generated questions are shorter; it keeps room for the passage).
MAX_QUESTION_TOKENS = 64


# ------------------------------------------------------------------------------------------ SQuAD metrics


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation (as QAGS used it): lower case, drop punctuation, the articles a/an/the, and
    collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token F1 of two answers after ``normalize_answer``; "" is "no answer": two empty answers agree
    (1.0), one empty answer against a non-empty one scores 0.0. Symmetric."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


# ------------------------------------------------------------------------------------------------ windows


@dataclass
class Window:
    """One model input: a question with one window of its passage."""

    example: int  # index of the (question, passage) pair
    input_ids: list[int]
    token_type_ids: list[int] | None  # BERT-style models need them; BART/RoBERTa do not
    offsets: list[tuple[int, int] | None]  # character span in the passage per token; None outside the passage
    start: int = 0  # training labels: answer token span, (0, 0) = no answer in this window
    end: int = 0


def _clip_questions(tokenizer, questions: list[str]) -> tuple[list[str], int]:
    """Questions cut to MAX_QUESTION_TOKENS tokens, and the longest one's length in tokens."""
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    out, longest = [], 0
    for question, offsets in zip(questions, enc["offset_mapping"], strict=True):
        if len(offsets) > MAX_QUESTION_TOKENS:
            question = question[: offsets[MAX_QUESTION_TOKENS - 1][1]]
        out.append(question.lstrip())
        longest = max(longest, min(len(offsets), MAX_QUESTION_TOKENS))
    return out, longest


def make_windows(
    tokenizer,
    questions: list[str],
    contexts: list[str],
    *,
    max_length: int,
    doc_stride: int,
    answers: list[tuple[int, str] | None] | None = None,
) -> tuple[list[Window], int]:
    """Encode (question, passage) pairs into windows of at most ``max_length`` tokens; ``answers`` (character
    start and text, or None for "no answer") sets each window's training span ((0, 0) when the answer is not
    wholly inside). Returns the windows and how many passages needed more than one."""
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions but {len(contexts)} passages")
    if not questions:
        return [], 0
    questions, longest = _clip_questions(tokenizer, questions)
    # The passage part of a window (after the question and 4 special tokens) must hold more than the stride,
    # or the tokenizer cannot slide.
    room = max_length - longest - 4
    if room < 8:
        raise ValueError(f"QA max_length={max_length} leaves no room for a passage after a {longest}-token question")
    enc = tokenizer(
        questions,
        contexts,
        truncation="only_second",
        max_length=max_length,
        stride=min(doc_stride, room // 2),
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        verbose=False,
    )
    windows, per_example = [], Counter()
    type_ids = enc.get("token_type_ids")
    for w, example in enumerate(enc["overflow_to_sample_mapping"]):
        sequence_ids = enc.sequence_ids(w)
        offsets = [
            tuple(span) if seq == 1 else None for span, seq in zip(enc["offset_mapping"][w], sequence_ids, strict=True)
        ]
        window = Window(example, enc["input_ids"][w], type_ids[w] if type_ids is not None else None, offsets)
        if answers is not None and answers[example] is not None:
            window.start, window.end = _answer_tokens(offsets, *answers[example])
        windows.append(window)
        per_example[example] += 1
    return windows, sum(n > 1 for n in per_example.values())


def _answer_tokens(offsets: list[tuple[int, int] | None], start_char: int, text: str) -> tuple[int, int]:
    end_char = start_char + len(text)
    inside = [i for i, span in enumerate(offsets) if span is not None and span[1] > span[0]]
    if not inside or offsets[inside[0]][0] > start_char or offsets[inside[-1]][1] < end_char:
        return 0, 0
    first = next(i for i in inside if offsets[i][1] > start_char)
    last = max(i for i in inside if offsets[i][0] < end_char)
    return (first, last) if first <= last else (0, 0)


def collate_windows(windows: list[Window], pad_token_id: int, *, labels: bool = False) -> dict[str, torch.Tensor]:
    """Right-padded model inputs for a list of windows (with start/end positions when ``labels``)."""
    width = max(len(w.input_ids) for w in windows)
    input_ids = torch.full((len(windows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros(len(windows), width, dtype=torch.long)
    for row, w in enumerate(windows):
        input_ids[row, : len(w.input_ids)] = torch.tensor(w.input_ids)
        attention_mask[row, : len(w.input_ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if windows[0].token_type_ids is not None:
        token_type_ids = torch.zeros(len(windows), width, dtype=torch.long)
        for row, w in enumerate(windows):
            token_type_ids[row, : len(w.token_type_ids)] = torch.tensor(w.token_type_ids)
        batch["token_type_ids"] = token_type_ids
    if labels:
        batch["start_positions"] = torch.tensor([w.start for w in windows])
        batch["end_positions"] = torch.tensor([w.end for w in windows])
    return batch


# -------------------------------------------------------------------------------------------- span decoding


def best_spans(
    start_logits: torch.Tensor, end_logits: torch.Tensor, context_mask: torch.Tensor, max_answer_tokens: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: the best span score start[i] + end[j] over passage tokens i <= j < i + max_answer_tokens, its
    (i, j), and the "no answer" score start[0] + end[0]. Rows without a passage token get score -inf.

    Computed on the band of widths only (rows x tokens x max_answer_tokens), not the full tokens^2 matrix.
    """
    rows, width = start_logits.shape
    band = min(max_answer_tokens, width)
    neg = torch.finfo(start_logits.dtype).min
    start = start_logits.masked_fill(~context_mask, neg)
    end = torch.nn.functional.pad(end_logits.masked_fill(~context_mask, neg), (0, band - 1), value=neg)
    ends = end.unfold(1, band, 1)  # rows x width x band: end[i + k]
    scores = start[:, :, None] + ends
    # start + end of two masked tokens can overflow to -inf; any masked member makes the span invalid
    valid = context_mask[:, :, None] & torch.nn.functional.pad(context_mask, (0, band - 1), value=False).unfold(
        1, band, 1
    )
    scores = scores.masked_fill(~valid, float("-inf"))
    best, flat = scores.view(rows, -1).max(dim=1)
    i, k = flat // band, flat % band
    null = start_logits[:, 0] + end_logits[:, 0]
    return best, i, i + k, null


@dataclass
class Answer:
    text: str  # "" = no answer
    score: float  # best span score (-inf when the passage had no token)
    null_score: float


class ExtractiveQA:
    """Answer questions on passages with an ``AutoModelForQuestionAnswering``; batched over windows (sorted
    by length, ``batch_size`` windows per forward), identical (question, passage) pairs answered once."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_length: int | None = None,
        doc_stride: int = 128,
        max_answer_tokens: int = 30,
        null_threshold: float = 0.0,
        batch_size: int = 64,
    ):
        self.model, self.tokenizer = model, tokenizer
        limit = getattr(model.config, "max_position_embeddings", None) or 512
        if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
            limit -= 2  # RoBERTa's positions start after the padding index
        self.max_length = min(max_length or tokenizer.model_max_length, limit)
        self.doc_stride, self.max_answer_tokens = doc_stride, max_answer_tokens
        self.null_threshold, self.batch_size = null_threshold, batch_size
        self.stats: Counter = Counter(windows=0, multi_window_passages=0, forwards=0)

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, device=None, dtype=None, **kwargs) -> ExtractiveQA:
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        model = AutoModelForQuestionAnswering.from_pretrained(name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        model.to(device=device or ("cuda" if torch.cuda.is_available() else "cpu"), dtype=dtype)
        return cls(model.eval(), tokenizer, **kwargs)

    @torch.inference_mode()
    def answer(self, questions: list[str], contexts: list[str]) -> list[Answer]:
        pairs = list(zip(questions, contexts, strict=True))
        unique = list(dict.fromkeys(pairs))
        index = {pair: i for i, pair in enumerate(unique)}
        windows, multi = make_windows(
            self.tokenizer,
            [q for q, _ in unique],
            [c for _, c in unique],
            max_length=self.max_length,
            doc_stride=self.doc_stride,
        )
        self.stats["windows"] += len(windows)
        self.stats["multi_window_passages"] += multi
        best: list[tuple[float, int, int, int]] = [(float("-inf"), -1, 0, 0)] * len(unique)  # score, window, i, j
        null = [float("inf")] * len(unique)
        order = sorted(range(len(windows)), key=lambda w: -len(windows[w].input_ids))
        device = self.model.device
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(order), self.batch_size):
                picked = order[start : start + self.batch_size]
                batch = collate_windows([windows[w] for w in picked], self.tokenizer.pad_token_id)
                out = self.model(**{k: v.to(device) for k, v in batch.items()}, use_cache=False)
                self.stats["forwards"] += 1
                mask = torch.zeros_like(batch["input_ids"], dtype=torch.bool)
                for row, w in enumerate(picked):
                    spans = windows[w].offsets
                    mask[row, : len(spans)] = torch.tensor([s is not None for s in spans])
                scores, i, j, nulls = (
                    t.tolist()
                    for t in best_spans(
                        out.start_logits.float(), out.end_logits.float(), mask.to(device), self.max_answer_tokens
                    )
                )
                for row, w in enumerate(picked):
                    e = windows[w].example
                    if scores[row] > best[e][0]:
                        best[e] = (scores[row], w, i[row], j[row])
                    null[e] = min(null[e], nulls[row])
        finally:
            self.model.train(was_training)
        answers = []
        for e, (_, context) in enumerate(unique):
            score, w, i, j = best[e]
            text = ""
            if w >= 0 and not null[e] > score + self.null_threshold:
                spans = windows[w].offsets
                text = context[spans[i][0] : spans[j][1]].strip()
            answers.append(Answer(text, score, null[e]))
        return [answers[index[pair]] for pair in pairs]


# ------------------------------------------------------------------------------------- training examples


@dataclass
class QAExample:
    question: str
    context: str
    answer_start: int | None  # None: unanswerable
    answer: str  # "" when unanswerable


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (split after . ! ? and closing quotes, then whitespace)."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((start, m.start() + len(m.group().rstrip())))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def without_answer(context: str, answer: str) -> str | None:
    """The passage without every sentence that mentions ``answer`` (case-insensitive); None when nothing is
    left or the answer still occurs (e.g. across a sentence boundary)."""
    needle = answer.lower()
    kept = [context[a:b] for a, b in sentences(context) if needle not in context[a:b].lower()]
    reduced = " ".join(kept)
    if not kept or needle in reduced.lower():
        return None
    return reduced


def training_examples(rows: list[dict], *, unanswerable_rate: float, seed: int) -> list[QAExample]:
    """SQuAD-layout rows -> one example per distinct answer of each question (the first occurrence's offset),
    plus, with probability ``unanswerable_rate`` per question, a SQuAD 2.0-style unanswerable one: the same
    question on the passage without the sentences that hold its answer."""
    if not 0 <= unanswerable_rate <= 1:
        raise ValueError(f"stages.qa.unanswerable_rate must be in [0, 1], got {unanswerable_rate}")
    rng = random.Random(seed)
    out = []
    for row in rows:
        question = row["question"].strip()
        answers = row["answers"]
        seen = set()
        for text, start in zip(answers["text"], answers["answer_start"], strict=True):
            if text not in seen:
                seen.add(text)
                out.append(QAExample(question, row["context"], start, text))
        if unanswerable_rate and rng.random() < unanswerable_rate:
            reduced = without_answer(row["context"], answers["text"][0])
            if reduced is not None:
                out.append(QAExample(question, reduced, None, ""))
    return out
