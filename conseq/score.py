"""Standalone scoring of (document, summary) rows: ``python -m conseq.score input=… output=… [qagen=…]``.

Each input row (jsonl, json, csv or parquet) keeps its fields and gains ``quals`` (float, or null when no QA pair
survives the filter) and ``qa_pairs`` (``question``, ``answer``, ``ll_source``, ``ll_summary``; with
``quals.token_logprobs=true`` also ``tokens``, ``lp_source``, ``lp_summary``: each token of the pair and its
log-probability given the document and given the summary, which ``python -m conseq.report <output>`` colours).
Other backends (conseq/scoring/base.py) are chosen with ``scorer=qags|factcc|rouge``: the row gains the scorer's name as
the value field (``qags``, ``factcc``, ``rouge``) and its details (``qags_questions``, ``factcc_label``, …);
``qa_pairs=false`` leaves the details out. The summary line names the scorer, its version and model ids. Rows are read
as a stream and scored in chunks; each finished chunk is appended to ``<output>.partial`` and its position recorded
in ``<output>.progress``, so a killed run continues where it stopped (no lost or duplicated rows), and the
output appears under its name only when complete. Bad rows stop the run or are skipped and counted
(``on_bad_row``). The last stdout line is a JSON summary.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from conseq.artifacts import model_identity
from conseq.config import ScoreCLIConfig, register
from conseq.data.loading import LoadStats, stream_rows
from conseq.errors import BadInputError, user_errors
from conseq.runtime import setup_logging

log = logging.getLogger("conseq.score")
register()


def score_file(cfg: ScoreCLIConfig) -> dict:
    output = Path(cfg.output)
    partial, progress = output.with_name(output.name + ".partial"), output.with_name(output.name + ".progress")
    if output.is_dir():
        raise BadInputError("a directory: output= names the .jsonl file to write", file=str(output))
    if output.exists() and not cfg.force:
        rows = sum(1 for line in output.open() if line.strip())
        log.info("%s exists (%d rows); force=true to score again", output, rows)
        return {"output": str(output), "rows": rows, "cache_hit": True}
    if cfg.force:
        for path in (output, partial, progress):
            path.unlink(missing_ok=True)
    # the input and the output folder are checked before any model loads
    stats = LoadStats()
    rows = stream_rows(
        cfg.input, text_columns=(cfg.document_column, cfg.summary_column), on_bad_row=cfg.on_bad_row, stats=stats
    )
    if output.parent.exists() and not output.parent.is_dir():
        raise BadInputError(f"not a folder, cannot hold output={output}", file=str(output.parent))
    output.parent.mkdir(parents=True, exist_ok=True)

    # the backend (configs/scorer/); unset model paths are the default config's trained models under paths.root
    scorer = instantiate(cfg.scorer, root=str(Path(cfg.paths.root).resolve()), device=cfg.device, _convert_="all")
    # a partial output is resumed only by the same scorer with the same weights (a folder keyed by content)
    identity = scorer.info.as_dict() | {"content": {k: model_identity(v) for k, v in scorer.model_ids.items()}}

    # resume: keep exactly the bytes and input rows that the last recorded chunk covered
    done = json.loads(progress.read_text()) if progress.is_file() and partial.is_file() else {"rows": 0, "bytes": 0}
    if done["rows"] and done.get("scorer", identity) != identity:
        raise SystemExit(f"{partial} was started by another scorer ({done['scorer']}); force=true starts {output} over")
    partial.touch()
    os.truncate(partial, done["bytes"])
    if done["rows"]:
        log.info("resuming %s after %d input rows", output, done["rows"])
    total = None
    if cfg.input.endswith(".jsonl"):  # counted as bytes: a line that is not UTF-8 is the reader's to report
        with open(cfg.input, "rb") as f:
            total = sum(1 for line in f if line.strip())
    counts = {"rows": 0, "null": 0}
    bar = tqdm(total=total, initial=done["rows"], desc=scorer.name, unit="row")
    chunk: list[dict] = []
    last_index = -1

    def flush() -> None:
        results = scorer.score(
            [r[cfg.document_column] for r in chunk],
            [r[cfg.summary_column] for r in chunk],
            details=cfg.qa_pairs,
        )
        try:
            with partial.open("a", encoding="utf-8") as f:
                for row, result in zip(chunk, results, strict=True):
                    row[scorer.name] = result.value
                    if cfg.qa_pairs:
                        row.update(result.details)
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    counts["null"] += result.value is None
                f.flush()
                os.fsync(f.fileno())
            state = {"rows": last_index + 1, "bytes": partial.stat().st_size, "scorer": identity}
            progress.with_suffix(".tmp").write_text(json.dumps(state))
            os.replace(progress.with_suffix(".tmp"), progress)
        except OSError as e:  # a full disk: name the file (a failed write names none); the resume point is kept
            raise OSError(e.errno, e.strerror, e.filename or str(partial)) from e
        counts["rows"] += len(chunk)
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
        f"{scorer.name}_null_now": counts["null"],
        "skipped": stats.rows_skipped,
        "skipped_by_reason": stats.skipped_by_reason,
        # documents and summaries cut to the models' input length (QUALS: the QAGen model's), over this run's rows
        **{k: v for k, v in (getattr(scorer, "stats", None) or {}).items() if k.startswith("truncated")},
        **scorer.model_ids,
        "scorer": identity,
        "cache_hit": False,
    }


@hydra.main(config_path="../configs", config_name="score", version_base="1.3")
@user_errors
def main(raw: DictConfig) -> None:
    for knob in ("input", "output"):
        if OmegaConf.is_missing(raw, knob):
            raise ValueError(f"{knob}=<file> is required: python -m conseq.score input=<jsonl> output=<jsonl>")
    setup_logging()
    summary = score_file(OmegaConf.to_object(raw))
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
