"""``nli``: P(the document entails the summary) from any ``AutoModelForSequenceClassification`` checkpoint.

    python -m conseq.metaeval scorer=nli scorer.model=<folder or hub id> input=…
    python -m conseq.score scorer=nli scorer.model=<folder> scorer.aggregation=chunk input=… output=…

Any (premise, hypothesis) classifier a user has: an MNLI model, a MiniCheck-style RoBERTa/DeBERTa checker, a
FactCC-style classifier. The checkpoint's ``config.id2label`` decides which class means "consistent"
(``positive_index``: entailment, consistent, supported, …, or LABEL_1 of a two-class model); ``positive_label``
names it (or its index) where the names say nothing.

Long sources: the document is cut into token windows that fit the model with the hypothesis
(``max_length`` tokens in all, consecutive windows overlapping by ``stride`` tokens; the tokenizer's own overflow);
``max_chunks`` caps them. Two aggregations:

- ``chunk``: the whole summary against every window; value = the max over windows of P(positive).
- ``sentence`` (SummaC-ZS-like): each summary sentence (spaCy's rule-based sentencizer) against every window, its
  max over windows; value = the ``sentence_aggregate`` (min: the worst-supported sentence; mean: SummaC-ZS's)
  over the summary's sentences.

``details``: the windows used and, in sentence mode, each sentence's probability. Higher = more consistent.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Any

import torch

from conseq.scoring.base import ScoreResult, ScorerInfo, check_inputs, load_classifier, split_on_oom

log = logging.getLogger(__name__)

AGGREGATIONS = ("sentence", "chunk")
SENTENCE_AGGREGATES = ("min", "mean")
# id2label names (lower case, letters and digits only) that mean "consistent".
POSITIVE_NAMES = frozenset(
    {"entailment", "entailed", "entails", "entail", "consistent", "supported", "supports", "support", "factual"}
    | {"correct", "aligned", "yes", "true"}
)
# A two-class model with generic names (LABEL_0/LABEL_1, "0"/"1"): class 1 is the positive one (MiniCheck's).
GENERIC_POSITIVE = frozenset({"1", "label1"})


def _normal(name: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def positive_index(id2label: dict, positive_label: str | int | None = None) -> int:
    """The class index meaning "consistent" in a classifier's ``id2label``; ``positive_label`` (a label name or an
    index) overrides. A clear error when the names do not tell."""
    names = {int(i): str(name) for i, name in id2label.items()}
    if positive_label is not None:
        if str(positive_label).isdigit() and int(positive_label) in names:  # an index
            return int(positive_label)
        hits = [i for i, name in names.items() if _normal(name) == _normal(positive_label)]
        if len(hits) == 1:
            return hits[0]
        raise ValueError(f"positive_label={positive_label!r}: not one of the model's labels {names}")
    hits = [i for i, name in names.items() if _normal(name) in POSITIVE_NAMES]
    if not hits and len(names) == 2:
        hits = [i for i, name in names.items() if _normal(name) in GENERIC_POSITIVE]
    if len(hits) != 1:
        raise ValueError(
            f"positive_label: cannot tell which class of {names} means consistent (entailment/supported); "
            "name it: positive_label=<label name or index>"
        )
    return hits[0]


class NLIScorer:
    """Batched: all (window, hypothesis) pairs of a call sorted by length, ``batch_size`` per forward (halved on
    out-of-memory); identical pairs scored once. ``self.stats`` counts pairs, windows and cut hypotheses."""

    name = "nli"
    version = "1"

    def __init__(
        self,
        model,
        tokenizer,
        *,
        positive_label: str | int | None = None,
        aggregation: str = "sentence",
        sentence_aggregate: str = "min",
        max_length: int | None = None,
        stride: int = 128,
        max_chunks: int | None = None,
        batch_size: int = 16,
        model_ids: dict[str, str] | None = None,
    ):
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation={aggregation!r}: choose one of {', '.join(AGGREGATIONS)}")
        if sentence_aggregate not in SENTENCE_AGGREGATES:
            raise ValueError(
                f"sentence_aggregate={sentence_aggregate!r}: choose one of {', '.join(SENTENCE_AGGREGATES)}"
            )
        self.model, self.tokenizer = model.eval(), tokenizer
        self.positive = positive_index(model.config.id2label, positive_label)
        limit = getattr(model.config, "max_position_embeddings", None) or 512
        if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
            limit -= 2  # their positions start after the padding index
        self.max_length = min(max_length or tokenizer.model_max_length, limit)
        if self.max_length < 16:
            raise ValueError(f"max_length={self.max_length}: too short for a document window and a hypothesis")
        self.aggregation, self.sentence_aggregate = aggregation, sentence_aggregate
        self.stride, self.max_chunks, self.batch_size = stride, max_chunks, batch_size
        self.model_ids = dict(model_ids or {})
        settings = {
            "positive_label": str(model.config.id2label[self.positive]),
            "aggregation": aggregation,
            "sentence_aggregate": sentence_aggregate if aggregation == "sentence" else None,
            "max_length": self.max_length,
            "stride": stride,
            "max_chunks": max_chunks,
        }
        self.info = ScorerInfo(self.name, self.version, self.model_ids, settings)
        self.stats: Counter = Counter(pairs=0, windows=0, long_documents=0, truncated_hypotheses=0, oom_splits=0)
        self._sentencizer = None

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, device: str | None = None, dtype: str | None = None, **kwargs):
        model, tokenizer = load_classifier(name_or_path, device=device, dtype=dtype)
        return cls(model, tokenizer, model_ids={"classifier": str(name_or_path)}, **kwargs)

    @classmethod
    def from_config(cls, *, root: str | None = None, device: str | None = None, model: str | None = None, **kwargs):
        """configs/scorer/nli.yaml's factory: ``model`` is required (a folder or hub id)."""
        if not model:
            raise ValueError(
                "scorer.model: the nli scorer needs a sequence-classification checkpoint (a folder or hub id): "
                "scorer.model=<path> (scorers.nli.model=<path> in training configs)"
            )
        return cls.from_pretrained(model, device=device, **kwargs)

    # ------------------------------------------------------------------------------------------ public

    def score(self, documents: list[str], summaries: list[str], *, details: bool = True) -> list[ScoreResult]:
        check_inputs(documents, summaries)
        hypotheses = [[s] for s in summaries] if self.aggregation == "chunk" else self._sentences(summaries)
        pairs = [(d, h) for d, hs in zip(documents, hypotheses, strict=True) for h in hs]
        best = self._best_over_windows(pairs)  # (document, hypothesis) -> (max P, windows)
        results = []
        for document, hs in zip(documents, hypotheses, strict=True):
            probs = [best[(document, h)][0] for h in hs]
            if self.aggregation == "chunk" or self.sentence_aggregate == "min":
                value = min(probs)
            else:
                value = sum(probs) / len(probs)
            extra: dict[str, Any] = {}
            if details:
                extra["nli_windows"] = best[(document, hs[0])][1]
                if self.aggregation == "sentence":
                    extra["nli_sentences"] = [{"sentence": h, "p": p} for h, p in zip(hs, probs, strict=True)]
            results.append(ScoreResult(value, extra, self.info))
        return results

    # ----------------------------------------------------------------------------------------- helpers

    def _sentences(self, summaries: list[str]) -> list[list[str]]:
        """Each summary's sentences that hold a letter or digit (the whole summary if none does)."""
        if self._sentencizer is None:
            import spacy

            self._sentencizer = spacy.blank("en")
            self._sentencizer.add_pipe("sentencizer")
        out = []
        for doc in self._sentencizer.pipe(summaries):
            sentences = [s.text.strip() for s in doc.sents if re.search(r"\w", s.text)]
            out.append(sentences or [doc.text])
        return out

    def _windows(self, document: str, hypothesis: str) -> list[dict[str, list[int]]]:
        """Token windows of the document, each framed with the hypothesis as the model's pair input."""
        tok = self.tokenizer
        hyp_ids = tok(hypothesis, add_special_tokens=False)["input_ids"]
        room = self.max_length - tok.num_special_tokens_to_add(pair=True)
        if len(hyp_ids) > room // 2:  # a hypothesis never takes more than half the input
            hypothesis = tok.decode(hyp_ids[: room // 2])
            self.stats["truncated_hypotheses"] += 1
            hyp_ids = tok(hypothesis, add_special_tokens=False)["input_ids"]
        budget = room - len(hyp_ids)
        stride = max(0, min(self.stride, budget // 2))
        enc = tok(
            document,
            hypothesis,
            truncation="only_first",
            max_length=self.max_length,
            stride=stride,
            return_overflowing_tokens=True,
        )
        windows = enc["input_ids"]
        if self.max_chunks:
            windows = windows[: self.max_chunks]
        keep = ("input_ids", "token_type_ids")
        return [{k: enc[k][i] for k in keep if k in enc} for i in range(len(windows))]

    def _best_over_windows(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[float, int]]:
        unique = list(dict.fromkeys(pairs))
        inputs, owner = [], []
        for j, (document, hypothesis) in enumerate(unique):
            windows = self._windows(document, hypothesis)
            self.stats["long_documents"] += len(windows) > 1
            inputs += windows
            owner += [j] * len(windows)
        self.stats["pairs"] += len(unique)
        self.stats["windows"] += len(inputs)
        order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i]["input_ids"]))
        probs = [0.0] * len(inputs)
        for start in range(0, len(order), self.batch_size):
            picked = order[start : start + self.batch_size]
            for i, p in zip(picked, split_on_oom(self._forward, [inputs[i] for i in picked], self.stats), strict=True):
                probs[i] = p
        best: dict[int, tuple[float, int]] = {}
        for i, j in enumerate(owner):
            p, n = best.get(j, (0.0, 0))
            best[j] = (max(p, probs[i]), n + 1)
        return {pair: best[j] for j, pair in enumerate(unique)}

    @torch.inference_mode()
    def _forward(self, batch: list[dict]) -> list[float]:
        padded = self.tokenizer.pad(batch, return_tensors="pt")
        inputs = {k: v.to(self.model.device) for k, v in padded.items()}
        logits = self.model(**inputs).logits.float()
        return logits.softmax(-1)[:, self.positive].tolist()
