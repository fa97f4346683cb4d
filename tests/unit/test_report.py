"""The inspection report (conseq/report) on a hand-made cache: every kind of product renders into one
self-contained page whose tables sort in a real browser without a script error, and every text is escaped."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from conseq.artifacts import open_artifact
from conseq.report import write_report
from conseq.report.render import fmt, markdown_tables, svg_histogram
from conseq.report.sections import kind_of
from conseq.scoring.quals.scorer import QAPair
from tests.browser import SORT_PROBE, check_sorted, fetches, render


@pytest.fixture(scope="module")
def pages(fake_cache, scored_file, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("pages")
    made = {
        "scored_file": write_report(scored_file, out / "scored_file.html"),
        "score": write_report(fake_cache["score"].path, out / "score.html", evidence=0),
        "partition": write_report(fake_cache["partition"].path, out / "partition.html"),
        "evaluate": write_report(fake_cache["evaluate"].path, out / "evaluate.html"),
    }
    return {kind: out / f"{kind}.html" for kind in made}


def test_every_kind_renders_sorts_and_raises_no_error_in_chromium(pages, tmp_path):
    expected = {  # table id → (sorted column and direction on load, rows)
        "scored_file": {"scored-rows": ("2:asc", 5)},
        "score": {"score-summaries": ("2:asc", 36)},
        "partition": {"partition-pairs": ("2:asc", 6)},
        "evaluate": {},
    }
    doms = {}
    for kind, page in pages.items():
        shown = render(page, tmp_path / kind, probe=SORT_PROBE, screenshot=kind in ("score", "evaluate"))
        doms[kind] = shown.dom
        assert shown.errors == [], (kind, shown.errors)
        assert shown.probe["hacked"] is False  # the <script> inside a summary stayed text
        for ident, (state, rows) in expected[kind].items():
            entry = shown.probe[ident]
            assert (entry["sorted"], entry["rows"]) == (state, rows), (kind, entry)
            check_sorted(entry)
            assert entry["clicked"] == state.replace("asc", "desc")
        # evaluate's two tables from table.md sort too (by the model column: text), and the error-kind one
        tables = [k for k in shown.probe if k != "hacked"]
        assert len(tables) == {"scored_file": 1, "score": 1, "partition": 2, "evaluate": 2}[kind], tables
        if shown.screenshot is not None:
            image = Image.open(shown.screenshot)
            assert image.size == (1400, 1800) and len(image.convert("RGB").getcolors(1 << 24)) > 50  # not blank
    dom = doms["scored_file"]
    assert 'class="tok"' in dom and "given the source" in dom and '<mark class="answer"' in dom


def test_page_is_self_contained_and_escapes_every_text(pages):
    for kind, page in pages.items():
        text = page.read_text()
        assert fetches(text) == [], kind
        assert "<script>window.hacked" not in text
        if kind != "partition":  # the partition's kept pairs do not include the tricky candidate
            assert "&lt;script&gt;window.hacked = 1&lt;/script&gt;" in text, kind
    evaluation = pages["evaluate"].read_text()
    # the oracle's unsupported value is marked in the summaries that state it; the references come first
    assert evaluation.count('<mark class="oracle"') >= 2
    assert evaluation.index("<h4>reference</h4>") < evaluation.index("<h4>mle</h4>") < evaluation.index("<h4>conseq")
    assert "this evaluation ran without entity metrics" in evaluation
    partition = pages["partition"].read_text()
    assert "<svg" in partition and "negative cut = -1" in partition and "extrinsic:age" in partition


def test_kind_comes_from_the_spec(fake_cache):
    assert [kind_of(fake_cache[k]) for k in ("score", "partition", "evaluate")] == ["score", "partition", "evaluate"]
    with pytest.raises(ValueError, match=r"'data' artifact: the report reads score, partition and evaluate"):
        kind_of(open_artifact(fake_cache["data"].path))
    with pytest.raises(FileNotFoundError, match="not a finished artifact"):
        open_artifact(fake_cache["data"].path.parent)


def test_cli_writes_the_report_and_names_a_bad_row(fake_cache, tmp_path):
    out = tmp_path / "r.html"
    proc = subprocess.run(
        [sys.executable, "-m", "conseq.report", str(fake_cache["partition"].path), f"out={out}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == {
        "report": str(out),
        "kind": "partition",
        "source": str(fake_cache["partition"].path),
    }
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"summary": "a", "quals": 1.0, "qa_pairs": []}\n{"summary": "b", "quals": null}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "conseq.report", str(bad)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 2 and "bad.jsonl line 2 field qa_pairs: missing" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "conseq.report", str(bad), "evidence=3"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2 and "evidence: not an option here" in proc.stderr


def test_helpers():
    assert fmt(None) == "–" and fmt(-0.00012) == "-0.00012" and fmt(-1.23456) == "-1.235" and fmt(3) == "3"
    tables = markdown_tables("| model | R1 |\n|---|---:|\n| a<b | 1.5 |\n| c | – |")
    assert "a&lt;b" in tables and "data-type=num>R1" in tables and 'data-sort="1.5"' in tables
    assert "No values" in svg_histogram({"empty": [None]})
    # QA pairs keep their output format unless per-token values were asked for
    assert QAPair("q", "a", -1.0, -0.5).as_dict() == {
        "question": "q",
        "answer": "a",
        "ll_source": -1.0,
        "ll_summary": -0.5,
    }
    assert set(QAPair("q", "a", -1.0, -0.5, ["q"], [-1.0], [-0.5]).as_dict()) >= {"tokens", "lp_source", "lp_summary"}


def test_the_browser_check_sees_script_errors_and_failed_loads(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<html><head></head><body><img src="missing.png"><script>notDefined();</script></body></html>')
    errors = render(page, tmp_path / "work").errors
    assert any("notDefined" in e for e in errors) and any("missing.png" in e for e in errors), errors
