"""QUALS: the original's pair filter on hand-made cases, parsing, the shared-encoder likelihoods against the
naive per-pair way, and the scorer end to end against a plain re-implementation on a tiny trained QAGen."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from conseq.generation import diverse_beam_search
from conseq.modeling import SEP_TOKEN
from conseq.scoring.quals import (
    QACandidate,
    QAFormat,
    QualsScorer,
    filter_pairs,
    load_qa_format,
    pair_log_likelihoods,
    parse_conseq,
    parse_lmqg,
    read_qa_format,
    save_qa_format,
)
from conseq.scoring.quals.scorer import _split_job


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny matrices: extra intra-op threads only contend for the shared cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def qagen(qagen_model_dir):
    model = AutoModelForSeq2SeqLM.from_pretrained(qagen_model_dir).eval()
    return model, AutoTokenizer.from_pretrained(qagen_model_dir)


# ------------------------------------------------------------------------------------------------ filter


def qa(question: str, answer: str, score: float) -> QACandidate:
    return QACandidate(question, answer, [], score, 1)


def names(pairs: list[QACandidate]) -> list[str]:
    return [p.question for p in pairs]


def test_filter_substring_rule():
    summary = "The business deal was signed in Paris on Monday."
    cands = [
        qa("q-us", "US", -1.0),  # raw substring of "business": kept, as in the original
        qa("q-paris", "paris", -2.0),
        qa("q-caps", "PARIS", -2.5),  # same answer group as "paris" (lowercased), different question
        qa("q-london", "London", -0.1),
        qa("q-empty", "", -0.2),
        qa("q-signed", "Signed In", -3.0),
        qa("q-monday-x", "Monday!", -0.3),
    ]
    assert names(filter_pairs(summary, cands)) == ["q-us", "q-paris", "q-signed", "q-caps"]


def test_filter_round_robin_follows_score_order():
    # Groups are ordered by their best pair (first appearance after sorting), not by input order.
    cands = [qa("a1", "alpha", -3.0), qa("b1", "beta", -1.0), qa("a2", "alpha", -2.0)]
    assert names(filter_pairs("alpha beta", cands)) == ["b1", "a2", "a1"]
    # Ties keep input order (stable sort).
    assert names(filter_pairs("alpha beta", [qa("x", "beta", 0.0), qa("y", "alpha", 0.0)])) == ["x", "y"]


def test_filter_dedups_questions_per_answer():
    cands = [
        qa("Who?", "alpha", -1.0),
        qa("Who?", "beta", -1.2),  # the same question for another answer is kept
        qa("who?", "alpha", -2.0),  # duplicate of "Who?" for alpha (case-insensitive)
        qa("What?", "alpha", -3.0),
        qa("Which?", "beta", -2.5),
    ]
    # Round 1: Who?/alpha, Who?/beta. Round 2: alpha pops the duplicate (skipped), beta adds Which?.
    # Round 3: alpha adds What?.
    assert [(p.question, p.answer) for p in filter_pairs("alpha beta", cands)] == [
        ("Who?", "alpha"),
        ("Who?", "beta"),
        ("Which?", "beta"),
        ("What?", "alpha"),
    ]


def test_filter_stops_when_a_round_adds_nothing():
    # Round 2 pops only a duplicate, so the loop ends and "What?" is never reached (the original's quirk).
    cands = [
        qa("Who?", "alpha", -1.0),
        qa("Q", "beta", -1.5),
        qa("who?", "alpha", -2.0),
        qa("What?", "alpha", -3),
    ]
    assert names(filter_pairs("alpha beta", cands)) == ["Who?", "Q"]


def test_filter_limit_is_checked_between_rounds():
    words = [f"w{i:02d}" for i in range(12)]
    summary = " ".join(words)
    assert len(filter_pairs(summary, [qa(f"q{w}", w, -i) for i, w in enumerate(words)])) == 12

    # 3 answers x 5 pairs: rounds keep 3, 6, 9 (< 10, so one more round), 12 -> stop with 12.
    cands = [qa(f"{a}{i}", a, -i - 0.1 * j) for i in range(1, 6) for j, a in enumerate(["A", "B", "C"])]
    expected = [f"{a}{i}" for i in range(1, 5) for a in ["A", "B", "C"]]
    assert names(filter_pairs("A B C", cands)) == expected
    assert names(filter_pairs("A B C", cands, max_qas=6)) == expected[:6]
    # 3 answers x 3 pairs: 9 kept, then a round with every group empty adds nothing.
    assert len(filter_pairs("A B C", [c for c in cands if int(c.question[1]) <= 3])) == 9


# ------------------------------------------------------------------------------------------------- parsing


def test_parse_conseq(qagen):
    _, tok = qagen
    sep = tok.convert_tokens_to_ids(SEP_TOKEN)

    def ids(text):
        return tok(text_target=text).input_ids

    assert ids("Who won?<sep>Anna Berg")[0] == tok.bos_token_id
    assert parse_conseq(ids("Who won?<sep>Anna Berg"), tok, sep) == ("Who won?", "Anna Berg")
    assert parse_conseq(ids(" Who won? <sep> Anna Berg "), tok, sep) == ("Who won?", "Anna Berg")
    assert parse_conseq(ids("Who won?<sep>"), tok, sep) == ("Who won?", "")
    assert parse_conseq(ids("Who won? Anna Berg"), tok, sep) is None
    assert parse_conseq(ids("Who won?<sep>Anna<sep>Berg"), tok, sep) is None


def test_parse_lmqg():
    text = "question: Who won?, answer: Anna Berg | question: Where, in the end?, answer: Oslo"
    assert parse_lmqg(text) == [("Who won?", "Anna Berg"), ("Where, in the end?", "Oslo")]
    assert parse_lmqg("Question: Who?, answer: Tom |") == [("Who?", "Tom")]
    assert parse_lmqg("question: no answer | answer: x | question: Q, answer:  | nonsense") == []


# ---------------------------------------------------------------------------------------------- likelihood


@torch.inference_mode()
def naive_ll(model, source: list[int], target: list[int]) -> float:
    """The original's way: the source in every row, teacher forcing via labels, mean over all but a forced
    BOS."""
    out = model(input_ids=torch.tensor([source]), labels=torch.tensor([target]))
    logprobs = out.logits[0].float().log_softmax(-1)[torch.arange(len(target)), torch.tensor(target)]
    skip = 1 if target[0] == model.generation_config.forced_bos_token_id else 0
    return logprobs[skip:].mean().item()


def test_likelihoods_match_the_naive_way(qagen):
    model, tok = qagen
    docs = [
        "Tom Reyes of Delta Bank won 7 games in Hanoi on Monday, officials said. Lena Park lost in Oslo.",
        "Anna Berg won in Oslo.",
        "Ines Costa of Porto Rovers won 2 games in Quito on Monday, officials said.",
        "Jon Ito stayed home.",
    ]
    qas = [
        "Who won 7 games in Hanoi?<sep>Tom Reyes",
        "Where did Anna Berg win?<sep>Oslo",
        "Who?<sep>Ines Costa",
    ]
    sources = [tok(d).input_ids for d in docs]
    targets = [
        [tok(text_target=q).input_ids for q in qas],
        [tok(text_target=qas[1]).input_ids],
        [tok(text_target=q).input_ids for q in qas[::-1]] + [tok(text_target=qas[0]).input_ids[1:]],  # no BOS
        [],
    ]
    expected = [[naive_ll(model, s, t) for t in ts] for s, ts in zip(sources, targets, strict=True)]
    for max_rows in (2, 256):  # several encoder/decoder chunks, and everything at once
        got = pair_log_likelihoods(model, sources, targets, pad_token_id=tok.pad_token_id, max_rows=max_rows)
        assert [len(g) for g in got] == [3, 1, 4, 0]
        for g, e in zip(got, expected, strict=True):
            assert g == pytest.approx(e, abs=1e-4)


# ------------------------------------------------------------------------------------------------- scorer

DOCS = [
    "Tom Reyes of Delta Bank won 7 games in Hanoi on Monday, officials said. Lena Park of Helix Labs lost.",
    "Ines Costa of Porto Rovers won 2 games in Quito on Monday, officials said.",
]
ROWS = [
    (DOCS[0], "Tom Reyes of Delta Bank won 7 games in Hanoi on Monday, officials said."),
    (DOCS[0], "Tom Reyes of Delta Bank won 5 games in Oslo on Monday, officials said."),  # wrong facts
    (DOCS[1], "Nothing."),  # no pair survives the filter
    (DOCS[0], "Lena Park won 7 games in Hanoi."),
    (DOCS[1], "Ines Costa of Porto Rovers won 2 games in Quito on Monday, officials said."),
]


def naive_quals(
    model,
    tok,
    document,
    summary,
    *,
    summary_ll="rescore",
    aggregate="mean",
    max_source_length=1024,
    num_groups=60,
):
    """QUALS from the plain pieces, one summary at a time, the source in every row."""
    sep = tok.convert_tokens_to_ids(SEP_TOKEN)
    summary_ids = tok(summary).input_ids
    out = diverse_beam_search(model, torch.tensor([summary_ids]), num_groups=num_groups)
    cands = []
    for g in range(out.sequences.shape[1]):
        length = int(out.lengths[0, g])
        ids = out.sequences[0, g, : 1 + length].tolist()
        parsed = parse_conseq(ids, tok, sep)
        if parsed:
            cands.append(QACandidate(*parsed, ids, float(out.penalized_scores[0, g]), length))
    kept = filter_pairs(summary, cands)
    document_ids = tok(document).input_ids
    if len(document_ids) > max_source_length:
        document_ids = [*document_ids[: max_source_length - 1], tok.eos_token_id]
    pairs = []
    for c in kept:
        ll_sum = naive_ll(model, summary_ids, c.token_ids) if summary_ll == "rescore" else c.score_sum / c.length
        pairs.append((c.question, c.answer, naive_ll(model, document_ids, c.token_ids), ll_sum))
    diffs = [src - sm for _, _, src, sm in pairs]
    quals = (sum(diffs) / len(diffs) if aggregate == "mean" else min(diffs)) if diffs else None
    return quals, pairs


def assert_same(result, expected):
    quals, pairs = expected
    assert [(p.question, p.answer) for p in result.qa_pairs] == [(q, a) for q, a, _, _ in pairs]
    assert [p.ll_source for p in result.qa_pairs] == pytest.approx([s for _, _, s, _ in pairs], abs=1e-4)
    assert [p.ll_summary for p in result.qa_pairs] == pytest.approx([s for _, _, _, s in pairs], abs=1e-4)
    if quals is None:
        assert result.quals is None
    else:
        assert result.quals == pytest.approx(quals, abs=1e-4)


def test_scorer_equals_the_plain_pipeline(qagen_model_dir, qagen):
    model, tok = qagen
    scorer = QualsScorer.from_pretrained(str(qagen_model_dir), device="cpu", batch_size=2, max_rows=4)
    assert scorer.qa_format == QAFormat("conseq")
    results = scorer.score([d for d, _ in ROWS], [s for _, s in ROWS])
    expected = [naive_quals(model, tok, d, s) for d, s in ROWS]
    for result, exp in zip(results, expected, strict=True):
        assert_same(result, exp)
    # The path is really exercised: pairs survive and differ between the two conditionings, one row is null.
    assert [r.quals is None for r in results] == [False, False, True, False, False]
    assert results[4].quals == pytest.approx(0.0, abs=1e-6)  # the summary is the document
    assert results[1].quals < results[0].quals - 0.2  # wrong facts score lower than the right ones
    assert scorer.stats["null_scores"] == 1
    assert scorer.stats["pairs_kept"] == sum(len(r.qa_pairs) for r in results) >= 15
    assert scorer.stats["pairs_generated"] > scorer.stats["pairs_kept"]


def test_scorer_options_equal_the_plain_pipeline(qagen_model_dir, qagen):
    model, tok = qagen
    rows = [ROWS[1], ROWS[3]]
    for option in ({"summary_ll": "beam"}, {"aggregate": "min"}, {"max_source_length": 12}):
        options = {**option, "num_groups": 20}
        scorer = QualsScorer(model, tok, **options)
        results = scorer.score([d for d, _ in rows], [s for _, s in rows])
        for result, (d, s) in zip(results, rows, strict=True):
            assert_same(result, naive_quals(model, tok, d, s, **options))
    assert scorer.stats["truncated_sources"] == 2


def test_beam_and_rescored_summary_ll_agree_without_penalty(qagen):
    # With no diversity penalty the beam score is the plain model log-likelihood, which teacher forcing
    # must reproduce: generation and scoring agree on tokens, BOS handling and normalisation.
    model, tok = qagen
    rows = ROWS[:2]
    beam = QualsScorer(model, tok, summary_ll="beam", diversity_penalty=0.0, num_groups=3)
    rescore = QualsScorer(model, tok, summary_ll="rescore", diversity_penalty=0.0, num_groups=3)
    for a, b in zip(beam.score(*zip(*rows)), rescore.score(*zip(*rows)), strict=True):
        assert len(a.qa_pairs) == 1  # the groups are identical, and the filter keeps one copy
        assert a.qa_pairs[0].ll_summary == pytest.approx(b.qa_pairs[0].ll_summary, abs=1e-4)


def test_order_and_duplicates(qagen):
    model, tok = qagen
    scorer = QualsScorer(model, tok, batch_size=3, num_groups=20)
    docs, sums = [d for d, _ in ROWS], [s for _, s in ROWS]
    together = scorer.score(docs + docs[:2], sums + sums[:2], return_qa_pairs=False)
    assert together[5] == together[0] and together[6] == together[1]  # identical rows, identical results
    assert all(r.qa_pairs == [] for r in together)
    alone = [scorer.score([d], [s])[0] for d, s in ROWS]
    backwards = scorer.score(docs[::-1], sums[::-1])[::-1]
    for t, a, b in zip(together, alone, backwards, strict=False):
        if a.quals is None:
            assert t.quals is None and b.quals is None
        else:
            assert t.quals == pytest.approx(a.quals, abs=1e-5) and b.quals == pytest.approx(a.quals, abs=1e-5)
        assert [(p.question, p.answer) for p in b.qa_pairs] == [(p.question, p.answer) for p in a.qa_pairs]


def test_bad_input(qagen):
    model, tok = qagen
    scorer = QualsScorer(model, tok, num_groups=2)
    assert scorer.score([], [], progress=True) == []
    assert scorer.score([""], [""])[0].quals is None
    with pytest.raises(ValueError, match="2 documents but 1 summaries"):
        scorer.score(["a", "b"], ["a"])
    with pytest.raises(TypeError, match=r"summaries\[1\] is NoneType"):
        scorer.score(["a", "b"], ["a", None])


def test_in_memory_model_keeps_its_mode(qagen):
    model, tok = qagen
    model.train()
    try:
        QualsScorer(model, tok, num_groups=2).score([DOCS[0]], [ROWS[0][1]])
        assert model.training
    finally:
        model.eval()


# --------------------------------------------------------------------------------------- formats and memory


def test_qa_format_files(tmp_path, tiny_model_dir, qagen_model_dir):
    assert read_qa_format(qagen_model_dir) == QAFormat("conseq")
    assert read_qa_format(tiny_model_dir) is None
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert load_qa_format(tiny_model_dir, tok) == QAFormat("conseq")  # no file, but the tokenizer has <sep>
    with pytest.raises(ValueError, match="qa_format="):
        load_qa_format(tmp_path)
    save_qa_format(tmp_path, "lmqg", input_prefix="generate question and answer: ")
    assert load_qa_format(tmp_path) == QAFormat("lmqg", SEP_TOKEN, "generate question and answer: ")
    (tmp_path / "conseq_qagen.json").write_text('{"qa_format": "squad"}')
    with pytest.raises(ValueError, match=r"conseq_qagen\.json"):
        read_qa_format(tmp_path)
    assert QualsScorer.from_pretrained(str(tiny_model_dir), device="cpu").qa_format == QAFormat("conseq")


def test_lmqg_format(qagen):
    model, tok = qagen
    with pytest.raises(ValueError, match="beam"):
        QualsScorer(model, tok, qa_format="lmqg", summary_ll="beam")
    scorer = QualsScorer(model, tok, qa_format="lmqg", num_groups=4)
    assert scorer.qa_format.input_prefix == "generate question and answer: "
    ids = tok(text_target="question: Who won?, answer: Anna Berg | question: Where?, answer: Oslo").input_ids
    cands = scorer._parse(ids, -3.0, len(ids) - 1)
    assert [(c.question, c.answer) for c in cands] == [("Who won?", "Anna Berg"), ("Where?", "Oslo")]
    assert cands[1].token_ids == tok(text_target="question: Where?, answer: Oslo").input_ids
    # This QAGen writes "q<sep>a", which the lmqg parser rejects: the pipeline runs and reports no pairs.
    assert scorer.score([DOCS[0]], [ROWS[0][1]])[0].quals is None


def test_out_of_memory_splits_batches(qagen):
    model, tok = qagen
    scorer = QualsScorer(model, tok)
    calls = []

    def small_memory(items):  # stands in for a device that fits two items
        calls.append(len(items))
        if len(items) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [10 * x for x in items]

    assert scorer._on_oom_split(small_memory, list(range(7))) == [10 * x for x in range(7)]
    assert calls == [7, 3, 1, 2, 4, 2, 2] and scorer.stats["oom_splits"] == 3

    def small_rows(jobs):  # a job holding more than two targets does not fit
        if any(len(targets) > 2 for _, targets in jobs):
            raise RuntimeError("CUDA error: out of memory")
        return [[float(t) for t in targets] for _, targets in jobs]

    jobs = [(0, [1, 2, 3, 4, 5]), (1, [6])]
    assert scorer._on_oom_split(small_rows, jobs, split_single=_split_job) == [[1, 2, 3, 4, 5], [6]]
    with pytest.raises(torch.OutOfMemoryError):
        scorer._on_oom_split(lambda items: small_memory(items * 3), [5])
    with pytest.raises(ValueError):  # anything but out-of-memory propagates at once
        scorer._on_oom_split(lambda items: int("x"), [1, 2])


def test_documents_longer_than_the_position_table_are_truncated_and_counted(qagen_model_dir):
    # The tiny QAGen has 512 positions; the default source limit is bart-large's 1024. A long real document
    # must be cut to what the model can read (and counted), not crash on a position index.
    scorer = QualsScorer.from_pretrained(str(qagen_model_dir), device="cpu", num_groups=8, max_new_tokens=12)
    long_document = " ".join([DOCS[0]] * 60)
    assert len(scorer.tokenizer(long_document).input_ids) > 512
    results = scorer.score([long_document, DOCS[0]], [ROWS[0][1], ROWS[0][1]])
    assert len(results) == 2 and scorer.stats["truncated_sources"] == 1
