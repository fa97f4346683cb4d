"""The paper's human study, made runnable: a blind A/B sheet from an evaluation, and its tally.

    python -m conseq.report human_eval=<evaluate artifact> models=[mle,conseq] n=100 [seed=0] [out=human_eval]
    python -m conseq.report human_eval_results=<filled sheet.csv> [key=<key.json>] [out=<dir>]

The sheet holds ``n`` documents of the evaluation (a seeded sample; documents where the two models wrote the same
summary are left out: nothing to compare) with the two models' summaries as "A" and "B" in a seeded random order
per document. Raters answer three questions about A compared with B (Nan et al., ACL 2021, §5.4): factual
consistency, informativeness, grammatical correctness, each ``better`` / ``worse`` / ``same``, in ``sheet.csv``
(a spreadsheet) or ``form.html`` (a page that downloads the filled CSV). ``key_PRIVATE.json`` says which model is A
in each row: keep it from the raters. The tally un-blinds the answers into "<second model> vs <first model>"
counts (several raters: one CSV with a row per judgement), draws the paper's better/worse/same chart
(``chart.png``) and runs a two-sided sign test per question (ties dropped; exact binomial, p = 0.5).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
import re
import sys
from pathlib import Path
from typing import Any

from conseq.artifacts import Artifact, cached, read_jsonl, write_json
from conseq.errors import BadInputError
from conseq.report.render import esc, image_data_uri, page, table, text

QUESTIONS = {
    "factual_consistency": "Factual consistency: is every fact in summary A supported by the document, compared "
    "with summary B?",
    "informativeness": "Informativeness: does summary A capture the document's key information, compared with "
    "summary B?",
    "grammaticality": "Grammatical correctness: is summary A fluent and grammatical, compared with summary B?",
}
ANSWERS = ("better", "worse", "same")
CHOICES = {"better": "A is better", "worse": "A is worse", "same": "the same"}
COLUMNS = ("item", "document", "summary_a", "summary_b", *QUESTIONS)
SHEET, FORM, KEY = "sheet.csv", "form.html", "key_PRIVATE.json"


# The form's "download" button: the answers as a CSV with the sheet's columns (RFC 4180 quoting), as a data URI.
FORM_JS = """<script>
function conseqCsv() {
  var fields = __FIELDS__, questions = __QUESTIONS__;
  function quote(v) { return '"' + String(v).replace(/"/g, '""') + '"'; }
  var lines = [fields.join(',')];
  document.querySelectorAll('[data-item]').forEach(function (block) {
    var item = block.getAttribute('data-item'), row = {item: item};
    ['document', 'summary_a', 'summary_b'].forEach(function (f) {
      row[f] = block.querySelector('[data-field=' + f + ']').textContent;
    });
    questions.forEach(function (q) {
      var picked = block.querySelector('input[name="' + item + ':' + q + '"]:checked');
      row[q] = picked ? picked.value : '';
    });
    lines.push(fields.map(function (f) { return quote(row[f]); }).join(','));
  });
  return lines.join('\\r\\n') + '\\r\\n';
}
function conseqDownload() {
  var link = document.createElement('a');
  link.href = 'data:text/csv;charset=utf-8,' + encodeURIComponent(conseqCsv());
  link.download = 'sheet_filled.csv';
  document.body.appendChild(link);
  link.click();
  link.remove();
}
</script>"""


class HumanEvalError(BadInputError):
    """Bad input to the tally: the message names the file, line and field."""


# Bytes of the sheet that are not UTF-8 are read as lone surrogates, so that the error names their line and field.
_UNDECODED = re.compile("[\udc80-\udcff]")


# ------------------------------------------------------------------------------------------------------ sheet


def write_sheet(evaluation: Artifact, models: list[str], n: int, out: Path, *, seed: int = 0) -> dict[str, Any]:
    """The blind sheet, its HTML form and the private key for ``models`` (two names of the evaluation)."""
    if len(models) != 2 or models[0] == models[1]:
        raise ValueError(f"models= needs two different models of the evaluation, got {models}")
    known = evaluation.spec["models"]
    for name in models:
        if name not in known:
            raise ValueError(f"models=: {name!r} is not a model of {evaluation.path} (it has {', '.join(known)})")
    evaluations = {name: cached(evaluation, "eval_model", known[name]) for name in models}
    for name, art in evaluations.items():
        if not art.done:
            raise FileNotFoundError(f"the evaluation of {name} ({art.path}) is not in this cache")
    summaries = {
        name: {r["id"]: r["prediction"] for r in read_jsonl(art.path / "predictions.jsonl")}
        for name, art in evaluations.items()
    }
    spec = evaluations[models[0]].spec
    data = cached(evaluation, "data", spec["data"])
    documents = {r["id"]: r["document"] for r in read_jsonl(data.path / f"{spec['split']}.jsonl")}
    first, second = (summaries[m] for m in models)
    ids = [i for i in first if i in second and i in documents]
    different = [i for i in ids if first[i].strip() != second[i].strip()]
    rng = random.Random(seed)
    picked = rng.sample(different, min(n, len(different)))  # in random order: the raters see no ranking either
    out.mkdir(parents=True, exist_ok=True)
    rows, key = [], {}
    for number, doc_id in enumerate(picked, 1):
        a, b = models if rng.random() < 0.5 else models[::-1]
        key[str(number)] = {"id": doc_id, "A": a, "B": b}
        texts = {"document": documents[doc_id], "summary_a": summaries[a][doc_id], "summary_b": summaries[b][doc_id]}
        rows.append({"item": str(number), **texts, **dict.fromkeys(QUESTIONS, "")})
    with (out / SHEET).open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    write_json(
        out / KEY,
        {"models": models, "evaluation": str(evaluation.path), "seed": seed, "items": key},
    )
    (out / FORM).write_text(form_html(rows))
    return {
        "sheet": str(out / SHEET),
        "form": str(out / FORM),
        "key": str(out / KEY),
        "items": len(rows),
        "identical_left_out": len(ids) - len(different),
    }


def form_html(rows: list[dict[str, str]]) -> str:
    """The sheet as a page: each document with its summaries A and B and the three questions as radio buttons;
    a button downloads the answers as a CSV with the sheet's columns."""
    blocks = []
    for row in rows:
        item = esc(row["item"])
        questions = []
        for field, prompt in QUESTIONS.items():
            choices = " ".join(
                f'<label><input type="radio" name="{item}:{field}" value="{a}"> {label}</label>'
                for a, label in CHOICES.items()
            )
            questions.append(f"<p><b>{esc(prompt)}</b><br>{choices}</p>")
        blocks.append(
            f'<div class="qa" data-item="{item}"><h3>Document {item}</h3>'
            f'<div class="text" data-field="document">{esc(row["document"])}</div>'
            f'<div class="side"><div><h4>Summary A</h4><p data-field="summary_a">{esc(row["summary_a"])}</p></div>'
            f'<div><h4>Summary B</h4><p data-field="summary_b">{esc(row["summary_b"])}</p></div></div>'
            f"{''.join(questions)}</div>"
        )
    script = FORM_JS.replace("__FIELDS__", json.dumps(list(COLUMNS))).replace(
        "__QUESTIONS__", json.dumps(list(QUESTIONS))
    )
    intro = (
        "<p>For each document, read summaries A and B and answer the three questions about A compared with B. "
        "Then download your answers and send back the CSV.</p>"
        '<p><button type="button" onclick="conseqDownload()">Download answers (CSV)</button></p>'
    )
    return page("Summary comparison", intro + "\n".join(blocks) + script)


# ------------------------------------------------------------------------------------------------------ tally


def read_answers(path: Path, key: dict[str, Any]) -> list[dict[str, str]]:
    """The filled sheet's judgements, checked: every column present, every item in the key, every answer one of
    ANSWERS. Errors name the file, the line (1 = the header; a quoted cell may span lines: the row's first) and
    the field."""
    file = str(path)
    rows: list[tuple[int, dict[str, str]]] = []
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # the documents exceed the csv module's 128 KiB default
    try:
        with Path(path).open(newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames
            if not header:
                raise HumanEvalError("empty file (no header line)", file=file)
            missing = [c for c in ("item", *QUESTIONS) if c not in header]
            if missing:
                raise HumanEvalError(
                    f"missing (the sheet's columns: {', '.join(COLUMNS)})",
                    file=file,
                    where="line 1",
                    field=", ".join(missing),
                )
            end = reader.line_num
            for row in reader:
                rows.append((end + 1, row))
                end = reader.line_num
    except (OSError, csv.Error) as err:
        what = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise HumanEvalError(f"cannot read it as a CSV sheet ({what})", file=file) from err
    if not rows:
        raise HumanEvalError("no rows under the header", file=file)
    for line, row in rows:
        where = {"file": file, "where": f"line {line}"}
        for field, value in row.items():
            if _UNDECODED.search(str(field) + str(value)):
                raise HumanEvalError("not valid UTF-8", field=str(field), **where)
        item = (row.get("item") or "").strip()
        if item not in key["items"]:
            raise HumanEvalError(f"{item!r} is not an item of the key file", field="item", **where)
        for field in QUESTIONS:
            answer = (row.get(field) or "").strip().lower()
            if answer not in ANSWERS:
                raise HumanEvalError(f"{row.get(field)!r} is not one of {', '.join(ANSWERS)}", field=field, **where)
            row[field] = answer
        row["item"] = item
    return [row for _, row in rows]


def tally(rows: list[dict[str, str]], key: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Un-blinded counts per question of "<models[1]> vs <models[0]>": better / worse / same, and the sign test."""
    system = key["models"][1]
    result = {}
    for field in QUESTIONS:
        counts = dict.fromkeys(ANSWERS, 0)
        for row in rows:
            answer = row[field]
            if answer != "same" and key["items"][row["item"]]["A"] != system:  # A was the baseline: flip
                answer = "worse" if answer == "better" else "better"
            counts[answer] += 1
        decided = counts["better"] + counts["worse"]
        result[field] = {**counts, "n": len(rows), "p_value": sign_test(counts["better"], decided)}
    return result


def sign_test(k: int, n: int) -> float:
    """Two-sided exact sign test: P(a Binomial(n, 1/2) count at least as far from n/2 as k). 1.0 for n = 0.
    (Equals scipy.stats.binomtest(k, n).pvalue; computed here so that scipy is not a dependency.)"""
    if n == 0:
        return 1.0
    tail = min(k, n - k)
    p = 2 * sum(math.comb(n, i) for i in range(tail + 1)) / 2**n
    return min(1.0, p)


def write_results(csv_path: Path, key_path: Path, out: Path) -> dict[str, Any]:
    """Read the filled sheet and the key, tally, and write results.json, chart.png and results.html into ``out``."""
    try:
        key = json.loads(Path(key_path).read_text())
    except (OSError, ValueError) as err:
        what = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise HumanEvalError(f"cannot read the key file ({what})", file=str(key_path)) from err
    if not isinstance(key, dict) or not {"models", "items"} <= set(key):
        raise HumanEvalError(
            "not a key file written with the sheet (it needs 'models' and 'items')", file=str(key_path)
        )
    rows = read_answers(csv_path, key)
    results = tally(rows, key)
    out.mkdir(parents=True, exist_ok=True)
    system, baseline = key["models"][1], key["models"][0]
    summary = {"comparison": f"{system} vs {baseline}", "judgements": len(rows), "questions": results}
    chart = out / "chart.png"
    names = ("results.json", "chart.png", "results.html")
    # All three are written under temporary names and renamed at the end: a full disk leaves none of them.
    tmp = {name: out / f"{name}.tmp" for name in names}
    try:
        write_json(tmp["results.json"], summary)
        draw_chart(results, system, baseline, tmp["chart.png"])
        cells = [[text(q)] + [text(r[a]) for a in ANSWERS] + [text(f"{r['p_value']:.4g}")] for q, r in results.items()]
        headers = [("question", False)] + [(a, False) for a in ANSWERS] + [("sign test p (two-sided)", False)]
        body = (
            f"<p>{len(rows)} judgements of {esc(csv_path)}; answers are about <b>{esc(system)}</b> compared with "
            f"<b>{esc(baseline)}</b>.</p>{table(headers, cells, sortable=False)}"
            f'<img alt="better / worse / same" src="{image_data_uri(tmp["chart.png"])}">'
        )
        tmp["results.html"].write_text(page(f"Human evaluation: {system} vs {baseline}", body), encoding="utf-8")
    except OSError as err:
        for path in tmp.values():
            with contextlib.suppress(OSError):
                path.unlink()
        if err.filename is None and err.errno is not None:  # a failed write names no file: name the folder
            raise OSError(err.errno, err.strerror, str(out)) from err
        raise
    for name in names:
        os.replace(tmp[name], out / name)
    return {**summary, "results": str(out / "results.json"), "chart": str(chart), "html": str(out / "results.html")}


def draw_chart(results: dict[str, dict[str, Any]], system: str, baseline: str, path: Path) -> None:
    """The paper's chart: one horizontal bar per question split into better / same / worse shares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 2.8))
    names = list(results)
    colours = {"better": "#2ca02c", "same": "#bbbbbb", "worse": "#d62728"}
    for row, name in enumerate(names):
        r, left = results[name], 0.0
        for answer in ("better", "same", "worse"):
            share = 100 * r[answer] / r["n"] if r["n"] else 0.0
            ax.barh(row, share, left=left, color=colours[answer], label=answer if row == 0 else None)
            if share >= 6:
                ax.text(left + share / 2, row, f"{share:.0f}%", ha="center", va="center", fontsize=9)
            left += share
        ax.text(101, row, f"p={r['p_value']:.3g}", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), [n.replace("_", " ") for n in names])
    ax.invert_yaxis()
    ax.set_xlim(0, 112)
    ax.set_xlabel(f"% of judgements: {system} vs {baseline}")
    ax.legend(ncols=3, fontsize=8, loc="lower center", bbox_to_anchor=(0.45, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")  # the name may end in .tmp
    plt.close(fig)
