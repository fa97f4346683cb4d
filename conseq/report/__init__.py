"""The inspection report: one self-contained HTML page (inline CSS, JS and SVG; nothing fetched) that shows the
evidence behind the numbers.

    python -m conseq.report <artifact dir | conseq.score output .jsonl> [out=report.html]   # one product
    python -m conseq.train stage=report                               # every product of the pipeline's config
    python -m conseq.report human_eval=<evaluate artifact> models=[mle,conseq] n=100        # the human study
    python -m conseq.report human_eval_results=<filled sheet.csv>                           # … and its tally

What it shows, by the kind of product (read from its spec.json):
- a scored set (``stage=score``, or ``conseq.score``'s QUALS output): the summaries sortable by QUALS, and per
  summary its QA pairs, worst first, with each token coloured by its log-probability given the summary and given
  the source (the paper's figure), the answer highlighted in the summary. A score artifact stores values only,
  so the lowest-scoring summaries are scored again to show theirs (``evidence=``); a ``conseq.score`` output
  shows the pairs it holds (tokens with ``quals.token_logprobs=true``);
- a partition: its counts and cuts, the score histograms of references and candidates with the cut lines, the
  kept (document, positive, negative) pairs;
- an evaluation: the comparison table and errors by kind, and the same documents summarised by each model side by
  side with the news world oracle's unsupported facts and the entities missing from the source highlighted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conseq.artifacts import Artifact, open_artifact, write_text
from conseq.errors import BadInputError
from conseq.report import sections
from conseq.report.render import esc, page, section

TITLES = {"score": "QUALS scores", "partition": "Partition", "evaluate": "Evaluation"}


def artifact_section(
    art: Artifact,
    *,
    evidence: int = 20,
    documents: int = 100,
    side_by_side: int = 20,
    qagen: str | None = None,
    quals: dict[str, Any] | None = None,
    device: str | None = None,
) -> str:
    """The section of one score, partition or evaluate artifact."""
    kind = sections.kind_of(art)
    if kind == "score":
        body = sections.scores_section(
            art, documents=documents, evidence=evidence, qagen=qagen, quals=quals, device=device
        )
    elif kind == "partition":
        body = sections.partition_section(art)
    else:
        body = sections.evaluation_section(art, documents=side_by_side)
    title = f"{TITLES[kind]}" + (f" ({art.spec['scorer']})" if kind == "partition" else "")
    source = f'<p class="note">Artifact <code>{esc(art.path)}</code></p>'
    return section(title, source + body, anchor=anchor_of(art))


def anchor_of(art: Artifact) -> str:
    """The id of an artifact's section on a page."""
    return f"{art.kind}-{art.key}"


def write_report(target: str | Path, out: str | Path = "report.html", **knobs: Any) -> dict[str, Any]:
    """The report of one artifact folder, or of a ``conseq.score`` output file, written to ``out``. ``knobs``:
    ``artifact_section``'s for an artifact; ``rows``, ``document_column``, ``summary_column`` for a file."""
    target = Path(target)
    if target.is_file():
        allowed = {"rows", "document_column", "summary_column"}
        body = section("QUALS scores", sections.scored_file_section(target, **_only(knobs, allowed)))
        kind, title = "scored_file", f"QUALS report: {target.name}"
    elif target.is_dir():
        art = open_artifact(target)
        allowed = {"evidence", "documents", "side_by_side", "qagen", "device"}
        body = artifact_section(art, **_only(knobs, allowed))
        kind, title = sections.kind_of(art), f"conseq report: {art.kind}/{art.key}"
    else:
        raise FileNotFoundError(f"{target} is neither an artifact folder nor a scored .jsonl file")
    out = Path(out)
    if out.is_dir():
        raise BadInputError("a directory: out= names the .html file to write", file=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, page(title, body))  # whole or not at all
    return {"report": str(out.resolve()), "kind": kind, "source": str(target.resolve())}


def _only(knobs: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    unknown = set(knobs) - allowed
    if unknown:
        raise ValueError(
            f"{', '.join(sorted(unknown))}: not an option here (this target takes {', '.join(sorted(allowed))})"
        )
    return knobs
