"""conseq.data.batching: truncation keeps </s> and is counted, buckets are deterministic, padding minimal."""

from __future__ import annotations

import pytest
import torch

from conseq.data.batching import collate, collate_pairs, encode_pairs, length_buckets

TEXTS = [
    "Anna Berg of Delta Bank won 7 games in Lisbon on Monday, officials said.",
    "Tom Reyes of North Party won 3 games in Oslo on Monday, officials said.",
    "Lena Park of Helix Labs won 5 games in Hanoi on Monday, officials said.",
]


@pytest.fixture(scope="module")
def tokenizer():
    from conseq.modeling import train_tokenizer

    return train_tokenizer(TEXTS * 20, vocab_size=300)


def test_encode_pairs_truncates_keeping_eos_and_counts(tokenizer):
    full = tokenizer(TEXTS[0])["input_ids"]
    assert full[-1] == tokenizer.eos_token_id and len(full) > 8
    enc = encode_pairs(tokenizer, [TEXTS[0], "Oslo"], [TEXTS[1], "ok"], max_source_length=8, max_target_length=6)
    assert enc.input_ids[0] == [*full[:7], tokenizer.eos_token_id]
    assert enc.input_ids[1] == tokenizer("Oslo")["input_ids"]  # short: untouched
    assert enc.labels[0] == [*tokenizer(text_target=TEXTS[1])["input_ids"][:5], tokenizer.eos_token_id]
    assert len(enc.labels[0]) == 6
    assert (enc.truncated_sources, enc.truncated_targets) == (1, 1)


def test_encode_pairs_without_targets(tokenizer):
    enc = encode_pairs(tokenizer, TEXTS, None, max_source_length=512, max_target_length=8)
    assert enc.labels == [] and enc.truncated_sources == 0 and len(enc.input_ids) == 3
    with pytest.raises(ValueError, match="3 sources but 1 targets"):
        encode_pairs(tokenizer, TEXTS, ["x"], max_source_length=512, max_target_length=8)


def test_truncation_without_final_special_token():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    words = ["a", "b", "c", "d", "e"]
    core = Tokenizer(WordLevel({"<unk>": 0, "<pad>": 1, **{w: i + 2 for i, w in enumerate(words)}}, unk_token="<unk>"))
    core.pre_tokenizer = Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>")
    enc = encode_pairs(tok, ["a b c d e"], None, max_source_length=3, max_target_length=3)
    assert enc.input_ids == [[2, 3, 4]] and enc.truncated_sources == 1


def test_length_buckets_by_batch_size():
    lengths = [5, 1, 4, 2, 3, 1]
    assert length_buckets(lengths, max_tokens=None, batch_size=2, shuffle=False, seed=0) == [
        [1, 5],
        [3, 4],
        [2, 0],
    ]


def test_length_buckets_by_tokens():
    lengths = [5, 1, 4, 2, 3, 1, 20]
    batches = length_buckets(lengths, max_tokens=8, batch_size=None, shuffle=False, seed=0)
    assert batches == [[1, 5, 3], [4, 2], [0], [6]]  # 3×2=6, 2×4=8, 1×5, and the over-long item alone
    for batch in batches[:-1]:
        assert len(batch) * max(lengths[i] for i in batch) <= 8
    both = length_buckets(lengths, max_tokens=8, batch_size=2, shuffle=False, seed=0)
    assert both == [[1, 5], [3, 4], [2], [0], [6]]


def test_length_buckets_shuffle_moves_batches_only_and_is_deterministic():
    lengths = [(7 * i) % 23 + 1 for i in range(40)]
    plain = length_buckets(lengths, max_tokens=None, batch_size=4, shuffle=False, seed=0)
    shuffled = length_buckets(lengths, max_tokens=None, batch_size=4, shuffle=True, seed=3)
    assert shuffled == length_buckets(lengths, max_tokens=None, batch_size=4, shuffle=True, seed=3)
    assert shuffled != plain and sorted(shuffled) == sorted(plain)
    assert shuffled != length_buckets(lengths, max_tokens=None, batch_size=4, shuffle=True, seed=4)
    assert sorted(i for b in shuffled for i in b) == list(range(40))


def test_length_buckets_needs_a_limit():
    with pytest.raises(ValueError, match="max_tokens, batch_size"):
        length_buckets([1, 2], max_tokens=None, batch_size=None, shuffle=False, seed=0)


def test_collate_pads_to_batch_max():
    batch = collate([[0, 5, 2], [0, 2]], [[7, 2], [0, 8, 9, 2]], pad_token_id=1)
    assert torch.equal(batch["input_ids"], torch.tensor([[0, 5, 2], [0, 2, 1]]))
    assert torch.equal(batch["attention_mask"], torch.tensor([[1, 1, 1], [1, 1, 0]]))
    assert torch.equal(batch["labels"], torch.tensor([[7, 2, -100, -100], [0, 8, 9, 2]]))
    assert all(t.dtype == torch.long for t in batch.values())
    assert set(collate([[3]], None, pad_token_id=1)) == {"input_ids", "attention_mask"}


def test_collate_pairs_pads_each_side_to_its_own_max():
    batch = collate_pairs([[0, 5, 2], [0, 2]], [[7, 2], [8, 2]], [[4, 4, 4, 2], [6, 2]], pad_token_id=1)
    assert batch["labels"].shape == (2, 2) and batch["neg_labels"].shape == (2, 4)
    assert torch.equal(batch["neg_labels"][1], torch.tensor([6, 2, -100, -100]))
    with pytest.raises(ValueError, match="batch sizes differ"):
        collate_pairs([[1]], [[1]], [[1], [2]], pad_token_id=1)
