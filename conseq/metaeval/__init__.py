"""Meta-evaluation: how far a factuality scorer agrees with people, on human-labelled benchmarks.

    python -m conseq.metaeval input=<file, folder or hub id> scorer=<name> [scorer options]   # any benchmark
    python -m conseq.train stage=metaeval                                                      # the news world

The benchmark is read in the SummaC / LLM-AggreFact layout (``conseq.data.loading.load_benchmark``); every row is
scored by one scorer of ``conseq.scoring`` (resumably: ``score_rows``), and ``stats.meta_evaluate`` gives, per
dataset and pooled, n, the share consistent, ROC-AUC with a bootstrap interval, balanced accuracy by SummaC's
protocol and the correlations with a continuous human score. ``write_report`` writes ``metaeval.md`` (the tables),
``metaeval.json`` (every figure) and ``roc.png``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from conseq.artifacts import model_identity, write_json, write_text
from conseq.metaeval.stats import is_null, meta_evaluate, roc_auc

log = logging.getLogger(__name__)

# The row fields kept in the per-row scores file (the document is left out: the input holds it).
ROW_FIELDS = ("id", "dataset", "cut", "label", "human_score", "origin", "summary")


def benchmark_fingerprint(rows: Sequence[dict]) -> str:
    """sha256 of the rows' content: a resumed or cached scoring belongs to exactly these rows, in this order."""
    digest = hashlib.sha256()
    for row in rows:
        fields = [row["dataset"], row["cut"], row["label"], row["human_score"], row["document"], row["summary"]]
        digest.update(json.dumps(fields, ensure_ascii=False).encode() + b"\n")
    return f"sha256:{digest.hexdigest()[:32]}"


def scorer_identity(scorer) -> dict[str, Any]:
    """What a scorer's values depend on: its info (name, version, settings) and its models' content."""
    return scorer.info.as_dict() | {"content": {k: model_identity(v) for k, v in scorer.model_ids.items()}}


# ------------------------------------------------------------------------------------ resumable scoring


def score_rows(
    scorer,
    rows: Sequence[dict],
    output: Path,
    *,
    identity: dict[str, Any],
    chunk_rows: int = 64,
    details: bool = False,
) -> list[float | None]:
    """Score every row into ``output`` (jsonl: the row's ``ROW_FIELDS``, its position ``row`` and the scorer's value
    under its name, with its details when ``details``), resumably, as ``python -m conseq.score`` does: each finished
    chunk is appended to ``<output>.partial`` and its end recorded in ``<output>.progress``, so a killed run
    continues after the last recorded chunk (no lost or duplicated rows); the file appears under its name when
    complete, with ``<output>.identity.json`` beside it. A partial or finished file of another ``identity`` (scorer,
    models, rows) is an error. Returns the values in row order (None: nothing to score; counted, never 0)."""
    partial = output.with_name(output.name + ".partial")
    progress = output.with_name(output.name + ".progress")
    stamp = output.with_name(output.name.removesuffix(".jsonl") + ".identity.json")
    identity = json.loads(json.dumps(identity, default=str))  # as it reads back from the files
    if output.is_file():
        if not stamp.is_file() or json.loads(stamp.read_text()) != identity:
            raise SystemExit(f"{output} holds the scores of another scorer or input; force=true scores again")
        return _read_values(output, scorer.name, len(rows))
    done = json.loads(progress.read_text()) if progress.is_file() and partial.is_file() else {"rows": 0, "bytes": 0}
    if done["rows"] and done.get("identity") != identity:
        raise SystemExit(f"{partial} was started by another scorer or input; force=true starts {output} over")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial.touch()
    os.truncate(partial, done["bytes"])
    if done["rows"]:
        log.info("resuming %s after %d of %d rows", output, done["rows"], len(rows))
    bar = tqdm(total=len(rows), initial=done["rows"], desc=scorer.name, unit="row")
    for start in range(done["rows"], len(rows), chunk_rows):
        chunk = rows[start : start + chunk_rows]
        results = scorer.score([r["document"] for r in chunk], [r["summary"] for r in chunk], details=details)
        try:
            with partial.open("a", encoding="utf-8") as f:
                for i, (row, result) in enumerate(zip(chunk, results, strict=True), start):
                    value = None if is_null(result.value) else float(result.value)
                    line = {"row": i, **{k: row.get(k) for k in ROW_FIELDS}, scorer.name: value}
                    f.write(json.dumps(line | (result.details if details else {}), ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
            state = {"rows": start + len(chunk), "bytes": partial.stat().st_size, "identity": identity}
            write_text(progress, json.dumps(state))
        except OSError as e:  # a full disk: name the file; the resume point is kept
            raise OSError(e.errno, e.strerror, e.filename or str(partial)) from e
        bar.update(len(chunk))
    bar.close()
    write_json(stamp, identity)
    os.replace(partial, output)
    progress.unlink(missing_ok=True)
    return _read_values(output, scorer.name, len(rows))


def _read_values(path: Path, name: str, n: int) -> list[float | None]:
    with path.open(encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]
    if [line["row"] for line in lines] != list(range(n)):
        raise RuntimeError(f"{path}: expected rows 0..{n - 1} in order; delete it (or force=true) to score again")
    return [line[name] for line in lines]


# ---------------------------------------------------------------------------------------------- report


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def dataset_table(results: dict[str, Any]) -> str:
    """One scorer's table: a line per dataset, then the pooled line (with more than one dataset)."""
    lines_in = dict(results["datasets"])
    if len(lines_in) > 1:
        lines_in["pooled"] = results["pooled"]
    human = any(d["n_human"] for d in lines_in.values())
    head = ["dataset", "n", "n val", "null", "consistent", "ROC-AUC [95% CI]", "bal. acc.", "threshold"]
    head += ["Pearson", "Spearman"] if human else []
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, d in lines_in.items():
        ci = d["auc_ci"]
        auc = _fmt(d["auc"]) + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
        accuracy = _fmt(d["balanced_accuracy"]) + ("*" if d["optimistic"] else "")
        if name == "pooled" and d["balanced_accuracy"] is not None:
            accuracy += f" (mean of {d['balanced_accuracy_datasets']})"
        null = f"{d['null']}" + (f" / {d['null_val']}" if d["n_val"] else "")
        cells = [name, str(d["n"]), str(d["n_val"]), null, _fmt(d["consistent"]), auc, accuracy]
        cells += [_fmt(d["threshold"], 4)]
        cells += [_fmt(d["pearson"]), _fmt(d["spearman"])] if human else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


PROTOCOL_NOTE = (
    "n: test rows (rows without a cut count as test rows); null: scores the scorer could not give (test / val), "
    "left out of the figures; ROC-AUC on the test rows, with a stratified bootstrap interval; bal. acc.: SummaC's "
    "protocol, the threshold (score > threshold = consistent) tuned on the val rows and applied to the test rows; "
    "* = optimistic: no val rows with both labels, the threshold tuned on the test rows themselves. Pooled: every "
    "dataset's test rows together; its bal. acc. is the mean over the datasets."
)


def markdown(all_results: dict[str, dict[str, Any]], infos: dict[str, dict], header: str = "") -> str:
    parts = [header] if header else []
    if len(all_results) > 1:
        lines = ["| scorer | n | null | ROC-AUC (pooled) | bal. acc. (mean) |", "|---|---:|---:|---:|---:|"]
        for name, results in all_results.items():
            p = results["pooled"]
            accuracy = _fmt(p["balanced_accuracy"]) + ("*" if p["optimistic"] else "")
            lines.append(f"| {name} | {p['n']} | {p['null']} | {_fmt(p['auc'])} | {accuracy} |")
        parts.append("\n".join(lines))
    for name, results in all_results.items():
        info = infos.get(name, {})
        models = ", ".join(f"{k}: {v}" for k, v in info.get("model_ids", {}).items())
        title = (
            f"### {name}"
            + (f" (v{info['version']})" if info.get("version") else "")
            + (f"; {models}" if models else "")
        )
        parts.append(f"{title}\n\n{dataset_table(results)}")
    parts.append(PROTOCOL_NOTE)
    return "\n\n".join(parts)


def roc_plot(path: Path, rows: Sequence[dict], values: dict[str, Sequence[float | None]]) -> None:
    """ROC curves of the test rows, one panel per scorer, one curve per dataset (and the pooled rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    columns = min(3, len(values))
    rows_n = -(-len(values) // columns)
    fig, axes = plt.subplots(rows_n, columns, figsize=(4.2 * columns, 4.0 * rows_n), squeeze=False)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    for ax, (name, scores) in zip(axes.flat, values.items(), strict=False):
        groups = {d: [i for i, r in enumerate(rows) if r["dataset"] == d] for d in datasets}
        if len(datasets) > 1:
            groups["pooled"] = list(range(len(rows)))
        for label, idx in groups.items():
            test = [i for i in idx if rows[i]["cut"] != "val"] or idx
            kept = [i for i in test if not is_null(scores[i])]
            y = [rows[i]["label"] for i in kept]
            if len(set(y)) < 2:
                continue
            fpr, tpr, _ = roc_curve(y, [scores[i] for i in kept])
            style = {"color": "black", "linewidth": 2} if label == "pooled" else {"linewidth": 1}
            ax.plot(fpr, tpr, label=f"{label} ({roc_auc(y, [scores[i] for i in kept]):.3f})", **style)
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set(title=name, xlabel="false positive rate (inconsistent called consistent)", ylabel="true positive rate")
        ax.xaxis.label.set_size(8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[len(values) :]:
        ax.axis("off")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(
    out: Path,
    rows: Sequence[dict],
    values: dict[str, Sequence[float | None]],
    infos: dict[str, dict],
    *,
    nulls: str = "count",
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    header: str = "",
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """The statistics of every scorer's ``values`` over ``rows``: ``metaeval.json`` (with ``extra``),
    ``metaeval.md`` and ``roc.png`` in ``out``. Returns (results by scorer, the markdown)."""
    knobs = {"nulls": nulls, "resamples": resamples, "confidence": confidence, "seed": seed}
    results = {name: meta_evaluate(rows, v, **knobs) for name, v in values.items()}
    text = markdown(results, infos, header)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "metaeval.md", text + "\n")
    datasets = {}
    for row in rows:
        d = datasets.setdefault(row["dataset"], {"rows": 0, "val": 0, "test": 0, "no_cut": 0, "human_scores": 0})
        d["rows"] += 1
        d[row["cut"] or "no_cut"] += 1
        d["human_scores"] += row["human_score"] is not None
    report = {"scorers": {n: {"info": infos.get(n, {}), **r} for n, r in results.items()}, "datasets": datasets}
    write_json(out / "metaeval.json", report | {"protocol": knobs} | (extra or {}))
    roc_plot(out / "roc.png", rows, values)
    return results, text


def headline(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The figures a result line carries: per scorer and dataset (and pooled) n, null, ROC-AUC, balanced accuracy."""
    keys = ("n", "null", "auc", "auc_ci", "balanced_accuracy", "optimistic", "pearson", "spearman")
    return {
        name: {d: {k: s[k] for k in keys} for d, s in [*r["datasets"].items(), ("pooled", r["pooled"])]}
        for name, r in results.items()
    }
