"""``python -m conseq.metaeval input=<file, folder or hub id> scorer=<name> [scorer options]``.

Reads a human-labelled benchmark in the SummaC / LLM-AggreFact layout (``conseq.data.loading.load_benchmark``),
scores every row with the scorer (configs/scorer/<name>.yaml; ``scorer=quals`` by default, whose ``qagen=`` and
``quals.*`` knobs are top-level as in ``python -m conseq.score``), and writes into ``output=`` (default
``<paths.root>/metaeval/<input name>/<scorer>``): ``scores.jsonl`` (one line a row: id, dataset, cut, label, human
score, summary and the value; resumable: a killed run continues where it stopped), ``metaeval.md``, ``metaeval.json``
and ``roc.png``. Prints the table, then one JSON line. A second run with the same input and scorer is a cache hit;
``force=true`` scores again.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from conseq.artifacts import read_json, write_json
from conseq.config import MetaevalCLIConfig, register
from conseq.data.loading import load_benchmark
from conseq.errors import BadInputError, user_errors
from conseq.metaeval import benchmark_fingerprint, headline, score_rows, scorer_identity, write_report
from conseq.metaeval.stats import check_protocol
from conseq.runtime import setup_logging
from conseq.scoring.base import instantiate_scorer

log = logging.getLogger("conseq.metaeval")
register()


def default_output(cfg: MetaevalCLIConfig, scorer: str) -> Path:
    source = Path(cfg.input)
    name = source.stem if source.suffix else source.name
    if not source.exists():  # a hub id
        name = cfg.input.replace("/", "__")
    return Path(cfg.paths.root) / "metaeval" / re.sub(r"[^\w.-]", "_", name) / scorer


def metaeval(cfg: MetaevalCLIConfig, scorer_choice: str, scorer_config: dict) -> tuple[dict, str]:
    """Score ``cfg.input`` with ``cfg.scorer`` and write the report; (the summary line, the markdown).
    ``scorer_config`` is the scorer's resolved config (what a cached report must have been made with)."""
    output = Path(cfg.output) if cfg.output else default_output(cfg, scorer_choice)
    protocol = {"nulls": cfg.nulls, "resamples": cfg.bootstrap, "confidence": cfg.confidence, "seed": cfg.seed}
    check_protocol("", **{k: v for k, v in protocol.items() if k != "seed"})
    if output.exists() and not output.is_dir():
        raise BadInputError("not a folder: output= names the report folder", file=str(output))
    # the input is read (and its bad rows named) before any model loads
    rows, stats = load_benchmark(
        cfg.input,
        on_bad_row=cfg.on_bad_row,
        human_score_column=cfg.human_score_column,
        hub_config=cfg.hub_config,
        hub_splits=cfg.hub_splits,
        max_rows=cfg.max_rows,
    )
    fingerprint = benchmark_fingerprint(rows)
    run_key = json.loads(json.dumps({"input": fingerprint, "scorer": scorer_config, "protocol": protocol}))
    report = output / "metaeval.json"
    if cfg.force:
        shutil.rmtree(output, ignore_errors=True)
    elif report.is_file() and {"run", "summary"} <= set(done := read_json(report)) and done["run"] == run_key:
        log.info("%s is up to date; force=true to score again", output)
        return {**done["summary"], "cache_hit": True}, (output / "metaeval.md").read_text()

    scorer = instantiate_scorer(cfg.scorer, root=str(Path(cfg.paths.root).resolve()), device=cfg.device)
    identity = scorer_identity(scorer)
    stamp = {"scorer": identity, "benchmark": fingerprint}
    progress = output / "scores.jsonl.progress"
    resumed = json.loads(progress.read_text())["rows"] if progress.is_file() else 0
    values = score_rows(
        scorer, rows, output / "scores.jsonl", identity=stamp, chunk_rows=cfg.chunk_rows, details=cfg.details
    )
    header = (
        f"Meta-evaluation of {scorer.name} on {cfg.input}: {len(rows)} rows, {stats.rows_skipped} bad rows skipped."
    )
    results, text = write_report(output, rows, {scorer.name: values}, {scorer.name: scorer.info.as_dict()}, **protocol,
                                 header=header, extra={"run": run_key})  # fmt: skip
    summary = {
        "output": str(output),
        "rows": len(rows),
        "resumed_after_rows": resumed,
        "skipped": stats.rows_skipped,
        "skipped_by_reason": stats.skipped_by_reason,
        "scorer": identity,
        "metrics": headline(results)[scorer.name],
    }
    write_json(report, read_json(report) | {"summary": summary})  # last: a report without it is not finished
    return {**summary, "cache_hit": False}, text


@hydra.main(config_path="../../configs", config_name="metaeval", version_base="1.3")
@user_errors
def main(raw: DictConfig) -> None:
    if OmegaConf.is_missing(raw, "input"):
        raise ValueError("input=<file, folder or hub id> is required: python -m conseq.metaeval input=… scorer=<name>")
    setup_logging()
    choice = HydraConfig.get().runtime.choices.get("scorer") or "scorer"
    summary, text = metaeval(OmegaConf.to_object(raw), choice, OmegaConf.to_container(raw.scorer, resolve=True))
    print(text, flush=True)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
