"""The human study (conseq/report/human_eval.py): a blind sheet from an evaluation, filled programmatically,
un-blinded and tallied; the sign test; and bad sheets rejected with the file, row and field named."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from conseq.report.human_eval import (
    COLUMNS,
    KEY,
    QUESTIONS,
    SHEET,
    HumanEvalError,
    sign_test,
    write_results,
    write_sheet,
)
from tests.browser import render


def read_sheet(path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_filled(path, rows: list[dict[str, str]], columns=COLUMNS) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def sheet(fake_cache, tmp_path):
    # The CLI, as a user runs it: the summary line names the files.
    proc = subprocess.run(
        [sys.executable, "-m", "conseq.report", f"human_eval={fake_cache['evaluate'].path}", "models=[mle,conseq]",
         "n=100", "seed=3", f"out={tmp_path / 'study'}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_sheet_is_blind_seeded_and_leaves_out_identical_summaries(sheet, fake_cache, tmp_path):
    rows, key = read_sheet(tmp_path / "study" / SHEET), json.loads((tmp_path / "study" / KEY).read_text())
    # conseq writes mle's summary for test-00 only: 11 documents to compare, all of them (n=100 > 11)
    assert sheet["items"] == len(rows) == 11 and sheet["identical_left_out"] == 1
    assert list(rows[0]) == list(COLUMNS) and all(r[q] == "" for r in rows for q in QUESTIONS)
    assert key["models"] == ["mle", "conseq"] and set(key["items"]) == {r["item"] for r in rows}
    assert "test-00" not in {v["id"] for v in key["items"].values()}
    sides = {v["A"] for v in key["items"].values()}
    assert sides == {"mle", "conseq"}  # both orders occur: the sheet does not give the models away
    text = (tmp_path / "study" / SHEET).read_text()
    assert "mle" not in text and "conseq" not in text
    for row in rows:
        truth = key["items"][row["item"]]
        mle_summary = row["summary_a"] if truth["A"] == "mle" else row["summary_b"]
        assert (", 31," in mle_summary) or "<b>" in mle_summary  # mle's summaries of the fixture
    form = (tmp_path / "study" / "form.html").read_text()
    assert form.count('type="radio"') == 11 * 3 * 3 and "&lt;script&gt;" in form and "<script>window" not in form
    again = write_sheet(fake_cache["evaluate"], ["mle", "conseq"], 100, tmp_path / "again", seed=3)
    assert (tmp_path / "again" / SHEET).read_text() == text and again["items"] == 11
    assert (
        read_sheet(tmp_path / "again" / SHEET) != []
        and write_sheet(fake_cache["evaluate"], ["mle", "conseq"], 4, tmp_path / "four", seed=3)["items"] == 4
    )


def test_filled_sheet_round_trip_unblinds_and_tallies(sheet, tmp_path):
    study = tmp_path / "study"
    rows, key = read_sheet(study / SHEET), json.loads((study / KEY).read_text())
    # A rater who always prefers conseq on facts, finds both equally informative, and prefers mle's grammar on
    # the first three documents (then the same).
    for i, row in enumerate(rows):
        conseq_is_a = key["items"][row["item"]]["A"] == "conseq"
        row["factual_consistency"] = "better" if conseq_is_a else "worse"
        row["informativeness"] = "Same "  # case and spaces are forgiven
        row["grammaticality"] = ("worse" if conseq_is_a else "better") if i < 3 else "same"
    write_filled(study / "filled.csv", rows)
    proc = subprocess.run(
        [sys.executable, "-m", "conseq.report", f"human_eval_results={study / 'filled.csv'}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["comparison"] == "conseq vs mle" and summary["judgements"] == 11
    q = summary["questions"]
    assert (q["factual_consistency"]["better"], q["factual_consistency"]["worse"]) == (11, 0)
    assert q["factual_consistency"]["p_value"] == pytest.approx(2 / 2**11)
    assert q["informativeness"]["same"] == 11 and q["informativeness"]["p_value"] == 1.0
    assert (q["grammaticality"]["worse"], q["grammaticality"]["same"]) == (3, 8)
    assert q["grammaticality"]["p_value"] == pytest.approx(0.25)  # 3 of 3 against: 2 / 2**3
    assert (study / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((study / "results.json").read_text())["questions"] == q
    assert "data:image/png;base64," in (study / "results.html").read_text()


# Fills every question of the form with "same" and stores what its download button would save.
FILL_FORM = """
document.querySelectorAll('[data-item]').forEach(function (block) {
  block.querySelectorAll('input[value=same]').forEach(function (radio) { radio.click(); });
});
document.documentElement.setAttribute('data-probe', JSON.stringify(conseqCsv()));
"""


def test_form_saves_the_sheets_csv(sheet, tmp_path):
    study = tmp_path / "study"
    shown = render(study / "form.html", tmp_path / "browser", probe=FILL_FORM, screenshot=False)
    assert shown.errors == []
    (tmp_path / "from_form.csv").write_text(shown.probe, encoding="utf-8", newline="")
    saved, sheet_rows = read_sheet(tmp_path / "from_form.csv"), read_sheet(study / SHEET)
    assert [{k: r[k] for k in ("item", "document", "summary_a", "summary_b")} for r in saved] == [
        {k: r[k] for k in ("item", "document", "summary_a", "summary_b")} for r in sheet_rows
    ]  # the texts survive the round trip through the page, quotes and markup included
    results = write_results(tmp_path / "from_form.csv", study / KEY, tmp_path / "out")
    assert all(q["same"] == 11 for q in results["questions"].values())


def test_sign_test_known_cases():
    assert sign_test(9, 10) == pytest.approx(22 / 1024)  # 2 · (1 + 10) / 2^10
    assert sign_test(1, 10) == sign_test(9, 10) and sign_test(5, 10) == 1.0 and sign_test(0, 0) == 1.0
    assert sign_test(0, 5) == pytest.approx(2 / 32)
    stats = pytest.importorskip("scipy.stats")
    for n in range(1, 30):
        for k in range(n + 1):
            assert sign_test(k, n) == pytest.approx(stats.binomtest(k, n).pvalue, rel=1e-9)


def test_bad_sheets_name_file_row_and_field(sheet, tmp_path):
    study = tmp_path / "study"
    rows, key_path = read_sheet(study / SHEET), study / KEY
    for row in rows:
        row.update(dict.fromkeys(QUESTIONS, "same"))
    cases = [
        ("missing.csv", rows, [c for c in COLUMNS if c != "informativeness"],
         r"missing\.csv line 1 field informativeness: missing"),
        ("answer.csv", [rows[0], {**rows[1], "grammaticality": "meh"}], COLUMNS,
         r"answer\.csv line 3 field grammaticality: 'meh' is not one of better, worse, same"),
        ("empty_answer.csv", [{**rows[0], "factual_consistency": ""}], COLUMNS,
         r"empty_answer\.csv line 2 field factual_consistency: '' is not one of"),
        ("item.csv", [rows[0], rows[1], {**rows[2], "item": "999"}], COLUMNS,
         r"item\.csv line \d+ field item: '999' is not an item of the key file"),
        ("header_only.csv", [], COLUMNS, r"header_only\.csv: no rows"),
    ]  # fmt: skip
    for name, content, columns, message in cases:
        write_filled(tmp_path / name, content, columns)
        with pytest.raises(HumanEvalError, match=message):
            write_results(tmp_path / name, key_path, tmp_path / "out")
    (tmp_path / "key.json").write_text("{}")
    with pytest.raises(HumanEvalError, match=r"key\.json: not a key file"):
        write_results(tmp_path / "answer.csv", tmp_path / "key.json", tmp_path / "out")
    # the CLI says it on stderr, with exit status 2
    proc = subprocess.run(
        [sys.executable, "-m", "conseq.report", f"human_eval_results={tmp_path / 'answer.csv'}", f"key={key_path}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "answer.csv line 3 field grammaticality" in proc.stderr


def test_models_must_be_two_of_the_evaluation(fake_cache, tmp_path):
    with pytest.raises(ValueError, match="'bart' is not a model of"):
        write_sheet(fake_cache["evaluate"], ["mle", "bart"], 5, tmp_path)
    with pytest.raises(ValueError, match="two different models"):
        write_sheet(fake_cache["evaluate"], ["mle"], 5, tmp_path)
