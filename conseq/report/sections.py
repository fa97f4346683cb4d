"""The report's sections, one per kind of product: a scored set (a ``stage=score`` artifact or a ``conseq.score``
output), a partition, an evaluation. Each reads the artifact's files (upstream ones through the keys its spec
names) and returns HTML; ``kind_of`` tells them apart by spec.json."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from conseq.artifacts import Artifact, cached, model_identity, read_jsonl
from conseq.errors import BadInputError
from conseq.report.render import (
    Cell,
    esc,
    find_spans,
    fmt,
    highlight,
    image_data_uri,
    logprob_legend,
    num,
    svg_histogram,
    table,
    text,
    tokens_html,
)

log = logging.getLogger(__name__)
KINDS = ("score", "partition", "evaluate")


def kind_of(art: Artifact) -> str:
    """score | partition | evaluate, from the artifact's spec.json; anything else is an error saying what is read."""
    stage = art.spec.get("stage")
    if stage in ("score", "partition"):
        return stage
    if art.kind == "evaluate" and isinstance(art.spec.get("models"), dict):
        return "evaluate"
    raise ValueError(
        f"{art.path} is a {stage or art.kind!r} artifact: the report reads score, partition and evaluate artifacts "
        "(cache/scores/…, cache/partition/…, cache/evaluate/…) or a conseq.score output .jsonl"
    )


def _upstream(art: Artifact, kind: str, key: str, what: str) -> Artifact:
    up = cached(art, kind, key)
    if not up.done:
        raise FileNotFoundError(f"{art.path} names its {what} {up.path}, which is not in this cache (or unfinished)")
    return up


# ------------------------------------------------------------------------------------------------ scored sets


def qa_pairs_html(summary: str, pairs: list[dict[str, Any]]) -> str:
    """A summary's QA pairs, worst first (lowest LL_src − LL_sum): the question and answer, the summary with the
    answer's occurrences highlighted and, when the pair kept its tokens, the per-token log-probabilities given
    the summary and given the source side by side."""
    blocks = []
    for pair in sorted(pairs, key=lambda p: p["ll_source"] - p["ll_summary"]):
        marks = [(a, b, "answer", "the answer") for a, b in find_spans(summary, pair["answer"])]
        delta = pair["ll_source"] - pair["ll_summary"]
        head = (
            f"<div><b>Q:</b> {esc(pair['question'])} &nbsp; <b>A:</b> {esc(pair['answer'])} &nbsp; "
            f'<span class="note">LL<sub>src</sub> {fmt(pair["ll_source"])}, LL<sub>sum</sub> '
            f'{fmt(pair["ll_summary"])}, difference <b class="{"bad" if delta < 0 else "good"}">{fmt(delta)}</b>'
            "</span></div>"
        )
        body = f'<div class="text">{highlight(summary, marks)}</div>'
        if pair.get("tokens") is not None:
            body += (
                '<div class="side">'
                f"<div><b>given the summary</b> (mean {fmt(pair['ll_summary'])})"
                f"{tokens_html(pair['tokens'], pair['lp_summary'], pair['lp_source'])}</div>"
                f"<div><b>given the source</b> (mean {fmt(pair['ll_source'])})"
                f"{tokens_html(pair['tokens'], pair['lp_source'], pair['lp_summary'])}</div>"
                "</div>"
            )
        blocks.append(f'<div class="qa">{head}{body}</div>')
    return "".join(blocks) or '<p class="note">No QA pair survived the filter (QUALS is null).</p>'


def _summary_cell(summary: str, pairs: list[dict] | None, label: str = "", *, unfold: bool = False) -> Cell:
    """A summary's text; its QA pairs (when known) in a block under it, folded unless ``unfold``."""
    body = f'<div class="text">{esc(summary)}</div>'
    if pairs is not None:
        opened = " open" if unfold else ""
        body += f"<details{opened}><summary>QA pairs ({len(pairs)}){esc(label)}</summary>"
        body += f"{qa_pairs_html(summary, pairs)}</details>"
    return Cell(body, summary)


def scored_file_section(
    path: Path, *, rows: int = 500, document_column: str = "document", summary_column: str = "summary"
) -> str:
    """A ``conseq.score`` QUALS output: its first ``rows`` rows sortable by QUALS (lowest first), each with its
    QA pairs (coloured tokens where they were kept: ``quals.token_logprobs=true``)."""
    records = []
    with Path(path).open("rb") as f:  # decoded line by line, so that a byte that is not UTF-8 is named by its line
        for line_number, raw in enumerate(f, 1):
            where = {"file": str(path), "where": f"line {line_number}"}
            try:
                line = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                byte = f"byte 0x{raw[err.start]:02x} at column {err.start + 1}"
                raise BadInputError(f"not valid UTF-8 ({byte})", **where) from err
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise BadInputError(f"not JSON ({err.msg} at column {err.colno})", **where) from err
            if not isinstance(row, dict):
                raise BadInputError(f"expected a JSON object, got {type(row).__name__}", **where)
            problem = _scored_row_problem(row, summary_column)
            if problem:
                raise BadInputError(problem[1], field=problem[0], **where)
            records.append((line_number, row))
            if len(records) >= rows:
                break
    if not records:
        raise BadInputError("no scored rows (the report reads conseq.score's QUALS output)", file=str(path))
    with_tokens = any(p.get("tokens") is not None for _, r in records for p in r["qa_pairs"])
    scored = [i for i, (_, row) in enumerate(records) if row["quals"] is not None]
    worst = min(scored, key=lambda i: records[i][1]["quals"], default=None)
    cells = []
    for i, (line_number, row) in enumerate(records):
        cells.append(
            [
                num(line_number, 0),
                text(row.get("id", "")),
                num(row["quals"]),
                num(len(row["qa_pairs"]), 0),
                _summary_cell(row[summary_column], row["qa_pairs"], unfold=i == worst),
            ]
        )
    notes = [f"{len(records)} rows of {esc(path)} (the first {rows} at most). Click a header to sort."]
    if not with_tokens:
        notes.append(
            "The rows hold no per-token log-probabilities: score with <code>quals.token_logprobs=true</code> to "
            "see each QA pair's tokens coloured given the summary and given the source."
        )
    headers = [("line", True), ("id", False), ("QUALS", True), ("QA pairs", True), ("summary", False)]
    return (
        "".join(f'<p class="note">{n}</p>' for n in notes)
        + (logprob_legend() if with_tokens else "")
        + table(headers, cells, default_sort=(2, "asc"), ident="scored-rows")
    )


def _scored_row_problem(row: dict, summary_column: str) -> tuple[str, str] | None:
    """(field, what is wrong) of a row that is not conseq.score's QUALS output, or None."""
    for field in (summary_column, "quals", "qa_pairs"):
        if field not in row:
            return field, (
                f"missing; the report reads conseq.score's QUALS output (fields {summary_column!r}, 'quals', "
                "'qa_pairs'; summary_column= names another summary field)"
            )
    summary, quals, pairs = row[summary_column], row["quals"], row["qa_pairs"]
    if not isinstance(summary, str) or not summary.strip():
        kind = "null" if summary is None else type(summary).__name__
        return summary_column, "empty" if isinstance(summary, str) else f"{kind}, expected a string"
    if quals is not None and (isinstance(quals, bool) or not isinstance(quals, int | float)):
        return "quals", f"{type(quals).__name__}, expected a number or null"
    if not isinstance(pairs, list):
        return "qa_pairs", f"{type(pairs).__name__}, expected a list of QA pairs"
    for k, pair in enumerate(pairs):
        fields = {"question": str, "answer": str, "ll_source": int | float, "ll_summary": int | float}
        if not isinstance(pair, dict) or not all(isinstance(pair.get(f), t) for f, t in fields.items()):
            return "qa_pairs", f"qa_pairs[{k}] is not a pair {{question, answer, ll_source, ll_summary}}"
    return None


def _oracle(row: dict, summary: str) -> Any | None:
    if "facts" not in row:
        return None
    from conseq.data.newsworld import check_summary

    return check_summary(row, summary)


def scores_section(
    art: Artifact,
    *,
    documents: int = 100,
    evidence: int = 20,
    qagen: str | None = None,
    quals: dict[str, Any] | None = None,
    device: str | None = None,
) -> str:
    """A ``stage=score`` artifact: every summary (references and candidates) of its first ``documents`` documents,
    sortable by QUALS. The artifact stores values only, so the ``evidence`` lowest-scoring of them are scored
    again with per-token log-probabilities (the QAGen model of the artifact, or ``qagen``; its settings, or
    ``quals``) and show their QA pairs."""
    candidates = _upstream(art, "candidates", art.spec["candidates"], "candidates")
    rows = read_jsonl(candidates.path / "candidates.jsonl")[:documents]
    scores = {s["id"]: s for s in read_jsonl(art.path / "scores.jsonl")}
    items = []  # (row, label, summary, quals, n_pairs)
    for row in rows:
        s = scores[row["id"]]
        items.append((row, "reference", row["reference"], s["reference_quals"], s["reference_pairs"]))
        for k, (summary, q, n) in enumerate(zip(row["candidates"], s["candidate_quals"], s["candidate_pairs"])):
            items.append((row, f"candidate {k}", summary, q, n))
    notes = [
        f"{len(items)} summaries of the first {len(rows)} documents ({esc(art.path)}). Click a header to sort.",
    ]
    worst = sorted((i for i, item in enumerate(items) if item[3] is not None), key=lambda i: items[i][3])[:evidence]
    found: dict[int, Any] = {}
    if worst:
        try:
            location = qagen or _qagen_of(art)
        except FileNotFoundError as err:
            notes.append(f'<span class="warn">No QA pairs shown: {esc(err)}</span>')
        else:
            if qagen and art.spec["qagen"].startswith("sha256:") and model_identity(qagen) != art.spec["qagen"]:
                notes.append(
                    f'<span class="warn">qagen={esc(qagen)} is not the model this artifact was scored with (its '
                    "content differs): the recomputed QUALS can differ from the stored ones.</span>"
                )
            results = _rescore(location, quals or art.spec["quals"], [items[i] for i in worst], device)
            found = dict(zip(worst, results, strict=True))
            notes.append(
                f"The {len(worst)} lowest-scoring summaries were scored again with QAGen {esc(location)} to show their "
                "QA pairs and per-token log-probabilities (the artifact stores QUALS values only); the recomputed "
                "QUALS is given beside each."
            )
    with_oracle = any("facts" in row for row in rows)
    headers = [("document", False), ("summary", False), ("QUALS", True), ("QA pairs", True)]
    headers += [("oracle errors", True)] if with_oracle else []
    headers += [("text", False)]
    cells = []
    for i, (row, label, summary, quals_value, n_pairs) in enumerate(items):
        line = [text(row["id"]), text(label), num(quals_value), num(n_pairs, 0)]
        if with_oracle:
            verdict = _oracle(row, summary)
            errors = verdict.extrinsic + verdict.intrinsic
            tip = "; ".join(errors) or "none"
            line.append(Cell(f'<span title="{esc(tip)}">{len(errors)}</span>', len(errors), numeric=True))
        result = found.get(i)
        pairs = [p.as_dict() for p in result.qa_pairs] if result is not None else None
        extra = f" · QUALS recomputed {fmt(result.quals)}" if result is not None else ""
        line.append(_summary_cell(summary, pairs, extra, unfold=bool(worst) and i == worst[0]))
        cells.append(line)
    return (
        "".join(f'<p class="note">{n}</p>' for n in notes)
        + (logprob_legend() if found else "")
        + table(headers, cells, default_sort=(2, "asc"), ident="score-summaries")
    )


def _qagen_of(art: Artifact) -> str:
    """The QAGen model a score artifact was made with: its qagen artifact in this cache, or the hub id it names."""
    name = art.spec["qagen"]
    model = cached(art, "qagen", name)
    if model.done:
        return str(model.path)
    if re.fullmatch(r"[0-9a-f]{16}", name) or name.startswith("sha256:"):
        raise FileNotFoundError(
            f"its QAGen model ({name}) is not in this cache: give the folder as qagen=<dir> (or evidence=0)"
        )
    if not Path(name).exists() and name.startswith("/"):
        raise FileNotFoundError(f"its QAGen model {name} is gone: give it as qagen=<dir> (or evidence=0)")
    return name  # a hub id, or a folder named by its path (artifacts made before folders were keyed by content)


def _rescore(location: str, quals: dict[str, Any], items: list[tuple], device: str | None) -> list:
    """QUALS of (row, label, summary, …) items with per-token log-probabilities kept."""
    from conseq.scoring.quals.scorer import QualsScorer

    scorer = QualsScorer.from_pretrained(location, device=device, **{**quals, "token_logprobs": True})
    return scorer.score([row["document"] for row, *_ in items], [summary for _, _, summary, *_ in items])


# ------------------------------------------------------------------------------------------------- partitions


def partition_section(art: Artifact, *, pairs_shown: int = 200) -> str:
    """A partition: its counts and cut lines, the score histograms of references and candidates with the cuts,
    and the kept (document, positive, negative) pairs sortable by score."""
    metrics = art.metrics()
    scorer = art.spec["scorer"]
    pairs = read_jsonl(art.path / "pairs.jsonl")
    scalar = [(k, v) for k, v in metrics.items() if not isinstance(v, dict | list)]
    parts = [
        table(
            [("metric", False), ("value", False)],
            [[text(k), Cell(esc(fmt(v, 4)), None)] for k, v in scalar],
            sortable=False,
        )
    ]
    by_kind = metrics.get("positive_cut_share_by_kind")
    if by_kind:
        parts.append(
            "<p>Share of the references at or above the positive cut, by the error the news world's oracle finds in "
            "them (a scorer's blind spot reads like <i>clean</i>):</p>"
            + table(
                [("references", False), ("share above the cut", True)], [[text(k), num(v)] for k, v in by_kind.items()]
            )
        )
    parts.append(_partition_histogram(art, scorer, metrics, pairs))
    cells = [
        [
            text(p["id"]),
            num(p["positive_score"]),
            num(p["negative_score"]),
            Cell(f'<div class="text">{esc(p["positive"])}</div>', p["positive"]),
            Cell(f'<div class="text">{esc(p["negative"])}</div>', p["negative"]),
            Cell(f"<details><summary>document</summary>{esc(p['document'])}</details>", p["document"]),
        ]
        for p in pairs[:pairs_shown]
    ]
    parts.append(
        f"<h3>Kept pairs ({len(pairs)}{f', the first {pairs_shown} shown' if len(pairs) > pairs_shown else ''})</h3>"
    )
    headers = [("document id", False), ("positive score", True), ("negative score", True)]
    headers += [("positive", False), ("negative", False), ("document", False)]
    parts.append(table(headers, cells, default_sort=(2, "asc"), ident="partition-pairs"))
    return "\n".join(parts)


def _partition_histogram(art: Artifact, scorer: str, metrics: dict, pairs: list[dict]) -> str:
    lines = {
        "negative cut": (metrics.get("negative_cut_score"), "#d62728"),
        "positive cut": (metrics.get("positive_cut_score"), "#2ca02c"),
    }
    upstream = cached(art, "scores", art.spec["upstream"]) if scorer == "quals" else None
    if upstream is not None and upstream.done:
        scored = read_jsonl(upstream.path / "scores.jsonl")
        series = {
            "references": [s["reference_quals"] for s in scored],
            "all candidates": [q for s in scored for q in s["candidate_quals"]],
            "kept positives": [p["positive_score"] for p in pairs],
            "kept negatives": [p["negative_score"] for p in pairs],
        }
        return "<h3>Score histograms</h3>" + svg_histogram(series, lines=lines, xlabel="QUALS")
    # ROUGE, random and oracle scores are computed inside the partition stage and not stored: its own plot.
    image = art.path / "histogram.png"
    if image.is_file():
        return (
            f"<h3>Score histograms</h3><p class=note>The {esc(scorer)} scores of every candidate are not stored; this "
            "is the plot the partition stage drew.</p>"
            f'<img alt="score histograms" src="{image_data_uri(image)}">'
        )
    return '<p class="note">No score histogram: the upstream scores are not in this cache.</p>'


# ------------------------------------------------------------------------------------------------ evaluations

QUOTED = re.compile(r"'([^']+)'")


def evaluation_section(art: Artifact, *, documents: int = 20) -> str:
    """An evaluation: the comparison table and errors by kind (table.md), then the same documents summarised by
    each model side by side, with the oracle's unsupported facts (news world) and the entities missing from the
    source highlighted. Documents on which the models' oracle verdicts differ come first."""
    from conseq.data import prepare
    from conseq.report.render import markdown_tables

    parts = []
    table_md = art.path / "table.md"
    listed = table_md.read_text() if table_md.is_file() else ""
    if listed:
        parts.append("<h3>Comparison (table.md)</h3>" + markdown_tables(listed))

    # spec.json sorts its keys: the table's rows give the evaluation's own order (the references first).
    def order(name: str) -> tuple:
        at = listed.find(f"| {name} |")
        return name != "reference", at if at >= 0 else len(listed), name

    names = sorted(art.spec["models"], key=order)
    evaluations = {
        name: _upstream(art, "eval_model", art.spec["models"][name], f"evaluation of {name}") for name in names
    }
    predictions = {
        name: {r["id"]: r for r in read_jsonl(e.path / "predictions.jsonl")} for name, e in evaluations.items()
    }
    first = next(iter(evaluations.values())).spec
    data = _upstream(art, "data", first["data"], "dataset")
    rows = [r for r in prepare.read_split(data, first["split"]) if all(r["id"] in p for p in predictions.values())]

    def disagree(row: dict) -> bool:
        return len({_flagged(by_id[row["id"]]) for by_id in predictions.values()}) > 1

    shown = sorted(range(len(rows)), key=lambda i: (not disagree(rows[i]), i))[:documents]
    ner, note = _ner(first.get("ner"))
    parts.append(
        f"<h3>The same documents, summarised by each model ({len(shown)} of {len(rows)})</h3>"
        '<p class="note">Documents where the models\' oracle verdicts differ come first. '
        '<mark class="oracle">red</mark>: a value the news world\'s oracle finds unsupported; '
        '<mark class="entity">orange</mark>: an entity (spaCy NER) missing from the source (the original\'s lenient '
        f"match). {note}</p>"
    )
    columns = f"grid-template-columns: repeat({len(predictions)}, minmax(0, 1fr))"
    for i in shown:
        row = rows[i]
        cards = []
        for name, by_id in predictions.items():
            record = by_id[row["id"]]
            summary = record["prediction"]
            oracle = record.get("oracle")
            marks = []
            messages = []
            if oracle is not None:
                messages = oracle["extrinsic"] + oracle["intrinsic"]
                for message in messages:
                    for value in QUOTED.findall(message):
                        marks += [(a, b, "oracle", message) for a, b in find_spans(summary, value)]
            if ner is not None:
                marks += [
                    (a, b, "entity", "not in the source") for a, b in _missing_entities(ner, summary, row["document"])
                ]
            facts = ""
            if oracle is not None:
                found = "".join(f"<li>{esc(m)}</li>" for m in messages)
                if not oracle.get("readable", True):
                    found += "<li>the oracle could not read it (its grammar binds not all the main entities)</li>"
                facts = f'<ul class="compact bad">{found}</ul>' if found else '<p class="good">no unsupported fact</p>'
            score = f'<div class="note">QUALS {fmt(record.get("quals"))}</div>' if "quals" in record else ""
            cards.append(f"<div><h4>{esc(name)}</h4><div>{highlight(summary, marks)}</div>{score}{facts}</div>")
        parts.append(
            f"<h4>{esc(row['id'])}</h4><details><summary>document</summary>{esc(row['document'])}</details>"
            f'<div class="models" style="{columns}">{"".join(cards)}</div>'
        )
    return "\n".join(parts)


def _flagged(record: dict) -> bool | None:
    """Whether the oracle found an unsupported fact in a prediction (None without the oracle)."""
    oracle = record.get("oracle")
    return None if oracle is None else bool(oracle["extrinsic"] or oracle["intrinsic"])


def _ner(model: str | bool | None) -> tuple[Any | None, str]:
    """The spaCy pipeline the evaluation used for its entity metrics, or None and why there is none."""
    if not model:
        return None, "(No entity highlighting: this evaluation ran without entity metrics.)"
    try:
        from conseq.metrics import load_ner

        return load_ner(model), ""
    except (ImportError, OSError) as err:
        return None, f"(No entity highlighting: {err})"


def _missing_entities(nlp, summary: str, document: str) -> list[tuple[int, int]]:
    from conseq.metrics import ENTITY_TYPES, entity_match

    return [
        (ent.start_char, ent.end_char)
        for ent in nlp(summary).ents
        if ent[0].ent_type_ in ENTITY_TYPES and not entity_match(ent.text, document)
    ]
