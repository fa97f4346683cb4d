"""BART's text infilling on words (conseq/data/denoising.py): the share masked, one <mask> a span, the seeds."""

from __future__ import annotations

import statistics
from itertools import pairwise

import pytest

from conseq.data import denoising as dn
from tests.conftest import corpus

KNOBS = {"mask_ratio": 0.3, "poisson_lambda": 3.0}
TEXT = " ".join(corpus(12, seed=3))  # ~170 words, 12 sentences


def _masked_share(plan: list[int | None], n_words: int) -> float:
    return 1 - sum(i is not None for i in plan) / n_words


def test_about_mask_ratio_of_words_masked_over_many_draws():
    for n_words, ratio in ((170, 0.3), (37, 0.3), (50, 0.15)):
        shares = [
            _masked_share(dn.noise_plan(n_words, dn.noise_rng(0, 0, i), mask_ratio=ratio, poisson_lambda=3.0), n_words)
            for i in range(500)
        ]
        assert statistics.mean(shares) == pytest.approx(ratio, abs=0.01)  # rounded at random: exact on average


def test_spans_become_one_mask_and_kept_words_keep_their_order():
    words = TEXT.split()
    lengths, inserts = [], 0
    for i in range(300):
        plan = dn.noise_plan(len(words), dn.noise_rng(1, 0, i), **KNOBS)
        kept = [j for j in plan if j is not None]
        assert kept == sorted(kept) and len(set(kept)) == len(kept)  # no word twice, order kept
        assert all(a is not None or b is not None for a, b in pairwise(plan))  # never 2 masks
        # each mask stands for the words between its neighbours (0 words: an inserted mask)
        bounds = [-1, *kept, len(words)]
        gaps = [b - a - 1 for a, b in pairwise(bounds)]
        n_masks = plan.count(None)
        assert sum(g > 0 for g in gaps) <= n_masks  # every missing run of words is under a mask
        inserts += n_masks - sum(g > 0 for g in gaps)
        lengths += [g for g in gaps if g > 0]
    # merged Poisson(3) spans: mostly a few words, a mean a little above λ (merges), and some insertions
    assert 2.5 < statistics.mean(lengths) < 5.5 and max(lengths) >= 8
    assert inserts > 0


def test_noise_text_replaces_spans_by_a_single_mask():
    noised = dn.noise_text(TEXT, dn.noise_rng(0, 0, 0), **KNOBS)
    assert dn.MASK in noised and f"{dn.MASK} {dn.MASK}" not in noised
    kept = [w for w in noised.split() if w != dn.MASK]
    it = iter(TEXT.split())
    assert all(w in it for w in kept)  # a subsequence of the original words
    assert len(kept) == pytest.approx(0.7 * len(TEXT.split()), abs=1)


def test_deterministic_for_a_seed_and_different_across_epochs_and_documents():
    def draw(seed, epoch, index):
        return dn.noise_text(TEXT, dn.noise_rng(seed, epoch, index), **KNOBS)

    assert draw(0, 0, 5) == draw(0, 0, 5)
    assert len({draw(0, epoch, 5) for epoch in range(5)}) == 5  # masks redrawn each epoch
    assert draw(0, 0, 5) != draw(0, 0, 6) and draw(0, 0, 5) != draw(1, 0, 5)


def test_sentence_permutation_keeps_every_sentence():
    sentences = corpus(12, seed=3)
    shuffled = dn.noise_text(TEXT, dn.noise_rng(0, 0, 0), mask_ratio=0.0, poisson_lambda=3.0, permute_sentences=True)
    assert shuffled != TEXT and sorted(shuffled.split(". ")) == sorted(TEXT.split(". "))
    assert dn.sentence_starts(TEXT.split()) == [sum(len(s.split()) for s in sentences[:k]) for k in range(12)]
    # no masking and no permutation: the document itself
    same = dn.noise_text(TEXT, dn.noise_rng(0, 0, 0), mask_ratio=0.0, poisson_lambda=3.0)
    assert same == TEXT


def test_bad_knobs_fail():
    with pytest.raises(ValueError, match="mask_ratio"):
        dn.noise_plan(10, dn.noise_rng(0, 0, 0), mask_ratio=1.5, poisson_lambda=3.0)
    with pytest.raises(ValueError, match="poisson_lambda"):
        dn.noise_plan(10, dn.noise_rng(0, 0, 0), mask_ratio=0.3, poisson_lambda=0.0)
    assert dn.noise_plan(0, dn.noise_rng(0, 0, 0), **KNOBS) == []


def test_token_ids_follow_the_words_and_the_target_is_the_whole_document():
    from conseq.modeling import train_tokenizer

    texts = [*corpus(50), 'Olé, "quoted words." Then 3.5 percent of $1.2 billion, said Marek.']
    tokenizer = train_tokenizer(texts, vocab_size=400)
    docs, cut = dn.encode_words(tokenizer, texts, max_length=512)
    assert cut == 0
    for text, doc in zip(texts, docs, strict=True):
        assert list(doc.ids) == tokenizer(text, add_special_tokens=False)["input_ids"]
        words = [tokenizer.decode(doc.ids[a:b]).strip() for a, b in zip(doc.word_starts, doc.word_starts[1:])]
        assert words == text.split()
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "mask": tokenizer.mask_token_id}
    target = dn.target_ids(docs[-1], bos=ids["bos"], eos=ids["eos"])
    plan = dn.noise_plan(docs[-1].n_words, dn.noise_rng(0, 0, 0), **KNOBS)
    noised = dn.noised_ids(docs[-1], plan, **ids, max_length=512)
    assert noised[0] == ids["bos"] and noised[-1] == ids["eos"] and ids["mask"] in noised
    assert tokenizer.decode(noised[1:-1]).replace(tokenizer.mask_token, " ").split() == [
        texts[-1].split()[i] for i in plan if i is not None
    ]
    # the target: the whole document as the tokenizer encodes it, whatever the noise was
    assert target == dn.target_ids(docs[-1], bos=ids["bos"], eos=ids["eos"]) == tokenizer(texts[-1])["input_ids"]
    # a long document is cut after its last whole word that fits, <s> and </s> included
    short, cut = dn.encode_words(tokenizer, texts[-1:], max_length=10)
    assert cut == 1 and len(short[0].ids) + 2 <= 10 and short[0].word_starts[-1] == len(short[0].ids)
    assert tokenizer.decode(short[0].ids).split() == texts[-1].split()[: short[0].n_words]
