"""One interface for the factual-consistency scorers: QUALS, QAGS, a FactCC-style classifier, ROUGE-L.

A scorer has ``name`` (the output field), ``version`` (of conseq's implementation: bumped when a value can
change), ``model_ids`` (role -> folder or hub id) and ``info`` (all three plus its settings), and
``score(documents, summaries) -> list[ScoreResult]``: one ``ScoreResult(value, details, scorer)`` per pair, in
input order, where ``value`` is a float or None (nothing to score, e.g. no QA pair survived; counted, never 0)
and ``details`` the per-pair evidence (QA pairs, answers, label). No base class: any object with these members
is a scorer.

Backends are chosen with Hydra's ``_target_`` (configs/scorer/<name>.yaml), e.g. ``python -m conseq.score
scorer=qags …``; each class's ``from_config(*, root, device, …)`` resolves unset model paths to the models this
project's default config trains under ``root``.

| name   | value                                            | higher = | class                         |
|--------|--------------------------------------------------|----------|-------------------------------|
| quals  | mean LL(QA pair | document) − LL(QA pair | summary) | better   | QualsBackend (QualsScorer)    |
| qags   | mean token F1 of answers on summary vs document   | better   | conseq.scoring.qags.QagsScorer        |
| factcc | P(consistent | document, summary)                 | better   | conseq.scoring.factcc.FactCCScorer    |
| rouge  | ROUGE-L precision of the summary vs the document  | better   | RougeScorer                   |

More (entity precision, any NLI classifier) live in conseq/scoring/, whose ``__init__`` names every scorer.

``extra_metrics`` is what the evaluate stage calls for QAGS and FactCC.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScorerInfo:
    """What produced a score: recorded with every result (and in the CLI's summary line)."""

    name: str
    version: str
    model_ids: dict[str, str]
    settings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScoreResult:
    value: float | None
    details: dict[str, Any] = field(default_factory=dict)
    scorer: ScorerInfo | None = None


def check_inputs(documents: list[str], summaries: list[str]) -> None:
    if len(documents) != len(summaries):
        raise ValueError(f"{len(documents)} documents but {len(summaries)} summaries")
    for name, texts in (("documents", documents), ("summaries", summaries)):
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"{name}[{i}] is {type(text).__name__}, expected str")


def project_config(root: str):
    """This project's default training config with ``paths.root=root`` (to find the models it trains)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from omegaconf import OmegaConf

    from conseq.config import register

    register()
    configs = Path(__file__).resolve().parents[2] / "configs"
    # Inside a Hydra app (conseq.score) Hydra is initialised already: compose beside it, then put it back.
    outer = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
            return OmegaConf.to_object(compose("config", overrides=[f"paths.root={Path(root).resolve()}"]))
    finally:
        restore_gh_from_backup(outer)


def is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or (isinstance(err, RuntimeError) and "out of memory" in str(err))


def load_classifier(name_or_path: str, *, device: str | None = None, dtype: str | torch.dtype | None = None):
    """(model, tokenizer) of a sequence classifier (folder or hub id) on ``device`` (default cuda when available),
    cast to ``dtype``: the FactCC and NLI scorers' checkpoints."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(name_or_path)
    model.to(
        device=device or ("cuda" if torch.cuda.is_available() else "cpu"),
        dtype=getattr(torch, dtype) if isinstance(dtype, str) else dtype,
    )
    return model, AutoTokenizer.from_pretrained(name_or_path)


def split_on_oom(fn, items: list, stats=None) -> list:
    """``fn(items)`` (a list in, a list of per-item results out); on out-of-memory, retried on halves,
    recursively, down to single items. ``stats["oom_splits"]`` counts the splits."""
    try:
        return fn(items)
    except (torch.OutOfMemoryError, RuntimeError) as err:
        if not is_oom(err) or len(items) == 1:
            raise
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if stats is not None:
        if not stats["oom_splits"]:
            log.warning("out of memory on a batch of %d; splitting batches in halves and retrying", len(items))
        stats["oom_splits"] += 1
    mid = len(items) // 2
    return split_on_oom(fn, items[:mid], stats) + split_on_oom(fn, items[mid:], stats)


# ---------------------------------------------------------------------------------------------- QUALS


class QualsBackend:
    """``QualsScorer`` behind the interface; ``details`` = ``{"qa_pairs": [...]}`` (the QUALS CLI's format)."""

    name = "quals"
    version = "1"

    def __init__(self, scorer, qagen: str):
        self.scorer = scorer
        self.model_ids = {"qagen": qagen}
        s = scorer
        settings = {**s.decoding, "max_qas": s.max_qas, "summary_ll": s.summary_ll, "aggregate": s.aggregate}
        if s.token_logprobs:  # changes the rows (per-token fields), so a resumed run must not mix the two
            settings["token_logprobs"] = True
        self.info = ScorerInfo(self.name, self.version, self.model_ids, settings)

    @classmethod
    def from_config(
        cls, *, root: str, device: str | None = None, qagen: str | None = None, quals: Any = None
    ) -> QualsBackend:
        from conseq import specs
        from conseq.scoring.quals.scorer import QualsScorer

        qagen = qagen or specs.qagen_location(project_config(root))[0]
        knobs = asdict(quals) if is_dataclass(quals) else dict(quals or {})
        return cls(QualsScorer.from_pretrained(qagen, device=device, **knobs), qagen)

    @property
    def stats(self):
        return self.scorer.stats

    def score(self, documents: list[str], summaries: list[str], *, details: bool = True) -> list[ScoreResult]:
        results = self.scorer.score(documents, summaries, return_qa_pairs=details)
        return [
            ScoreResult(r.quals, {"qa_pairs": [p.as_dict() for p in r.qa_pairs]} if details else {}, self.info)
            for r in results
        ]


# ---------------------------------------------------------------------------------------------- ROUGE


class RougeScorer:
    """ROUGE-L of the summary against its document (rouge-score, Porter stemming). ``value`` is the precision:
    the share of the summary's tokens that form an in-order common subsequence with the document. (F1 against a
    whole document is dominated by recall ≈ |summary| / |document|, a length ratio, not support.) ``details``
    has recall and F1 too."""

    name = "rouge"
    version = "1"
    model_ids: dict[str, str] = {}  # noqa: RUF012 (read-only)

    def __init__(self):
        from rouge_score import rouge_scorer

        self._rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        self.info = ScorerInfo(self.name, self.version, {}, {"metric": "rougeL precision", "stemmer": True})

    @classmethod
    def from_config(cls, *, root: str | None = None, device: str | None = None) -> RougeScorer:
        return cls()

    def score(self, documents: list[str], summaries: list[str], *, details: bool = True) -> list[ScoreResult]:
        check_inputs(documents, summaries)
        out = []
        for document, summary in zip(documents, summaries, strict=True):
            s = self._rouge.score(document, summary)["rougeL"]  # (target, prediction)
            extra = {"rougeL_recall": s.recall, "rougeL_f1": s.fmeasure} if details else {}
            out.append(ScoreResult(s.precision, extra, self.info))
        return out


# ------------------------------------------------------------------------------------- evaluate's hook


EXTRA_SCORERS = ("qags", "factcc")
# Scorer knobs that change only how fast a value is computed (left out of cache identities).
SPEED_KNOBS = ("qg_batch_size", "qa_batch_size", "batch_size", "dtype")


def instantiate_scorer(knobs: dict, **kwargs):
    """``hydra.utils.instantiate(knobs, **kwargs)``, re-raising a user error of the scorer's factory (a missing model,
    a bad knob) as itself: Hydra wraps every error of a ``_target_`` in its InstantiationException."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from conseq.errors import user_message

    try:
        return instantiate(knobs, **kwargs, _convert_="all")
    except InstantiationException as err:
        if err.__cause__ is not None and user_message(err.__cause__) is not None:
            raise err.__cause__ from None
        raise


def build_scorer(cfg, name: str, *, device: str | None = None):
    """The scorer ``name`` of a training config (``cfg.scorers[name]``, configs/scorer/<name>.yaml), its unset
    model paths filled with this config's trained models (missing ones name the command that builds them).
    ``quals`` is this config's QUALS: its QAGen (``qagen=`` or stage=qagen's) with ``stages.score.quals``."""
    from conseq import specs

    if name == "quals":
        quals = {**asdict(cfg.stages.score.quals), "token_logprobs": False}  # the values evaluate computes
        return QualsBackend.from_config(
            root=cfg.paths.root, device=device, qagen=specs.qagen_location(cfg)[0], quals=quals
        )
    if name not in cfg.scorers:
        raise ValueError(f"no scorer {name!r} in this config (scorers: {', '.join(['quals', *cfg.scorers])})")
    knobs = dict(cfg.scorers[name])
    if name == "qags":
        knobs["qg"] = knobs.get("qg") or cfg.qg or specs.qg_location(cfg)[0]
        knobs["qa"] = knobs.get("qa") or cfg.qa or specs.qa_location(cfg)[0]
    elif name == "factcc":
        knobs["model"] = knobs.get("model") or specs.factcc_location(cfg)[0]
    return instantiate_scorer(knobs, root=cfg.paths.root, device=device)


def extra_metrics_identity(cfg, scorers: tuple[str, ...] = EXTRA_SCORERS) -> dict[str, Any]:
    """What ``extra_metrics`` depends on (model identities and knobs), for cache keys of evaluation artifacts."""
    from conseq import specs
    from conseq.artifacts import model_identity

    ids: dict[str, Any] = {}
    for name in scorers:
        if name == "quals":  # build_scorer's QUALS: the QAGen and the value-changing stages.score.quals knobs
            quals = cfg.stages.score.quals.keyed(*SPEED_KNOBS, "max_rows")
            ids[name] = {"qagen": specs.qagen_location(cfg)[1], "quals": quals | {"token_logprobs": False}}
            continue
        if name not in cfg.scorers:
            raise ValueError(f"no scorer {name!r} in this config (scorers: {', '.join(['quals', *cfg.scorers])})")
        knobs = {k: v for k, v in cfg.scorers[name].items() if k not in SPEED_KNOBS}
        if name == "nli" and knobs.get("model"):
            knobs["model"] = model_identity(knobs["model"])
        if name == "qags":
            knobs["qg"] = model_identity(knobs["qg"]) if knobs.get("qg") else specs.qg_location(cfg)[1]
            knobs["qa"] = model_identity(knobs["qa"]) if knobs.get("qa") else specs.qa_location(cfg)[1]
        elif name == "factcc":
            knobs["model"] = model_identity(knobs["model"]) if knobs.get("model") else specs.factcc_location(cfg)[1]
        ids[name] = knobs
    return ids


def extra_metrics(
    cfg,
    documents: list[str],
    summaries: list[str],
    rows: list[dict] | None = None,
    *,
    scorers: tuple[str, ...] = EXTRA_SCORERS,
    records: list[dict] | None = None,
    device: str | None = None,
    accelerator=None,
) -> dict[str, Any]:
    """QAGS and FactCC of (document, summary) pairs, for the evaluate stage.

    Returns ``qags`` (mean over scored summaries), ``qags_null`` (summaries without a kept question),
    ``factcc`` (mean P(consistent)); when ``rows`` are the reference rows of the news world (they carry
    ``injected``), also ``qags_auc_noisy_refs`` / ``factcc_auc_noisy_refs``: the ROC AUC with which a low score
    flags a reference that carries an injected fact. ``records`` (one dict per pair), when given, get the
    per-pair values under the scorer's name. With an ``accelerator`` (call it on every process then), each
    process scores its share and every process gets all the values; without one it runs where it is called.
    """
    from conseq.metrics import roc_auc
    from conseq.runtime import map_shards

    metrics: dict[str, Any] = {}
    for name in scorers:
        scorer = build_scorer(cfg, name, device=device)
        values = map_shards(
            accelerator,
            lambda idx, scorer=scorer: [
                r.value for r in scorer.score([documents[i] for i in idx], [summaries[i] for i in idx], details=False)
            ],
            list(range(len(documents))),
        )
        kept = [v for v in values if v is not None and not math.isnan(v)]
        metrics[name] = sum(kept) / len(kept) if kept else None
        if name == "qags":
            metrics["qags_null"] = len(values) - len(kept)
        if records is not None:
            for record, value in zip(records, values, strict=True):
                record[name] = value
        if rows and "injected" in rows[0]:
            pairs = [(r["injected"] is not None, v) for r, v in zip(rows, values, strict=True) if v is not None]
            try:
                # Lower score = less supported: AUC of −score for "the reference carries an injected fact".
                metrics[f"{name}_auc_noisy_refs"] = roc_auc([n for n, _ in pairs], [-v for _, v in pairs])
            except ValueError as err:
                log.warning("no %s AUC: %s", name, err)
        del scorer
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return metrics
