"""Diverse beam search against its definition, against transformers' greedy decoding, and batched vs alone."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from conseq.generation import diverse_beam_search
from tests.conftest import corpus


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


@pytest.fixture(scope="module")
def random_model(tiny_model_dir):
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_model_dir).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def encode(tokenizer, texts):
    return tokenizer(texts, return_tensors="pt", padding=True)


@torch.inference_mode()
def reference_search(model, input_ids, num_groups, diversity_penalty, min_new_tokens, max_new_tokens):
    """The definition, literally: one group at a time, the whole prefix re-run without a cache."""
    gen = model.generation_config
    start, bos, eos, pad = (
        gen.decoder_start_token_id,
        gen.forced_bos_token_id,
        gen.eos_token_id,
        gen.pad_token_id,
    )
    seqs = [[start, bos] for _ in range(num_groups)]
    scores = [0.0] * num_groups
    done = [False] * num_groups
    for step in range(max_new_tokens + 1):
        chosen = []
        for g in range(num_groups):
            if done[g]:
                continue
            logits = model(input_ids=input_ids, decoder_input_ids=torch.tensor([seqs[g]])).logits[0, -1]
            adjusted = logits.float().log_softmax(-1)
            adjusted[pad] = -torch.inf
            if step < min_new_tokens:
                adjusted[eos] = -torch.inf
            if step >= max_new_tokens:
                adjusted[torch.arange(len(adjusted)) != eos] = -torch.inf
            for token in chosen:
                adjusted[token] -= diversity_penalty
            token = int(adjusted.argmax())
            scores[g] += float(adjusted[token])
            seqs[g].append(token)
            chosen.append(token)
            done[g] = token == eos
        if all(done):
            break
    return [s[1:] for s in seqs], scores


def unpad(row: torch.Tensor, length: int, offset: int = 1) -> list[int]:
    return row[: offset + length].tolist()


def test_matches_the_definition(qagen):
    model, tokenizer = qagen
    enc = encode(tokenizer, corpus(1, seed=11))
    out = diverse_beam_search(model, enc.input_ids, enc.attention_mask, num_groups=6, max_new_tokens=20)
    seqs, scores = reference_search(model, enc.input_ids, 6, 0.5, 8, 20)
    assert len({tuple(s) for s in seqs}) > 1  # the penalty made the groups diverge
    for g in range(6):
        assert unpad(out.sequences[0, g], int(out.lengths[0, g])) == seqs[g]
        assert out.penalized_scores[0, g].item() == pytest.approx(scores[g], abs=1e-4)
        assert out.sequences[0, g, 1 + int(out.lengths[0, g]) :].eq(tokenizer.pad_token_id).all()


@pytest.mark.parametrize(
    ("model_name", "min_new", "max_new"),
    [("qagen", 8, 60), ("qagen", 14, 60), ("qagen", 2, 5), ("random_model", 8, 12)],
)
def test_group0_is_greedy(request, model_name, min_new, max_new):
    model, tokenizer = request.getfixturevalue(model_name)
    texts = corpus(3, seed=5)
    enc = encode(tokenizer, texts)
    out = diverse_beam_search(
        model, enc.input_ids, enc.attention_mask, num_groups=4, min_new_tokens=min_new, max_new_tokens=max_new
    )
    for i in range(len(texts)):
        one = encode(tokenizer, texts[i : i + 1])
        # transformers counts the forced BOS as a new token and ends at max_length with the forced EOS.
        greedy = model.generate(
            **one, num_beams=1, do_sample=False, min_new_tokens=min_new + 1, max_new_tokens=max_new + 2
        )[0, 1:].tolist()
        assert unpad(out.sequences[i, 0], int(out.lengths[i, 0])) == greedy
        assert greedy[-1] == tokenizer.eos_token_id


def test_lengths_and_scores(qagen):
    model, tokenizer = qagen
    enc = encode(tokenizer, corpus(2, seed=3))
    out = diverse_beam_search(model, enc.input_ids, enc.attention_mask, num_groups=60, min_new_tokens=11)
    bos, eos = model.generation_config.forced_bos_token_id, tokenizer.eos_token_id
    assert out.sequences.shape[:2] == (2, 60)
    assert (out.sequences[:, :, 0] == bos).all() and (out.token_logprobs[:, :, 0] == 0).all()
    assert (out.lengths >= 12).all() and (out.lengths <= 61).all()
    assert (out.lengths < 61).any()  # most groups end by themselves
    last = out.sequences.gather(2, out.lengths[..., None]).squeeze(-1)
    assert (last == eos).all()
    assert ((out.sequences == eos).sum(-1) == 1).all()
    logprob_sums = out.token_logprobs.sum(-1)
    torch.testing.assert_close(out.penalized_scores[:, 0], logprob_sums[:, 0])
    assert (out.penalized_scores <= logprob_sums + 1e-5).all()
    assert (out.penalized_scores[:, 1:] < logprob_sums[:, 1:] - 1e-3).any()

    # The penalty paid is exactly 0.5 x the number of earlier groups that chose the same token at that step
    # (finished groups are padded, and pad is never chosen, so they never count).
    seq = out.sequences
    earlier = torch.ones(60, 60, dtype=torch.bool).tril(-1)[..., None]  # [g, g', 1]: g' < g
    same = (seq[:, :, None, :] == seq[:, None, :, :]) & earlier
    scored = torch.arange(seq.shape[-1]) < (out.lengths + 1)[..., None]
    scored[:, :, 0] = False
    collisions = (same.sum(2) * scored).sum(-1)
    torch.testing.assert_close(out.penalized_scores, logprob_sums - 0.5 * collisions)


def test_large_penalty_makes_every_group_different(qagen):
    model, tokenizer = qagen
    enc = encode(tokenizer, corpus(1, seed=4))
    out = diverse_beam_search(model, enc.input_ids, enc.attention_mask, num_groups=30, diversity_penalty=1e4)
    # All groups see the same first distribution: only the penalty separates them.
    first = out.sequences[0, :, 1]
    assert len(set(first.tolist())) == 30


def test_batched_equals_one_at_a_time(qagen):
    model, tokenizer = qagen
    texts = ["Tom Reyes won in Oslo.", *corpus(2, seed=8)]  # different lengths: the batch is padded
    enc = encode(tokenizer, texts)
    batched = diverse_beam_search(model, enc.input_ids, enc.attention_mask, num_groups=20)
    for i, text in enumerate(texts):
        one = encode(tokenizer, [text])
        alone = diverse_beam_search(model, one.input_ids, one.attention_mask, num_groups=20)
        assert torch.equal(batched.lengths[i], alone.lengths[0])
        width = alone.sequences.shape[-1]
        assert torch.equal(batched.sequences[i, :, :width], alone.sequences[0])
        assert batched.sequences[i, :, width:].eq(tokenizer.pad_token_id).all()
        torch.testing.assert_close(batched.penalized_scores[i], alone.penalized_scores[0], atol=1e-4, rtol=0)
        torch.testing.assert_close(batched.token_logprobs[i, :, :width], alone.token_logprobs[0], atol=1e-4, rtol=0)


def test_model_without_forced_bos(random_model):
    """A T5-style model (decoder starts from pad, no forced BOS): nothing is prepended, all tokens scored."""
    from transformers import T5Config, T5ForConditionalGeneration

    _, tokenizer = random_model
    config = T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=1, num_heads=2,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config).eval()
    model.generation_config.forced_bos_token_id = None
    enc = encode(tokenizer, corpus(2, seed=1))
    out = diverse_beam_search(model, enc.input_ids, enc.attention_mask, num_groups=5, max_new_tokens=10)
    for i in range(2):
        greedy = model.generate(
            input_ids=enc.input_ids[i : i + 1],
            attention_mask=enc.attention_mask[i : i + 1],
            num_beams=1,
            do_sample=False,
            min_new_tokens=8,
            max_new_tokens=10,
            suppress_tokens=[tokenizer.pad_token_id],  # a random T5 likes pad; the search never picks it
        )[0, 1:].tolist()
        got = unpad(out.sequences[i, 0], int(out.lengths[i, 0]), offset=0)
        assert got[: len(greedy)] == greedy  # transformers stops at 10 tokens without an EOS; we force one
        torch.testing.assert_close(out.penalized_scores[i, 0], out.token_logprobs[i, 0].sum())


@pytest.mark.parametrize(("shallow", "prune"), [(60, 0.25), (2, 1e-9), (8, 1.0)])
def test_same_hypotheses_whatever_the_ranking_depth_and_cache_pruning(qagen, monkeypatch, shallow, prune):
    """The search ranks a few candidates per row and redoes a batch row with the full depth only when a choice
    cannot be certified, and leaves finished rows in the cache until enough have finished: neither may change
    what it returns."""
    import conseq.generation as generation

    model, tokenizer = qagen
    enc = encode(tokenizer, ["Tom Reyes won in Oslo.", *corpus(3, seed=21)])
    kwargs = dict(num_groups=60, diversity_penalty=0.5, min_new_tokens=8, max_new_tokens=30)
    default = diverse_beam_search(model, enc.input_ids, enc.attention_mask, **kwargs)
    monkeypatch.setattr(generation, "_SHALLOW_TOP_K", shallow)
    monkeypatch.setattr(generation, "_PRUNE_FRACTION", prune)
    other = diverse_beam_search(model, enc.input_ids, enc.attention_mask, **kwargs)
    assert torch.equal(default.sequences, other.sequences)
    assert torch.equal(default.lengths, other.lengths)
    torch.testing.assert_close(default.penalized_scores, other.penalized_scores, atol=1e-4, rtol=0)
    torch.testing.assert_close(default.token_logprobs, other.token_logprobs, atol=1e-4, rtol=0)
