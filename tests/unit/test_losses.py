"""conseq.losses against direct per-token loops of the formulas in reference/quals_conseq.md §4.3 (and of DPO's)."""

from __future__ import annotations

import math

import pytest
import torch

from conseq.losses import (
    conseq_loss,
    dpo_loss,
    label_smoothed_nll,
    novel_token_mask,
    sequence_log_probs,
    token_unlikelihood,
)

B, T, V = 3, 5, 11


def random_batch(seed=0, t=T):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, t, V, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, V, (B, t), generator=g)
    labels[0, -2:] = -100
    labels[2, -1] = -100
    return logits, labels


def slow_smoothed_nll(logits, labels, eps):
    loss = nll_total = 0.0
    n = 0
    for b in range(logits.size(0)):
        for t in range(logits.size(1)):
            y = int(labels[b, t])
            if y == -100:
                continue
            p = torch.softmax(logits[b, t], -1).tolist()
            nll = -math.log(p[y])
            loss += (1 - eps) * nll + eps / len(p) * sum(-math.log(pv) for pv in p)
            nll_total += nll
            n += 1
    return loss, nll_total, n


def slow_unlikelihood(logits, labels, eps, clamp=1e-20, mask=None):
    loss, n = 0.0, 0
    for b in range(logits.size(0)):
        for t in range(logits.size(1)):
            y = int(labels[b, t])
            if y == -100 or (mask is not None and not mask[b, t]):
                continue
            p = torch.softmax(logits[b, t], -1).tolist()
            term = [-math.log(max(1 - pv, clamp)) for pv in p]
            loss += (1 - eps) * term[y] + eps / len(p) * sum(term)
            n += 1
    return loss, n


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothed_nll_matches_loop(eps):
    logits, labels = random_batch()
    loss, nll, n = label_smoothed_nll(logits, labels, eps)
    want_loss, want_nll, want_n = slow_smoothed_nll(logits, labels, eps)
    assert loss.item() == pytest.approx(want_loss, rel=1e-5)
    assert nll.item() == pytest.approx(want_nll, rel=1e-5)
    assert int(n) == want_n == B * T - 3


def test_epsilon_zero_is_cross_entropy_sum():
    logits, labels = random_batch(seed=1)
    loss, nll, _ = label_smoothed_nll(logits, labels, epsilon=0.0)
    ce = torch.nn.functional.cross_entropy(logits.float().reshape(-1, V), labels.reshape(-1), reduction="sum")
    assert loss.item() == pytest.approx(ce.item(), rel=1e-5) and nll.item() == pytest.approx(ce.item(), rel=1e-5)


def test_ignored_positions_do_not_matter():
    logits, labels = random_batch(seed=2)
    changed = logits.clone()
    changed[labels == -100] = 1e4  # garbage logits where ignored
    for fn in (label_smoothed_nll, token_unlikelihood):
        assert fn(logits, labels)[0].item() == pytest.approx(fn(changed, labels)[0].item(), rel=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_token_unlikelihood_matches_loop(eps):
    logits, labels = random_batch(seed=3)
    mask = torch.rand(B, T, generator=torch.Generator().manual_seed(0)) > 0.4
    for token_mask in (None, mask):
        loss, n = token_unlikelihood(logits, labels, eps, token_mask=token_mask)
        want_loss, want_n = slow_unlikelihood(logits, labels, eps, mask=token_mask)
        assert loss.item() == pytest.approx(want_loss, rel=1e-5) and int(n) == want_n


def test_unlikelihood_finite_when_p_is_one():
    _, labels = random_batch(seed=4)
    # Make the negative token certain (p = 1 in float32) at every position: 1 − p must hit the clamp.
    peaked = torch.full((B, T, V), -60.0)
    peaked.scatter_(-1, labels.clamp(min=0).unsqueeze(-1), 60.0)
    peaked.requires_grad_(True)
    loss, n = token_unlikelihood(peaked, labels, epsilon=0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(peaked.grad).all()
    # Only the certain token has 1 − p ≈ 0, clamped: (1−ε + ε/V)·(−log 1e-20) per token.
    assert loss.item() / int(n) == pytest.approx((0.9 + 0.1 / V) * -math.log(1e-20), rel=1e-4)
    # Just below 1: still finite, and the gradient pushes the negative token's logit down.
    near = torch.zeros(1, 1, V)
    near[0, 0, 3] = 12.0
    near.requires_grad_(True)
    token_unlikelihood(near, torch.tensor([[3]]), epsilon=0.0)[0].backward()
    assert torch.isfinite(near.grad).all() and near.grad[0, 0, 3] > 0


def test_half_precision_logits_are_computed_in_float32():
    logits, labels = random_batch(seed=5)
    full = label_smoothed_nll(logits.float(), labels)[0]
    half = label_smoothed_nll(logits.bfloat16(), labels)[0]
    assert half.dtype == torch.float32 and half.item() == pytest.approx(full.item(), rel=2e-2)


def test_novel_token_mask_hand_case():
    pos = torch.tensor([[0, 5, 6, 2, -100], [0, 9, 2, -100, -100]])
    neg = torch.tensor([[0, 5, 7, 8, 2, 7], [0, 9, 4, 2, -100, -100]])
    want = torch.tensor([[False, False, True, True, False, True], [False, False, True, False, False, False]])
    assert torch.equal(novel_token_mask(neg, pos), want)
    # -100 in the positive must not make a -100 "shared": ignored positions are never novel anyway.
    assert not novel_token_mask(torch.tensor([[-100]]), torch.tensor([[-100]])).any()


def test_novel_bigram_mask_flags_a_recombination_of_shared_tokens():
    # y+ names "John Doe" (5 6) and "Mary Smith" (7 8); y− writes "John Smith" (5 8): every token is shared, so
    # the unigram mask spares the blend, the bigram mask flags its second token (and the EOS after a new word).
    pos = torch.tensor([[0, 5, 6, 3, 7, 8, 2]])
    neg = torch.tensor([[0, 5, 8, 3, 7, 8, 2]])
    assert not novel_token_mask(neg, pos, ngram=1).any()
    assert novel_token_mask(neg, pos, ngram=2).tolist() == [[False, False, True, True, False, False, False]]


@pytest.mark.parametrize("ngram", [1, 2, 3])
def test_novel_ngram_mask_matches_a_plain_python_reading(ngram):
    gen = torch.Generator().manual_seed(ngram)
    pos = torch.randint(0, 6, (4, 9), generator=gen)
    neg = torch.randint(0, 6, (4, 11), generator=gen)
    pos[:, 7:] = -100
    neg[1, 5:] = -100
    got = novel_token_mask(neg, pos, ngram=ngram)
    for b in range(4):
        p = [t for t in pos[b].tolist() if t != -100]
        n = neg[b].tolist()
        grams = {tuple(([None] * ngram + p)[i + 1 : i + 1 + ngram]) for i in range(len(p))}
        for t, tok in enumerate(n):
            window = tuple(([None] * ngram + n)[t + 1 : t + 1 + ngram])
            assert bool(got[b, t]) == (tok != -100 and window not in grams), (b, t)
    with pytest.raises(ValueError, match="ngram"):
        novel_token_mask(neg, pos, ngram=0)


def test_conseq_loss_combines_terms():
    pos_logits, pos_labels = random_batch(seed=6)
    neg_logits, neg_labels = random_batch(seed=7, t=T + 2)
    out = conseq_loss(pos_logits, pos_labels, neg_logits, neg_labels, epsilon=0.1, negative_weight=0.5)
    pos_sum, _, n_pos = slow_smoothed_nll(pos_logits, pos_labels, 0.1)
    neg_sum, n_neg = slow_unlikelihood(neg_logits, neg_labels, 0.1)
    assert out["loss"].item() == pytest.approx((pos_sum + 0.5 * neg_sum) / (n_pos + n_neg), rel=1e-5)
    assert int(out["n_tokens"]) == n_pos + n_neg
    assert out["pos_loss"].item() == pytest.approx(pos_sum / n_pos, rel=1e-5)


def test_conseq_loss_novel_normalises_by_all_tokens():
    pos_logits, pos_labels = random_batch(seed=8)
    neg_logits, neg_labels = random_batch(seed=9)
    out = conseq_loss(pos_logits, pos_labels, neg_logits, neg_labels, unlikelihood_tokens="novel")
    mask = novel_token_mask(neg_labels, pos_labels)
    assert 0 < int(mask.sum()) < int((neg_labels != -100).sum())
    pos_sum, _, n_pos = slow_smoothed_nll(pos_logits, pos_labels, 0.1)
    neg_sum, _ = slow_unlikelihood(neg_logits, neg_labels, 0.1, mask=mask)
    n_neg_all = int((neg_labels != -100).sum())
    assert out["loss"].item() == pytest.approx((pos_sum + neg_sum) / (n_pos + n_neg_all), rel=1e-5)
    assert int(out["n_unlikelihood_tokens"]) == int(mask.sum())


def test_conseq_loss_gradient_flows_and_rejects_unknown_option():
    pos_logits, pos_labels = random_batch(seed=10)
    neg_logits, neg_labels = random_batch(seed=11)
    pos_logits.requires_grad_(True)
    neg_logits.requires_grad_(True)
    conseq_loss(pos_logits, pos_labels, neg_logits, neg_labels)["loss"].backward()
    assert pos_logits.grad.abs().sum() > 0 and neg_logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unlikelihood_tokens"):
        conseq_loss(pos_logits, pos_labels, neg_logits, neg_labels, unlikelihood_tokens="some")


def slow_sequence_log_probs(logits, labels):
    out = []
    for b in range(logits.size(0)):
        total = 0.0
        for t in range(logits.size(1)):
            y = int(labels[b, t])
            if y != -100:
                total += math.log(torch.softmax(logits[b, t], -1)[y].item())
        out.append(total)
    return out


def test_sequence_log_probs_sum_each_rows_own_tokens():
    logits, labels = random_batch(seed=12)
    assert sequence_log_probs(logits, labels).tolist() == pytest.approx(slow_sequence_log_probs(logits, labels))


@pytest.mark.parametrize(("beta", "nll_weight"), [(0.1, 1.0), (0.5, 0.0)])
def test_dpo_loss_matches_its_formula(beta, nll_weight):
    pos_logits, pos_labels = random_batch(seed=13)
    neg_logits, neg_labels = random_batch(seed=14, t=T + 1)
    ref_pos, ref_neg = torch.tensor([-9.0, -12.0, -7.5]), torch.tensor([-8.0, -15.0, -10.0])
    out = dpo_loss(
        pos_logits, pos_labels, neg_logits, neg_labels, ref_pos, ref_neg, beta=beta, nll_weight=nll_weight, epsilon=0.1
    )
    pos_lp = slow_sequence_log_probs(pos_logits, pos_labels)
    neg_lp = slow_sequence_log_probs(neg_logits, neg_labels)
    margins = [beta * ((p - rp) - (n - rn)) for p, n, rp, rn in zip(pos_lp, neg_lp, ref_pos.tolist(), ref_neg.tolist())]
    pref = sum(math.log1p(math.exp(-m)) for m in margins) / len(margins)
    pos_sum, nll_sum, n_pos = slow_smoothed_nll(pos_logits, pos_labels, 0.1)
    assert out["loss"].item() == pytest.approx(pref + nll_weight * pos_sum / n_pos, rel=1e-5)
    assert out["pref_loss"].item() == pytest.approx(pref, rel=1e-5)
    assert out["pos_nll"].item() == pytest.approx(nll_sum / n_pos, rel=1e-5)
    assert out["accuracy"].item() == pytest.approx(sum(m > 0 for m in margins) / len(margins))


def test_dpo_starts_at_log_two_and_its_gradient_prefers_the_positive():
    # At the reference model the margin is 0 and the preference loss log 2; one gradient step on the logits
    # raises log p(y+) and lowers log p(y−).
    pos_logits, pos_labels = random_batch(seed=15)
    neg_logits, neg_labels = random_batch(seed=16)
    ref_pos, ref_neg = sequence_log_probs(pos_logits, pos_labels), sequence_log_probs(neg_logits, neg_labels)
    pos_logits.requires_grad_(True)
    neg_logits.requires_grad_(True)
    out = dpo_loss(pos_logits, pos_labels, neg_logits, neg_labels, ref_pos, ref_neg, nll_weight=0.0)
    assert out["pref_loss"].item() == pytest.approx(math.log(2))
    assert out["margin"].item() == pytest.approx(0.0, abs=1e-9)
    out["loss"].backward()
    with torch.no_grad():
        pos_after = sequence_log_probs(pos_logits - 0.5 * pos_logits.grad, pos_labels)
        neg_after = sequence_log_probs(neg_logits - 0.5 * neg_logits.grad, neg_labels)
    assert (pos_after > ref_pos).all() and (neg_after < ref_neg).all()
