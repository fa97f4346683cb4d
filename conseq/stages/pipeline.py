"""stage=pipeline: every stage in order, re-using each cached artifact.

    python -m conseq.train stage=pipeline                        # `make demo`: the embedded news world
    python -m conseq.train stage=pipeline experiment=xsum_bart_large
    accelerate launch --multi_gpu -m conseq.train stage=pipeline …

mle → qagen → generate → score → partition (QUALS, and ROUGE for the baseline) → contrastive (each variant of
stages.pipeline.variants) → QAGS's question generator and QA model, the FactCC classifier (for evaluate's
extra_scorers, unless `qg=`/`qa=`/`factcc=` name checkpoints) → evaluate (MLE and every variant).
Each stage prints its own result line; the pipeline's line comes last and holds the comparison.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import replace
from pathlib import Path

from conseq import runtime
from conseq.config import Config

log = logging.getLogger(__name__)


def run(cfg: Config) -> dict | None:
    from conseq.train import STAGES  # the entry's explicit stage table; stages never import each other

    variants = list(cfg.stages.pipeline.variants)
    scorers = dict.fromkeys(cfg.stages.contrastive.resolved(v).partition_scorer for v in variants)
    # mle first: the tiny QAGen and FactCC model warm-start from it, QAGS's two models from QAGen
    # (ModelConfig.warm_start).
    plan = [("mle", cfg)]
    plan += [("qagen", cfg)] if cfg.qagen is None else []
    plan += [("generate", cfg)]
    if "quals" in scorers:
        plan.append(("score", cfg))
    for scorer in scorers:
        plan.append(("partition", _with(cfg, partition=replace(cfg.stages.partition, scorer=scorer))))
    for variant in variants:
        plan.append(("contrastive", _with(cfg, contrastive=replace(cfg.stages.contrastive, variant=variant))))
    # QAGS's question generator and QA model, the FactCC classifier: trained unless given as checkpoints.
    extra = cfg.stages.evaluate.extra_scorers
    if "qags" in extra and cfg.qg is None:
        plan.append(("qagen", _with(cfg, qagen=replace(cfg.stages.qagen, mode="qg"))))
    if "qags" in extra and cfg.qa is None:
        plan.append(("qa", cfg))
    if "factcc" in extra and cfg.factcc is None:
        plan.append(("factcc", cfg))
    models = list(cfg.stages.evaluate.models) or ["mle", *variants]
    plan.append(("evaluate", _with(cfg, evaluate=replace(cfg.stages.evaluate, models=models))))

    seconds: dict[str, float] = {}
    hits, result = [], None
    for name, config in plan:
        started = time.perf_counter()
        result = importlib.import_module(STAGES[name]).run(config)
        seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - started, 1)
        hits.append(bool(result and result["cache_hit"]))
        log.info("pipeline: %s done in %.0f s", name, time.perf_counter() - started)
    if result is None:  # not the main process: the main one reports
        return None
    table = Path(result["artifact"]) / "table.md"
    log.info("pipeline finished in %.0f s; comparison (%s):\n%s", sum(seconds.values()), table, table.read_text())
    metrics = {**result["metrics"], "seconds": seconds | {"total": round(sum(seconds.values()), 1)}}
    return runtime.emit_result("pipeline", result["artifact"], all(hits), metrics)


def _with(cfg: Config, **stages) -> Config:
    return replace(cfg, stages=replace(cfg.stages, **stages))
