"""QUALS: QA-pair generation from a summary, the original's filter, likelihood scoring, the scorer API."""

from conseq.scoring.quals.likelihood import pair_log_likelihoods
from conseq.scoring.quals.pairs import QACandidate, filter_pairs, parse_conseq, parse_lmqg
from conseq.scoring.quals.scorer import (
    QAFormat,
    QAPair,
    QualsResult,
    QualsScorer,
    load_qa_format,
    read_qa_format,
    save_qa_format,
)

__all__ = [
    "QACandidate",
    "QAFormat",
    "QAPair",
    "QualsResult",
    "QualsScorer",
    "filter_pairs",
    "load_qa_format",
    "pair_log_likelihoods",
    "parse_conseq",
    "parse_lmqg",
    "read_qa_format",
    "save_qa_format",
]
