"""The training losses as pure functions of logits and labels: label-smoothed NLL (MLE, QAGen, the positive
term of ConSeq), token-level unlikelihood (ConSeq's negative term) and their ConSeq combination, and a
sequence-level alternative to unlikelihood: DPO's preference loss on (y+, y−) against the frozen MLE model.

Formulas follow the original criterion (reference/quals_conseq.md §4.3, fairseq 0.9's label smoothing):
per target token t, with ε the smoothing and V the vocabulary size,

    positive:  (1−ε)·[−log p(y_t)]      + (ε/V)·Σ_v [−log p(v)]
    negative:  (1−ε)·[−log(1 − p(y_t))] + (ε/V)·Σ_v [−log(1 − p(v))],  1 − p clamped ≥ clamp

Losses are returned as sums over tokens with the token count beside them, so the caller chooses the normaliser
(and can sum both across processes before dividing). Labels equal to -100 are ignored.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100
UNLIKELIHOOD_TOKENS = ("all", "novel")


def _selected_log_probs(
    logits: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 log-softmax of the kept positions only ([N, V]) and their labels ([N]).

    Selecting before the softmax keeps padding out of the [N, V] temporaries, the largest tensors of the step.
    """
    lprobs = torch.log_softmax(logits[keep].float(), dim=-1)
    return lprobs, labels[keep]


def label_smoothed_nll(
    logits: torch.Tensor, labels: torch.Tensor, epsilon: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Label-smoothed cross-entropy summed over the non-ignored tokens.

    Args:
        logits: [B, T, V] decoder logits (any float dtype; computed in float32).
        labels: [B, T] target ids, -100 where ignored.
        epsilon: label smoothing ε; 0 gives the plain NLL.

    Returns:
        (loss_sum, nll_sum, n_tokens): the smoothed loss and the unsmoothed NLL summed over tokens, and the
        number of tokens (0-dim int64 tensor on the logits' device).
    """
    keep, loss, nll = _smoothed_tokens(logits, labels, epsilon)
    return loss.sum(), nll.sum(), keep.sum()


def _smoothed_tokens(
    logits: torch.Tensor, labels: torch.Tensor, epsilon: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(keep [B, T], smoothed loss [N], plain NLL [N]) at the N non-ignored positions, row-major."""
    keep = labels != IGNORE_INDEX
    lprobs, target = _selected_log_probs(logits, labels, keep)
    nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    smooth = -lprobs.sum(-1)
    # fairseq 0.9 form: (1-ε)·nll + (ε/V)·Σ_v −log p(v); the original's criterion used exactly this.
    loss = (1.0 - epsilon) * nll + (epsilon / lprobs.size(-1)) * smooth
    return keep, loss, nll


def _row_sums(keep: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """[B]: the sum of each row's values, ``values`` being [N] at the True positions of ``keep`` [B, T]."""
    rows = keep.nonzero()[:, 0]
    return torch.zeros(keep.size(0), dtype=values.dtype, device=values.device).index_add(0, rows, values)


def token_unlikelihood(
    logits: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float = 0.1,
    clamp: float = 1e-20,
    token_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-level unlikelihood −log(1 − p(y_t)), label-smoothed over the vocabulary as in the original.

    Args:
        logits: [B, T, V] decoder logits under teacher forcing on the negative sequence.
        labels: [B, T] negative target ids, -100 where ignored.
        epsilon: label smoothing ε, applied to log(1 − p) across the whole vocabulary (the original's choice).
        clamp: lower bound on 1 − p, so that p → 1 gives a large but finite loss and gradient.
        token_mask: optional [B, T] bool; only tokens where it is True (and labels != -100) contribute.

    Returns:
        (loss_sum, n_tokens): the loss summed over the contributing tokens, and their number.
    """
    keep = labels != IGNORE_INDEX
    if token_mask is not None:
        keep = keep & token_mask
    lprobs, target = _selected_log_probs(logits, labels, keep)
    # 1 − p = −expm1(log p) is exact for p near 1, where 1 − exp(log p) cancels; clamp before the log so the
    # gradient where it binds is 0, not inf·0 = nan.
    log_one_minus_p = torch.log(torch.clamp(-torch.expm1(lprobs), min=clamp))
    unlikely = -log_one_minus_p.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    smooth = -log_one_minus_p.sum(-1)
    loss = (1.0 - epsilon) * unlikely + (epsilon / lprobs.size(-1)) * smooth
    return loss.sum(), keep.sum()


def novel_token_mask(neg_labels: torch.Tensor, pos_labels: torch.Tensor, ngram: int = 1) -> torch.Tensor:
    """[B, T−] bool: True where the n-gram of the negative's token ids ending at that position occurs nowhere in
    the same row's positive.

    ``ngram=1`` (``unlikelihood_tokens="novel"``): a token of y− is pushed down only if y+ lacks it, so shared
    words (and special tokens) are spared. That spares recombinations too: the first name of one person and the
    last name of another both occur in a y+ that names both people, only their pair is new. ``ngram=2`` pushes
    down the token that makes a new pair (``"Smith"`` after ``"John"`` when y+ never writes ``"John Smith"``).
    Positions before a sequence's start count as one shared pad symbol, so the first tokens are compared as
    shorter n-grams. Ignored positions (-100) of either side never match and are False in the result.
    """
    if neg_labels.size(0) != pos_labels.size(0):
        raise ValueError(f"batch sizes differ: {neg_labels.size(0)} negatives, {pos_labels.size(0)} positives")
    if ngram < 1:
        raise ValueError(f"ngram must be >= 1, got {ngram}")
    valid_pos = pos_labels != IGNORE_INDEX
    # [B, T, n] windows: the token and the n−1 before it; IGNORE_INDEX stands for "before the start" on both
    # sides, which is safe because a window is only compared where its last token is a real one.
    neg_windows = _windows(neg_labels, ngram)
    pos_windows = _windows(pos_labels, ngram)
    # [B, T−, T+] comparison: summaries are short, so this is small next to the logits.
    same = (neg_windows.unsqueeze(2) == pos_windows.unsqueeze(1)).all(-1)
    shared = (same & valid_pos.unsqueeze(1)).any(-1)
    return (neg_labels != IGNORE_INDEX) & ~shared


def _windows(labels: torch.Tensor, n: int) -> torch.Tensor:
    """[B, T, n]: at each position, the n token ids ending there (left-filled with IGNORE_INDEX)."""
    padded = torch.nn.functional.pad(labels, (n - 1, 0), value=IGNORE_INDEX)
    return padded.unfold(1, n, 1)


def conseq_loss(
    pos_logits: torch.Tensor,
    pos_labels: torch.Tensor,
    neg_logits: torch.Tensor,
    neg_labels: torch.Tensor,
    *,
    epsilon: float = 0.1,
    negative_weight: float = 1.0,
    unlikelihood_tokens: str = "all",
    novel_ngram: int = 1,
    clamp: float = 1e-20,
) -> dict[str, torch.Tensor]:
    """ConSeq's batch loss: label-smoothed NLL on (x, y+) plus weighted token unlikelihood on (x, y−), divided
    by the number of target tokens of both.

    ``unlikelihood_tokens="all"`` is the paper's loss; ``"novel"`` applies unlikelihood only to the tokens of
    y− that end an n-gram (``novel_ngram``, default 1: the token itself) y+ lacks.

    Returns a dict: ``loss`` (to backpropagate), detached per-token means ``pos_loss``, ``pos_nll``,
    ``neg_loss`` for logging, and the counts ``n_tokens``, ``n_pos_tokens``, ``n_neg_tokens``,
    ``n_unlikelihood_tokens``.
    """
    if unlikelihood_tokens not in UNLIKELIHOOD_TOKENS:
        raise ValueError(f"unlikelihood_tokens must be one of {UNLIKELIHOOD_TOKENS}, got {unlikelihood_tokens!r}")
    pos_sum, nll_sum, n_pos = label_smoothed_nll(pos_logits, pos_labels, epsilon)
    mask = novel_token_mask(neg_labels, pos_labels, novel_ngram) if unlikelihood_tokens == "novel" else None
    neg_sum, n_unlikely = token_unlikelihood(neg_logits, neg_labels, epsilon, clamp, token_mask=mask)
    # The normaliser counts ALL negative tokens, also under "novel": it is the original's sample size
    # (#tokens(y+) + #tokens(y−)), and keeps the loss scale independent of how many tokens are novel.
    n_neg = (neg_labels != IGNORE_INDEX).sum()
    n_tokens = n_pos + n_neg
    loss = (pos_sum + negative_weight * neg_sum) / n_tokens.clamp(min=1)
    return {
        "loss": loss,
        "pos_loss": (pos_sum / n_pos.clamp(min=1)).detach(),
        "pos_nll": (nll_sum / n_pos.clamp(min=1)).detach(),
        "neg_loss": (neg_sum / n_unlikely.clamp(min=1)).detach(),
        "n_tokens": n_tokens,
        "n_pos_tokens": n_pos,
        "n_neg_tokens": n_neg,
        "n_unlikelihood_tokens": n_unlikely,
    }


def sequence_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B] float32: Σ_t log p(y_t) over each row's non-ignored tokens (no smoothing)."""
    keep, _, nll = _smoothed_tokens(logits, labels, 0.0)
    return -_row_sums(keep, nll)


def dpo_loss(
    pos_logits: torch.Tensor,
    pos_labels: torch.Tensor,
    neg_logits: torch.Tensor,
    neg_labels: torch.Tensor,
    ref_pos: torch.Tensor,
    ref_neg: torch.Tensor,
    *,
    beta: float = 0.1,
    nll_weight: float = 1.0,
    epsilon: float = 0.1,
) -> dict[str, torch.Tensor]:
    """DPO (Rafailov et al., 2023) on ConSeq's pairs, plus ConSeq's positive term.

    Per pair, with π the model being trained and π_ref the frozen MLE model (``ref_pos``/``ref_neg``: its
    summed log-probabilities of y+ and y−, computed once before training),

        margin = β·[(log π(y+) − log π_ref(y+)) − (log π(y−) − log π_ref(y−))]
        loss   = mean over pairs of −log σ(margin)  +  nll_weight · label-smoothed NLL of y+ per token

    Unlike token unlikelihood, the preference term asks only that y+ gain on y− relative to where the MLE
    model started; tokens that y+ and y− share under the same prefix cancel, and a pair already ranked well
    stops pulling. The NLL term (as in ConSeq, and RPO's recipe) keeps the model on its references.

    Returns a dict: ``loss`` (to backpropagate) and, detached for logging, ``pref_loss``, ``pos_nll``,
    ``margin`` (mean β-scaled margin) and ``accuracy`` (share of pairs with margin > 0).
    """
    # One log-softmax of y+'s logits serves both its sequence log-probability and its smoothed NLL.
    keep, pos_loss, pos_nll = _smoothed_tokens(pos_logits, pos_labels, epsilon)
    pos_lp = -_row_sums(keep, pos_nll)
    neg_lp = sequence_log_probs(neg_logits, neg_labels)
    margin = beta * ((pos_lp - ref_pos.float()) - (neg_lp - ref_neg.float()))
    pref = -torch.nn.functional.logsigmoid(margin).mean()
    n = keep.sum().clamp(min=1)
    return {
        "loss": pref + nll_weight * pos_loss.sum() / n,
        "pref_loss": pref.detach(),
        "pos_nll": (pos_nll.sum() / n).detach(),
        "margin": margin.mean().detach(),
        "accuracy": (margin > 0).float().mean().detach(),
    }
