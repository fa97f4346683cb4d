"""Standalone QUALS scoring of (document, summary) rows: ``python -m conseq.score input=… output=… [qagen=…]``.

Each input row (jsonl, json, csv or parquet) keeps its fields and gains ``quals`` (float, or null when no QA pair
survives the filter) and ``qa_pairs`` (``question``, ``answer``, ``ll_source``, ``ll_summary``). Rows are read
as a stream and scored in chunks; each finished chunk is appended to ``<output>.partial`` and its position recorded
in ``<output>.progress``, so a killed run continues where it stopped (no lost or duplicated rows), and the
output appears under its name only when complete. Bad rows stop the run or are skipped and counted
(``on_bad_row``). The last stdout line is a JSON summary.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from conseq.config import ScoreCLIConfig, register
from conseq.data.loading import LoadStats, stream_rows
from conseq.runtime import setup_logging

log = logging.getLogger("conseq.score")
register()


def default_qagen(root: str) -> str:
    """The QAGen model the project's default config trains (so `qagen=` can be left out after stage=qagen)."""
    from hydra import compose, initialize_config_dir

    from conseq import specs

    configs = Path(__file__).resolve().parents[1] / "configs"
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        cfg = OmegaConf.to_object(compose("config", overrides=[f"paths.root={root}"]))
    return specs.qagen_location(cfg)[0]


def score_file(cfg: ScoreCLIConfig) -> dict:
    output = Path(cfg.output)
    partial, progress = output.with_name(output.name + ".partial"), output.with_name(output.name + ".progress")
    if output.exists() and not cfg.force:
        rows = sum(1 for line in output.open() if line.strip())
        log.info("%s exists (%d rows); force=true to score again", output, rows)
        return {"output": str(output), "rows": rows, "cache_hit": True}
    if cfg.force:
        for path in (output, partial, progress):
            path.unlink(missing_ok=True)

    # resume: keep exactly the bytes and input rows that the last recorded chunk covered
    done = json.loads(progress.read_text()) if progress.is_file() and partial.is_file() else {"rows": 0, "bytes": 0}
    partial.touch()
    os.truncate(partial, done["bytes"])
    if done["rows"]:
        log.info("resuming %s after %d input rows", output, done["rows"])

    from conseq.quals.scorer import QualsScorer

    qagen = cfg.qagen or default_qagen(str(Path(cfg.paths.root).resolve()))
    quals = asdict(cfg.quals)
    scorer = QualsScorer.from_pretrained(qagen, device=cfg.device, **quals)
    stats = LoadStats()
    jsonl = cfg.input.endswith(".jsonl") and Path(cfg.input).is_file()
    total = None
    if jsonl:
        with open(cfg.input, encoding="utf-8-sig") as f:
            total = sum(1 for line in f if line.strip())
    counts = {"rows": 0, "null": 0}
    bar = tqdm(total=total, initial=done["rows"], desc="QUALS", unit="row")
    rows = stream_rows(
        cfg.input, text_columns=(cfg.document_column, cfg.summary_column), on_bad_row=cfg.on_bad_row, stats=stats
    )
    chunk: list[dict] = []
    last_index = -1

    def flush() -> None:
        results = scorer.score(
            [r[cfg.document_column] for r in chunk],
            [r[cfg.summary_column] for r in chunk],
            return_qa_pairs=cfg.qa_pairs,
        )
        with partial.open("a") as f:
            for row, result in zip(chunk, results, strict=True):
                row["quals"] = result.quals
                if cfg.qa_pairs:
                    row["qa_pairs"] = [asdict(p) for p in result.qa_pairs]
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                counts["null"] += result.quals is None
            f.flush()
            os.fsync(f.fileno())
        counts["rows"] += len(chunk)
        state = {"rows": last_index + 1, "bytes": partial.stat().st_size}
        progress.with_suffix(".tmp").write_text(json.dumps(state))
        os.replace(progress.with_suffix(".tmp"), progress)
        bar.update(state["rows"] - bar.n)
        chunk.clear()

    for index, row in rows:
        if index < done["rows"]:
            continue
        chunk.append(row)
        last_index = index
        if len(chunk) >= cfg.chunk_rows:
            flush()
    if chunk:
        flush()
    bar.close()
    os.replace(partial, output)
    progress.unlink(missing_ok=True)
    written = sum(1 for line in output.open() if line.strip())
    return {
        "output": str(output),
        "rows": written,
        "scored_now": counts["rows"],
        "resumed_after_rows": done["rows"],
        "quals_null_now": counts["null"],
        "skipped": stats.rows_skipped,
        "skipped_by_reason": stats.skipped_by_reason,
        "qagen": qagen,
        "cache_hit": False,
    }


@hydra.main(config_path="../configs", config_name="score", version_base="1.3")
def main(raw: DictConfig) -> None:
    setup_logging()
    summary = score_file(OmegaConf.to_object(raw))
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
