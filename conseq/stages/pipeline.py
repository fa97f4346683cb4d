"""stage=pipeline: every stage in order, re-using each cached artifact.

    python -m conseq.train stage=pipeline                        # `make demo`: the embedded news world
    python -m conseq.train stage=pipeline experiment=xsum_bart_large
    accelerate launch --multi_gpu -m conseq.train stage=pipeline …

pretrain (when a model starts from it) → mle (and, on the news world, mle on its clean references: the ceiling)
→ qagen → generate → score → partition (each scorer and positives the variants train on) → contrastive (each
variant of stages.pipeline.variants; a later round after its round_from variant, with its own generate, score and
partition) → QAGS's question generator and QA model, the FactCC classifier (for evaluate's extra_scorers, unless
`qg=`/`qa=`/`factcc=` name checkpoints) → evaluate (MLE and every variant) → report (one HTML page).
Each stage prints its own result line; the pipeline's line comes last and holds the comparison.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import replace
from pathlib import Path

from conseq import runtime, specs
from conseq.config import Config

log = logging.getLogger(__name__)


def run(cfg: Config) -> dict | None:
    from conseq.train import STAGES  # the entry's explicit stage table; stages never import each other

    planned = specs.pipeline_plan(cfg)
    if planned.left_out:
        log.info("pipeline: %s need the news world's oracle; left out on data=%s", planned.left_out, cfg.data.name)
    resolved = {v: cfg.stages.contrastive.resolved(v) for v in planned.variants}
    # pretrain first when a model of the plan starts from it (ModelConfig.warm_start: the tiny models' default).
    plan = [("pretrain", cfg)] if _starts_from_pretrain(cfg) else []
    plan += [("mle", cfg)] + ([("mle", specs.clean_references(cfg))] if planned.ceiling else [])
    plan += [("qagen", cfg)] if cfg.qagen is None else []
    plan += _selection(cfg, planned.partitions)
    for variant, c in resolved.items():
        if c.round_from:  # a later round: candidates of the round_from model, scored and partitioned anew
            plan += _selection(specs.round_config(cfg, c), [specs.selection(c)])
        plan.append(("contrastive", _with(cfg, contrastive=replace(cfg.stages.contrastive, variant=variant))))
    # QAGS's question generator and QA model, the FactCC classifier: trained unless given as checkpoints.
    extra = cfg.stages.evaluate.extra_scorers
    if "qags" in extra and cfg.qg is None:
        plan.append(("qagen", _with(cfg, qagen=replace(cfg.stages.qagen, mode="qg"))))
    if "qags" in extra and cfg.qa is None:
        plan.append(("qa", cfg))
    if "factcc" in extra and cfg.factcc is None:
        plan.append(("factcc", cfg))
    evaluate = _with(cfg, evaluate=replace(cfg.stages.evaluate, models=planned.models))
    plan += [("evaluate", evaluate), ("report", evaluate)]

    seconds: dict[str, float] = {}
    hits, results = [], {}
    for name, config in plan:
        started = time.perf_counter()
        results[name] = importlib.import_module(STAGES[name]).run(config)
        seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - started, 1)
        hits.append(bool(results[name] and results[name]["cache_hit"]))
        log.info("pipeline: %s done in %.0f s", name, time.perf_counter() - started)
    result = results["evaluate"]
    if result is None:  # not the main process: the main one reports
        return None
    table = Path(result["artifact"]) / "table.md"
    log.info("pipeline finished in %.0f s; comparison (%s):\n%s", sum(seconds.values()), table, table.read_text())
    log.info("pipeline: the evidence, page by page: file://%s/report.html", results["report"]["artifact"])
    metrics = {**result["metrics"], "seconds": seconds | {"total": round(sum(seconds.values()), 1)}}
    metrics["report"] = str(Path(results["report"]["artifact"]) / "report.html")
    return runtime.emit_result("pipeline", result["artifact"], all(hits), metrics)


def _starts_from_pretrain(cfg: Config) -> bool:
    """Whether a model this plan trains (the summarizer, QAGen, QAGS's two models, FactCC's) warm-starts from
    the pretrained checkpoint."""
    extra = cfg.stages.evaluate.extra_scorers
    trained = [(cfg.model, True), (cfg.qagen_model, cfg.qagen is None)]
    trained += [(cfg.qg_model, "qags" in extra and cfg.qg is None), (cfg.qa_model, "qags" in extra and cfg.qa is None)]
    trained += [(cfg.factcc_model, "factcc" in extra and cfg.factcc is None)]
    return any(used and specs.warm_start(m) == "pretrain" for m, used in trained)


def _selection(cfg: Config, partitions) -> list[tuple[str, Config]]:
    """generate, score (where a partition ranks by QUALS) and each (scorer, positives, negative ratio) partition
    of ``cfg`` (specs.selection)."""
    plan = [("generate", cfg)] + ([("score", cfg)] if any(scorer == "quals" for scorer, *_ in partitions) else [])
    return plan + [("partition", _with(cfg, partition=specs.partition_config(cfg, *s))) for s in partitions]


def _with(cfg: Config, **stages) -> Config:
    return replace(cfg, stages=replace(cfg.stages, **stages))
