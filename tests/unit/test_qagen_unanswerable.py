"""QAGen's SQuAD 2.0-style examples: a question on its passage without the sentences that hold its answer."""

from __future__ import annotations

from conseq.stages.qagen import unanswerable_examples

ROWS = [
    {
        "id": f"q{i}",
        "context": "Ana Ruiz won the race. Ruiz, a Chilean runner, thanked her coach. The race was held in Lome.",
        "question": f" What is the nationality of Ana Ruiz? {i}",
        "answers": {"text": ["Chilean"], "answer_start": [30]},
    }
    for i in range(200)
] + [
    # The answer is in every sentence: nothing is left once it is cut out, so no example.
    {
        "id": "all",
        "context": "Lome. Lome again.",
        "question": "Where?",
        "answers": {"text": ["Lome"], "answer_start": [0]},
    }
]


def test_examples_drop_the_answer_and_have_an_empty_target():
    out = unanswerable_examples(ROWS, 1.0, seed=0)
    assert len(out) == 200 and all(e["id"].endswith("-unanswerable") for e in out)
    for e in out:
        assert "chilean" not in e["context"].lower() and "Ana Ruiz won the race." in e["context"]
        assert e["answer"] == "" and e["question"] == e["question"].strip()


def test_rate_is_a_seeded_share_of_questions():
    assert unanswerable_examples(ROWS, 0.0, seed=0) == []
    half = unanswerable_examples(ROWS, 0.5, seed=3)
    assert 70 < len(half) < 130
    assert half == unanswerable_examples(ROWS, 0.5, seed=3)
    assert half != unanswerable_examples(ROWS, 0.5, seed=4)
