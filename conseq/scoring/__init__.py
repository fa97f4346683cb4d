"""Every (document, summary) scorer conseq has, behind one interface (``conseq.scoring.base``).

A scorer has ``name``, ``version``, ``model_ids``, ``info`` and ``score(documents, summaries, *, details=True) ->
list[ScoreResult]`` (value: a float, higher = more consistent, or None when there is nothing to judge). Each is
built from configs/scorer/<name>.yaml (``python -m conseq.score scorer=<name>``, ``python -m conseq.metaeval
scorer=<name>``; in training configs ``scorers.<name>``, see ``conseq.scoring.base.build_scorer``).

| name          | value                                                        | module                          |
|---------------|--------------------------------------------------------------|---------------------------------|
| quals         | mean LL(QA pair given the document) − LL(given the summary)  | quals/ (QualsBackend in base)   |
| qags          | mean token F1 of answers on summary vs document              | qags (its QA model: extractive) |
| factcc        | P(consistent) of a FactCC-style classifier                   | factcc                          |
| rouge         | ROUGE-L precision of the summary against the document        | base (RougeScorer)              |
| entity        | prec_s: the summary's entities found in the document (lenient, level 2) | entity               |
| entity_strict | prec_s with whole-entity matching                            | entity                          |
| nli           | P(entailment) of any sequence classifier, over windows / sentences | nli                       |

``base`` holds the interface (ScorerInfo, ScoreResult), ``build_scorer`` and evaluate's ``extra_metrics``.
"""

from __future__ import annotations

from conseq.scoring.base import QualsBackend, RougeScorer, ScoreResult, ScorerInfo, build_scorer
from conseq.scoring.entity import EntityScorer
from conseq.scoring.factcc import FactCCScorer
from conseq.scoring.nli import NLIScorer
from conseq.scoring.qags import QagsScorer

# name -> class (both entity scorers are one class with two matchings)
SCORERS = {
    "quals": QualsBackend,
    "qags": QagsScorer,
    "factcc": FactCCScorer,
    "rouge": RougeScorer,
    "entity": EntityScorer,
    "entity_strict": EntityScorer,
    "nli": NLIScorer,
}

__all__ = [
    "SCORERS",
    "EntityScorer",
    "FactCCScorer",
    "NLIScorer",
    "QagsScorer",
    "QualsBackend",
    "RougeScorer",
    "ScoreResult",
    "ScorerInfo",
    "build_scorer",
]
