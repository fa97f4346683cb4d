"""A FactCC-style consistency classifier (Kryściński et al., EMNLP 2020): P(consistent | document, claim).

Weak supervision, made from any summarization corpus by FactCC's transformations (salesforce/factCC
``data_generation``): a positive claim is a sentence of the document (at least ``min_sentence_tokens`` tokens;
or the reference summary, ``positives=reference|both``), and negatives are that claim after one of

- ``entity_swap``: a named entity (PERSON ORG NORP FAC GPE LOC PRODUCT WORK_OF_ART EVENT) replaced by another
  entity of those types from the document (neither containing the other);
- ``number_swap``: the same for PERCENT MONEY QUANTITY CARDINAL; ``date_swap``: for DATE TIME;
- ``pronoun_swap``: a pronoun replaced by another of its class (subject, object, possessive, reflexive);
- ``negation``: "not" inserted after an auxiliary (is, was, has, can, will…), or removed after one.

Beyond FactCC (off by default): ``extrinsic_swap`` replaces a named entity, number or date of the claim by one of
the same type that the document does not contain, drawn from the documents seen before (a reservoir per type):
an XSum-style extrinsic error, which FactCC's in-document swaps never produce.

Differences from FactCC: no back-translated positives (they need a translation service: positives here are
paraphrase-free) and no extra noised copies of the claims; negations always use "not" (FactCC sometimes wrote
"n't"); date swaps are on (FactCC's script meant them to be, but stored its number swaps under their name).

The classifier: any ``AutoModelForSequenceClassification``; ``stage=factcc`` trains the tiny BART
(BartForSequenceClassification) from scratch, or fine-tunes ``factcc_model.name_or_path``. The document is
truncated to fit, never the claim.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from conseq.scoring.base import (
    ScoreResult,
    ScorerInfo,
    check_inputs,
    load_classifier,
    project_config,
    split_on_oom,
)

log = logging.getLogger(__name__)

VERSION = "1"
LABELS = {0: "INCONSISTENT", 1: "CONSISTENT"}
# id2label names that mean "consistent" in checkpoints from elsewhere (FactCC ports say CORRECT; NLI models say
# entailment).
CONSISTENT_NAMES = ("consistent", "correct", "entailment", "supported", "factual")

ENTITY_TYPES = ("PERSON", "ORG", "NORP", "FAC", "GPE", "LOC", "PRODUCT", "WORK_OF_ART", "EVENT")
NUMBER_TYPES = ("PERCENT", "MONEY", "QUANTITY", "CARDINAL")
DATE_TYPES = ("DATE", "TIME")
PRONOUN_CLASSES = {
    "subject": ("you", "he", "she", "we", "they"),
    "object": ("me", "you", "him", "her", "us", "them"),
    "possessive": ("my", "your", "his", "her", "its", "our", "their"),
    "reflexive": ("myself", "yourself", "himself", "herself", "itself", "ourselves", "yourselves", "themselves"),
}
# Negatable auxiliaries ("ca" is spaCy's token for the "ca" of "can't").
AUXILIARIES = frozenset(
    {"are", "is", "was", "were", "have", "has", "had", "do", "does", "did", "can", "ca", "could", "may", "might"}
    | {"must", "shall", "should", "will", "would"}
)


# ------------------------------------------------------------------------------------- transformations
# Each takes the claim (a spaCy Span), the document (a spaCy Doc) and a random.Random; returns the new claim
# text, or None when it does not apply.


def _replace(claim, start_char: int, end_char: int, new: str) -> str:
    text, offset = claim.text, claim.start_char
    return text[: start_char - offset] + new + text[end_char - offset :]


def _ner_swap(types: tuple[str, ...]):
    def swap(claim, doc, rng: random.Random) -> str | None:
        targets = [e for e in claim.ents if e.label_ in types]
        if not targets:
            return None
        target = rng.choice(targets)
        old = target.text
        options = sorted({e.text for e in doc.ents if e.label_ in types and old not in e.text and e.text not in old})
        if not options:
            return None
        return _replace(claim, target.start_char, target.end_char, rng.choice(options))

    return swap


def _pronoun_class(token) -> str | None:
    """The class of a pronoun; "her" and "you" belong to two, told apart by the tagger and the parser."""
    classes = [c for c, words in PRONOUN_CLASSES.items() if token.lower_ in words]
    if len(classes) > 1:
        if token.tag_ == "PRP$":
            return "possessive"
        return "subject" if token.dep_.startswith("nsubj") and "subject" in classes else "object"
    return classes[0] if classes else None


def pronoun_swap(claim, doc, rng: random.Random) -> str | None:
    found = [(t, c) for t in claim if (c := _pronoun_class(t))]
    if not found:
        return None
    token, cls = rng.choice(found)
    new = rng.choice([w for w in PRONOUN_CLASSES[cls] if w != token.lower_])
    if token.text[:1].isupper():
        new = new.capitalize()
    return _replace(claim, token.idx, token.idx + len(token.text), new)


def negation(claim, doc, rng: random.Random) -> str | None:
    auxiliaries = [t for t in claim if t.lower_ in AUXILIARIES]
    if not auxiliaries:
        return None
    token = rng.choice(auxiliaries)
    if token.i > claim.start and claim.doc[token.i - 1].lower_ in AUXILIARIES:  # "has been": negate the first
        token = claim.doc[token.i - 1]
    following = claim.doc[token.i + 1] if token.i + 1 < claim.end else None
    if following is not None and following.lower_ == "no":
        return None
    if following is not None and following.lower_ in ("not", "n't"):  # remove the negation
        end = following.idx + len(following.text)
        return _replace(claim, token.idx, end, token.text if token.lower_ != "ca" else token.text[:1] + "an")
    return _replace(claim, token.idx, token.idx + len(token.text), token.text + " not")


def extrinsic_swap(claim, doc, rng: random.Random, pool: dict[str, list[str]]) -> str | None:
    targets = [e for e in claim.ents if e.label_ in ENTITY_TYPES + NUMBER_TYPES + DATE_TYPES and pool.get(e.label_)]
    if not targets:
        return None
    target = rng.choice(targets)
    text = doc.text.lower()
    options = [o for o in pool[target.label_] if o.lower() not in text and o != target.text]
    if not options:
        return None
    return _replace(claim, target.start_char, target.end_char, rng.choice(options))


TRANSFORMATIONS = {
    "entity_swap": _ner_swap(ENTITY_TYPES),
    "number_swap": _ner_swap(NUMBER_TYPES),
    "date_swap": _ner_swap(DATE_TYPES),
    "pronoun_swap": pronoun_swap,
    "negation": negation,
    "extrinsic_swap": extrinsic_swap,  # takes the entity pool as a fourth argument
}
# FactCC's five (the default).
FACTCC_TRANSFORMATIONS = ("entity_swap", "number_swap", "date_swap", "pronoun_swap", "negation")
POOL_SIZE = 2000  # entities kept per type for extrinsic_swap


def make_pairs(
    nlp,
    rows: list[dict],
    *,
    positives: str = "sentence",
    transformations: list[str] | tuple[str, ...] = FACTCC_TRANSFORMATIONS,
    negatives_per_positive: int = 1,
    claims_per_document: int = 1,
    min_sentence_tokens: int = 8,
    seed: int = 0,
    batch_size: int = 32,
    docs: Iterable | None = None,
    refs: Iterable | None = None,
) -> list[dict[str, Any]]:
    """(document, claim, label) pairs from summarization rows (``document``, ``summary``): per row, the positive
    claims (``claims_per_document`` distinct sentences, FactCC: 1; and/or the reference) and up to
    ``negatives_per_positive`` transformed claims each (each with a different transformation, tried in random
    order). Rows: ``{"id", "document", "claim", "label" (1 = consistent), "transformation"}``.

    ``docs`` / ``refs``: the rows' documents / references already parsed by ``parse`` (in row order), e.g. by
    several processes; by default ``nlp`` parses them here. The pairs are the same either way."""
    unknown = set(transformations) - set(TRANSFORMATIONS)
    if unknown:
        raise ValueError(f"unknown FactCC transformations {sorted(unknown)}; choose from {list(TRANSFORMATIONS)}")
    if positives not in ("sentence", "reference", "both"):
        raise ValueError(f"positives must be sentence, reference or both, got {positives!r}")
    rng = random.Random(seed)
    if docs is None:
        docs = parse(nlp, [r["document"] for r in rows], batch_size)
    if refs is None:
        needed = needs_references(positives)
        refs = parse(nlp, [r["summary"] for r in rows], batch_size) if needed else [None] * len(rows)
    pairs: list[dict[str, Any]] = []
    pool: dict[str, list[str]] = {}  # entities of the documents seen so far, per type (for extrinsic_swap)
    seen: dict[str, int] = {}
    for row, doc, ref in zip(rows, docs, refs, strict=True):
        claims = []
        if positives in ("sentence", "both"):
            sentences = [s for s in doc.sents if len(s) >= min_sentence_tokens]
            claims += rng.sample(sentences, min(claims_per_document, len(sentences)))
        if positives in ("reference", "both"):
            claims.append(ref[:])
        for claim in claims:
            pairs.append(_pair(row, claim.text, 1, None))
            made = 0
            for name in rng.sample(list(transformations), len(transformations)):
                if made >= negatives_per_positive:
                    break
                extra = (pool,) if name == "extrinsic_swap" else ()
                text = TRANSFORMATIONS[name](claim, doc, rng, *extra)
                if text is not None and text != claim.text:
                    pairs.append(_pair(row, text, 0, name))
                    made += 1
        if "extrinsic_swap" in transformations:
            _add_to_pool(pool, seen, doc, rng)
    return pairs


def needs_references(positives: str) -> bool:
    """Whether make_pairs reads the parsed references (not only the documents) for this ``positives`` mode."""
    return positives != "sentence"


def parse(nlp, texts: list[str], batch_size: int = 32) -> Iterator:
    """spaCy docs of ``texts`` with what the transformations read: entities, tags, the parse (sentences, "you" as
    subject or object); the lemmatizer is not needed."""
    disable = [name for name in ("lemmatizer",) if name in nlp.pipe_names]
    return nlp.pipe(texts, batch_size=batch_size, disable=disable)


def _add_to_pool(pool: dict[str, list[str]], seen: dict[str, int], doc, rng: random.Random) -> None:
    """Reservoir-sample the document's distinct entities into ``pool`` (at most POOL_SIZE per type)."""
    for text, label in dict.fromkeys((e.text, e.label_) for e in doc.ents):
        bucket = pool.setdefault(label, [])
        seen[label] = seen.get(label, 0) + 1
        if len(bucket) < POOL_SIZE:
            bucket.append(text)
        elif (k := rng.randrange(seen[label])) < POOL_SIZE:
            bucket[k] = text


def _pair(row: dict, claim: str, label: int, transformation: str | None) -> dict[str, Any]:
    return {
        "id": row["id"],
        "document": row["document"],
        "claim": claim,
        "label": label,
        "transformation": transformation,
    }


def encode(tokenizer, documents: list[str], claims: list[str], max_length: int) -> tuple[list[list[int]], int]:
    """Token ids of (document, claim) pairs, the document cut to fit ``max_length`` (the claim is kept whole;
    a claim too long even alone is cut too). Returns the ids and how many pairs were truncated."""
    if not documents:
        return [], 0
    full = tokenizer(documents, claims, truncation=False, verbose=False)["input_ids"]
    long = [i for i, ids in enumerate(full) if len(ids) > max_length]
    for start in range(0, len(long), 256):
        chunk = long[start : start + 256]
        docs, cls = [documents[i] for i in chunk], [claims[i] for i in chunk]
        try:
            cut = tokenizer(docs, cls, truncation="only_first", max_length=max_length, verbose=False)["input_ids"]
        except Exception:  # a claim longer than max_length by itself (tokenizers raise a plain Exception)
            cut = tokenizer(docs, cls, truncation="longest_first", max_length=max_length, verbose=False)["input_ids"]
        for i, ids in zip(chunk, cut, strict=True):
            full[i] = ids
    return full, len(long)


def collate(input_ids: list[list[int]], labels: list[int] | None, pad_token_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids in input_ids)
    ids = torch.full((len(input_ids), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros(len(input_ids), width, dtype=torch.long)
    for row, seq in enumerate(input_ids):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if labels is not None:
        batch["labels"] = torch.tensor(labels)
    return batch


def consistent_index(id2label: dict, consistent_label: str | None = None) -> int:
    """The class index meaning "consistent" in a classifier's ``id2label``."""
    names = {int(i): str(name) for i, name in id2label.items()}
    wanted = [consistent_label.lower()] if consistent_label else list(CONSISTENT_NAMES)
    for want in wanted:
        for i, name in names.items():
            if name.lower() == want:
                return i
    raise ValueError(
        f"cannot tell which class means consistent among {names}: pass consistent_label=<one of those names>"
    )


# ---------------------------------------------------------------------------------------------- scorer


class FactCCScorer:
    """P(consistent | document, summary) from a sequence classifier; identical pairs scored once, pairs sorted
    by length and batched (``batch_size`` per forward, halved on out-of-memory). ``details["factcc_label"]`` is
    the argmax class name. ``self.stats`` counts scored pairs and truncated documents."""

    name = "factcc"
    version = VERSION

    def __init__(
        self,
        model,
        tokenizer,
        *,
        consistent_label: str | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        model_ids: dict[str, str] | None = None,
    ):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.consistent = consistent_index(model.config.id2label, consistent_label)
        limit = getattr(model.config, "max_position_embeddings", None) or 512
        if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
            limit -= 2
        self.max_length = min(max_length or tokenizer.model_max_length, limit)
        self.batch_size = batch_size
        self.model_ids = dict(model_ids or {})
        settings = {"consistent_label": model.config.id2label[self.consistent], "max_length": self.max_length}
        self.info = ScorerInfo(self.name, self.version, self.model_ids, settings)
        self.stats: Counter = Counter(pairs=0, truncated=0, oom_splits=0)

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, device: str | None = None, dtype: str | None = None, **kwargs):
        model, tokenizer = load_classifier(name_or_path, device=device, dtype=dtype)
        return cls(model, tokenizer, model_ids={"classifier": str(name_or_path)}, **kwargs)

    @classmethod
    def from_config(cls, *, root: str, device: str | None = None, model: str | None = None, **kwargs):
        """configs/scorer/factcc.yaml's factory: ``model`` unset = the classifier the default config trains."""
        if not model:
            from conseq import specs

            model = specs.factcc_location(project_config(root))[0]
        return cls.from_pretrained(model, device=device, **kwargs)

    def probabilities(self, documents: list[str], claims: list[str]) -> list[float]:
        check_inputs(documents, claims)
        pairs = list(zip(documents, claims, strict=True))
        unique = list(dict.fromkeys(pairs))
        ids, truncated = encode(self.tokenizer, [d for d, _ in unique], [c for _, c in unique], self.max_length)
        self.stats["pairs"] += len(unique)
        self.stats["truncated"] += truncated
        order = sorted(range(len(unique)), key=lambda i: -len(ids[i]))
        probs = [0.0] * len(unique)
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(order), self.batch_size):
                picked = order[start : start + self.batch_size]
                for i, p in zip(picked, split_on_oom(self._forward, [ids[i] for i in picked], self.stats), strict=True):
                    probs[i] = p
        finally:
            self.model.train(was_training)
        index = {pair: i for i, pair in enumerate(unique)}
        return [probs[index[pair]] for pair in pairs]

    @torch.inference_mode()
    def _forward(self, batch: list[list[int]]) -> list[float]:
        inputs = {k: v.to(self.model.device) for k, v in collate(batch, None, self.tokenizer.pad_token_id).items()}
        logits = self.model(**inputs).logits.float()
        return logits.softmax(-1)[:, self.consistent].tolist()

    def score(self, documents: list[str], summaries: list[str], *, details: bool = True) -> list[ScoreResult]:
        probs = self.probabilities(documents, summaries)
        id2label = self.model.config.id2label
        other = next((i for i in id2label if int(i) != self.consistent), None)
        results = []
        for p in probs:
            extra = {}
            if details:
                label = self.consistent if p >= 0.5 or other is None else int(other)
                extra["factcc_label"] = id2label[label]
            results.append(ScoreResult(p, extra, self.info))
        return results
