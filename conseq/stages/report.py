"""stage=report: one self-contained HTML page with the evidence behind the pipeline's numbers.

    python -m conseq.train stage=report                         # after stage=pipeline, with the same overrides
    python -m conseq.train stage=report stages.report.evidence=50
    python -m conseq.report <artifact dir> out=report.html      # one product, outside any config

The products are those stage=pipeline makes for the composed config, found through conseq/specs.py: the QUALS
scores, the partition of every scorer its contrastive variants train on, and the evaluation of mle and every
variant (or ``stages.evaluate.models``). Each built product gets its section (conseq/report: what each shows); a
missing one is listed with the command that builds it. The scores artifact keeps QUALS values only, so the
``stages.report.evidence`` lowest-scoring summaries are scored again with the config's QAGen model and
per-token log-probabilities to show their QA pairs.

Output: ``report.html`` in a report artifact keyed by the products' keys, the knobs and the page's version, so a
rerun is a cache hit until a product changes. Runs on the main process; the others only wait.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from conseq import runtime, specs
from conseq.artifacts import Artifact, artifact, run_dir
from conseq.config import Config
from conseq.report import anchor_of, artifact_section
from conseq.report.render import esc, page, section

log = logging.getLogger(__name__)
# The page's version: bump it when the page changes, so that cached reports are built again.
VERSION = 1


def run(cfg: Config) -> dict | None:
    # setup
    r = cfg.stages.report
    found = products(cfg)
    parts = {name: art.key if art is not None and art.done else None for name, (art, _) in found.items()}
    art = artifact(
        cfg.paths.root, "report", {"stage": "report", "version": VERSION, "parts": parts, "knobs": asdict(r)}
    )
    if art.done and not cfg.force:
        return runtime.emit_result("report", art.path, True, art.metrics())
    rt = runtime.start(run_dir=run_dir(cfg.paths.root, f"report-{art.key}"), seed=cfg.seed)
    acc = rt.accelerator
    if not acc.is_main_process:  # one process writes the page, the others wait for it
        acc.wait_for_everyone()
        return None
    out = art.start(force=cfg.force)

    # render: one section per built product
    quals = {k: v for k, v in asdict(cfg.stages.score.quals).items() if k != "token_logprobs"}
    sections, missing = [], {}
    for name, (product, command) in found.items():
        if product is None or not product.done:
            missing[name] = command
            continue
        evidence = {}
        if product.kind == "scores" and r.evidence:
            evidence = {"qagen": specs.qagen_location(cfg)[0], "quals": quals, "device": str(acc.device)}
        sections.append(
            artifact_section(
                product,
                evidence=r.evidence,
                documents=r.documents,
                side_by_side=r.side_by_side,
                **evidence,
            )
        )
        log.info("report: %s (%s) done", name, product.path)
    contents = []
    for name, (product, _) in found.items():
        if name in missing:
            contents.append(
                f'<li>{esc(name)}: <span class="bad">not built</span> <code>{esc(missing[name])}</code></li>'
            )
        else:
            contents.append(f'<li><a href="#{esc(anchor_of(product))}">{esc(name)}</a>: {esc(product.path)}</li>')
    body = section("Contents", f"<ul>{''.join(contents)}</ul>") + "".join(sections)
    (out / "report.html").write_text(page("conseq report", body, subtitle=f"{cfg.paths.root}"), encoding="utf-8")

    # save
    metrics = {"sections": [n for n in found if n not in missing], "missing": missing}
    art.finish(metrics)
    log.info("report: open file://%s", art.path / "report.html")
    result = runtime.emit_result("report", art.path, False, metrics)
    acc.wait_for_everyone()
    return result


def products(cfg: Config) -> dict[str, tuple[Artifact | None, str]]:
    """name → (the product of this config as stage=pipeline makes it, or None when it cannot be located yet; the
    command that builds it, or why it cannot be located). The variants, partitions and models follow
    stage=pipeline's plan."""
    planned = specs.pipeline_plan(cfg)
    partitions, models = planned.partitions, planned.models
    found: dict[str, tuple[Artifact | None, str]] = {}
    if any(scorer == "quals" for scorer, *_ in partitions):
        found["QUALS scores"] = (specs.scores(cfg), "python -m conseq.train stage=score")
    for scorer, positive, negative_ratio in partitions:
        knobs = [f"positive={positive}"] * (positive != "reference")
        knobs += [f"negative_ratio={negative_ratio}"] * (negative_ratio is not None)
        name = f"partition ({', '.join([scorer, *knobs])})"
        command = (
            f"python -m conseq.train stage=partition {specs.partition_overrides(scorer, positive, negative_ratio)}"
        )
        found[name] = (specs.partition(cfg, scorer, positive, negative_ratio), command)
    command = f"python -m conseq.train stage=evaluate 'stages.evaluate.models=[{','.join(models)}]'"
    try:
        found["evaluation"] = (specs.evaluation(cfg, models), command)
    except FileNotFoundError as err:  # its key needs the data and the scorer models: not built yet
        found["evaluation"] = (None, f"{command} ({err})")
    return found
