"""QualsScorer(token_logprobs=True): each QA pair keeps its tokens and their log-probabilities given the source and
given the summary (the report's evidence), and every score stays exactly what it is without them."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from conseq.scoring.quals import QualsScorer, pair_log_likelihoods
from tests.unit.test_quals import ROWS


@pytest.fixture(scope="module")
def qagen(qagen_model_dir):
    torch.set_num_threads(1)
    model = AutoModelForSeq2SeqLM.from_pretrained(qagen_model_dir).eval()
    return model, AutoTokenizer.from_pretrained(qagen_model_dir)


@pytest.mark.parametrize("summary_ll", ["rescore", "beam"])
def test_token_logprobs_keep_every_score_and_explain_it(qagen, summary_ll):
    model, tok = qagen
    docs, sums = [d for d, _ in ROWS], [s for _, s in ROWS]
    plain = QualsScorer(model, tok, summary_ll=summary_ll, num_groups=20).score(docs, sums)
    kept = QualsScorer(model, tok, summary_ll=summary_ll, num_groups=20, token_logprobs=True).score(docs, sums)
    assert sum(len(r.qa_pairs) for r in kept) >= 10
    for a, b in zip(plain, kept, strict=True):
        assert a.quals == b.quals and len(a.qa_pairs) == len(b.qa_pairs)
        for p, q in zip(a.qa_pairs, b.qa_pairs, strict=True):
            assert (p.question, p.answer, p.ll_source, p.ll_summary) == (
                q.question,
                q.answer,
                q.ll_source,
                q.ll_summary,
            )
            assert p.tokens is None and set(p.as_dict()) == {"question", "answer", "ll_source", "ll_summary"}
            assert len(q.tokens) == len(q.lp_source) == len(q.lp_summary) >= 3
            assert "<sep>" in q.tokens and q.tokens[-1] == tok.eos_token and q.question in "".join(q.tokens)
            # the means over the kept tokens are the pair's log-likelihoods (the beam's one has the penalty in it)
            assert sum(q.lp_source) / len(q.lp_source) == pytest.approx(q.ll_source, abs=1e-5)
            if summary_ll == "rescore":
                assert sum(q.lp_summary) / len(q.lp_summary) == pytest.approx(q.ll_summary, abs=1e-5)
            assert all(v <= 0 for v in q.lp_source + q.lp_summary)


def test_per_token_likelihoods_are_the_means_parts(qagen):
    model, tok = qagen
    source = tok("Anna Berg won 7 games in Oslo.")["input_ids"]
    targets = [tok(text_target=t)["input_ids"] for t in ("Who won?<sep>Anna Berg", "Where?<sep>Oslo")]
    means = pair_log_likelihoods(model, [source], [targets], pad_token_id=tok.pad_token_id)
    both = pair_log_likelihoods(model, [source], [targets], pad_token_id=tok.pad_token_id, per_token=True)
    assert [m for m, _ in both[0]] == means[0]
    forced = model.generation_config.forced_bos_token_id
    for (mean, values), target in zip(both[0], targets, strict=True):
        assert target[0] == forced  # a leading forced BOS is not scored: one value per other token
        assert len(values) == len(target) - 1 and sum(values) / len(values) == pytest.approx(mean, abs=1e-6)


def test_answer_span_compares_the_answer_tokens_alone(qagen):
    model, tok = qagen
    docs, sums = [d for d, _ in ROWS], [s for _, s in ROWS]
    pair = QualsScorer(model, tok, num_groups=20, token_logprobs=True).score(docs, sums)
    answer = QualsScorer(model, tok, num_groups=20, span="answer").score(docs, sums)
    assert sum(len(r.qa_pairs) for r in answer) >= 10
    for p, a in zip(pair, answer, strict=True):
        assert [(q.question, q.answer) for q in p.qa_pairs] == [(q.question, q.answer) for q in a.qa_pairs]
        for q, r in zip(p.qa_pairs, a.qa_pairs, strict=True):
            n = len(q.tokens) - q.tokens.index("<sep>") - 1  # the answer's tokens and EOS
            assert r.ll_source == pytest.approx(sum(q.lp_source[-n:]), abs=1e-5)
            assert r.ll_summary == pytest.approx(sum(q.lp_summary[-n:]), abs=1e-5)
        if a.qa_pairs:
            assert a.quals == pytest.approx(sum(q.ll_source - q.ll_summary for q in a.qa_pairs) / len(a.qa_pairs))


def test_answer_span_needs_separate_answers(qagen):
    model, tok = qagen
    with pytest.raises(ValueError, match="span must be one of"):
        QualsScorer(model, tok, span="question")
    with pytest.raises(ValueError, match="span='answer' needs"):
        QualsScorer(model, tok, span="answer", summary_ll="beam")
