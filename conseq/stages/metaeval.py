"""stage=metaeval: how far each factuality scorer agrees with labels, per dataset and pooled.

    python -m conseq.train stage=metaeval                                        # the news world's own benchmark
    python -m conseq.train stage=metaeval 'stages.metaeval.scorers=[quals,entity]' qagen=/path/to/qagen
    python -m conseq.train stage=metaeval stages.metaeval.input=summac.jsonl      # a human-labelled benchmark
    python -m conseq.train stage=metaeval 'stages.metaeval.scorers=[nli]' scorers.nli.model=<classifier>

The embedded benchmark (no ``input``): the news world's references, labelled by its oracle (consistent iff it finds
no unsupported fact), with their validation split as the val cut and the rows stage=evaluate evaluates (its split's
first ``stages.evaluate.max_rows``) as the test cut: dataset ``newsworld_refs``, on which QUALS's ROC-AUC is
evaluate's ``quals_auc_noisy_refs``. Then the test summaries of every model of this config that stage=evaluate scored
(``newsworld_<model>``: no val cut, so their balanced accuracy is marked optimistic; summaries the oracle cannot read
are left out and counted). The continuous "human" score is the oracle's fact precision of the summary.

Each scorer's per-row values are their own artifact (``metaeval_scores``, keyed by the benchmark's content and the
scorer's identity: adding a scorer re-uses the others), written resumably: a killed run continues where it stopped.
The report artifact (``metaeval``) holds metaeval.md (printed), metaeval.json, roc.png and scores.jsonl (every
row with every scorer's value). A scorer whose model is not built is left out with the command that builds it
(``stages.metaeval.missing=skip``, the default), so a fresh clone prints the figures of the scorers that need none.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from conseq import runtime, specs
from conseq.artifacts import Artifact, artifact, read_json, read_jsonl, write_jsonl
from conseq.config import Config
from conseq.data import prepare
from conseq.data.loading import load_benchmark
from conseq.metaeval import ROW_FIELDS, benchmark_fingerprint, headline, score_rows, scorer_identity, write_report
from conseq.metaeval.stats import check_protocol
from conseq.scoring.base import build_scorer, extra_metrics_identity

log = logging.getLogger(__name__)
MISSING = ("skip", "error")


def run(cfg: Config) -> dict | None:
    # setup
    m = cfg.stages.metaeval
    if m.missing not in MISSING:
        raise ValueError(f"stages.metaeval.missing={m.missing!r}: choose one of {', '.join(MISSING)}")
    protocol = {"nulls": m.nulls, "resamples": m.bootstrap, "confidence": m.confidence, "seed": m.seed}
    check_protocol("stages.metaeval.", **{k: v for k, v in protocol.items() if k != "seed"})
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SystemExit("stage=metaeval runs on one process: python -m conseq.train stage=metaeval")
    runtime.setup_logging()

    # data: the benchmark rows
    if m.input:
        rows, stats = load_benchmark(
            m.input,
            on_bad_row=cfg.data.on_bad_row,
            human_score_column=m.human_score_column,
            hub_config=m.hub_config,
            hub_splits=m.hub_splits,
            max_rows=m.max_rows,
        )
        about: dict[str, Any] = {
            "input": m.input,
            "skipped": stats.rows_skipped,
            "skipped_by_reason": stats.skipped_by_reason,
        }
    else:
        rows, about = embedded_benchmark(cfg)
    fingerprint = benchmark_fingerprint(rows)

    # which scorers can run: a missing model is left out (with the command that builds it) or stops the stage
    identities, left_out = {}, {}
    for name in m.scorers:
        try:
            identities[name] = extra_metrics_identity(cfg, (name,))[name]
        except FileNotFoundError as err:
            if m.missing == "error":
                raise
            left_out[name] = str(err)
            log.warning("metaeval: %s left out: %s", name, err)
    if not identities:
        raise SystemExit(f"stage=metaeval: no scorer can run: {json.dumps(left_out)}")
    scored = {name: artifact(cfg.paths.root, "metaeval_scores", {"benchmark": fingerprint, "scorer": identity})
              for name, identity in identities.items()}  # fmt: skip
    report = artifact(
        cfg.paths.root,
        "metaeval",
        {
            "benchmark": fingerprint,
            "scores": {n: a.key for n, a in scored.items()},
            "left_out": sorted(left_out),
            **protocol,
        },
    )
    if report.done and not cfg.force:
        print((report.path / "metaeval.md").read_text(), flush=True)
        return runtime.emit_result("metaeval", report.path, True, report.metrics())

    # loop: each scorer's values (cached per scorer, resumable)
    values, infos = {}, {}
    for name, art in scored.items():
        values[name], infos[name] = score_benchmark(cfg, name, art, rows, identities[name])

    # save
    out = report.start(force=True)
    left = "".join(f"\n- {name} left out: {why}" for name, why in left_out.items())
    header = f"Meta-evaluation of {len(values)} scorer(s) on {len(rows)} rows ({describe(about)}).{left}"
    results, text = write_report(
        out, rows, values, infos, **protocol, header=header, extra={"benchmark": about, "left_out": left_out}
    )
    merged = [{"row": i, **{k: r.get(k) for k in ROW_FIELDS}, **{n: v[i] for n, v in values.items()}}
              for i, r in enumerate(rows)]  # fmt: skip
    write_jsonl(out / "scores.jsonl", merged)
    metrics = {"rows": len(rows), "benchmark": about, "scorers": headline(results), "left_out": left_out}
    report.finish(metrics)
    print(text, flush=True)
    return runtime.emit_result("metaeval", report.path, False, metrics)


def score_benchmark(cfg: Config, name: str, art: Artifact, rows: list[dict], identity: Any) -> tuple[list, dict]:
    """One scorer's values over the rows (its cached artifact, or scored now, resuming a killed run's partial)."""
    if art.done and not cfg.force:
        values = [line[name] for line in read_jsonl(art.path / "scores.jsonl")]
        return values, art.metrics()["info"]
    scorer = build_scorer(cfg, name)
    out = art.start(force=cfg.force)
    stamp = {"scorer": identity, "benchmark": art.spec["benchmark"]}
    values = score_rows(scorer, rows, out / "scores.jsonl", identity=stamp, chunk_rows=cfg.stages.metaeval.chunk_rows)
    info = scorer.info.as_dict()
    art.finish(
        {"rows": len(rows), "null": sum(v is None for v in values), "info": info, "identity": scorer_identity(scorer)}
    )
    del scorer
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return values, info


def describe(about: dict[str, Any]) -> str:
    if "input" in about:
        return f"{about['input']}; {about['skipped']} bad rows skipped"
    left = ", ".join(f"{d} {n}" for d, n in about["unreadable"].items() if n)
    return (
        "the news world: references labelled by its oracle"
        + (f", models' test summaries ({', '.join(about['models'])})" if about["models"] else "")
        + (f"; left out as unreadable by the oracle: {left}" if left else "")
    )


# ------------------------------------------------------------------------------------ embedded benchmark


def embedded_benchmark(cfg: Config) -> tuple[list[dict], dict[str, Any]]:
    """The news world's labelled rows: references (val and test cuts) and the evaluated models' test summaries."""
    from conseq.data.newsworld import check_summary

    if cfg.data.source != "newsworld":
        raise ValueError(
            "stages.metaeval.input: the embedded benchmark needs the news world's oracle (data=newsworld); give a "
            "labelled benchmark (a file, folder or hub id) with stages.metaeval.input=…"
        )
    m = cfg.stages.metaeval
    data_art = prepare.build_summarization(specs.data(cfg), cfg.data)
    test_rows = _first(_first(prepare.read_split(data_art, "test"), cfg.stages.evaluate.max_rows), m.max_rows)
    val_rows = _first(prepare.read_split(data_art, "validation"), m.max_rows)
    rows: list[dict] = []
    unreadable: dict[str, int] = {}

    def add(record: dict, summary: str, dataset: str, cut: str) -> None:
        verdict = check_summary(record, summary)
        if not verdict.readable:  # the oracle cannot tell: neither label would be true
            unreadable[dataset] = unreadable.get(dataset, 0) + 1
            return
        errors = len(verdict.extrinsic) + len(verdict.intrinsic)
        precision = max(0.0, 1.0 - errors / verdict.mentions) if verdict.mentions else None
        rows.append(
            {
                "id": record["id"],
                "dataset": dataset,
                "document": record["document"],
                "summary": summary,
                "label": int(not verdict.hallucinated),
                "cut": cut,
                "human_score": precision,
                "origin": "newsworld",
            }
        )

    for cut, split_rows in (("val", val_rows), ("test", test_rows)):
        for record in split_rows:
            add(record, record["summary"], "newsworld_refs", cut)
    models = evaluated_models(cfg, data_art.key) if m.models else {}
    by_id = {r["id"]: r for r in test_rows}
    for name, art in models.items():
        for prediction in read_jsonl(art.path / "predictions.jsonl"):
            if prediction["id"] in by_id:
                add(by_id[prediction["id"]], prediction["prediction"], f"newsworld_{name}", "test")
    about = {"data": data_art.key, "models": {n: str(a.path) for n, a in models.items()}, "unreadable": unreadable}
    return rows, about


def _first(rows: list, n: int | None) -> list:
    return rows if n is None else rows[:n]


def evaluated_models(cfg: Config, data_key: str) -> dict[str, Artifact]:
    """This config's models (mle, mle_clean, contrastive variants, reranked ones) whose test-split evaluation exists
    (stage=evaluate's eval_model artifacts on this data): the one over the most rows of each."""
    s = cfg.stages.evaluate
    names = ["mle", *(["mle_clean"] if cfg.data.source == "newsworld" else []), *cfg.stages.contrastive.variants]
    names += [f"{n}+rerank" for n in s.rerank_models] if s.rerank else []
    known = {}
    for name in names:
        try:
            known[json.dumps(specs.summarizer_identity(cfg, name), sort_keys=True)] = name
        except (ValueError, FileNotFoundError) as err:  # a variant this config cannot key: not one of its models
            log.info("metaeval: %s has no evaluation identity here (%s)", name, err)
    found: dict[str, tuple[tuple, Artifact]] = {}
    for spec_file in sorted((Path(cfg.paths.root) / "cache" / "eval_model").glob("*/spec.json")):
        spec = read_json(spec_file)
        name = known.get(json.dumps(spec.get("model"), sort_keys=True))
        if name is None or spec.get("data") != data_key or spec.get("split") != "test":
            continue
        art = Artifact("eval_model", spec_file.parent.name, spec, spec_file.parent)
        if not art.done or not (art.path / "predictions.jsonl").is_file():
            continue
        rank = (spec.get("rows") or 0, spec_file.stat().st_mtime)
        if name not in found or rank > found[name][0]:
            found[name] = (rank, art)
    return {name: found[name][1] for name in names if name in found}
