"""BART's text infilling (Lewis et al. 2020, §2.2), on whole words: the noise of stage=pretrain.

A share ``mask_ratio`` of a document's words is masked in spans whose lengths are drawn from Poisson(λ); each
span becomes one ``<mask>``, so the model must also learn how many words are missing. Spans that touch merge
into one mask, and a span of length 0 inserts a ``<mask>`` where nothing is missing, as BART does. With
``permute_sentences`` the sentences are shuffled first (BART's sentence permutation). The target is always the
whole original document.

The functions are pure and seeded by the caller's ``random.Random``: stage=pretrain draws a new noise for every
epoch from ``noise_rng(seed, epoch, index)``, so a resumed run sees the noise the killed one would have.
``noise_plan`` works on word indices (the stage maps them to each word's token ids); ``noise_text`` on text.
"""

from __future__ import annotations

import math
import random
import re
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

MASK = "<mask>"
SENTENCE_ENDS = (".", "!", "?", '."', '!"', '?"')


def noise_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The noise of example ``index`` in ``epoch``: a string seed, so it never depends on PYTHONHASHSEED."""
    return random.Random(f"denoising/{seed}/{epoch}/{index}")


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson(``lam``) draw (Knuth's method: fine for BART's λ = 3)."""
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def sentence_starts(words: Sequence[str]) -> list[int]:
    """Indices of the words that begin a sentence (the first word, and each word after one ending in . ! ?)."""
    if not words:
        return []
    return [0] + [i + 1 for i, word in enumerate(words[:-1]) if word.endswith(SENTENCE_ENDS)]


def noise_plan(
    n_words: int,
    rng: random.Random,
    *,
    mask_ratio: float,
    poisson_lambda: float,
    starts: Sequence[int] | None = None,
) -> list[int | None]:
    """The noised document as a list of word indices into the original, ``None`` standing for one ``<mask>``.

    ``round(mask_ratio × n_words)`` words are masked (rounded at random, so the share is exact on average) in
    spans of Poisson(``poisson_lambda``) words, placed uniformly among the kept words; spans that land next to
    each other merge into one mask. ``starts`` (sentence-initial word indices, see ``sentence_starts``) shuffles
    the sentences before masking; None keeps their order.
    """
    if not 0.0 <= mask_ratio <= 1.0:
        raise ValueError(f"mask_ratio={mask_ratio} must lie in [0, 1]")
    if poisson_lambda <= 0:
        raise ValueError(f"poisson_lambda={poisson_lambda} must be > 0 (spans of 0 words mask nothing)")
    order = list(range(n_words))
    if starts is not None and len(starts) > 1:
        bounds = [*starts, n_words]
        sentences = [order[a:b] for a, b in pairwise(bounds)]
        rng.shuffle(sentences)
        order = [i for sentence in sentences for i in sentence]
    exact = mask_ratio * n_words
    n_masked = int(exact) + (rng.random() < exact - int(exact))
    lengths: list[int] = []
    total = 0
    while total < n_masked:
        lengths.append(min(poisson(rng, poisson_lambda), n_masked - total))
        total += lengths[-1]
    # Each span goes into one of the n_kept + 1 gaps around the kept words; spans sharing a gap are adjacent in
    # the original and merge into one mask.
    n_kept = n_words - n_masked
    masked_in_gap: dict[int, int] = {}
    for length in lengths:
        gap = rng.randint(0, n_kept)
        masked_in_gap[gap] = masked_in_gap.get(gap, 0) + length
    plan: list[int | None] = []
    position = 0
    for gap in range(n_kept + 1):
        if gap in masked_in_gap:
            plan.append(None)
            position += masked_in_gap[gap]
        if gap < n_kept:
            plan.append(order[position])
            position += 1
    return plan


def noise_text(
    text: str,
    rng: random.Random,
    *,
    mask_ratio: float,
    poisson_lambda: float,
    permute_sentences: bool = False,
    mask: str = MASK,
) -> str:
    """``text`` with BART's text infilling (and sentence permutation) applied to its whitespace words."""
    words = text.split()
    plan = noise_plan(
        len(words),
        rng,
        mask_ratio=mask_ratio,
        poisson_lambda=poisson_lambda,
        starts=sentence_starts(words) if permute_sentences else None,
    )
    return " ".join(mask if i is None else words[i] for i in plan)


@dataclass
class WordTokens:
    """A document's token ids (without ``<s>``/``</s>``) and where each whitespace word's tokens begin."""

    ids: array  # token ids
    word_starts: array  # token index of each word's first token, and len(ids) last
    sentence_starts: list[int]  # indices of the sentence-initial words

    @property
    def n_words(self) -> int:
        return len(self.word_starts) - 1


def encode_words(tokenizer, texts: Sequence[str], max_length: int) -> tuple[list[WordTokens], int]:
    """Tokenize ``texts`` once and map every token to its whitespace word (the word holding its last character),
    so that noise drawn on words becomes token ids without re-tokenizing. A text longer than ``max_length`` ids
    (with ``<s>`` and ``</s>``) is cut after its last whole word that fits; returns the texts and how many were
    cut."""
    encoded = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    out, n_truncated = [], 0
    for text, ids, offsets in zip(texts, encoded["input_ids"], encoded["offset_mapping"], strict=True):
        spans = [m.span() for m in re.finditer(r"\S+", text)]
        ends = [end for _, end in spans]
        starts, word = [], -1
        for t, (_, end) in enumerate(offsets):
            w = max(word, min(bisect_left(ends, end), len(spans) - 1))
            starts += [t] * (w - word)  # a word's first token (none is skipped: each holds a character)
            word = w
        starts.append(len(ids))
        n_words = len(spans)
        while n_words and starts[n_words] + 2 > max_length:
            n_words -= 1
        n_truncated += n_words < len(spans)
        words = text.split()[:n_words]
        out.append(
            WordTokens(array("i", ids[: starts[n_words]]), array("i", starts[: n_words + 1]), sentence_starts(words))
        )
    return out, n_truncated


def noised_ids(
    doc: WordTokens, plan: Sequence[int | None], *, bos: int, eos: int, mask: int, max_length: int
) -> list[int]:
    """The ids of a ``noise_plan`` of ``doc``: ``<s>``, each kept word's tokens or one ``mask`` id, ``</s>`` (cut to
    ``max_length``, keeping ``</s>``: zero-length spans add a mask where no word went)."""
    out = [bos]
    for i in plan:
        if i is None:
            out.append(mask)
        else:
            out += doc.ids[doc.word_starts[i] : doc.word_starts[i + 1]]
    out = out[: max_length - 1] if len(out) >= max_length else out
    out.append(eos)
    return out


def target_ids(doc: WordTokens, *, bos: int, eos: int) -> list[int]:
    """The target: the whole (possibly cut) document, ``<s> … </s>``."""
    return [bos, *doc.ids, eos]
